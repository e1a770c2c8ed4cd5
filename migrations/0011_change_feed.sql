-- The changes, newest first, with what an analyst wants next to them: the
-- instance's name and scope, and the run that observed the change.
CREATE VIEW ecp.change_feed AS
SELECT
    c.change_id,
    c.run_id,
    c.observed_at,
    c.previously_observed_at,
    c.instance_id,
    i.instance_name,
    i.source,
    i.biz_region_id,
    c.change_kind,
    c.field,
    c.old_value,
    c.new_value,
    r.started_at AS run_started_at,
    r.status AS run_status
FROM ecp.instance_changes c
JOIN ecp.sync_runs r ON r.run_id = c.run_id
LEFT JOIN ecp.instances i ON i.instance_id = c.instance_id
ORDER BY c.observed_at DESC, c.change_id DESC;

COMMENT ON VIEW ecp.change_feed IS 'Every change with the instance''s current name and the run that observed it, newest first.';
DO $$
DECLARE c record;
BEGIN
    FOR c IN
        SELECT a.attname, col_description(a.attrelid, a.attnum) AS txt
        FROM pg_attribute a
        WHERE a.attrelid = 'ecp.instance_changes'::regclass AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        IF EXISTS (SELECT 1 FROM pg_attribute b
                   WHERE b.attrelid = 'ecp.change_feed'::regclass AND b.attname = c.attname
                     AND col_description(b.attrelid, b.attnum) IS NULL) THEN
            EXECUTE format('COMMENT ON COLUMN ecp.change_feed.%I IS %L', c.attname, c.txt);
        END IF;
    END LOOP;
END $$;
COMMENT ON COLUMN ecp.change_feed.instance_name IS 'The instance''s latest known name.';
COMMENT ON COLUMN ecp.change_feed.source IS 'Account alias the instance is crawled under.';
COMMENT ON COLUMN ecp.change_feed.biz_region_id IS 'Business region of the instance''s crawl scope.';
COMMENT ON COLUMN ecp.change_feed.run_started_at IS 'When the observing run started.';
COMMENT ON COLUMN ecp.change_feed.run_status IS 'Status of the observing run.';
