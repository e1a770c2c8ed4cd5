-- The apply looks up a scope's last applied complete crawl, filtered or not (a
-- filtered scope has no other), to decide whether another scope's listing of an
-- instance is recent enough to leave it there. sync_run_scopes_evidence_idx
-- leaves filtered crawls out; without this index the lookup reads the whole
-- ledger, a row per scope and run, once per scope applied.
CREATE INDEX sync_run_scopes_crawls_idx ON ecp.sync_run_scopes (source, biz_region_id, snapshot_at)
    WHERE applied AND complete;
