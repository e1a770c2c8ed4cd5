-- Not every run is a crawl: `ecp-inventory retire` records a run of its own when
-- an operator marks deleted the current instances of a scope that no crawl will
-- list again (an account closed, a region given up), so that each version and
-- change row it writes still names the run that wrote it, and the ledger says
-- which runs looked at the API. A constant default: no rewrite of the table.
ALTER TABLE ecp.sync_runs
    ADD COLUMN command text NOT NULL DEFAULT 'sync'
        CONSTRAINT sync_runs_command_check CHECK (command IN ('sync', 'retire'));

COMMENT ON COLUMN ecp.sync_runs.command IS
    'sync: a crawl of the API. retire: an operator marked every current instance of the run''s scopes deleted (ecp-inventory retire); its scopes fetched no page.';
