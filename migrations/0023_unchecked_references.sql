-- The references from the high-volume tables are kept by the apply itself, and no
-- longer checked row by row by Postgres:
--   * disks and tags are written in the same transaction as their instance row,
--     and instance rows are never deleted (a deletion is a deleted_at);
--   * versions, changes and instance rows name the run that wrote them, inside
--     that run, and run rows are never deleted.
-- A foreign key check is a query per inserted row: about 11 microseconds each, or
-- some 8 seconds of CPU for the 800,000 rows a first sync of 100,000 instances
-- writes, more than the COPY of the instance rows themselves. The columns'
-- comments still name what they refer to, for readers and BI tools.
-- The chain of versions (instance_versions_follows_previous) keeps its check:
-- it guards the history itself, and costs nothing for first versions.
ALTER TABLE ecp.instance_disks DROP CONSTRAINT instance_disks_instance_id_fkey;
ALTER TABLE ecp.instance_tags DROP CONSTRAINT instance_tags_instance_id_fkey;
ALTER TABLE ecp.instances DROP CONSTRAINT instances_last_run_id_fkey;
ALTER TABLE ecp.instance_versions DROP CONSTRAINT instance_versions_run_id_fkey;
ALTER TABLE ecp.instance_changes DROP CONSTRAINT instance_changes_run_id_fkey;

COMMENT ON COLUMN ecp.instances.last_run_id IS 'The run that last wrote this row (ecp.sync_runs.run_id).';
COMMENT ON COLUMN ecp.instance_disks.instance_id IS 'The instance (ecp.instances.instance_id).';
COMMENT ON COLUMN ecp.instance_tags.instance_id IS 'The instance (ecp.instances.instance_id).';
COMMENT ON COLUMN ecp.instance_versions.run_id IS 'The run that wrote this version (ecp.sync_runs.run_id).';
COMMENT ON COLUMN ecp.instance_changes.run_id IS 'The run that observed the change (ecp.sync_runs.run_id).';
