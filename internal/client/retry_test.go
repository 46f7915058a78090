package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A 429 with a short Retry-After is retried once; a second 429 stands.
func TestRetriesOnceAfter429(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limited   int32 // how many calls answer 429
		wantCalls int32
		wantCode  int
	}{
		{"one 429 then ok", 1, 2, 0},
		{"429 twice", 5, 2, http.StatusTooManyRequests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tc.limited {
					w.Header().Set("Retry-After", "0")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusTooManyRequests)
					w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"slow down"}}`))
					return
				}
				w.Write([]byte(`{"status":"ok"}`))
			}))
			defer srv.Close()
			c, err := New(srv.URL, "")
			if err != nil {
				t.Fatal(err)
			}
			err = c.Health(context.Background())
			if calls.Load() != tc.wantCalls || StatusCode(err) != tc.wantCode {
				t.Fatalf("calls %d, err %v; want %d calls and status %d", calls.Load(), err, tc.wantCalls, tc.wantCode)
			}
		})
	}
}
