-- Brings the rows of updated, restored and volatile-only instances to the staged
-- state. A volatile-only change keeps version and last_changed_at: no new
-- version was opened for it. $1 run_id, $2 source, $3 biz_region_id.
UPDATE ecp.instances i
SET {{set_typed}},
    tags = s.tags,
    biz_tags = s.biz_tags,
    disks = s.disks,
    raw = s.raw,
    content_hash = s.content_hash,
    source = $2,
    biz_region_id = $3,
    version = CASE WHEN a.kind = 'volatile' THEN i.version ELSE i.version + 1 END,
    last_changed_at = CASE WHEN a.kind = 'volatile' THEN i.last_changed_at ELSE a.changed_at END,
    last_seen_at = s.observed_at,
    deleted_at = NULL,
    last_run_id = $1
FROM ecp_apply a
JOIN ecp_stage s ON s.instance_id = a.instance_id
WHERE i.instance_id = a.instance_id
  AND a.kind IN ('updated', 'restored', 'volatile')
