-- Closes a run: its status and error, and the counts summed over its scopes.
-- Returns the rows the run wrote (instances created, updated, deleted or restored)
-- and the instances it saw. $1 run_id, $2 status, $3 error.
UPDATE ecp.sync_runs r
SET status = $2,
    error = $3,
    finished_at = clock_timestamp(),
    pages_fetched = s.pages_fetched,
    instances_seen = s.instances_seen,
    created_count = s.created_count,
    updated_count = s.updated_count,
    deleted_count = s.deleted_count,
    restored_count = s.restored_count,
    unchanged_count = s.unchanged_count,
    volatile_count = s.volatile_count
FROM (
    SELECT COALESCE(sum(pages_fetched), 0)::bigint AS pages_fetched,
           COALESCE(sum(instances_seen), 0)::bigint AS instances_seen,
           COALESCE(sum(created_count), 0)::bigint AS created_count,
           COALESCE(sum(updated_count), 0)::bigint AS updated_count,
           COALESCE(sum(deleted_count), 0)::bigint AS deleted_count,
           COALESCE(sum(restored_count), 0)::bigint AS restored_count,
           COALESCE(sum(unchanged_count), 0)::bigint AS unchanged_count,
           COALESCE(sum(volatile_count), 0)::bigint AS volatile_count
    FROM ecp.sync_run_scopes
    WHERE run_id = $1
) s
WHERE r.run_id = $1
RETURNING r.created_count + r.updated_count + r.deleted_count + r.restored_count,
          r.instances_seen
