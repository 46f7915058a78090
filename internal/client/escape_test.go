package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A name with a space is escaped once: Role("Security Reader") used to
// request /drawbridge/v1/roles/Security%2520Reader and fail with 404.
func TestPathEscapedOnce(t *testing.T) {
	got := make(chan string, 8)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.EscapedPath()
		w.Write([]byte(`{}`))
	}))
	defer ts.Close()
	for _, c := range []struct{ base, want string }{
		{ts.URL, "/drawbridge/v1/roles/Security%20Reader"},
		{ts.URL + "/prefix%20x/", "/prefix%20x/drawbridge/v1/roles/Security%20Reader"},
	} {
		cl, err := New(c.base, "")
		if err != nil {
			t.Fatal(err)
		}
		cl.Role(context.Background(), "Security Reader") // the fake's answer is no role; only the path matters
		if p := <-got; p != c.want {
			t.Errorf("base %s: requested %s, want %s", c.base, p, c.want)
		}
	}
	// An unescaped path (a resource ID with a space) is escaped once too.
	cl, _ := New(ts.URL, "")
	cl.GetPolicy(context.Background(), "/subscriptions/s/resourceGroups/my rg/x")
	if p := <-got; p != "/subscriptions/s/resourceGroups/my%20rg/x" {
		t.Errorf("raw path requested as %s", p)
	}
}

// Against the real server: the built-in role with a space in its name.
func TestRoleWithSpaceThroughServer(t *testing.T) {
	c := startServer(t)
	r, err := c.Role(context.Background(), "Security Reader")
	if err != nil || r.Name != "Security Reader" {
		t.Fatalf("Role(Security Reader) = %+v, %v", r, err)
	}
}
