-- The change feed rows, computed before ecp.instances is overwritten because the
-- old values come from it:
--   one 'created' / 'deleted' / 'restored' row per instance (field NULL);
--   for updated and restored instances, one 'updated' row per tracked column that
--   differs, one per tag key added, changed or removed (tags.<key>, biz_tags.<key>;
--   NULL old_value when added, NULL new_value when removed), one for the disk list.
-- Volatile columns are left out of the generated VALUES list, so they never make
-- a change row.
-- Each row names the scope it was observed in: this one.
-- $1 run_id, $2 source, $3 biz_region_id.
INSERT INTO ecp.instance_changes (run_id, instance_id, observed_at, previously_observed_at,
                                  change_kind, field, old_value, new_value,
                                  source, biz_region_id)
SELECT $1, a.instance_id, a.changed_at,
       CASE WHEN a.kind = 'created' THEN NULL ELSE a.previously_observed_at END,
       a.kind, NULL, NULL, NULL, $2, $3
FROM ecp_apply a
WHERE a.kind IN ('created', 'deleted', 'restored')
UNION ALL
SELECT $1, a.instance_id, a.changed_at,
       -- A restored instance's old values are those of before it disappeared:
       -- last seen by the last crawl that returned it, not when it was missed.
       CASE WHEN a.kind = 'restored' THEN i.last_seen_at ELSE a.previously_observed_at END,
       'updated', f.field, f.old_value, f.new_value, $2, $3
FROM ecp_apply a
JOIN ecp_stage s ON s.instance_id = a.instance_id
JOIN ecp.instances i ON i.instance_id = a.instance_id
CROSS JOIN LATERAL (
    SELECT v.field, v.old_value, v.new_value
    FROM (VALUES
        ('source', to_jsonb(i.source), to_jsonb($2::text)),
        ('biz_region_id', to_jsonb(i.biz_region_id), to_jsonb($3::text)),
        {{field_values}}
    ) AS v (field, old_value, new_value)
    WHERE v.old_value IS DISTINCT FROM v.new_value
    UNION ALL
    SELECT 'tags.' || k.key, i.tags -> k.key, s.tags -> k.key
    FROM jsonb_object_keys(i.tags || s.tags) AS k (key)
    WHERE (i.tags -> k.key) IS DISTINCT FROM (s.tags -> k.key)
    UNION ALL
    SELECT 'biz_tags.' || k.key, i.biz_tags -> k.key, s.biz_tags -> k.key
    FROM jsonb_object_keys(i.biz_tags || s.biz_tags) AS k (key)
    WHERE (i.biz_tags -> k.key) IS DISTINCT FROM (s.biz_tags -> k.key)
    UNION ALL
    SELECT 'disks', i.disks, s.disks
    WHERE i.disks IS DISTINCT FROM s.disks
) f
WHERE a.kind IN ('updated', 'restored')
