-- What changed between two runs: the changes observed by runs after from_run up
-- to and including to_run, folded to one row per instance and field: the value
-- before the first of them and after the last. A field that changed and changed
-- back in between is left out (no net change); created/deleted/restored rows
-- (field NULL) are kept with every kind they went through.
CREATE FUNCTION ecp.run_diff(from_run bigint, to_run bigint)
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
        WHERE c.run_id > from_run AND c.run_id <= to_run
        GROUP BY c.instance_id, c.field
    ) d
    WHERE d.field IS NULL OR d.old_value IS DISTINCT FROM d.new_value
    ORDER BY d.instance_id, d.field NULLS FIRST
$$;

COMMENT ON FUNCTION ecp.run_diff(bigint, bigint) IS 'Net changes observed by runs in (from_run, to_run], one row per instance and field.';
