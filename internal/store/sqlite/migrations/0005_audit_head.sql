-- 0005: the audit log's head (last sequence number and hash) gets a
-- one-row table of its own. Every audited change rewrites it; as an
-- object it was a JSON body in the objects table and its (kind, key)
-- index.

CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
	SELECT 1, json_extract(CAST(body AS TEXT), '$.seq'), json_extract(CAST(body AS TEXT), '$.hash')
	FROM objects WHERE kind = 'audit.head' AND key = 'head';
DELETE FROM objects WHERE kind = 'audit.head';
