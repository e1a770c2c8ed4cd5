-- Removes the current disks and tags of instances whose lists changed, and of
-- instances that disappeared: ecp.instance_disks and ecp.instance_tags hold the
-- instances that exist now, so tag coverage and disk totals need no join with
-- ecp.instances (a deleted instance's last lists stay in ecp.instances.disks,
-- .tags, .biz_tags and in its versions). refill_disks_tags.sql writes the new lists.
-- Instances whose lists did not change are not touched.
WITH gone_disks AS (
    DELETE FROM ecp.instance_disks d
    USING ecp_apply a
    WHERE d.instance_id = a.instance_id AND (a.disks_changed OR a.kind = 'deleted')
)
DELETE FROM ecp.instance_tags t
USING ecp_apply a
WHERE t.instance_id = a.instance_id AND (a.tags_changed OR a.kind = 'deleted')
