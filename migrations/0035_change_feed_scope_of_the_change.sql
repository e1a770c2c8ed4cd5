-- ecp.change_feed named each change with the scope the instance is in now, so a
-- count of changes per region or per account put every change of a moved
-- instance (a region change, an account alias renamed) under its latest scope:
-- its deletion from the old region showed under the new one, its creation
-- under an alias that did not exist then. From now on each change row records
-- the scope it was observed in. Rows written before carry none, and the feed
-- names them as before, with the instance's current scope: looking their scope
-- up in the versions made every read of the whole feed about three times
-- slower. No rewrite of the table: nullable columns without a default.
ALTER TABLE ecp.instance_changes
    ADD COLUMN IF NOT EXISTS source text,
    ADD COLUMN IF NOT EXISTS biz_region_id text;

COMMENT ON COLUMN ecp.instance_changes.source IS 'Account alias of the scope the change was observed in (NULL on rows written before migration 0035).';
COMMENT ON COLUMN ecp.instance_changes.biz_region_id IS 'Business region of the scope the change was observed in (NULL on rows written before migration 0035).';

CREATE OR REPLACE VIEW ecp.change_feed AS
SELECT
    c.change_id,
    c.run_id,
    c.observed_at,
    c.previously_observed_at,
    c.instance_id,
    i.instance_name,
    COALESCE(c.source, i.source) AS source,
    COALESCE(c.biz_region_id, i.biz_region_id) AS biz_region_id,
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

COMMENT ON VIEW ecp.change_feed IS 'Every change with the scope it was observed in, the instance''s current name and the run that observed it, newest first.';
COMMENT ON COLUMN ecp.change_feed.source IS 'Account alias of the scope the change was observed in (for changes recorded before migration 0035, the instance''s current one).';
COMMENT ON COLUMN ecp.change_feed.biz_region_id IS 'Business region of the scope the change was observed in (for changes recorded before migration 0035, the instance''s current one).';

-- Two ledger comments that said less than the columns hold.
COMMENT ON COLUMN ecp.sync_run_scopes.filtered IS 'True when the crawl could not vouch for the instances it did not return, so it marked none deleted: it used filters, skipped a record without an id, ended clearly short of the service''s TotalCount, or could not ask the service by id for the instances it missed.';
COMMENT ON COLUMN ecp.sync_runs.instances_seen IS 'Distinct instances staged, summed over the run''s scopes (an instance listed twice counts once).';
