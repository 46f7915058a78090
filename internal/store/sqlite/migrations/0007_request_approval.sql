-- 0007: a request that needs approval is a request row from the moment it
-- is made, its grants grant rows with status Pending (never active: every
-- active-grant query and index says status = 'Initiated'). Its approval
-- record (rules, approvals, state, lapse and decision) lives on its row:
-- approval is the record as JSON, approval_state its state (Pending,
-- Approved, Denied or Lapsed), both NULL for a request that needed no
-- approval. Requests and decisions kept as objects (kinds jit.pending and
-- jit.decided) by older versions are moved onto rows when the store opens
-- (jit.UpgradeApprovalObjects): that needs the Go types.

ALTER TABLE requests ADD COLUMN approval_state TEXT;
ALTER TABLE requests ADD COLUMN approval BLOB;
-- Pending requests, oldest first (the approvals list and the lapse job).
CREATE INDEX requests_approval ON requests(approval_state, start_time, id) WHERE approval_state IS NOT NULL;
