-- The fleet now: how many instances exist per region and status.
SELECT region_id, status, count(*) AS instances
FROM ecp.current_instances
GROUP BY region_id, status
ORDER BY region_id, instances DESC;
