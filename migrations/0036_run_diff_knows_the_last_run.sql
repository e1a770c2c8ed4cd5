-- ecp.run_diff(from_run, to_run) for a run that does not exist yet (a typo, an
-- id from another database) returned no row, which reads as "nothing changed".
-- A to_run past the ledger's last run is now refused, naming that run. Within
-- the ledger any range is fine: from_run 0 means from the first run, and ids a
-- range skips over (runs that failed before writing, say) change nothing.
CREATE OR REPLACE FUNCTION ecp.check_run_range(from_run bigint, to_run bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
    last_run bigint;
BEGIN
    IF from_run > to_run THEN
        RAISE EXCEPTION 'run_diff: from_run % is after to_run %', from_run, to_run
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('The earlier run comes first: ecp.run_diff(%s, %s).',
                                to_run, from_run);
    END IF;
    SELECT max(run_id) INTO last_run FROM ecp.sync_runs;
    IF to_run > coalesce(last_run, 0) THEN
        RAISE EXCEPTION 'run_diff: to_run % is past the last run (%)', to_run,
                coalesce(last_run::text, 'none yet')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Run ids are ecp.sync_runs.run_id; sql/diff_last_two_runs.sql compares the last two.';
    END IF;
    RETURN true;
END
$$;

COMMENT ON FUNCTION ecp.check_run_range(bigint, bigint) IS 'True when from_run <= to_run <= the last run; raises otherwise (used by ecp.run_diff).';
COMMENT ON FUNCTION ecp.run_diff(bigint, bigint) IS 'Net changes observed by runs in (from_run, to_run], one row per instance and field; from_run after to_run, or to_run past the last run, is an error.';
