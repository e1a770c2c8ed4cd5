-- Rows for instances seen for the first time. $1 run_id, $2 source, $3 biz_region_id.
-- Runs before the other writes. Another scope may have created some of these
-- instances since this apply classified them (two sources listing one account,
-- applied at once): the insert waits for that scope's transaction and, once it
-- commits, leaves the row to it. Those instances become 'elsewhere', as if the
-- other scope had been first all along (nothing of them written: not their
-- disks and tags either), instead of failing this whole apply on the primary key.
WITH inserted AS (
    INSERT INTO ecp.instances (
        instance_id, {{typed_cols}}, tags, biz_tags, disks, raw, content_hash, source, biz_region_id,
        version, first_seen_at, last_changed_at, last_seen_at, deleted_at, last_run_id)
    SELECT
        s.instance_id, {{s_typed_cols}}, s.tags, s.biz_tags, s.disks, s.raw, s.content_hash, $2, $3,
        1, s.observed_at, a.changed_at, s.observed_at, NULL, $1
    FROM ecp_apply a
    JOIN ecp_stage s ON s.instance_id = a.instance_id
    WHERE a.kind = 'created'
    -- In one order for every apply: two applies writing the same new instances
    -- then meet at the first they share, where the second waits for the first,
    -- instead of each waiting for a row the other wrote, a deadlock the server
    -- breaks by failing one of them. (In crawl order, two sources listing one
    -- account in opposite orders deadlocked every time.)
    ORDER BY s.instance_id
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id
)
UPDATE ecp_apply a SET kind = 'elsewhere', disks_changed = false, tags_changed = false
WHERE a.kind = 'created'
  AND NOT EXISTS (SELECT 1 FROM inserted n WHERE n.instance_id = a.instance_id)
