-- The instances a direct load (store/direct.rs) has written so far, as the rows
-- the stage would hold had they been staged: the query of a COPY TO STDOUT that
-- keeps them while the load is rolled back, and that the stage's COPY then reads
-- back. The load only ever creates instances, in a scope that had no live
-- instance when it began and whose lock it holds: the scope's live rows written
-- by this run are exactly the loaded ones. Sequence 0 puts them before any
-- staged page, so that a later listing of one of them wins, as between pages.
-- Written into the COPY by format(): the source, the business region (both
-- quoted by it) and the run id.
SELECT 0, i.first_seen_at, i.content_hash, i.instance_id, {{i_typed_cols}},
       i.tags, i.biz_tags, i.disks, i.raw
FROM ecp.instances i
WHERE i.source = %L AND i.biz_region_id = %L AND i.deleted_at IS NULL
  AND i.last_run_id = %s
