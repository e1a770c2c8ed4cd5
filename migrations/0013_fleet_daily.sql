-- Fleet size per day, region and status, from the history: for each day, the
-- versions valid at the end of that day (or now, for today), deleted excluded.
-- Days are in the session's time zone. Filter on day for long histories: the day
-- series is generated first, then each day probes the versions by validity.
CREATE VIEW ecp.fleet_daily AS
SELECT
    d.day::date AS day,
    v.source,
    COALESCE(v.region_id, v.biz_region_id) AS region_id,
    v.status,
    count(*) AS instances
FROM generate_series(
        (SELECT date_trunc('day', min(valid_from)) FROM ecp.instance_versions),
        date_trunc('day', now()),
        interval '1 day'
     ) AS d(day)
JOIN ecp.instance_versions v
  ON v.valid_from <= LEAST(d.day + interval '1 day', now())
 AND (v.valid_to IS NULL OR v.valid_to > LEAST(d.day + interval '1 day', now()))
 AND NOT v.is_deleted
GROUP BY 1, 2, 3, 4;

COMMENT ON VIEW ecp.fleet_daily IS 'Per day, source, region and status: how many instances existed at the end of the day (from the versions).';
COMMENT ON COLUMN ecp.fleet_daily.day IS 'The day (session time zone).';
COMMENT ON COLUMN ecp.fleet_daily.source IS 'Account alias.';
COMMENT ON COLUMN ecp.fleet_daily.region_id IS 'The instances'' region (API RegionId, or the crawl''s business region when absent).';
COMMENT ON COLUMN ecp.fleet_daily.status IS 'Lifecycle state.';
COMMENT ON COLUMN ecp.fleet_daily.instances IS 'Number of instances in that state at the end of the day (now, for today).';
