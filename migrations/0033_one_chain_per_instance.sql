-- The no-overlap guarantee of ecp.instance_versions, closed. Since 0029 a version
-- either names its predecessor, ending exactly where it starts, or begins a
-- chain: version 1, or the first version kept after prune removed the ones
-- before it (chain_pruned). The trigger of 0029 checks that a chain_pruned
-- version's predecessor is gone, but a version written by hand far past the
-- last one (version 5 while version 1 is open), chain_pruned and naming none,
-- began a second chain that overlapped the first. One chain start per instance
-- makes every version of an instance one linked chain: consecutive intervals,
-- only the last one open. Prune keeps it: the start it deletes goes in the same
-- statement whose ON DELETE SET NULL makes its successor the new start. The
-- trigger of 0029 still refuses what this cannot see: a version that keeps its
-- link yet claims chain_pruned.

-- Versions written by hand that already break it: say so, rather than let the
-- index fail without naming the rows.
DO $$
DECLARE
    instances bigint;
BEGIN
    SELECT count(*) INTO instances FROM (
        SELECT instance_id FROM ecp.instance_versions
        WHERE previous_version IS NULL
        GROUP BY instance_id HAVING count(*) > 1
    ) twice;
    IF instances > 0 THEN
        RAISE EXCEPTION '% instances of ecp.instance_versions have more than one version that names no previous_version (written by hand?)', instances
            USING HINT = 'Link each such version after the first to its predecessor (previous_version = version - 1, valid_from = its valid_to), or delete it; then migrate again.';
    END IF;
END $$;

CREATE UNIQUE INDEX instance_versions_one_chain_start
    ON ecp.instance_versions (instance_id) WHERE previous_version IS NULL;
COMMENT ON INDEX ecp.instance_versions_one_chain_start IS
    'One version per instance begins its chain (version 1, or the first kept after a prune): with the links of instance_versions_follows_previous, no two versions of an instance overlap.';
