-- Instances current in the scope that the complete, unfiltered crawl did not
-- return. Only run once the deletion guard agreed.
-- $1 source, $2 biz_region_id, $3 when the crawl ended (the deletion is observed
-- then), $4 when the scope's previous applied complete crawl started (it saw
-- them after that).
INSERT INTO ecp_apply (instance_id, kind, old_version, changed_at, previously_observed_at,
                       disks_changed, tags_changed)
SELECT
    i.instance_id,
    'deleted',
    i.version,
    GREATEST($3::timestamptz, i.last_changed_at + interval '1 microsecond'),
    GREATEST(i.last_seen_at, $4::timestamptz),
    false,
    false
FROM ecp.instances i
WHERE i.source = $1 AND i.biz_region_id = $2 AND i.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM ecp_stage s WHERE s.instance_id = i.instance_id)
