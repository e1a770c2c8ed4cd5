-- The version recording a disappearance repeats the last known state, so
-- instances_as_of and fleet_daily can still tell what disappeared. $1 run_id.
INSERT INTO ecp.instance_versions (
    instance_id, version, previous_version, valid_from, is_deleted, run_id, source, biz_region_id,
    {{typed_cols}}, tags, biz_tags, disks)
SELECT
    i.instance_id, a.old_version + 1, a.old_version, a.changed_at, true, $1, i.source, i.biz_region_id,
    {{i_typed_cols}}, i.tags, i.biz_tags, i.disks
FROM ecp_apply a
JOIN ecp.instances i ON i.instance_id = a.instance_id
WHERE a.kind = 'deleted'
