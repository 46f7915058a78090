// Package jit owns just-in-time access: policies that guard VM ports,
// requests that open them for a while, the grants those produce, their
// expiry, approvals, and the reconcile loop that makes every firewall match
// the store. It is pure domain code: persistence comes in through Store,
// firewalls through Provider, time through clock.Clock.
//
// Files by role:
//
//	service.go           Service, its configuration and small helpers
//	change.go            write, the one path by which anything changes
//	service_policy.go    PutPolicy, DeletePolicy and policy reads
//	service_request.go   Initiate: validate → load → plan → apply → record
//	request_plan.go      plan: a request's grants, checked against the policy
//	service_revoke.go    Revoke (a user ends a grant early)
//	service_approval.go  holding, approving, denying and lapsing requests
//	approval.go          approval rules and who may decide
//	approval_upgrade.go  moving approvals of older versions onto request rows
//	job_expiry.go        the expiry and resync jobs
//	reconcile.go         the reconcile engine: desired state → provider
//	service_inventory.go the inventory facade
//	locking.go           per-VM locks inside one process
//	state.go             the grant state machine
//	errors.go            the errors the API maps to status codes
package jit
