-- A crawl that is no evidence of the scope's whole fleet (filtered, or with its
-- deletions withheld) does not count in current_instances' last_seen_at, which
-- is the scope's last complete unfiltered crawl: so the instances it returned
-- unchanged are stamped one by one, else a source that always filters, or a
-- region whose deletions are withheld run after run, would look unseen since
-- its first crawl. Only the timestamp is written (raw stays out of line as it
-- is); rows this apply wrote already carry it, and rows of other scopes are
-- theirs. last_run_id, the run that last wrote the instance's state, stays.
-- $1 source, $2 biz_region_id.
UPDATE ecp.instances i
SET last_seen_at = s.observed_at
FROM ecp_stage s
WHERE s.instance_id = i.instance_id
  AND i.source = $1 AND i.biz_region_id = $2 AND i.deleted_at IS NULL
  AND i.last_seen_at < s.observed_at
