-- Marks the missing instances deleted. clear_disks_tags.sql then removes their
-- disks and tags; the row keeps the last known lists in disks, tags and biz_tags.
-- $1 run_id.
UPDATE ecp.instances i
SET deleted_at = a.changed_at,
    version = i.version + 1,
    last_changed_at = a.changed_at,
    last_run_id = $1
FROM ecp_apply a
WHERE i.instance_id = a.instance_id AND a.kind = 'deleted'
