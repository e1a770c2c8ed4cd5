-- Runs left 'running' whose process is gone. A live run holds a session-level
-- advisory lock (classid = the run lock namespace, objid = run_id) for its whole
-- life; Postgres drops it when the session ends, however the process died.
-- Each is then closed by finish_run.sql as 'abandoned', which sums the counts of
-- the scopes it recorded: a process killed after some of its scopes were
-- applied leaves their changes in the inventory, and its run accounts for them.
-- $1 the run lock namespace.
SELECT r.run_id
FROM ecp.sync_runs r
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
ORDER BY r.run_id
