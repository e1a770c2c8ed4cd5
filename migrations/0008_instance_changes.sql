-- One row per changed field per instance per run: the change feed analysts read.
CREATE TABLE ecp.instance_changes (
    change_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id                 bigint NOT NULL REFERENCES ecp.sync_runs (run_id),
    instance_id            text NOT NULL,
    observed_at            timestamptz NOT NULL,
    previously_observed_at timestamptz,
    change_kind            text NOT NULL CHECK (change_kind IN ('created', 'updated', 'deleted', 'restored')),
    field                  text,
    old_value              jsonb,
    new_value              jsonb,
    CHECK ((change_kind = 'updated') = (field IS NOT NULL))
);

COMMENT ON TABLE ecp.instance_changes IS 'One row per changed field per instance per run.';
COMMENT ON COLUMN ecp.instance_changes.change_id IS 'Change identifier, increasing.';
COMMENT ON COLUMN ecp.instance_changes.run_id IS 'The run that observed the change (ecp.sync_runs).';
COMMENT ON COLUMN ecp.instance_changes.instance_id IS 'The instance (ecp.instances).';
COMMENT ON COLUMN ecp.instance_changes.observed_at IS 'When the page that showed the new state was fetched (for deleted: when the crawl that missed it completed).';
COMMENT ON COLUMN ecp.instance_changes.previously_observed_at IS 'When the old state was last seen; the change happened in between. NULL for created.';
COMMENT ON COLUMN ecp.instance_changes.change_kind IS 'created, updated, deleted or restored.';
COMMENT ON COLUMN ecp.instance_changes.field IS 'For updated: the column name, tags.<key>, biz_tags.<key> or disks. NULL for the other kinds.';
COMMENT ON COLUMN ecp.instance_changes.old_value IS 'The field''s value before (NULL for a tag that was added).';
COMMENT ON COLUMN ecp.instance_changes.new_value IS 'The field''s value after (NULL for a tag that was removed).';

CREATE INDEX instance_changes_observed_idx ON ecp.instance_changes (observed_at, change_id);
CREATE INDEX instance_changes_instance_idx ON ecp.instance_changes (instance_id, observed_at);
CREATE INDEX instance_changes_run_idx ON ecp.instance_changes (run_id);
