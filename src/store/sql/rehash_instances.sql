-- Rows whose staged values all equal the stored ones though their digests differ
-- (classify.sql's 'rehash') get the new digest alone. The row's new version
-- keeps its out-of-line raw as it is, where update_instances.sql would compress
-- and write it again: after a change of how records are digested, the first run
-- costs one light update per instance instead of a rewrite of the fleet.
UPDATE ecp.instances i
SET content_hash = s.content_hash
FROM ecp_apply a
JOIN ecp_stage s ON s.instance_id = a.instance_id
WHERE i.instance_id = a.instance_id
  AND a.kind = 'rehash'
