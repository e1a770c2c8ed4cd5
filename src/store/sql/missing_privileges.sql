-- What the current database user may not do that a sync, prune or retire needs
-- (README, "Sync into your own database"): use the schema, read and write every
-- table of it, and draw from its sequences. Asked before the run starts, so that
-- a privilege missing on one table is a configuration error named at once, not a
-- failed apply weeks later, the first time a run needs it (a tag removed, say).
-- One line per object, its missing privileges listed. Each privilege is asked
-- on its own: has_table_privilege with a list answers whether any is held.
SELECT m.item
FROM (
    SELECT 0 AS rank, 'USAGE on schema ecp' AS item
    WHERE NOT has_schema_privilege('ecp', 'USAGE')
    UNION ALL
    SELECT 1, format('%s on ecp.%I', string_agg(p.privilege, ', ' ORDER BY p.n), c.relname)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
        WITH ORDINALITY AS p (privilege, n)
    WHERE n.nspname = 'ecp' AND c.relkind IN ('r', 'p')
      AND NOT has_table_privilege(c.oid, p.privilege)
    GROUP BY c.relname
    UNION ALL
    SELECT 2, format('USAGE on sequence ecp.%I', c.relname)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'ecp' AND c.relkind = 'S'
      -- Guarded: the server may test this before the filters above, and it
      -- fails on a relation that is no sequence.
      AND CASE WHEN c.relkind = 'S' THEN NOT has_sequence_privilege(c.oid, 'USAGE') END
) m
ORDER BY m.rank, m.item
