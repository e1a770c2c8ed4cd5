-- One instance's history: each version with its validity, and the changes that
-- opened it. Replace the subselect with the instance ID you are after, e.g.
-- 'acp-8at8h6ejkadjh0001' (with psql: \set id '''acp-...''' and use :id).
WITH target AS (
    SELECT instance_id FROM ecp.instances ORDER BY instance_id LIMIT 1
)
SELECT v.version, v.valid_from, v.valid_to, v.is_deleted, v.status, v.instance_name,
       v.instance_type, v.image_version, v.tags,
       (SELECT jsonb_agg(jsonb_build_object('kind', c.change_kind, 'field', c.field,
                                            'old', c.old_value, 'new', c.new_value)
                         ORDER BY c.change_id)
        FROM ecp.instance_changes c
        WHERE c.instance_id = v.instance_id AND c.observed_at = v.valid_from) AS changes
FROM ecp.instance_versions v
JOIN target t ON t.instance_id = v.instance_id
ORDER BY v.version;
