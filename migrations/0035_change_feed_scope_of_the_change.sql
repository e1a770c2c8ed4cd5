-- ecp.change_feed named each change with the scope the instance is in now, so a
-- count of changes per region or per account put every change of a moved
-- instance (a region change, an account alias renamed) under its latest scope:
-- its deletion from the old region showed under the new one, its creation
-- under an alias that did not exist then. The scope of a change is the one of
-- the version it opened, which the same run wrote for the same instance: the
-- deleted version for a deletion, the new state otherwise. A change whose
-- version was pruned falls back to the instance's current scope, as before.
-- One primary-key probe per change row read: the feed is read newest first, a
-- page or an instance at a time.
CREATE OR REPLACE VIEW ecp.change_feed AS
SELECT
    c.change_id,
    c.run_id,
    c.observed_at,
    c.previously_observed_at,
    c.instance_id,
    i.instance_name,
    COALESCE(v.source, i.source) AS source,
    COALESCE(v.biz_region_id, i.biz_region_id) AS biz_region_id,
    c.change_kind,
    c.field,
    c.old_value,
    c.new_value,
    r.started_at AS run_started_at,
    r.status AS run_status
FROM ecp.instance_changes c
JOIN ecp.sync_runs r ON r.run_id = c.run_id
LEFT JOIN ecp.instances i ON i.instance_id = c.instance_id
LEFT JOIN LATERAL (
    -- An instance moved within one run has two versions of that run: the
    -- deletion from its old scope and its state in the new one.
    SELECT v0.source, v0.biz_region_id
    FROM ecp.instance_versions v0
    WHERE v0.instance_id = c.instance_id
      AND v0.run_id = c.run_id
      AND v0.is_deleted = (c.change_kind = 'deleted')
    ORDER BY v0.version DESC
    LIMIT 1
) v ON true
ORDER BY c.observed_at DESC, c.change_id DESC;

COMMENT ON VIEW ecp.change_feed IS 'Every change with the scope it happened in, the instance''s current name and the run that observed it, newest first.';
COMMENT ON COLUMN ecp.change_feed.source IS 'Account alias of the scope the change was observed in (the instance''s current one when that version was pruned).';
COMMENT ON COLUMN ecp.change_feed.biz_region_id IS 'Business region of the scope the change was observed in (the instance''s current one when that version was pruned).';

-- Two ledger comments that said less than the columns hold.
COMMENT ON COLUMN ecp.sync_run_scopes.filtered IS 'True when the crawl could not vouch for the instances it did not return, so it marked none deleted: it used filters, skipped a record without an id, ended clearly short of the service''s TotalCount, or could not ask the service by id for the instances it missed.';
COMMENT ON COLUMN ecp.sync_runs.instances_seen IS 'Distinct instances staged, summed over the run''s scopes (an instance listed twice counts once).';
