-- Before the versions that ended before the horizon ($1) go: their successors,
-- which the foreign key's ON DELETE SET NULL is about to unlink, record that
-- their predecessor was pruned (instance_versions_names_its_predecessor
-- accepts no other version after the first without one). A successor is the
-- next version (a primary-key probe per pruned version) that names it.
UPDATE ecp.instance_versions n
SET chain_pruned = true
FROM ecp.instance_versions o
WHERE o.valid_to < $1
  AND n.instance_id = o.instance_id
  AND n.version = o.version + 1
  AND n.previous_version = o.version
