-- The live instances of a scope, with their ids in the index: the two queries
-- that look for the instances a complete crawl did not return on every run (the
-- recheck by id's, the deletion guard's count) compare ids only, and now read
-- them from the index alone instead of scanning every row of the table.
-- At 1M instances in six regions that scan read the whole table (860 MB) twice
-- per region on every run, changed or not: 0.70 s a region against 0.13 s.
-- The index's two leading columns are the old one's, so every plan that used it
-- can use this one.
CREATE INDEX instances_scope_live_ids_idx
    ON ecp.instances (source, biz_region_id, instance_id) WHERE deleted_at IS NULL;
DROP INDEX ecp.instances_scope_live_idx;
ALTER INDEX ecp.instances_scope_live_ids_idx RENAME TO instances_scope_live_idx;
