-- 0003: audit records get a table of their own, keyed by sequence number.
-- Appending to an INTEGER PRIMARY KEY table writes the rightmost leaf and
-- nothing else; as objects they also went through the (kind, key) index.
-- The head stays an object (auditstore).

CREATE TABLE audit_records (
	seq  INTEGER PRIMARY KEY,
	body BLOB NOT NULL
);
INSERT INTO audit_records (seq, body)
	SELECT CAST(key AS INTEGER), body FROM objects WHERE kind = 'audit.record' ORDER BY key;
DELETE FROM objects WHERE kind = 'audit.record';
