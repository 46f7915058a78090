package jitrows

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

func TestEncodeRequestAndGrant(t *testing.T) {
	plus2 := time.FixedZone("+2", 2*3600)
	r := jit.Request{ID: "r1", PolicyID: "P", StartTime: time.Date(2026, 1, 1, 2, 0, 0, 0, plus2),
		Grants: []jit.Grant{{ID: "g1", EndTime: time.Date(2026, 1, 1, 3, 0, 0, 0, plus2)}, {ID: "g2", PolicyID: "Q", EndTime: time.Now()}}}
	stored, body, err := EncodeRequest("test", r)
	if err != nil || stored.Grants != nil || stored.StartTime.Location() != time.UTC || strings.Contains(string(body), "g1") {
		t.Fatalf("EncodeRequest = %+v, %s, %v; want no grants, UTC start", stored, body, err)
	}
	g, _, err := EncodeGrant("test", r, 0, r.Grants[0])
	if err != nil || g.RequestID != "r1" || g.PolicyID != "P" || g.EndTime.Location() != time.UTC {
		t.Fatalf("EncodeGrant = %+v, %v; want request r1, policy P, UTC end", g, err)
	}
	if g, _, _ := EncodeGrant("test", r, 1, r.Grants[1]); g.PolicyID != "Q" {
		t.Errorf("a grant's own policy became %q", g.PolicyID)
	}
	if _, _, err := EncodeGrant("test", r, 0, jit.Grant{ID: "g3"}); err == nil || !strings.HasPrefix(err.Error(), "test: ") {
		t.Errorf("grant without an end time: err = %v, want one naming the backend", err)
	}
	if _, _, err := EncodeRequest("test", jit.Request{}); err == nil {
		t.Error("request without an ID was encoded")
	}
}

func TestOneApproval(t *testing.T) {
	if _, err := OneApproval("r9", nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("no rows: err = %v, want ErrNotFound", err)
	}
	boom := errors.New("boom")
	if _, err := OneApproval("r9", nil, boom); err != boom {
		t.Errorf("err = %v, want the listing's", err)
	}
	p, err := OneApproval("r1", []jit.PendingRequest{{Request: jit.Request{ID: "r1"}}}, nil)
	if err != nil || p.Request.ID != "r1" {
		t.Errorf("OneApproval = %+v, %v", p, err)
	}
}
