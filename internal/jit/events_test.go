package jit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// recordingSink keeps every batch it is given.
type recordingSink struct {
	mu      sync.Mutex
	batches [][]jit.Event
}

func (r *recordingSink) Publish(evs []jit.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, append([]jit.Event(nil), evs...))
}

// take returns the events published since the last take.
func (r *recordingSink) take() []jit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []jit.Event
	for _, b := range r.batches {
		out = append(out, b...)
	}
	r.batches = nil
	return out
}

func describe(evs []jit.Event) string {
	var s []string
	for _, e := range evs {
		x := fmt.Sprintf("%s:%s:%d", e.Kind, e.Principal, e.Port)
		if e.Reason != "" {
			x += ":" + string(e.Reason)
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

func newEventFixture(t *testing.T) (*fixture, *recordingSink) {
	t.Helper()
	f := newFixture(t)
	sink := &recordingSink{}
	n := 0
	var mu sync.Mutex
	f.svc = jit.NewService(jit.Config{
		Store:     f.store,
		Providers: jit.ProviderMap{"fake": f.prov},
		Clock:     f.clk,
		NewID: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("ev%04d", n)
		},
		Events: sink,
	})
	return f, sink
}

func rdp(group string) jit.PortPolicy {
	return jit.PortPolicy{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H",
		RequireApproval: &jit.ApprovalRule{Approvers: group, Count: 1}}
}

// TestEventsForEveryCommittedChange walks a request through each kind of
// change and checks the events published after each step, in order, and
// that refused calls publish nothing.
func TestEventsForEveryCommittedChange(t *testing.T) {
	f, sink := newEventFixture(t)
	ctx := context.Background()
	pol := policyFor(vm1, ssh("198.18.0.0/16"), rdp("ops"))
	f.put(t, pol)
	if evs := sink.take(); len(evs) != 0 {
		t.Fatalf("putting a policy published %s", describe(evs))
	}
	expect := func(step, want string) []jit.Event {
		t.Helper()
		evs := sink.take()
		if got := describe(evs); got != want {
			t.Fatalf("%s: events\n got %q\nwant %q", step, got, want)
		}
		for _, e := range evs {
			if !e.Time.Equal(f.clk.Now()) || !strings.EqualFold(e.VMID, vm1) || e.GrantID == "" || e.RequestID == "" {
				t.Fatalf("%s: incomplete event %+v (now %s)", step, e, f.clk.Now())
			}
		}
		return evs
	}

	// Opened at once.
	r1, err := f.svc.Initiate(ctx, alice, pol.ID, request(vm1, 22, "198.18.0.7", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	evs := expect("initiate", "requested:alice:22 opened:alice:22:UserRequested")
	if evs[1].GrantID != r1.Grants[0].ID || evs[1].RequestID != r1.ID || evs[1].Source != "198.18.0.7" ||
		!evs[1].EndTime.Equal(t0.Add(time.Hour)) || evs[1].Requestor != "alice" || evs[1].Protocol != "Tcp" {
		t.Fatalf("opened event = %+v; request %+v", evs[1], r1)
	}

	// Refused requests: nothing.
	if _, err := f.svc.Initiate(ctx, alice, pol.ID, request(vm1, 8080, "198.18.0.7", time.Hour)); !errors.Is(err, jit.ErrInvalid) {
		t.Fatalf("port outside the policy: err = %v", err)
	}
	if _, err := f.svc.Initiate(ctx, alice, pol.ID, request(vm1, 22, "203.0.113.9", time.Hour)); !errors.Is(err, jit.ErrForbidden) {
		t.Fatalf("source outside the prefixes: err = %v", err)
	}
	if _, err := f.svc.Revoke(ctx, alice, "no-such-grant"); err == nil {
		t.Fatal("revoking a missing grant succeeded")
	}
	expect("refused", "")

	// A newer request for the same port closes the older grant.
	f.clk.Advance(time.Minute)
	r2, err := f.svc.Initiate(ctx, alice, pol.ID, request(vm1, 22, "198.18.0.8", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	evs = expect("supersede", "closed:alice:22:NewerRequestInitiated requested:alice:22 opened:alice:22:UserRequested")
	if evs[0].GrantID != r1.Grants[0].ID || evs[2].GrantID != r2.Grants[0].ID {
		t.Fatalf("supersede events name grants %s, %s; want %s, %s", evs[0].GrantID, evs[2].GrantID, r1.Grants[0].ID, r2.Grants[0].ID)
	}

	// Revoked early by someone else.
	carol := jit.Actor{Principal: "carol"}
	if _, err := f.svc.Revoke(ctx, carol, r2.Grants[0].ID); err != nil {
		t.Fatal(err)
	}
	expect("revoke", "closed:carol:22:UserRequested")
	if _, err := f.svc.Revoke(ctx, carol, r2.Grants[0].ID); err == nil {
		t.Fatal("second revoke succeeded")
	}
	expect("second revoke", "")

	// Approval needed: requested, then denied.
	bob := jit.Actor{Principal: "bob", Groups: []string{"ops"}}
	in := request(vm1, 3389, "198.18.0.7", time.Hour)
	in.Justification = "incident 42"
	p1, err := f.svc.Initiate(ctx, alice, pol.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	evs = expect("pending", "requested:alice:3389:AwaitingApproval")
	if evs[0].Detail != "incident 42" {
		t.Fatalf("requested detail = %q", evs[0].Detail)
	}
	if _, err := f.svc.Deny(ctx, alice, p1.ID, "self"); err == nil {
		t.Fatal("the requester denied their own request")
	}
	expect("refused deny", "")
	if _, err := f.svc.Deny(ctx, bob, p1.ID, "not now"); err != nil {
		t.Fatal(err)
	}
	evs = expect("deny", "denied:bob:3389:Denied")
	if evs[0].Detail != "not now" || evs[0].Requestor != "alice" {
		t.Fatalf("denied event = %+v", evs[0])
	}

	// Approved: approved then opened, naming the grant that opened.
	p2, err := f.svc.Initiate(ctx, alice, pol.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	expect("pending again", "requested:alice:3389:AwaitingApproval")
	f.clk.Advance(time.Minute)
	_, opened, err := f.svc.Approve(ctx, bob, p2.ID)
	if err != nil {
		t.Fatal(err)
	}
	evs = expect("approve", "approved:bob:3389 opened:alice:3389:UserRequested")
	if evs[0].Requestor != "alice" || evs[1].GrantID != opened.Grants[0].ID || !evs[1].EndTime.Equal(f.clk.Now().Add(time.Hour)) {
		t.Fatalf("approve events %+v; opened %+v", evs, opened)
	}

	// Lapse (a denial by nobody) and expiry.
	if _, err := f.svc.Initiate(ctx, alice, pol.ID, in); err != nil {
		t.Fatal(err)
	}
	expect("pending to lapse", "requested:alice:3389:AwaitingApproval")
	f.clk.Advance(2 * time.Hour)
	if _, err := f.svc.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	expect("expiry", "denied:drawbridge:3389:ApprovalLapsed closed:drawbridge:3389:Expired")

	// Policy removed.
	if _, err := f.svc.Initiate(ctx, alice, pol.ID, request(vm1, 22, "198.18.0.7", time.Hour)); err != nil {
		t.Fatal(err)
	}
	expect("initiate before delete", "requested:alice:22 opened:alice:22:UserRequested")
	if err := f.svc.DeletePolicy(jit.WithActor(ctx, jit.Actor{Principal: "admin"}), pol.ID); err != nil {
		t.Fatal(err)
	}
	expect("delete policy", "closed:admin:22:PolicyRemoved")
}

// TestNoEventsFromAFailedTransaction: a provider that refuses makes the
// request fail as a whole; nothing is published.
func TestNoEventsFromAFailedTransaction(t *testing.T) {
	f, sink := newEventFixture(t)
	pol := f.put(t, policyFor(vm1, ssh("*")))
	f.prov.mu.Lock()
	f.prov.checkErr = errors.New("firewall says no")
	f.prov.mu.Unlock()
	if _, err := f.svc.Initiate(context.Background(), alice, pol.ID, request(vm1, 22, "198.18.0.7", time.Hour)); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("err = %v; want a conflict", err)
	}
	if evs := sink.take(); len(evs) != 0 {
		t.Fatalf("a failed request published %s", describe(evs))
	}
}

// retryingStore runs every transaction twice, like PostgreSQL after a
// serialisation failure: the first attempt's fn succeeds but its commit
// "fails" and is rolled back.
type retryingStore struct{ jit.Store }

var errSerialization = errors.New("simulated serialisation failure")

func (s retryingStore) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	err := s.Store.InTx(ctx, func(tx jit.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errSerialization // roll back as a failed commit would
	})
	if !errors.Is(err, errSerialization) {
		return err
	}
	return s.Store.InTx(ctx, fn)
}

// ReadTx runs fn twice too, the first attempt failing after fn returned:
// read-only transactions may be retried like InTx.
func (s retryingStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	err := s.Store.ReadTx(ctx, func(tx jit.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errSerialization
	})
	if !errors.Is(err, errSerialization) {
		return err
	}
	return s.Store.ReadTx(ctx, fn)
}

// TestEventsOfARetriedTransactionOnce: only the committed attempt's events
// are published.
func TestEventsOfARetriedTransactionOnce(t *testing.T) {
	f, _ := newEventFixture(t)
	sink := &recordingSink{}
	f.svc = jit.NewService(jit.Config{Store: retryingStore{f.store}, Providers: jit.ProviderMap{"fake": f.prov}, Clock: f.clk,
		NewID: func() func() string {
			n := 0
			return func() string { n++; return fmt.Sprintf("rt%04d", n) }
		}(), Events: sink})
	pol := f.put(t, policyFor(vm1, ssh("*")))
	r, err := f.svc.Initiate(context.Background(), alice, pol.ID, request(vm1, 22, "198.18.0.7", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	evs := sink.take()
	if got := describe(evs); got != "requested:alice:22 opened:alice:22:UserRequested" {
		t.Fatalf("events %q", got)
	}
	if evs[1].GrantID != r.Grants[0].ID {
		t.Fatalf("opened event names grant %s; the committed attempt made %s", evs[1].GrantID, r.Grants[0].ID)
	}
}
