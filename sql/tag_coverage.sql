-- Tag coverage by key: how many current instances carry each tag key, and what
-- share of the fleet that is (useful to find untagged instances for cost
-- allocation). kind is 'user' (Tags) or 'biz' (BizTags).
WITH fleet AS (
    SELECT count(*) AS total FROM ecp.current_instances
)
SELECT t.kind, t.tag_key,
       count(*) AS instances,
       count(DISTINCT t.tag_value) AS distinct_values,
       round(100.0 * count(*) / NULLIF(f.total, 0), 1) AS percent_of_fleet
FROM ecp.instance_tags t
JOIN ecp.current_instances i ON i.instance_id = t.instance_id
CROSS JOIN fleet f
GROUP BY t.kind, t.tag_key, f.total
ORDER BY t.kind, instances DESC, t.tag_key;
