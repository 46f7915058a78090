-- 0001: objects, policies with their VM index, requests and grants.
-- Times are INTEGER unix nanoseconds UTC so that they sort and compare as
-- numbers and round-trip exactly; bodies are the domain types as JSON.

CREATE TABLE objects (
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	body BLOB NOT NULL,
	PRIMARY KEY (kind, key)
) WITHOUT ROWID;

-- key is the lower-cased policy ID; location is lower-cased for filtering.
CREATE TABLE policies (
	key      TEXT PRIMARY KEY,
	location TEXT NOT NULL,
	body     BLOB NOT NULL
) WITHOUT ROWID;

-- One row per VM guarded by a policy. vm_key is the primary key, which is
-- what enforces "a VM belongs to at most one policy".
CREATE TABLE policy_vms (
	vm_key     TEXT PRIMARY KEY,
	policy_key TEXT NOT NULL REFERENCES policies(key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX policy_vms_policy ON policy_vms(policy_key);

-- Requests outlive their policy (they are history), so no foreign key to policies.
CREATE TABLE requests (
	id         TEXT PRIMARY KEY,
	policy_key TEXT NOT NULL,
	start_time INTEGER NOT NULL,
	body       BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_policy_start ON requests(policy_key, start_time DESC, id DESC);

-- idx is the grant's position in its request, so requests list their grants
-- in the order they were asked for.
CREATE TABLE grants (
	id         TEXT PRIMARY KEY,
	request_id TEXT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL,
	policy_key TEXT NOT NULL,
	vm_key     TEXT NOT NULL,
	port       INTEGER NOT NULL,
	status     TEXT NOT NULL,
	start_time INTEGER NOT NULL,
	end_time   INTEGER NOT NULL,
	body       BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX grants_request ON grants(request_id, idx);
-- DueGrants and NextEndTime: status = 'Initiated' ordered by end_time.
CREATE INDEX grants_status_end ON grants(status, end_time, id);
-- ListGrants by VM, active only (optionally one port): the request path's hot query.
CREATE INDEX grants_vm_status_port ON grants(vm_key, status, port);
CREATE INDEX grants_policy ON grants(policy_key, start_time);
