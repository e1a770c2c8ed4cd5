-- Classifies every staged instance against its row in ecp.instances and keeps
-- only the ones that need a write: unchanged instances get no row here, so an
-- unchanged fleet leads to no write at all in the ecp tables.
--   created   no row yet
--   restored  a row marked deleted
--   updated   a tracked column, tag, disk or the scope differs (new version)
--   elsewhere current in another scope that still lists it: that scope has an
--             applied complete unfiltered crawl after the instance's last
--             change, in this scope's previous run or a later one (in any run
--             at all, on this scope's first crawl). Two scopes list it (two
--             aliases of one account?), so it stays where it is rather than
--             moving back and forth. A filtered crawl never takes an instance
--             from another scope: what it lists proves nothing about the rest,
--             and two such scopes would trade instances on every run. Nothing
--             is written for it. A real move shows once the other scope stops
--             listing it: deleted there, restored here. A scope no longer
--             crawled (an alias renamed, a region dropped from the config)
--             lists nothing new, so its instances move on this scope's next
--             unfiltered crawl but one. Runs, not times, tell "since": scopes of
--             one run are crawled in any order, and at any moment of it.
--   volatile  only volatile columns or raw differ (current row only); raw by
--             its text, as jsonb writes it: 4096 and 4096.0 are equal jsonb
--             values, yet raw keeps each one's scale as the API wrote it (not
--             an exponent: 1e2 is kept as 100)
--   rehash    only the digest differs: the same values digested otherwise (a
--             build that digests records another way). Only the digest is
--             written, which keeps the next runs on the cheap path; raw keeps
--             its stored value, the same text, and is not written again.
-- An instance whose content_hash equals the staged one (same digest of every
-- staged value), still current in the same scope, is unchanged without further
-- comparison: the common case costs one join and one 16-byte comparison. Any
-- other instance gets the full comparison, so the hash only saves work.
-- Short staged rows (raw NULL: the digest matched during the crawl) are not
-- classified here; apply.rs checks that they are still unchanged.
-- changed_at is when the new state was observed, nudged past the current
-- version's start so that a clock step back cannot produce an empty validity.
-- The double-brace placeholders are column lists generated from InstanceRow::columns.
-- $1 source, $2 biz_region_id, $3 when the scope's last applied complete
-- unfiltered crawl started (every instance current in the scope was seen after
-- it), $4 that crawl's run (NULL before the first), $5 this crawl is filtered.
INSERT INTO ecp_apply (instance_id, kind, old_version, changed_at, previously_observed_at,
                       disks_changed, tags_changed)
SELECT
    s.instance_id,
    k.kind,
    i.version,
    CASE WHEN i.instance_id IS NULL THEN s.observed_at
         ELSE GREATEST(s.observed_at, i.last_changed_at + interval '1 microsecond')
    END,
    CASE WHEN i.source = $1::text AND i.biz_region_id = $2::text
         THEN GREATEST(i.last_seen_at, $3::timestamptz)
         -- Moved from another scope: this scope's crawls never saw it before.
         ELSE i.last_seen_at
    END,
    k.kind <> 'elsewhere' AND s.disks IS DISTINCT FROM i.disks,
    k.kind <> 'elsewhere' AND (s.tags IS DISTINCT FROM i.tags OR s.biz_tags IS DISTINCT FROM i.biz_tags)
FROM ecp_stage s
-- A probe of the primary key per staged row (LIMIT keeps the planner from
-- turning it into a join that reads the whole fleet for a handful of rows).
LEFT JOIN LATERAL (
    SELECT * FROM ecp.instances i0 WHERE i0.instance_id = s.instance_id LIMIT 1
) i ON true
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN i.content_hash = s.content_hash AND i.deleted_at IS NULL
          AND i.source = $1::text AND i.biz_region_id = $2::text THEN NULL
        WHEN i.instance_id IS NULL THEN 'created'
        WHEN i.deleted_at IS NOT NULL THEN 'restored'
        WHEN (i.source <> $1::text OR i.biz_region_id <> $2::text) AND ($5::boolean OR EXISTS (
            SELECT 1 FROM ecp.sync_run_scopes e
            WHERE e.source = i.source AND e.biz_region_id = i.biz_region_id
              AND e.applied AND e.complete AND NOT e.filtered
              AND e.snapshot_at >= i.last_changed_at
              AND e.run_id >= coalesce($4::bigint, 0))) THEN 'elsewhere'
        WHEN ({{tracked_s}}) IS DISTINCT FROM ({{tracked_i}})
          OR i.source IS DISTINCT FROM $1::text
          OR i.biz_region_id IS DISTINCT FROM $2::text THEN 'updated'
        WHEN ({{volatile_s}}) IS DISTINCT FROM ({{volatile_i}}) THEN 'volatile'
        WHEN i.content_hash IS DISTINCT FROM s.content_hash THEN 'rehash'
    END AS kind
) k
WHERE s.raw IS NOT NULL AND k.kind IS NOT NULL
