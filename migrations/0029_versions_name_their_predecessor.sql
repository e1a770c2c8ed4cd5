-- The no-overlap guarantee of ecp.instance_versions, for every writer. The chain
-- of 0020/0021 checks a version against the one it names as its predecessor
-- (previous_version), but a version after the first that named none was
-- accepted: written by hand, it could overlap the versions before it. Now a
-- version after the first must name its predecessor, unless prune removed that
-- predecessor, which prune itself records in chain_pruned before the foreign
-- key's ON DELETE SET NULL clears the link; a claim of chain_pruned while the
-- predecessor still exists is refused when the transaction commits.
ALTER TABLE ecp.instance_versions ADD COLUMN chain_pruned boolean NOT NULL DEFAULT false;

-- Versions whose predecessor an earlier prune removed.
UPDATE ecp.instance_versions v SET chain_pruned = true
WHERE v.previous_version IS NULL AND v.version > 1
  AND NOT EXISTS (SELECT 1 FROM ecp.instance_versions p
                  WHERE p.instance_id = v.instance_id AND p.version = v.version - 1);

-- Any other version without its link was written by hand: say so, rather than
-- let the constraint below fail without naming the rows.
DO $$
DECLARE
    unlinked bigint;
BEGIN
    SELECT count(*) INTO unlinked FROM ecp.instance_versions
    WHERE previous_version IS NULL AND version > 1 AND NOT chain_pruned;
    IF unlinked > 0 THEN
        RAISE EXCEPTION '% versions of ecp.instance_versions after the first name no previous_version although it exists (written by hand?)', unlinked
            USING HINT = 'Set previous_version = version - 1 on them, and make sure none overlaps its predecessor; then migrate again.';
    END IF;
END $$;

ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_names_its_predecessor
        CHECK (previous_version IS NOT NULL OR version = 1 OR chain_pruned);

CREATE FUNCTION ecp.instance_versions_check_pruned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ecp.instance_versions p
               WHERE p.instance_id = NEW.instance_id AND p.version = NEW.version - 1) THEN
        RAISE EXCEPTION 'version % of instance % says its predecessor was pruned, but version % exists',
            NEW.version, NEW.instance_id, NEW.version - 1
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'instance_versions_pruned_predecessor_is_gone';
    END IF;
    RETURN NULL;
END $$;

-- Checked at commit: prune marks the successors first, then deletes.
CREATE CONSTRAINT TRIGGER instance_versions_pruned_predecessor_is_gone
    AFTER INSERT OR UPDATE OF chain_pruned ON ecp.instance_versions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.chain_pruned)
    EXECUTE FUNCTION ecp.instance_versions_check_pruned();

COMMENT ON COLUMN ecp.instance_versions.chain_pruned IS
    'True when prune removed the version before this one (previous_version is then NULL).';
COMMENT ON FUNCTION ecp.instance_versions_check_pruned() IS
    'Trigger: a version marked chain_pruned must have no predecessor left.';
