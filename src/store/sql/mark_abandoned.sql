-- Runs left 'running' whose process is gone. A live run holds a session-level
-- advisory lock (classid = the run lock namespace, objid = run_id) for its whole
-- life; Postgres drops it when the session ends, however the process died.
-- $1 the run lock namespace.
UPDATE ecp.sync_runs r
SET status = 'abandoned',
    finished_at = clock_timestamp(),
    error = 'the process running it ended before finishing it'
WHERE r.status = 'running'
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
