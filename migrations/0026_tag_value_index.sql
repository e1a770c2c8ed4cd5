-- Tag coverage (sql/tag_coverage.sql) counts the instances per tag key and value.
-- With the value in the index, Postgres reads the counts from the index alone, in
-- key and value order, instead of hashing the three text columns of every tag
-- row: at 1M instances (3.1M tag rows) 0.61-0.81 s became 0.39-0.47 s. The index
-- replaces the one on (kind, tag_key), whose lookups it serves as well.
CREATE INDEX instance_tags_key_value_idx ON ecp.instance_tags (kind, tag_key, tag_value);
DROP INDEX ecp.instance_tags_key_idx;
