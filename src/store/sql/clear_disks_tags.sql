-- Removes the current disks and tags of instances whose lists changed; refill.sql
-- writes the new lists. Instances whose lists did not change are not touched.
WITH gone_disks AS (
    DELETE FROM ecp.instance_disks d
    USING ecp_apply a
    WHERE d.instance_id = a.instance_id AND a.disks_changed AND a.kind <> 'deleted'
)
DELETE FROM ecp.instance_tags t
USING ecp_apply a
WHERE t.instance_id = a.instance_id AND a.tags_changed AND a.kind <> 'deleted'
