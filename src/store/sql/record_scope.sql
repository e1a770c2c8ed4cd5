-- The scope's line in the run ledger. When written in the apply transaction, it
-- commits together with the snapshot, so current_instances' last_seen_at can
-- never point at a crawl whose data is not there.
INSERT INTO ecp.sync_run_scopes (
    run_id, source, biz_region_id, complete, applied, filtered,
    pages_fetched, instances_seen, records_skipped, field_problems,
    created_count, updated_count, deleted_count, restored_count, unchanged_count,
    volatile_count, started_at, snapshot_at, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
