-- Runs marked abandoned before this version kept counts of 0, though scopes they
-- applied before their process died left changes in the inventory. Their counts
-- become the sums over their scopes, as mark_abandoned.sql now sets them.
UPDATE ecp.sync_runs r
SET pages_fetched = s.pages_fetched,
    instances_seen = s.instances_seen,
    created_count = s.created_count,
    updated_count = s.updated_count,
    deleted_count = s.deleted_count,
    restored_count = s.restored_count,
    unchanged_count = s.unchanged_count,
    volatile_count = s.volatile_count
FROM (
    SELECT run_id,
           sum(pages_fetched)::bigint AS pages_fetched,
           sum(instances_seen)::bigint AS instances_seen,
           sum(created_count)::bigint AS created_count,
           sum(updated_count)::bigint AS updated_count,
           sum(deleted_count)::bigint AS deleted_count,
           sum(restored_count)::bigint AS restored_count,
           sum(unchanged_count)::bigint AS unchanged_count,
           sum(volatile_count)::bigint AS volatile_count
    FROM ecp.sync_run_scopes
    GROUP BY run_id
) s
WHERE r.run_id = s.run_id AND r.status = 'abandoned';
