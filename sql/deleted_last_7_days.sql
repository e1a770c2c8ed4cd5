-- Instances that disappeared in the last 7 days, with their last known state.
SELECT instance_id, instance_name, source, biz_region_id, status, instance_type,
       first_seen_at, deleted_at
FROM ecp.instances
WHERE deleted_at >= now() - interval '7 days'
ORDER BY deleted_at DESC, instance_id;
