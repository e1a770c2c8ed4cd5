-- ecp.fleet_daily from a running count instead of the versions themselves.
--
-- The view counted, for each day, every version valid at the end of that day:
-- at 1M instances that is a million rows sorted into groups per day (2.2 s for
-- the last 7 days, with or without a covering index). The number of instances
-- per (source, region, status) only moves when a version starts or ends, so the
-- database now keeps those moves, summed, in ecp.fleet_count_changes, and the
-- view adds them up per day: a few hundred rows per run instead of the fleet.
--
-- Each non-deleted version contributes +1 when it starts (valid_from) and -1
-- when it ends (valid_to), under its source, region (region_id, or biz_region_id
-- when absent) and status. A statement-level trigger on ecp.instance_versions
-- adds the contributions of every inserted row and takes back those of every
-- deleted row (an update is both), so the counts follow whatever writes the
-- versions: the apply, retention (prune), a fix by hand.
--
-- The moves are kept per quarter hour: a move at instant t is filed under the
-- first quarter-hour mark at or after t (UTC :00, :15, :30, :45). For every
-- instant on such a mark, "started at or before it and not ended by it" is then
-- exact, and the end of a day is on such a mark in every time zone whose offset
-- from UTC is a whole number of quarter hours, which is every zone in use today
-- (India +05:30, Nepal +05:45, Chatham +12:45 included). For today, the view
-- counts every move filed up to the quarter hour that contains now().

