-- Marks the missing instances deleted. clear_disks_tags.sql then removes their
-- disks and tags; the row keeps the last known lists in disks, tags and biz_tags.
-- Unchanged instances are not rewritten, so last_seen_at catches up here with
-- the scope's previous complete crawl, the last one that returned them (never
-- past the deletion, should the clock have stepped back).
-- $1 run_id, $2 when that crawl ended (NULL: none before).
UPDATE ecp.instances i
SET deleted_at = a.changed_at,
    last_seen_at = GREATEST(i.last_seen_at, LEAST($2::timestamptz, a.changed_at)),
    version = i.version + 1,
    last_changed_at = a.changed_at,
    last_run_id = $1
FROM ecp_apply a
WHERE i.instance_id = a.instance_id AND a.kind = 'deleted'
