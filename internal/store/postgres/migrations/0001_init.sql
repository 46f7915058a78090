-- 0001: objects, policies with their VM index, requests and grants; the
-- same shape as the SQLite schema. Times are BIGINT unix nanoseconds UTC
-- (exact round trip, numeric order); bodies are the domain types as JSON
-- bytes, kept exactly as written. Every key column is COLLATE "C" so that
-- ORDER BY and range scans use byte order, as Go compares strings and as
-- SQLite does, whatever the database's default collation.

CREATE TABLE objects (
	kind TEXT COLLATE "C" NOT NULL,
	key  TEXT COLLATE "C" NOT NULL,
	body BYTEA NOT NULL,
	PRIMARY KEY (kind, key)
);

-- key is the lower-cased policy ID; location is lower-cased for filtering.
CREATE TABLE policies (
	key      TEXT COLLATE "C" PRIMARY KEY,
	location TEXT COLLATE "C" NOT NULL,
	body     BYTEA NOT NULL
);

-- One row per VM guarded by a policy; the primary key enforces "a VM
-- belongs to at most one policy".
CREATE TABLE policy_vms (
	vm_key     TEXT COLLATE "C" PRIMARY KEY,
	policy_key TEXT COLLATE "C" NOT NULL REFERENCES policies(key) ON DELETE CASCADE
);
CREATE INDEX policy_vms_policy ON policy_vms(policy_key);

-- Requests outlive their policy (they are history): no foreign key to policies.
CREATE TABLE requests (
	id         TEXT COLLATE "C" PRIMARY KEY,
	policy_key TEXT COLLATE "C" NOT NULL,
	start_time BIGINT NOT NULL,
	body       BYTEA NOT NULL
);
CREATE INDEX requests_policy_start ON requests(policy_key, start_time DESC, id DESC);

-- idx is the grant's position in its request.
CREATE TABLE grants (
	id         TEXT COLLATE "C" PRIMARY KEY,
	request_id TEXT COLLATE "C" NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL,
	policy_key TEXT COLLATE "C" NOT NULL,
	vm_key     TEXT COLLATE "C" NOT NULL,
	port       INTEGER NOT NULL,
	status     TEXT COLLATE "C" NOT NULL,
	start_time BIGINT NOT NULL,
	end_time   BIGINT NOT NULL,
	body       BYTEA NOT NULL
);
CREATE INDEX grants_request ON grants(request_id, idx);
-- DueGrants and NextEndTime: status = 'Initiated' ordered by end_time.
CREATE INDEX grants_status_end ON grants(status, end_time, id);
-- ListGrants by VM, active only (optionally one port): the request path's hot query.
CREATE INDEX grants_vm_status_port ON grants(vm_key, status, port);
CREATE INDEX grants_policy ON grants(policy_key, start_time);
