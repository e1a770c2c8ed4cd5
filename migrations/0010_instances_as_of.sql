-- The fleet as it was at a past instant: the versions valid at ts, without the
-- versions that record a deletion. Same columns as ecp.instance_versions.
CREATE FUNCTION ecp.instances_as_of(ts timestamptz)
RETURNS SETOF ecp.instance_versions
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT v.*
    FROM ecp.instance_versions v
    WHERE v.valid_from <= ts
      AND (v.valid_to IS NULL OR v.valid_to > ts)
      AND NOT v.is_deleted
$$;

COMMENT ON FUNCTION ecp.instances_as_of(timestamptz) IS 'Instances as they were at ts: the versions valid at that instant, deleted excluded.';
