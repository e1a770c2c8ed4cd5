-- One row per scope (source account alias, business region) a run crawled.
-- `applied` rows with `complete AND NOT filtered` are the evidence that every
-- instance still current in the scope was seen at `snapshot_at`; current_instances
-- derives last_seen_at from them instead of rewriting every instance row per run.
CREATE TABLE ecp.sync_run_scopes (
    run_id          bigint NOT NULL REFERENCES ecp.sync_runs (run_id),
    source          text NOT NULL,
    biz_region_id   text NOT NULL,
    complete        boolean NOT NULL,
    applied         boolean NOT NULL,
    filtered        boolean NOT NULL DEFAULT false,
    pages_fetched   bigint NOT NULL DEFAULT 0,
    instances_seen  bigint NOT NULL DEFAULT 0,
    records_skipped bigint NOT NULL DEFAULT 0,
    field_problems  bigint NOT NULL DEFAULT 0,
    created_count   bigint NOT NULL DEFAULT 0,
    updated_count   bigint NOT NULL DEFAULT 0,
    deleted_count   bigint NOT NULL DEFAULT 0,
    restored_count  bigint NOT NULL DEFAULT 0,
    unchanged_count bigint NOT NULL DEFAULT 0,
    volatile_count  bigint NOT NULL DEFAULT 0,
    started_at      timestamptz NOT NULL,
    snapshot_at     timestamptz,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    error           text,
    PRIMARY KEY (run_id, source, biz_region_id)
);

COMMENT ON TABLE ecp.sync_run_scopes IS 'One row per scope (source, biz_region_id) crawled by a run, with its outcome.';
COMMENT ON COLUMN ecp.sync_run_scopes.run_id IS 'The run (ecp.sync_runs).';
COMMENT ON COLUMN ecp.sync_run_scopes.source IS 'Account alias the scope was crawled under.';
COMMENT ON COLUMN ecp.sync_run_scopes.biz_region_id IS 'Business region the scope was crawled for (the BizRegionId request parameter).';
COMMENT ON COLUMN ecp.sync_run_scopes.complete IS 'True when the crawl reached the last page.';
COMMENT ON COLUMN ecp.sync_run_scopes.applied IS 'True when the snapshot was written to the inventory.';
COMMENT ON COLUMN ecp.sync_run_scopes.filtered IS 'True when the crawl used filters, so it could not vouch for unseen instances (no deletions).';
COMMENT ON COLUMN ecp.sync_run_scopes.pages_fetched IS 'API pages fetched for the scope.';
COMMENT ON COLUMN ecp.sync_run_scopes.instances_seen IS 'Distinct instances staged from the crawl.';
COMMENT ON COLUMN ecp.sync_run_scopes.records_skipped IS 'API records skipped because they had no usable AndroidInstanceId.';
COMMENT ON COLUMN ecp.sync_run_scopes.field_problems IS 'Field values that could not be parsed and were stored as NULL (the raw value stays in raw).';
COMMENT ON COLUMN ecp.sync_run_scopes.created_count IS 'Instances created by this scope''s apply.';
COMMENT ON COLUMN ecp.sync_run_scopes.updated_count IS 'Instances given a new version by this scope''s apply.';
COMMENT ON COLUMN ecp.sync_run_scopes.deleted_count IS 'Instances marked deleted by this scope''s apply.';
COMMENT ON COLUMN ecp.sync_run_scopes.restored_count IS 'Instances restored by this scope''s apply.';
COMMENT ON COLUMN ecp.sync_run_scopes.unchanged_count IS 'Instances seen with no tracked change (volatile-only included).';
COMMENT ON COLUMN ecp.sync_run_scopes.volatile_count IS 'Instances whose only changes were volatile fields.';
COMMENT ON COLUMN ecp.sync_run_scopes.started_at IS 'When the scope''s crawl started.';
COMMENT ON COLUMN ecp.sync_run_scopes.snapshot_at IS 'When the last page of a complete crawl was fetched: every instance applied from it was seen by then.';
COMMENT ON COLUMN ecp.sync_run_scopes.finished_at IS 'When the scope was recorded (applied or given up).';
COMMENT ON COLUMN ecp.sync_run_scopes.error IS 'Why the scope was not applied; NULL when applied.';

-- current_instances looks up the last applied complete crawl per scope.
CREATE INDEX sync_run_scopes_evidence_idx ON ecp.sync_run_scopes (source, biz_region_id, snapshot_at)
    WHERE applied AND complete AND NOT filtered;
