-- The no-overlap guarantee of ecp.instance_versions, for every writer. The chain
-- of 0020/0021 checks a version against the one it names as its predecessor
-- (previous_version), but a version after the first that named none was
-- accepted: written by hand, it could overlap the versions before it. Now a
-- version after the first must name its predecessor, unless prune removed that
-- predecessor, which prune itself records in chain_pruned before the foreign
-- key's ON DELETE SET NULL clears the link.
ALTER TABLE ecp.instance_versions ADD COLUMN chain_pruned boolean NOT NULL DEFAULT false;

-- Versions whose predecessor an earlier prune removed.
UPDATE ecp.instance_versions SET chain_pruned = true
WHERE previous_version IS NULL AND version > 1;

ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_names_its_predecessor
        CHECK (previous_version IS NOT NULL OR version = 1 OR chain_pruned);

COMMENT ON COLUMN ecp.instance_versions.chain_pruned IS
    'True when prune removed the version before this one (previous_version is then NULL).';
