-- Fleet size per day over the last 90 days, per region (all statuses together),
-- from the history in ecp.fleet_daily.
SELECT day, region_id, sum(instances) AS instances
FROM ecp.fleet_daily
WHERE day >= current_date - 90
GROUP BY day, region_id
ORDER BY day, region_id;
