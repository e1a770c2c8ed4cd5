-- What the last run changed: one row per instance and field, from the changes
-- it recorded after the run before it (ecp.run_diff over the last two runs that
-- applied a region). A run that found the fleet as it was applies and records
-- nothing, so after a quiet run this answers with no row: for the last changes
-- whenever they happened, use changes_last_24_hours.sql or ecp.change_feed.
WITH runs AS (
    SELECT DISTINCT run_id FROM ecp.sync_run_scopes WHERE applied ORDER BY run_id DESC LIMIT 2
)
SELECT d.*
FROM ecp.run_diff(
        (SELECT min(run_id) FROM runs),
        (SELECT max(run_id) FROM runs)
     ) AS d
ORDER BY d.instance_id, d.field NULLS FIRST;
