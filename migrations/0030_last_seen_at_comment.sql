-- ecp.instances.last_seen_at of a deleted instance now catches up, at its
-- deletion, with the last complete crawl that returned it; the comment says so.
COMMENT ON COLUMN ecp.instances.last_seen_at IS 'When a crawl last returned the instance, as of the last write of this row (unchanged instances are not rewritten: read last_seen_at from ecp.current_instances; a deleted instance''s is set when it is marked deleted).';
