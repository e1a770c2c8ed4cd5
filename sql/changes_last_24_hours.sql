-- What changed in the last 24 hours, on one screen however large the fleet: per
-- kind of change and field, how many changes and when the first and the last of
-- them were observed. Tag changes show as field tags.<key> / biz_tags.<key>.
-- A first sync of a million instances is one row here ('created', a million),
-- where a listing would be a million rows that nobody reads.
--
-- The changes behind a row, newest first, from the change feed (add LIMIT for a
-- large day):
--   SELECT observed_at, instance_id, instance_name, old_value, new_value, run_id
--   FROM ecp.change_feed
--   WHERE observed_at >= now() - interval '24 hours'
--     AND change_kind = 'updated' AND field = 'status';
SELECT change_kind, field, count(*) AS changes,
       min(observed_at) AS first_observed_at, max(observed_at) AS last_observed_at
FROM ecp.instance_changes
WHERE observed_at >= now() - interval '24 hours'
GROUP BY change_kind, field
ORDER BY changes DESC, change_kind, field;
