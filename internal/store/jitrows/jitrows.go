// Package jitrows owns what the jit.Store backends (sqlite, postgres,
// memstore) share about request, grant and approval rows: how a request
// and its grants are normalised and encoded for storage, and how the rows
// read back are decoded and put together. It is not part of package store
// because jit imports that package.
package jitrows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Rows is what database/sql's rows offer (and postgres adapts pgx's to).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// EncodeRequest returns r as its row stores it, with its encoding: without
// grants (they live in their own rows and change over time), start time in
// UTC. backend names the store in errors.
func EncodeRequest(backend string, r jit.Request) (jit.Request, []byte, error) {
	if r.ID == "" {
		return r, nil, fmt.Errorf("%s: insert request: request has no ID", backend)
	}
	r.Grants = nil
	r.StartTime = r.StartTime.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return r, nil, fmt.Errorf("%s: encode request %s: %w", backend, r.ID, err)
	}
	return r, body, nil
}

// EncodeGrant returns g, the i-th grant of request r, as its row stores it,
// with its encoding: in UTC, carrying r's ID and (unless it names its own)
// r's policy. A grant needs an ID and an end time.
func EncodeGrant(backend string, r jit.Request, i int, g jit.Grant) (jit.Grant, []byte, error) {
	g = g.InUTC()
	g.RequestID = r.ID
	if g.PolicyID == "" {
		g.PolicyID = r.PolicyID
	}
	if g.ID == "" || g.EndTime.IsZero() {
		return g, nil, fmt.Errorf("%s: insert request %s: grant %d has no ID or no end time", backend, r.ID, i)
	}
	body, err := json.Marshal(g)
	if err != nil {
		return g, nil, fmt.Errorf("%s: encode grant %s: %w", backend, g.ID, err)
	}
	return g, body, nil
}

// EncodeGrantUpdate returns the stored grant cur with only the mutable
// fields of g copied on (identity, port, source and times stay, but for a
// Pending grant's window: jit.Grant.WithStateOf), in UTC, with its encoding.
func EncodeGrantUpdate(backend string, cur, g jit.Grant) (jit.Grant, []byte, error) {
	cur = cur.WithStateOf(g).InUTC()
	body, err := json.Marshal(cur)
	if err != nil {
		return cur, nil, fmt.Errorf("%s: encode grant %s: %w", backend, g.ID, err)
	}
	return cur, body, nil
}

// EncodePolicy checks p before it is stored, so that a refusal writes
// nothing: it needs an ID, and none of its VMs may be in another policy
// (holderOf returns the key of the policy holding a VM's key, "" for
// none). It returns p's key, its VMs' keys and its encoding (in UTC).
func EncodePolicy(backend string, p jit.Policy, holderOf func(vmKey string) (string, error)) (key string, vmKeys []string, body []byte, err error) {
	if p.ID == "" {
		return "", nil, nil, fmt.Errorf("%s: put policy: policy has no ID", backend)
	}
	key = strings.ToLower(p.ID)
	for _, v := range p.DistinctVMs() {
		vk := inventory.Key(v.ID)
		holder, err := holderOf(vk)
		switch {
		case err != nil:
			return "", nil, nil, fmt.Errorf("%s: put policy %s: %w", backend, p.ID, err)
		case holder != "" && holder != key:
			return "", nil, nil, fmt.Errorf("virtual machine %s is already in JIT policy %s: %w", v.ID, holder, store.ErrConflict)
		}
		vmKeys = append(vmKeys, vk)
	}
	if body, err = json.Marshal(p.InUTC()); err != nil {
		return "", nil, nil, fmt.Errorf("%s: encode policy %s: %w", backend, p.ID, err)
	}
	return key, vmKeys, body, nil
}

// EncodeApproval encodes the approval record of request requestID.
func EncodeApproval(backend, requestID string, a jit.ApprovalRecord) ([]byte, error) {
	body, err := json.Marshal(a.InUTC())
	if err != nil {
		return nil, fmt.Errorf("%s: encode approval of request %s: %w", backend, requestID, err)
	}
	return body, nil
}

// AttachGrants reads rows of (request ID, grant body), each request's in
// its order, onto the Grants of reqs (each gets a non-nil slice), and
// closes rows.
func AttachGrants(backend string, reqs []jit.Request, rows Rows) error {
	defer rows.Close()
	byID := make(map[string]int, len(reqs))
	for i := range reqs {
		byID[reqs[i].ID] = i
		reqs[i].Grants = []jit.Grant{}
	}
	for rows.Next() {
		var reqID string
		var body []byte
		if err := rows.Scan(&reqID, &body); err != nil {
			return fmt.Errorf("%s: list request grants: %w", backend, err)
		}
		var g jit.Grant
		if err := json.Unmarshal(body, &g); err != nil {
			return fmt.Errorf("%s: decode grant: %w", backend, err)
		}
		if i, ok := byID[reqID]; ok {
			reqs[i].Grants = append(reqs[i].Grants, g)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: list request grants: %w", backend, err)
	}
	return nil
}

// Approvals reads rows of (id, body, approval) of requests, closes them,
// and then reads each request's grants with grantsOf: a connection runs
// one statement at a time.
func Approvals(backend string, rows Rows, grantsOf func(requestID string) ([]jit.Grant, error)) ([]jit.PendingRequest, error) {
	var out []jit.PendingRequest
	for rows.Next() {
		var id string
		var body, approval []byte
		if err := rows.Scan(&id, &body, &approval); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: list approvals: %w", backend, err)
		}
		p, err := DecodePendingRequest(body, approval)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: request %s: %w", backend, id, err)
		}
		out = append(out, p)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("%s: list approvals: %w", backend, err)
	}
	for i := range out {
		gs, err := grantsOf(out[i].Request.ID)
		if err != nil {
			return nil, err
		}
		out[i].Request.Grants = append([]jit.Grant{}, gs...)
	}
	return out, nil
}

// DecodePendingRequest decodes a request row's body and approval record
// (Tx.PutApproval encodes the record as JSON); the grants are the
// caller's to attach.
func DecodePendingRequest(body, approval []byte) (jit.PendingRequest, error) {
	var p jit.PendingRequest
	if err := json.Unmarshal(body, &p.Request); err != nil {
		return p, fmt.Errorf("decode request: %w", err)
	}
	if err := json.Unmarshal(approval, &p.ApprovalRecord); err != nil {
		return p, fmt.Errorf("decode approval of request %s: %w", p.Request.ID, err)
	}
	return p, nil
}

// OneApproval is GetApproval's answer for request id from ps, what a
// listing of that one request returned (with err).
func OneApproval(id string, ps []jit.PendingRequest, err error) (jit.PendingRequest, error) {
	if err != nil {
		return jit.PendingRequest{}, err
	}
	if len(ps) == 0 {
		return jit.PendingRequest{}, store.NotFound("request that needs approval", id)
	}
	return ps[0], nil
}
