-- ecp.run_diff(from_run, to_run) with the runs swapped used to return no row,
-- which reads as "nothing changed". It now refuses, naming the call that was
-- probably meant. The check is a separate function called in a WHERE clause
-- that references only the arguments, so the planner evaluates it once, as a
-- one-time filter, and run_diff itself stays a plain SQL function.
CREATE FUNCTION ecp.check_run_range(from_run bigint, to_run bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
    IF from_run > to_run THEN
        RAISE EXCEPTION 'run_diff: from_run % is after to_run %', from_run, to_run
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('The earlier run comes first: ecp.run_diff(%s, %s).',
                                to_run, from_run);
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION ecp.check_run_range(bigint, bigint) IS 'True when from_run <= to_run; raises otherwise (used by ecp.run_diff).';

CREATE OR REPLACE FUNCTION ecp.run_diff(from_run bigint, to_run bigint)
RETURNS TABLE (
    instance_id       text,
    instance_name     text,
    field             text,
    change_kinds      text[],
    first_observed_at timestamptz,
    last_observed_at  timestamptz,
    old_value         jsonb,
    new_value         jsonb,
    changes           bigint
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT d.*
    FROM (
        SELECT
            c.instance_id,
            max(i.instance_name) AS instance_name,
            c.field,
            array_agg(c.change_kind ORDER BY c.observed_at, c.change_id) AS change_kinds,
            min(c.observed_at) AS first_observed_at,
            max(c.observed_at) AS last_observed_at,
            (array_agg(c.old_value ORDER BY c.observed_at, c.change_id))[1] AS old_value,
            (array_agg(c.new_value ORDER BY c.observed_at DESC, c.change_id DESC))[1] AS new_value,
            count(*) AS changes
        FROM ecp.instance_changes c
        LEFT JOIN ecp.instances i ON i.instance_id = c.instance_id
        WHERE ecp.check_run_range(from_run, to_run)
          AND c.run_id > from_run AND c.run_id <= to_run
        GROUP BY c.instance_id, c.field
    ) d
    WHERE d.field IS NULL OR d.old_value IS DISTINCT FROM d.new_value
    ORDER BY d.instance_id, d.field NULLS FIRST
$$;

COMMENT ON FUNCTION ecp.run_diff(bigint, bigint) IS 'Net changes observed by runs in (from_run, to_run], one row per instance and field; from_run after to_run is an error.';
