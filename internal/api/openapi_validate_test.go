package api_test

import (
	"net/http"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/api/apitest"
)

// validated is s's handler with every request and response checked
// against openapi.json; a mismatch fails the test.
func validated(t *testing.T, s *api.Server) http.Handler {
	t.Helper()
	v, err := apitest.New(api.OpenAPIDocument(), s.Route, api.CanonicalPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, e := range v.Errors() {
			t.Errorf("OpenAPI: %s", e)
		}
		if v.Checked() == 0 {
			t.Error("OpenAPI: no exchange was validated")
		}
	})
	return v.Wrap(s.Handler())
}
