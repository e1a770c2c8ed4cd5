-- How many instances the scope has now, and how many of them the complete crawl
-- did not return: the numbers the mass-deletion guard decides on.
-- ecp_stage holds one row per instance (deduplicated), so the LEFT JOIN does not
-- multiply rows. $1 source, $2 biz_region_id.
SELECT count(*) AS current, count(*) - count(s.instance_id) AS missing
FROM ecp.instances i
LEFT JOIN ecp_stage s ON s.instance_id = i.instance_id
WHERE i.source = $1 AND i.biz_region_id = $2 AND i.deleted_at IS NULL
