-- Scopes holding current instances that no run has tried to crawl since $1 (a
-- scope whose crawls fail is tried, and each run reports the failure). Runs are
-- dated by sync_runs.started_at, the server's clock, not by the crawl's page
-- times. The ledger is grouped first (a few rows per run), and only the scopes it
-- finds stale are looked up in ecp.instances, through the partial index on the
-- live rows of a scope. last_crawl: the end of the last applied complete,
-- unfiltered crawl; a retirement (no page fetched) is none.
WITH last_tried AS (
    SELECT s.source, s.biz_region_id,
           max(r.started_at) AS last_run,
           max(s.snapshot_at) FILTER (
               WHERE s.applied AND s.complete AND NOT s.filtered AND s.pages_fetched > 0
           ) AS last_crawl
    FROM ecp.sync_run_scopes s
    JOIN ecp.sync_runs r USING (run_id)
    GROUP BY s.source, s.biz_region_id
)
SELECT l.source, l.biz_region_id, c.instances, l.last_crawl
FROM last_tried l
CROSS JOIN LATERAL (
    SELECT count(*) AS instances
    FROM ecp.instances i
    WHERE i.source = l.source AND i.biz_region_id = l.biz_region_id AND i.deleted_at IS NULL
) c
WHERE l.last_run < $1 AND c.instances > 0
ORDER BY l.source, l.biz_region_id
