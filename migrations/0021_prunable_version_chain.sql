-- `prune` removes versions that ended before a retention horizon. The first version
-- it keeps of an instance then has no predecessor, which the generated link column
-- of 0020 cannot express. The link becomes a plain column that the apply fills in
-- (version - 1, NULL for a first version) and that a pruned predecessor clears.
ALTER TABLE ecp.instance_versions DROP CONSTRAINT instance_versions_follows_previous;
ALTER TABLE ecp.instance_versions DROP COLUMN previous_version;
ALTER TABLE ecp.instance_versions ADD COLUMN previous_version integer;
UPDATE ecp.instance_versions SET previous_version = NULLIF(version - 1, 0);
ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_previous_is_version_minus_one
        CHECK (previous_version IS NULL OR previous_version = version - 1);
ALTER TABLE ecp.instance_versions
    ADD CONSTRAINT instance_versions_follows_previous
        FOREIGN KEY (instance_id, previous_version, valid_from)
        REFERENCES ecp.instance_versions (instance_id, version, valid_to)
        ON DELETE SET NULL (previous_version);
COMMENT ON COLUMN ecp.instance_versions.previous_version IS 'The version this one follows (version - 1); NULL for the first version, or when retention pruned its predecessor.';
