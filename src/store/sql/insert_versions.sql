-- The new version of each created, updated or restored instance, from the staged
-- state. $1 run_id, $2 source, $3 biz_region_id.
INSERT INTO ecp.instance_versions (
    instance_id, version, previous_version, valid_from, is_deleted, run_id, source, biz_region_id,
    {{typed_cols}}, tags, biz_tags, disks)
SELECT
    s.instance_id, COALESCE(a.old_version, 0) + 1, a.old_version, a.changed_at, false, $1, $2, $3,
    {{s_typed_cols}}, s.tags, s.biz_tags, s.disks
FROM ecp_apply a
JOIN ecp_stage s ON s.instance_id = a.instance_id
WHERE a.kind IN ('created', 'updated', 'restored')
