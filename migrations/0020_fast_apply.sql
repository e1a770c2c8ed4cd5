-- Faster applies, same guarantees.
--
-- 1. ecp.instances.content_hash: a 128-bit digest of everything a crawl stages for
--    an instance (typed columns, tags, disks, the raw record). The apply compares
--    digests first, so an unchanged instance is recognized without comparing ~60
--    columns and a jsonb document; a differing digest falls back to the full
--    comparison, so the digest can only make the apply faster, never change what
--    it decides. NULL for rows written before this migration (full comparison).
ALTER TABLE ecp.instances ADD COLUMN content_hash uuid;
COMMENT ON COLUMN ecp.instances.content_hash IS 'Digest of the staged state last written to this row (internal: lets a re-sync skip unchanged instances cheaply).';

-- 2. The no-overlap guarantee of ecp.instance_versions, kept with b-tree indexes
--    instead of a GiST exclusion constraint (which dominated the cost of a bulk
--    insert). Versions of an instance form a chain: version 1 stands alone, and
--    version n > 1 must start exactly when version n - 1 ended (a foreign key from
--    (instance_id, previous_version, valid_from) to (instance_id, version,
--    valid_to)). With valid_to > valid_from (instance_versions_valid_range) and
--    the primary key on (instance_id, version), the versions of an instance are
--    consecutive, non-overlapping intervals and only the last one can be open:
--    the database still refuses two versions valid at the same instant, and
--    concurrent writers collide on the primary key.
ALTER TABLE ecp.instance_versions DROP CONSTRAINT instance_versions_no_overlap;
ALTER TABLE ecp.instance_versions
    ADD COLUMN previous_version integer GENERATED ALWAYS AS (NULLIF(version - 1, 0)) STORED;
COMMENT ON COLUMN ecp.instance_versions.previous_version IS 'version - 1, NULL for the first version: links each version to the one it follows.';
ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_chain_key UNIQUE (instance_id, version, valid_to);
ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_follows_previous
        FOREIGN KEY (instance_id, previous_version, valid_from)
        REFERENCES ecp.instance_versions (instance_id, version, valid_to);