-- The quarter-hour mark at or after t.
CREATE FUNCTION ecp.quarter_hour_ceil(t timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN date_bin('15 minutes', t - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00')
       + interval '15 minutes';

COMMENT ON FUNCTION ecp.quarter_hour_ceil(timestamptz) IS 'The first quarter-hour mark (UTC :00, :15, :30, :45) at or after t (internal: the resolution of ecp.fleet_count_changes).';

-- Not a unique key: concurrent applies only ever insert here, so they never wait
-- for each other on a row of this table. prune merges the rows of a key and
-- quarter hour into one.
CREATE TABLE ecp.fleet_count_changes (
    at        timestamptz NOT NULL,
    source    text NOT NULL,
    region_id text NOT NULL,
    status    text,
    delta     bigint NOT NULL
);

COMMENT ON TABLE ecp.fleet_count_changes IS 'How the number of instances per source, region and status moved, per quarter hour (internal, kept by a trigger on ecp.instance_versions; read ecp.fleet_daily instead).';
COMMENT ON COLUMN ecp.fleet_count_changes.at IS 'The quarter-hour mark the moves are filed under: they happened after the previous mark and at or before this one.';
COMMENT ON COLUMN ecp.fleet_count_changes.source IS 'Account alias.';
COMMENT ON COLUMN ecp.fleet_count_changes.region_id IS 'Region (API RegionId, or the crawl''s business region when absent).';
COMMENT ON COLUMN ecp.fleet_count_changes.status IS 'Lifecycle state.';
COMMENT ON COLUMN ecp.fleet_count_changes.delta IS 'Net number of instances that entered (positive) or left (negative) this source, region and status.';

-- The moves of the rows a statement inserted (+), deleted (-) or updated (old -,
-- new +), summed per key and quarter hour; moves that cancel out are not stored.
CREATE FUNCTION ecp.fleet_count_changes_record()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ecp.fleet_count_changes (at, source, region_id, status, delta)
        SELECT ecp.quarter_hour_ceil(m.t), v.source, COALESCE(v.region_id, v.biz_region_id),
               v.status, sum(m.d)
        FROM new_rows v
        CROSS JOIN LATERAL (VALUES (v.valid_from, 1), (v.valid_to, -1)) AS m (t, d)
        WHERE NOT v.is_deleted AND m.t IS NOT NULL
        GROUP BY 1, 2, 3, 4
        HAVING sum(m.d) <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ecp.fleet_count_changes (at, source, region_id, status, delta)
        SELECT ecp.quarter_hour_ceil(m.t), v.source, COALESCE(v.region_id, v.biz_region_id),
               v.status, -sum(m.d)
        FROM old_rows v
        CROSS JOIN LATERAL (VALUES (v.valid_from, 1), (v.valid_to, -1)) AS m (t, d)
        WHERE NOT v.is_deleted AND m.t IS NOT NULL
        GROUP BY 1, 2, 3, 4
        HAVING sum(m.d) <> 0;
    ELSE
        INSERT INTO ecp.fleet_count_changes (at, source, region_id, status, delta)
        SELECT ecp.quarter_hour_ceil(m.t), v.source, COALESCE(v.region_id, v.biz_region_id),
               v.status, sum(v.sign * m.d)
        FROM (SELECT 1 AS sign, * FROM new_rows
              UNION ALL
              SELECT -1, * FROM old_rows) v
        CROSS JOIN LATERAL (VALUES (v.valid_from, 1), (v.valid_to, -1)) AS m (t, d)
        WHERE NOT v.is_deleted AND m.t IS NOT NULL
        GROUP BY 1, 2, 3, 4
        HAVING sum(v.sign * m.d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION ecp.fleet_count_changes_record() IS 'Trigger: files the fleet count moves of the versions a statement wrote into ecp.fleet_count_changes.';

CREATE FUNCTION ecp.fleet_count_changes_clear()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM ecp.fleet_count_changes;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION ecp.fleet_count_changes_clear() IS 'Trigger: empties ecp.fleet_count_changes when ecp.instance_versions is truncated.';

CREATE TRIGGER fleet_count_changes_insert
    AFTER INSERT ON ecp.instance_versions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ecp.fleet_count_changes_record();
CREATE TRIGGER fleet_count_changes_update
    AFTER UPDATE ON ecp.instance_versions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ecp.fleet_count_changes_record();
CREATE TRIGGER fleet_count_changes_delete
    AFTER DELETE ON ecp.instance_versions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ecp.fleet_count_changes_record();
CREATE TRIGGER fleet_count_changes_truncate
    AFTER TRUNCATE ON ecp.instance_versions
    FOR EACH STATEMENT EXECUTE FUNCTION ecp.fleet_count_changes_clear();

-- The history so far. Taken under a lock that keeps writers out until this
-- migration commits, so no version is counted twice or missed.
LOCK TABLE ecp.instance_versions IN SHARE ROW EXCLUSIVE MODE;
INSERT INTO ecp.fleet_count_changes (at, source, region_id, status, delta)
SELECT ecp.quarter_hour_ceil(m.t), v.source, COALESCE(v.region_id, v.biz_region_id),
       v.status, sum(m.d)
FROM ecp.instance_versions v
CROSS JOIN LATERAL (VALUES (v.valid_from, 1), (v.valid_to, -1)) AS m (t, d)
WHERE NOT v.is_deleted AND m.t IS NOT NULL
GROUP BY 1, 2, 3, 4
HAVING sum(m.d) <> 0;

-- Same name, columns, types and meaning as before (0013). Per key, the moves are
-- summed per day, a running sum over the days gives the count at the end of each
-- day that has a move, and that count holds on every following day until the
-- next move. A move filed at mark `at` belongs to the day that ends at or after
-- it, the day of (at - 1 microsecond) in the session's time zone. Days start,
-- as before, with the day of the first version; moves before it (none, unless a
-- version starts on the very microsecond of midnight) count from that day.
CREATE OR REPLACE VIEW ecp.fleet_daily AS
WITH bounds AS (
    SELECT (SELECT min(valid_from) FROM ecp.instance_versions)::date AS first_day,
           now()::date AS today,
           ecp.quarter_hour_ceil(now()) AS last_mark
), per_day AS (
    SELECT LEAST(GREATEST((c.at - interval '1 microsecond')::date, b.first_day), b.today) AS day,
           c.source, c.region_id, c.status, sum(c.delta) AS delta
    FROM ecp.fleet_count_changes c
    CROSS JOIN bounds b
    WHERE c.at <= b.last_mark
    GROUP BY 1, 2, 3, 4
), running AS (
    SELECT p.day, p.source, p.region_id, p.status,
           sum(p.delta) OVER w AS instances,
           lead(p.day) OVER w AS next_day
    FROM per_day p
    WINDOW w AS (PARTITION BY p.source, p.region_id, p.status ORDER BY p.day)
)
SELECT
    r.day + n.i AS day,
    r.source,
    r.region_id,
    r.status,
    r.instances::bigint AS instances
FROM running r
CROSS JOIN bounds b
CROSS JOIN LATERAL generate_series(0, COALESCE(r.next_day, b.today + 1) - r.day - 1) AS n (i)
WHERE r.instances <> 0;

COMMENT ON VIEW ecp.fleet_daily IS 'Per day, source, region and status: how many instances existed at the end of the day (now, for today), counted from the versions'' starts and ends (kept in ecp.fleet_count_changes). Days are in the session''s time zone; the end of a day is taken on the quarter hour, exact in every zone whose UTC offset is a whole number of quarter hours.';
COMMENT ON COLUMN ecp.fleet_daily.day IS 'The day (session time zone).';
COMMENT ON COLUMN ecp.fleet_daily.source IS 'Account alias.';
COMMENT ON COLUMN ecp.fleet_daily.region_id IS 'The instances'' region (API RegionId, or the crawl''s business region when absent).';
COMMENT ON COLUMN ecp.fleet_daily.status IS 'Lifecycle state.';
COMMENT ON COLUMN ecp.fleet_daily.instances IS 'Number of instances in that state at the end of the day (now, for today).';
