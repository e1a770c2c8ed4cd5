-- What the current database user may not do that a sync needs, asked before the
-- run starts: a privilege missing on one table is then a configuration error
-- named at once, not a failed apply weeks later, the first time a run needs it
-- (a tag removed, say). Exactly what the sync's statements do, table by table,
-- and no more, so that no setup that works is refused: the DELETEs on disks and
-- tags read the rows they delete (SELECT); the history triggers of
-- instance_versions insert into fleet_count_changes as the job's user; the
-- identity columns' sequences need no grant; the staging tables need TEMP on the
-- database (PUBLIC has it unless revoked). One line per object, its missing
-- privileges listed; each asked on its own (has_table_privilege with a list
-- answers whether any is held). The schema's USAGE is checked first: without it
-- nothing else can be. Also: EXECUTE on the function the history triggers call
-- (checked as the job's user; PUBLIC has it unless revoked), SELECT on the
-- migrator's ledger (without it the schema's version cannot be checked), and,
-- when $1 (metrics asked for), SELECT on what the metrics count.
-- $1 metrics are exported.
WITH needed (relname, privileges) AS (
    VALUES ('instances', ARRAY['SELECT', 'INSERT', 'UPDATE']),
           ('instance_versions', ARRAY['SELECT', 'INSERT', 'UPDATE']),
           ('instance_changes', ARRAY['INSERT']),
           ('instance_disks', ARRAY['SELECT', 'INSERT', 'DELETE']),
           ('instance_tags', ARRAY['SELECT', 'INSERT', 'DELETE']),
           ('sync_runs', ARRAY['SELECT', 'INSERT', 'UPDATE']),
           ('sync_run_scopes', ARRAY['SELECT', 'INSERT']),
           ('fleet_count_changes', ARRAY['INSERT']),
           ('current_instances', CASE WHEN $1 THEN ARRAY['SELECT'] ELSE ARRAY[]::text[] END)
)
SELECT m.item
FROM (
    SELECT 0 AS rank, 'USAGE on schema ecp' AS item
    WHERE NOT has_schema_privilege('ecp', 'USAGE')
    UNION ALL
    SELECT 1, format('TEMP on database %I', current_database())
    WHERE NOT has_database_privilege(current_database(), 'TEMP')
    UNION ALL
    -- Found through the catalogs by oid: a name would need USAGE on its schema
    -- just to be looked up, and fail the check where it should answer.
    SELECT 1, 'SELECT on public._sqlx_migrations'
    FROM pg_class c
    JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'public'
    WHERE c.relname = '_sqlx_migrations' AND NOT has_table_privilege(c.oid, 'SELECT')
    UNION ALL
    SELECT 1, format('EXECUTE on function ecp.%I', f.proname)
    FROM pg_proc f
    JOIN pg_namespace s ON s.oid = f.pronamespace AND s.nspname = 'ecp'
    WHERE f.proname = 'quarter_hour_ceil' AND NOT has_function_privilege(f.oid, 'EXECUTE')
    UNION ALL
    SELECT 2, format('%s on ecp.%I', string_agg(p.privilege, ', ' ORDER BY p.n), c.relname)
    FROM needed d
    JOIN pg_class c ON c.relname = d.relname
    JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = 'ecp'
    CROSS JOIN unnest(d.privileges) WITH ORDINALITY AS p (privilege, n)
    WHERE NOT has_table_privilege(c.oid, p.privilege)
    GROUP BY c.relname
) m
ORDER BY m.rank, m.item
