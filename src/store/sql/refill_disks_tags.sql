-- Writes the staged disk and tag lists of the instances cleared by
-- clear_disks_tags.sql, and of every restored instance: its lists were removed
-- when it disappeared, so they are written again even if they did not change.
-- A tag whose key and value are longer together than normalize::MAX_TAG_ROW_BYTES
-- gets no row: the table's indexes cannot hold it, and it would fail the whole
-- apply. It stays in the instance's tags or biz_tags (normalize reports it).
WITH new_disks AS (
    INSERT INTO ecp.instance_disks (instance_id, disk_index, disk_type, disk_size_gb)
    SELECT s.instance_id, (e.ord - 1)::integer, e.disk ->> 'disk_type',
           (e.disk ->> 'disk_size_gb')::integer
    FROM ecp_apply a
    JOIN ecp_stage s ON s.instance_id = a.instance_id
    CROSS JOIN LATERAL jsonb_array_elements(s.disks) WITH ORDINALITY AS e (disk, ord)
    WHERE (a.disks_changed OR a.kind = 'restored') AND a.kind <> 'deleted'
)
INSERT INTO ecp.instance_tags (instance_id, kind, tag_key, tag_value)
SELECT s.instance_id, t.kind, t.tag_key, t.tag_value
FROM ecp_apply a
JOIN ecp_stage s ON s.instance_id = a.instance_id
CROSS JOIN LATERAL (
    SELECT 'user' AS kind, key AS tag_key, value AS tag_value FROM jsonb_each_text(s.tags)
    UNION ALL
    SELECT 'biz', key, value FROM jsonb_each_text(s.biz_tags)
) t
WHERE (a.tags_changed OR a.kind = 'restored') AND a.kind <> 'deleted'
  AND octet_length(t.tag_key) + coalesce(octet_length(t.tag_value), 0) <= {{max_tag_row_bytes}}
