package jit

import (
	"context"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Store is the persistence the JIT service needs. Backends (sqlite,
// postgres) implement it; store.ErrNotFound signals a missing row.
type Store interface {
	// InTx runs fn in one transaction; it commits if fn returns nil. Backends
	// serialise conflicting transactions (and may retry fn on serialisation failures).
	InTx(ctx context.Context, fn func(Tx) error) error

	// ReadTx runs fn in one read-only transaction, for callers that only
	// read. fn sees one consistent snapshot of committed data: everything
	// committed before ReadTx began and nothing committed while it runs.
	// It may run concurrently with other transactions (reads need not
	// queue behind writes). fn must not write: a backend may fail a write
	// with an error, and whatever fn writes is never committed, whatever
	// fn returns. Like InTx, fn may be run more than once, so it must not
	// have effects outside the transaction that a second run would repeat.
	// Calling InTx from inside fn may deadlock.
	ReadTx(ctx context.Context, fn func(Tx) error) error
}

// Tx is what one transaction can read and write.
type Tx interface {
	store.Objects

	// Inventory VMs are objects: inventory.GetVM reads one.

	// PutPolicy inserts or replaces a policy, keyed by its ID (case-insensitive),
	// and indexes its VMs so PolicyForVM finds it.
	PutPolicy(ctx context.Context, p Policy) error
	GetPolicy(ctx context.Context, id string) (Policy, error)
	DeletePolicy(ctx context.Context, id string) error
	// ListPolicies returns the policies inside scope (a resource ID; "/" for
	// all), optionally only those in location, ordered by ID.
	ListPolicies(ctx context.Context, scope string, location string) ([]Policy, error)
	// PolicyForVM returns the policy that guards the VM, or store.ErrNotFound.
	PolicyForVM(ctx context.Context, vmID string) (Policy, error)

	// InsertRequest stores a request together with its grants.
	InsertRequest(ctx context.Context, r Request) error
	// ListRequests returns a policy's opened requests (those that needed
	// no approval or were approved: see Opened), newest first, each with
	// its grants.
	ListRequests(ctx context.Context, policyID string, limit int) ([]Request, error)

	// PutApproval stores the approval record of request requestID on its
	// row (the request and its grants are InsertRequest's and
	// UpdateGrant's); store.ErrNotFound if there is no such request.
	PutApproval(ctx context.Context, requestID string, a ApprovalRecord) error
	// GetApproval returns a request that needed approval, with its grants
	// and approval record; store.ErrNotFound if there is no such request
	// or it needed no approval.
	GetApproval(ctx context.Context, requestID string) (PendingRequest, error)
	// ListApprovals returns the requests whose approval record is in
	// state, oldest first (by request start time, then ID), each with
	// its grants.
	ListApprovals(ctx context.Context, state string) ([]PendingRequest, error)
	GetGrant(ctx context.Context, id string) (Grant, error)
	// ListGrants returns grants matching f, newest first.
	ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error)
	// UpdateGrant replaces a grant's mutable fields (status, reason, ended,
	// applied, provider error; and the window of a Pending grant, see
	// Grant.WithStateOf).
	UpdateGrant(ctx context.Context, g Grant) error
	// DueGrants returns Initiated grants whose end time is at or before now,
	// oldest end first, at most limit.
	DueGrants(ctx context.Context, now time.Time, limit int) ([]Grant, error)
	// NextEndTime returns the earliest end time of an Initiated grant.
	NextEndTime(ctx context.Context) (time.Time, bool, error)
}
