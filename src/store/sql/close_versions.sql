-- Ends the current version of every instance that gets a new one. Runs before the
-- inserts so the no-overlap constraint never sees two open versions.
UPDATE ecp.instance_versions v
SET valid_to = a.changed_at
FROM ecp_apply a
WHERE a.kind IN ('updated', 'restored', 'deleted')
  AND v.instance_id = a.instance_id
  AND v.version = a.old_version
