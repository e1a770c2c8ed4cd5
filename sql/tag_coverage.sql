-- Tag coverage by key: how many current instances carry each tag key, how many
-- distinct values it takes, and what share of the fleet that is (useful to find
-- untagged instances for cost allocation). kind is 'user' (Tags) or 'biz' (BizTags).
-- Counted per value first, then per key: a hash aggregate on the way, where
-- count(DISTINCT ...) over the whole fleet's tags would sort them all.
-- ecp.instance_tags holds the tags of the instances that exist now only, so no
-- join with ecp.current_instances is needed (at 1M instances the join took most
-- of the time).
WITH per_value AS (
    SELECT t.kind, t.tag_key, t.tag_value, count(*) AS instances
    FROM ecp.instance_tags t
    GROUP BY t.kind, t.tag_key, t.tag_value
), fleet AS (
    SELECT count(*) AS total FROM ecp.current_instances
)
SELECT p.kind, p.tag_key,
       sum(p.instances)::bigint AS instances,
       count(p.tag_value) AS distinct_values,
       round(100.0 * sum(p.instances) / NULLIF(f.total, 0), 1) AS percent_of_fleet
FROM per_value p
CROSS JOIN fleet f
GROUP BY p.kind, p.tag_key, f.total
ORDER BY p.kind, instances DESC, p.tag_key;
