-- 0006: the indexes that list a policy's requests and a VM's grants,
-- newest first, key them by a small integer standing for the policy or VM
-- ID (table key_ids) instead of the ID itself. Each request inserts into
-- both at a place set by its policy and VM, a random page; with IDs of
-- 150 bytes a page held about 20 entries, so one split every 20 or so
-- requests. Measured on the request benchmark (5 interleaved runs): the
-- two indexes cost the writer about 90 us of a 430 us request, the
-- integer-keyed ones about half that.
--
-- Rewriting the rows takes time once: 5.3 s for 100,000 requests and
-- grants (a throwaway test, 2026-11-25, on the 2 vCPU benchmark machine).
--
-- key_ids interns keys: a key once given an id keeps it (rows are never
-- deleted), so a policy deleted and created again lists its old requests,
-- as it did when the indexes held the key.

CREATE TABLE key_ids (
	id  INTEGER PRIMARY KEY,
	key TEXT NOT NULL UNIQUE
);
INSERT INTO key_ids (key) SELECT policy_key FROM requests UNION SELECT policy_key FROM grants UNION SELECT vm_key FROM grants;

ALTER TABLE requests ADD COLUMN policy_ref INTEGER NOT NULL DEFAULT 0;
UPDATE requests SET policy_ref = (SELECT id FROM key_ids WHERE key = requests.policy_key);
ALTER TABLE grants ADD COLUMN policy_ref INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN vm_ref INTEGER NOT NULL DEFAULT 0;
UPDATE grants SET policy_ref = (SELECT id FROM key_ids WHERE key = grants.policy_key),
	vm_ref = (SELECT id FROM key_ids WHERE key = grants.vm_key);

-- The keys themselves leave the rows (they are in the JSON bodies): 300
-- bytes of a grant's 1,100 that every request writes twice (inserting the
-- new grant, ending the one it supersedes).
DROP INDEX requests_policy_start;
DROP INDEX grants_vm_start;
DROP INDEX grants_active_vm;
ALTER TABLE requests DROP COLUMN policy_key;
ALTER TABLE grants DROP COLUMN policy_key;
ALTER TABLE grants DROP COLUMN vm_key;
CREATE INDEX requests_policy_ref ON requests(policy_ref, start_time);
CREATE INDEX grants_vm_ref ON grants(vm_ref, start_time);
CREATE INDEX grants_active_vm_ref ON grants(vm_ref, start_time) WHERE status = 'Initiated';
