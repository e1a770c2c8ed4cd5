-- Runs left 'running' whose process is gone. A live run holds a session-level
-- advisory lock (classid = the run lock namespace, objid = run_id) for its whole
-- life; Postgres drops it when the session ends, however the process died.
-- The counts are summed over the scopes it recorded, as finish_run.sql does: a
-- process killed after some of its scopes were applied leaves their changes in
-- the inventory, and its run must account for them.
-- $1 the run lock namespace.
UPDATE ecp.sync_runs r
SET status = 'abandoned',
    finished_at = clock_timestamp(),
    error = 'the process running it ended before finishing it',
    pages_fetched = s.pages_fetched,
    instances_seen = s.instances_seen,
    created_count = s.created_count,
    updated_count = s.updated_count,
    deleted_count = s.deleted_count,
    restored_count = s.restored_count,
    unchanged_count = s.unchanged_count,
    volatile_count = s.volatile_count
FROM (
    SELECT r0.run_id,
           COALESCE(sum(sc.pages_fetched), 0)::bigint AS pages_fetched,
           COALESCE(sum(sc.instances_seen), 0)::bigint AS instances_seen,
           COALESCE(sum(sc.created_count), 0)::bigint AS created_count,
           COALESCE(sum(sc.updated_count), 0)::bigint AS updated_count,
           COALESCE(sum(sc.deleted_count), 0)::bigint AS deleted_count,
           COALESCE(sum(sc.restored_count), 0)::bigint AS restored_count,
           COALESCE(sum(sc.unchanged_count), 0)::bigint AS unchanged_count,
           COALESCE(sum(sc.volatile_count), 0)::bigint AS volatile_count
    FROM ecp.sync_runs r0
    LEFT JOIN ecp.sync_run_scopes sc ON sc.run_id = r0.run_id
    WHERE r0.status = 'running'
    GROUP BY r0.run_id
) s
WHERE r.run_id = s.run_id
  AND r.status = 'running'
  AND NOT EXISTS (
      SELECT 1
      FROM pg_locks l
      WHERE l.locktype = 'advisory'
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::integer::oid
        AND l.objid = r.run_id::oid
        AND l.objsubid = 2
        AND l.granted
  )
RETURNING r.run_id
