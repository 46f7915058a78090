-- 0004: the indexes that find grants by status cover only active grants
-- (status 'Initiated', the only status queries look up). A grant ending
-- used to move within both status indexes, writing a random page of each;
-- now it leaves two small indexes that stay in cache. Listing a VM's
-- grants of every status (history) gets an index of its own, which a
-- status change does not touch.

DROP INDEX grants_status_end;
DROP INDEX grants_vm_status_port;
CREATE INDEX grants_active_end ON grants(end_time, id) WHERE status = 'Initiated';
CREATE INDEX grants_active_vm ON grants(vm_key, start_time) WHERE status = 'Initiated';
CREATE INDEX grants_vm_start ON grants(vm_key, start_time);
