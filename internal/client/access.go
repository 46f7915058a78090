package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// CreateToken creates an API token; the response carries the plaintext once.
func (c *Client) CreateToken(ctx context.Context, in api.TokenCreateRequest) (api.TokenCreateResponse, error) {
	var out api.TokenCreateResponse
	err := c.do(ctx, "POST", "/drawbridge/v1/tokens", nil, in, &out)
	return out, err
}

// Tokens lists API tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]access.TokenInfo, error) {
	var out api.ListResponse[access.TokenInfo]
	err := c.do(ctx, "GET", "/drawbridge/v1/tokens", nil, nil, &out)
	return out.Value, err
}

// RevokeToken revokes the token with that ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (access.TokenInfo, error) {
	var out access.TokenInfo
	if err := checkPlainID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, "POST", "/drawbridge/v1/tokens/"+url.PathEscape(id)+"/revoke", nil, nil, &out)
	return out, err
}

// Roles lists built-in and custom roles.
func (c *Client) Roles(ctx context.Context) ([]rbac.RoleDefinition, error) {
	var out api.ListResponse[rbac.RoleDefinition]
	err := c.do(ctx, "GET", "/drawbridge/v1/roles", nil, nil, &out)
	return out.Value, err
}

// Role returns one role by name or ID.
func (c *Client) Role(ctx context.Context, name string) (rbac.RoleDefinition, error) {
	var out rbac.RoleDefinition
	err := c.do(ctx, "GET", "/drawbridge/v1/roles/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreateRole sends a role definition document (Azure's JSON shape) as is.
func (c *Client) CreateRole(ctx context.Context, doc []byte) (rbac.RoleDefinition, error) {
	var out rbac.RoleDefinition
	err := c.do(ctx, "POST", "/drawbridge/v1/roles", nil, doc, &out)
	return out, err
}

// Assignments lists role assignments.
func (c *Client) Assignments(ctx context.Context) ([]api.AssignmentBody, error) {
	var out api.ListResponse[api.AssignmentBody]
	err := c.do(ctx, "GET", "/drawbridge/v1/roleAssignments", nil, nil, &out)
	return out.Value, err
}

// Assign creates a role assignment.
func (c *Client) Assign(ctx context.Context, a api.AssignmentBody) (api.AssignmentBody, error) {
	var out api.AssignmentBody
	err := c.do(ctx, "POST", "/drawbridge/v1/roleAssignments", nil, a, &out)
	return out, err
}

// Unassign deletes a role assignment by ID.
func (c *Client) Unassign(ctx context.Context, id string) (api.AssignmentBody, error) {
	var out api.AssignmentBody
	if err := checkPlainID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, "DELETE", "/drawbridge/v1/roleAssignments/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// AuditFilter selects audit records.
type AuditFilter struct {
	Since     time.Time
	Principal string
	VM        string
	Limit     int
}

// Audit lists audit records in log order, following every nextLink.
func (c *Client) Audit(ctx context.Context, f AuditFilter) ([]audit.Record, error) {
	var out []audit.Record
	err := c.AuditPages(ctx, f, func(page []audit.Record) error {
		out = append(out, page...)
		return nil
	})
	return out, err
}

// AuditPages calls fn with each page of the audit records f selects, in
// log order: memory holds one page however long the log is.
func (c *Client) AuditPages(ctx context.Context, f AuditFilter, fn func([]audit.Record) error) error {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Principal != "" {
		q.Set("principal", f.Principal)
	}
	if f.VM != "" {
		q.Set("vm", f.VM)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return eachPage(c, ctx, "/drawbridge/v1/audit", q, fn)
}

// verifyTimeout bounds VerifyAudit's call.
const verifyTimeout = 15 * time.Minute

// VerifyAudit asks the server to verify the whole audit log.
func (c *Client) VerifyAudit(ctx context.Context) (auditstore.Report, error) {
	var out auditstore.Report
	// The server reads the whole log before it answers: a million records
	// take tens of seconds, more than the usual per-call timeout.
	long := *c
	long.http = &http.Client{Timeout: verifyTimeout, Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect}
	err := long.do(ctx, "GET", "/drawbridge/v1/audit/verify", nil, nil, &out)
	return out, err
}

// PendingRequests lists requests waiting for approval.
func (c *Client) PendingRequests(ctx context.Context) ([]jit.PendingRequest, error) {
	return allPages[jit.PendingRequest](c, ctx, "/drawbridge/v1/requests/pending", nil)
}

// Approve approves a pending request; reason, if set, is recorded.
func (c *Client) Approve(ctx context.Context, id, reason string) (api.ApprovalResponse, error) {
	var out api.ApprovalResponse
	if err := checkPlainID(id); err != nil {
		return out, err
	}
	var body any
	if reason != "" {
		body = api.DenyRequest{Reason: reason}
	}
	err := c.do(ctx, "POST", "/drawbridge/v1/requests/"+url.PathEscape(id)+"/approve", nil, body, &out)
	return out, err
}

// Deny denies a pending request.
func (c *Client) Deny(ctx context.Context, id, reason string) (api.ApprovalResponse, error) {
	var out api.ApprovalResponse
	if err := checkPlainID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, "POST", "/drawbridge/v1/requests/"+url.PathEscape(id)+"/deny", nil, api.DenyRequest{Reason: reason}, &out)
	return out, err
}

// checkPlainID refuses an empty ID or one that would change the path.
func checkPlainID(id string) error {
	if id == "" || strings.ContainsAny(id, "/?#") {
		return fmt.Errorf("id %q: must be a non-empty ID without '/', '?' or '#'", id)
	}
	return nil
}

// AuditCheckpoints returns the audit log's signed checkpoints in seq order.
func (c *Client) AuditCheckpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	return allPages[audit.Checkpoint](c, ctx, "/drawbridge/v1/audit/checkpoints", nil)
}

// LatestAuditCheckpoint returns the newest signed checkpoint.
func (c *Client) LatestAuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	var out audit.Checkpoint
	err := c.do(ctx, "GET", "/drawbridge/v1/audit/checkpoints/latest", nil, nil, &out)
	return out, err
}

// PendingRequest returns a request that needed approval, pending or decided.
func (c *Client) PendingRequest(ctx context.Context, id string) (jit.PendingRequest, error) {
	var out jit.PendingRequest
	if err := checkPlainID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, "GET", "/drawbridge/v1/requests/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}
