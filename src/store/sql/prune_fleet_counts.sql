-- Merges the rows of ecp.fleet_count_changes that share a quarter hour, source,
-- region and status into one, and drops the ones that cancel out (a version
-- closed and the next one opened under the same status: -1 and +1). The trigger
-- on ecp.instance_versions writes a row per statement and key; merging keeps the
-- table, and so ecp.fleet_daily, proportional to the quarter hours in which the
-- fleet's counts actually moved. Rows that concurrent applies insert meanwhile
-- are not visible here and stay as they are.
WITH gone AS (
    DELETE FROM ecp.fleet_count_changes RETURNING *
)
INSERT INTO ecp.fleet_count_changes (at, source, region_id, status, delta)
SELECT at, source, region_id, status, sum(delta)
FROM gone
GROUP BY at, source, region_id, status
HAVING sum(delta) <> 0
