-- Current tags of each instance, one row per key. kind separates the user's Tags
-- from the service's BizTags, which share no namespace.
CREATE TABLE ecp.instance_tags (
    instance_id text NOT NULL REFERENCES ecp.instances (instance_id),
    kind        text NOT NULL CHECK (kind IN ('user', 'biz')),
    tag_key     text NOT NULL,
    tag_value   text,
    PRIMARY KEY (instance_id, kind, tag_key)
);

COMMENT ON TABLE ecp.instance_tags IS 'Current tags of each instance, one row per key (history: instance_versions.tags and biz_tags).';
COMMENT ON COLUMN ecp.instance_tags.instance_id IS 'The instance (ecp.instances).';
COMMENT ON COLUMN ecp.instance_tags.kind IS '''user'' for the API''s Tags, ''biz'' for its BizTags.';
COMMENT ON COLUMN ecp.instance_tags.tag_key IS 'Tag key.';
COMMENT ON COLUMN ecp.instance_tags.tag_value IS 'Tag value.';

-- Tag coverage by key.
CREATE INDEX instance_tags_key_idx ON ecp.instance_tags (kind, tag_key);
