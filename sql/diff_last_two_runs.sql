-- What changed between the last two runs that applied something: one row per
-- instance and field (ecp.run_diff over the changes of the later run).
WITH runs AS (
    SELECT DISTINCT run_id FROM ecp.sync_run_scopes WHERE applied ORDER BY run_id DESC LIMIT 2
)
SELECT d.*
FROM ecp.run_diff(
        (SELECT min(run_id) FROM runs),
        (SELECT max(run_id) FROM runs)
     ) AS d
ORDER BY d.instance_id, d.field NULLS FIRST;
