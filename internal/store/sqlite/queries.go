package sqlite

import (
	"strings"
)

const (
	qGetObject    = `SELECT body FROM objects WHERE kind = ? AND key = ?`
	qPutObject    = `INSERT INTO objects (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body`
	qDeleteObject = `DELETE FROM objects WHERE kind = ? AND key = ?`
	qListObjects  = `SELECT key, body FROM objects WHERE kind = ? ORDER BY key`

	qPolicyOfVM    = `SELECT policy_key FROM policy_vms WHERE vm_key = ?`
	qPutPolicy     = `INSERT INTO policies (key, location, body) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET location = excluded.location, body = excluded.body`
	qClearPolicyVM = `DELETE FROM policy_vms WHERE policy_key = ?`
	qAddPolicyVM   = `INSERT INTO policy_vms (vm_key, policy_key) VALUES (?, ?)`
	qGetPolicy     = `SELECT body FROM policies WHERE key = ?`
	qDeletePolicy  = `DELETE FROM policies WHERE key = ?`
	// Scope containment as a key range: IDs below scope s start with s+"/",
	// i.e. lie in [s+"/", s+"0") because '0' is the byte after '/'. This
	// uses the primary key index and stops at segment boundaries, so
	// /subscriptions/s1 does not contain /subscriptions/s10.
	qListPolicies = `SELECT body FROM policies
		WHERE (?1 = '' OR key = ?1 OR (key >= ?2 AND key < ?3)) AND (?4 = '' OR location = ?4)
		ORDER BY key`
	qPolicyForVM = `SELECT p.body FROM policy_vms v JOIN policies p ON p.key = v.policy_key WHERE v.vm_key = ?`

	qInsertRequest = `INSERT INTO requests (id, policy_ref, start_time, body) VALUES (?, ?, ?, ?)`
	qInsertGrant   = `INSERT INTO grants (id, request_id, idx, policy_ref, vm_ref, port, status, start_time, end_time, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Policies and VMs are found in the indexes by their id in key_ids
	// (migration 0006); an unknown key's is NULL, which matches no row.
	// Only opened requests are listed (jit.Opened; migration 0007).
	requestsOfPolicy = ` FROM requests WHERE policy_ref = (SELECT id FROM key_ids WHERE key = ?1)
			AND (approval_state IS NULL OR approval_state = 'Approved')
		ORDER BY start_time DESC, id DESC LIMIT ?2`
	qListRequests  = `SELECT body` + requestsOfPolicy
	qRequestGrants = `SELECT request_id, body FROM grants WHERE request_id IN (SELECT id` + requestsOfPolicy + `)
		ORDER BY request_id, idx`
	qKeyID    = `SELECT id FROM key_ids WHERE key = ?`
	qAddKeyID = `INSERT INTO key_ids (key) VALUES (?)`
	qGetGrant = `SELECT body FROM grants WHERE id = ?`
	// The writer's cache of a VM's active grants is filled from this
	// query; its order is listGrantsQuery's.
	qActiveGrantsOfVM = `SELECT id, request_id, idx, start_time, body FROM grants
		WHERE vm_ref = (SELECT id FROM key_ids WHERE key = ?) AND status = 'Initiated'
		ORDER BY start_time DESC, request_id DESC, idx`
	qUpdateGrant = `UPDATE grants SET status = ?, body = ? WHERE id = ?`
	qDueGrants   = `SELECT body FROM grants WHERE status = 'Initiated' AND end_time <= ?
		ORDER BY end_time, id LIMIT ?`
	qNextEndTime = `SELECT MIN(end_time) FROM grants WHERE status = 'Initiated'`

	qAppendAudit  = `INSERT INTO audit_records (seq, body) VALUES (?, ?)`
	qAppendAudit2 = `INSERT INTO audit_records (seq, body) VALUES (?, ?), (?, ?)`
	qAuditHead    = `SELECT seq, hash FROM audit_head WHERE id = 1`
	qSetHead      = `INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`
	qListAudit    = `SELECT seq, body FROM audit_records ORDER BY seq`

	qDataVersion = `PRAGMA data_version`
	// A group commit run again after a failure runs each transaction
	// inside this savepoint (writer.go, runJobs); prepared once
	// like every other statement.
	qSavepoint = `SAVEPOINT job`
	qRelease   = `RELEASE job`
)

// listGrantsQuery builds the ListGrants query for one combination of
// filters; only present filters appear, so SQLite can pick the matching
// index. Arguments follow in the order vm, policy, port, limit.
func listGrantsQuery(vm, policy, port, active bool) string {
	var where []string
	if vm {
		where = append(where, "vm_ref = (SELECT id FROM key_ids WHERE key = ?)")
	}
	if policy {
		where = append(where, "policy_ref = (SELECT id FROM key_ids WHERE key = ?)")
	}
	if port {
		where = append(where, "port = ?")
	}
	if active {
		// A literal, not a parameter, so that SQLite can use the
		// partial indexes over active grants (migrations 0004, 0006).
		where = append(where, "status = 'Initiated'")
	}
	q := "SELECT body FROM grants"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY start_time DESC, request_id DESC, idx LIMIT ?"
}

func allQueries() []string {
	qs := []string{
		qGetObject, qPutObject, qDeleteObject, qListObjects,
		qPolicyOfVM, qPutPolicy, qClearPolicyVM, qAddPolicyVM, qGetPolicy, qDeletePolicy, qListPolicies, qPolicyForVM,
		qInsertRequest, qInsertGrant, qListRequests, qRequestGrants, qKeyID, qAddKeyID, qGetGrant, qActiveGrantsOfVM, qUpdateGrant, qDueGrants, qNextEndTime,
		qAppendAudit, qAppendAudit2, qListAudit, qAuditHead, qSetHead, qDataVersion, qSavepoint, qRelease,
	}
	qs = append(qs, approvalQueries...)
	for i := range 16 {
		qs = append(qs, listGrantsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0))
	}
	return qs
}

// sqlLimit maps "0 or less means no limit" to SQLite's LIMIT -1.
func sqlLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}
