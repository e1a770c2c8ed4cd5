-- Every change observed in the last 24 hours, newest first, with the instance's
-- name. Tag changes show as field tags.<key> / biz_tags.<key>.
SELECT observed_at, instance_id, instance_name, change_kind, field, old_value, new_value, run_id
FROM ecp.change_feed
WHERE observed_at >= now() - interval '24 hours'
ORDER BY observed_at DESC, change_id DESC;
