//! Apply: a complete crawl of a scope, staged in `ecp_stage`, becomes the new
//! state of the inventory in one transaction of set-based statements (the files
//! under `sql/`, in the order below). Readers see all of it or none of it, and a
//! process killed at any point leaves the previous state intact.
//!
//! Unchanged instances are filtered out by the first statement and never written;
//! only the ledger line of the scope is.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use tracing::{debug, warn};

use super::ledger::{insert_scope_line, record_failed_scope, ScopeLine, ScopeStats, RECORD_SCOPE};
use super::stage::ScopeSync;
use super::{Scope, StoreError};

/// What the crawl may prove about instances it did not return.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// The crawl used filters, so an instance it did not return may still exist:
    /// nothing is marked deleted.
    pub filtered: bool,
    /// Refuse to delete more than this share of the scope's current instances in
    /// one apply (0.5: half the fleet vanishing is likelier an API or permission
    /// problem than real deletions).
    pub max_delete_share: f64,
    /// The operator confirmed a mass deletion (`--allow-mass-delete`).
    pub allow_mass_delete: bool,
    /// How many instances the service counted in the scope (the largest
    /// `TotalCount` of the crawl's pages), if it said. A crawl that returned
    /// clearly fewer distinct instances may have lost some of its pages: what it
    /// returned is written, but nothing is marked deleted (see
    /// [`crate::crawl::clear_shortfall`]), unless `unlisted_gone` explains it.
    pub total_count: Option<u64>,
    /// Every instance current in the scope that the crawl did not list was
    /// asked for by id, and this many did not answer. When those gone make up
    /// the shortfall (the count was taken before they went), it withholds no
    /// deletion: the instances a deletion would mark are gone on the service's
    /// word, and no other is missing from the listing.
    pub unlisted_gone: Option<u64>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            filtered: false,
            max_delete_share: 0.5,
            allow_mass_delete: false,
            total_count: None,
            unlisted_gone: None,
        }
    }
}

/// What an apply did, per instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    /// Distinct instances in the snapshot.
    pub seen: u64,
    pub created: u64,
    /// Of the created, those written while the crawl ran, straight into the
    /// tables (a first crawl's direct load; see `store/direct.rs`).
    pub loaded: u64,
    pub updated: u64,
    /// No tracked change (includes `volatile`).
    pub unchanged: u64,
    /// Of the unchanged, those whose volatile fields or raw changed (row
    /// updated only).
    pub volatile: u64,
    pub deleted: u64,
    pub restored: u64,
    /// The crawl returned this many distinct instances fewer than the service
    /// counted (a clear shortfall): nothing was marked deleted.
    pub shortfall: Option<u64>,
}

pub(crate) async fn apply(
    mut s: ScopeSync,
    opts: &ApplyOptions,
) -> Result<ApplyCounts, StoreError> {
    let started = std::time::Instant::now();
    let snapshot_at = s.last_observed_at.unwrap_or_else(Utc::now);
    let applied = match s.flush().await {
        Ok(()) => match apply_in_transaction(&mut s, opts, snapshot_at).await {
            Ok(counts) => s.commit().await.map(|()| counts),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match applied.map_err(|e| concurrent_write(e, &s.scope)) {
        Ok(counts) => {
            // The scope's own line (with its counts) is the caller's; this one
            // says what the apply cost.
            debug!(
                seen = counts.seen,
                loaded = counts.loaded,
                volatile = counts.volatile,
                duration_ms = started.elapsed().as_millis() as u64,
                "apply committed"
            );
            s.conn.close().await?;
            Ok(counts)
        }
        Err(e) => {
            // The last rows were refused or the transaction rolled back; say why
            // in the ledger (on another connection if this one is what failed).
            if let Err(record_err) =
                record_failed_scope(&mut s, true, opts.filtered, &e.to_string()).await
            {
                warn!(scope = %s.scope, error = %record_err, "could not record the failed scope");
            }
            Err(e)
        }
    }
}

/// The keys two applies collide on when they write the same instances at once:
/// the second one's insert of the instance or of its next version, or its
/// version naming a predecessor the first one has just replaced.
const COLLISIONS: [(&str, &str); 4] = [
    ("23505", "instances_pkey"),
    ("23505", "instance_versions_pkey"),
    ("23505", "instance_versions_one_chain_start"),
    ("23503", "instance_versions_follows_previous"),
];

/// SQLSTATE of a deadlock the server broke.
const DEADLOCK_DETECTED: &str = "40P01";

pub(super) fn concurrent_write(e: StoreError, scope: &Scope) -> StoreError {
    let collided = e
        .database_error()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|db| {
            let code = db.code()?;
            // Two applies inserting the same new instances in opposite orders
            // wait for each other; the server breaks the tie by failing one.
            if code == DEADLOCK_DETECTED {
                return Some("deadlock".to_owned());
            }
            let constraint = db.constraint()?;
            COLLISIONS
                .iter()
                .any(|(c, k)| *c == code && *k == constraint)
                .then(|| constraint.to_owned())
        });
    match collided {
        Some(constraint) => StoreError::ConcurrentWrite {
            scope: scope.clone(),
            constraint,
        },
        None => e,
    }
}

/// Everything but the COMMIT, which the caller sends ([`ScopeSync::commit`]).
/// The transaction is the scope's own, not a sqlx one: a direct load opened it
/// with its first batch, long before; otherwise it opens here.
async fn apply_in_transaction(
    s: &mut ScopeSync,
    opts: &ApplyOptions,
    snapshot_at: DateTime<Utc>,
) -> Result<ApplyCounts, StoreError> {
    let sql = s.store.sql.clone();
    let (run_id, scope) = (s.run_id, s.scope.clone());
    let stats = ScopeStats::from(&*s);
    // Instances a direct load wrote: all created, none of them in the stage.
    let loaded = s.direct.as_ref().map_or(0, |load| load.written);
    let nothing_live_at_start = s.nothing_live_at_start;
    let conn = &mut s.conn;

    // Fresh statistics because temp tables are never auto-analyzed and the joins
    // below need to know the staged set's size (of the join key only: analyzing
    // the wide staged columns would cost more than it tells). The index, built
    // once the rows are in (cheaper than maintaining it through the COPYs), keeps
    // every join with the staged rows a probe even when the planner misjudges the
    // other side: with stale statistics on ecp.instances, the deletion anti-join
    // can otherwise become a nested loop over the whole stage per instance.
    sqlx::raw_sql("ANALYZE ecp_stage (instance_id)")
        .execute(&mut *conn)
        .await?;
    // An instance listed twice pages apart (a page boundary that moved during the
    // crawl; the crawler drops repeats of nearby pages only) is rare: building the
    // index as unique finds one for free, where a self-join to look for it took a
    // pass over every staged row (in a first sync of a million, 3-6 s per scope
    // for the self-join, the ANALYZE and the index together). Only then are the
    // earlier listings dropped (later pages win) and the index built again.
    // (With a direct load's transaction open, the stage is empty: the build
    // cannot fail and end it.)
    const STAGE_INDEX: &str =
        "CREATE UNIQUE INDEX ecp_stage_instance_id ON ecp_stage (instance_id)";
    if let Err(e) = sqlx::raw_sql(STAGE_INDEX).execute(&mut *conn).await {
        if !e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            return Err(e.into());
        }
        let dropped = sqlx::raw_sql(
            "DELETE FROM ecp_stage s USING ecp_stage t \
             WHERE t.instance_id = s.instance_id AND t.seq > s.seq",
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        debug!(%scope, dropped, "instances listed more than once: the last listing kept");
        sqlx::raw_sql(STAGE_INDEX).execute(&mut *conn).await?;
    }
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp_stage")
        .fetch_one(&mut *conn)
        .await?;
    let seen = staged + loaded as i64;
    // Distinct instances, as the service counts them: an instance listed twice
    // pages apart, in place of one the crawl never saw, must not make up for it.
    // Records skipped for want of an id were instances all the same, and so
    // were those the count was taken before they went (asked for by id, gone).
    let listed = seen as u64 + stats.skipped as u64;
    let shortfall = opts.total_count.and_then(|counted| {
        let explained = opts
            .unlisted_gone
            .is_some_and(|gone| crate::crawl::clear_shortfall(listed + gone, counted).is_none());
        crate::crawl::clear_shortfall(listed, counted).filter(|_| !explained)
    });
    let filtered = opts.filtered || shortfall.is_some();
    // The scope's previous complete crawl returned every instance still current
    // in it, each at some moment between its start and its last page. The change
    // feed's previously_observed_at takes the start, so that a change reported
    // now surely happened after it; a deleted row's last_seen_at takes the last
    // page, like current_instances. (LEAST: a crawl replayed with older page
    // times than its start, as tests do.) Its run tells whether another scope
    // that holds an instance this crawl lists was crawled since (classify.sql).
    type Previous = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<i64>);
    let previous_crawl: Option<Previous> = sqlx::query_as(
        "SELECT LEAST(started_at, snapshot_at), snapshot_at, run_id FROM ecp.sync_run_scopes \
             WHERE source = $1 AND biz_region_id = $2 AND applied AND complete AND NOT filtered \
             ORDER BY snapshot_at DESC LIMIT 1",
    )
    .bind(&scope.source)
    .bind(&scope.biz_region_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (previous_start, previous_end, previous_run) = previous_crawl.unwrap_or_default();

    s.begin_transaction().await?;
    let tx = &mut s.conn;
    // Made in the transaction that uses it, and dropped at its end: made with
    // the stage as an ON COMMIT DELETE ROWS table, it would be truncated at every
    // commit that touches a temp table, so after every staging COPY, and each
    // truncation scans all of the session's temp buffers (32k at 256 MB).
    sqlx::raw_sql(
        "CREATE TEMP TABLE ecp_apply (instance_id text PRIMARY KEY, kind text NOT NULL, \
         old_version integer, changed_at timestamptz NOT NULL, \
         previously_observed_at timestamptz, disks_changed boolean NOT NULL, \
         tags_changed boolean NOT NULL) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.classify.as_str()))
        .bind(&scope.source)
        .bind(&scope.biz_region_id)
        .bind(previous_start)
        .bind(previous_run)
        .bind(filtered)
        .execute(&mut *tx)
        .await?;
    // A record staged short (its digest matched its row while the crawl ran) must
    // still be unchanged: otherwise another run changed the row meanwhile, and
    // this crawl did not keep what it would need to write it.
    // One primary-key probe per short row (a scalar subquery is never turned into
    // a join that would scan the whole fleet).
    let moved: Option<String> = sqlx::query_scalar(
        "SELECT s.instance_id FROM ecp_stage s \
         WHERE s.raw IS NULL \
           AND (SELECT i.content_hash = s.content_hash AND i.deleted_at IS NULL \
                       AND i.source = $1 AND i.biz_region_id = $2 \
                FROM ecp.instances i WHERE i.instance_id = s.instance_id) IS NOT TRUE \
         LIMIT 1",
    )
    .bind(&scope.source)
    .bind(&scope.biz_region_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(instance_id) = moved {
        return Err(StoreError::ConcurrentChange { scope, instance_id });
    }

    // With nothing live at the start there is nothing to delete, and the
    // instances a direct load wrote, current yet not staged, are no evidence.
    if !filtered && !nothing_live_at_start {
        let (current, missing): (i64, i64) = sqlx::query_as(sql.deletion_evidence)
            .bind(&scope.source)
            .bind(&scope.biz_region_id)
            .fetch_one(&mut *tx)
            .await?;
        if missing > 0 {
            let too_many = missing as f64 > opts.max_delete_share * current as f64;
            if (too_many || seen == 0) && !opts.allow_mass_delete {
                return Err(StoreError::RefusedDeletion {
                    scope,
                    would_delete: missing as u64,
                    current: current as u64,
                    share: opts.max_delete_share,
                });
            }
            sqlx::query(sql.mark_deleted)
                .bind(&scope.source)
                .bind(&scope.biz_region_id)
                .bind(snapshot_at)
                .bind(previous_start)
                .execute(&mut *tx)
                .await?;
        }
    }

    // The writes below join ecp_apply with the staged rows: without statistics
    // the planner takes it for a tiny table and may pick nested loops that are
    // quadratic in the number of changed instances.
    sqlx::raw_sql("ANALYZE ecp_apply").execute(&mut *tx).await?;
    // New instances first: one another scope created meanwhile turns 'elsewhere'
    // here, before anything is counted or written for it.
    run_scoped(tx, &sql.insert_instances, run_id, &scope).await?;
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, count(*) FROM ecp_apply GROUP BY kind")
            .fetch_all(&mut *tx)
            .await?;
    let count = |k: &str| {
        kinds
            .iter()
            .find(|(kind, _)| kind == k)
            .map_or(0, |(_, n)| *n as u64)
    };
    let mut counts = ApplyCounts {
        seen: seen as u64,
        created: count("created") + loaded,
        loaded,
        updated: count("updated"),
        volatile: count("volatile"),
        deleted: count("deleted"),
        restored: count("restored"),
        unchanged: 0,
        shortfall,
    };
    counts.unchanged = counts.seen - counts.created - counts.updated - counts.restored;
    let elsewhere = count("elsewhere");
    if elsewhere > 0 {
        warn!(%scope, instances = elsewhere,
              "instances this crawl listed are current in another scope whose latest crawl \
               listed them too; they stay there (do two sources name one account?)");
    }

    if counts.updated > 0 {
        warn_of_moves(tx, &scope).await?;
    }

    // Instances left in another scope are only counted: nothing to write for them.
    if kinds.iter().any(|(kind, _)| kind != "elsewhere") {
        write_changes(tx, &sql, run_id, &scope, previous_end).await?;
    }
    let line = ScopeLine {
        complete: true,
        applied: true,
        filtered,
        counts: Some(counts),
        snapshot_at: Some(snapshot_at),
        error: None,
    };
    insert_scope_line(tx, RECORD_SCOPE, run_id, &scope, &stats, &line).await?;
    Ok(counts)
}

/// The writing statements after the new instance rows, in dependency order:
/// versions are closed before new ones open (no-overlap constraint); change rows
/// are computed before the current rows are overwritten (they read the old
/// values from them); disks and tags come after the instance rows they
/// reference.
async fn write_changes(
    tx: &mut PgConnection,
    sql: &super::templates::ApplySql,
    run_id: i64,
    scope: &Scope,
    previous_end: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(sql.close_versions).execute(&mut *tx).await?;
    run_scoped(tx, &sql.insert_versions, run_id, scope).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.insert_deleted_versions.as_str()))
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
    run_scoped(tx, &sql.insert_changes, run_id, scope).await?;
    run_scoped(tx, &sql.update_instances, run_id, scope).await?;
    sqlx::query(sql.rehash_instances).execute(&mut *tx).await?;
    sqlx::query(sql.delete_instances)
        .bind(run_id)
        .bind(previous_end)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sql.clear_disks_tags)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.refill_disks_tags.as_str()))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Instances that move here from another scope, whose latest crawls no longer
/// list them, are said, scope by scope: a real move of region is rare, and an
/// alias misspelt in one run's `--source` moves a whole region (and back, once
/// the right alias runs again), which is better seen in the log than in the
/// history alone.
async fn warn_of_moves(tx: &mut PgConnection, scope: &Scope) -> Result<(), StoreError> {
    let moves: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT i.source, i.biz_region_id, count(*) FROM ecp_apply a \
         JOIN ecp.instances i ON i.instance_id = a.instance_id \
         WHERE a.kind = 'updated' AND (i.source <> $1 OR i.biz_region_id <> $2) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(&scope.source)
    .bind(&scope.biz_region_id)
    .fetch_all(&mut *tx)
    .await?;
    for (source, region, instances) in moves {
        warn!(%scope, from = %format!("{source}/{region}"), instances,
              "instances move here from another scope, whose latest crawls no longer list \
               them (moved to another region, or an account alias renamed? A misspelt \
               --source moves them until the right alias runs again)");
    }
    Ok(())
}

async fn run_scoped(
    tx: &mut PgConnection,
    statement: &str,
    run_id: i64,
    scope: &Scope,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(run_id)
        .bind(&scope.source)
        .bind(&scope.biz_region_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// A server error with a code and maybe a constraint, as sqlx reports one.
    #[derive(Debug)]
    struct ServerError {
        code: &'static str,
        constraint: Option<&'static str>,
    }

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.code)
        }
    }

    impl std::error::Error for ServerError {}

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn classified(code: &'static str, constraint: Option<&'static str>) -> StoreError {
        let e = StoreError::Database(sqlx::Error::Database(Box::new(ServerError {
            code,
            constraint,
        })));
        concurrent_write(e, &Scope::new("a", "cn-shanghai"))
    }

    #[test]
    fn collisions_and_deadlocks_between_applies_are_concurrent_writes() {
        for (code, constraint) in [
            ("23505", Some("instance_versions_pkey")),
            (DEADLOCK_DETECTED, None),
        ] {
            let e = classified(code, constraint);
            assert!(
                matches!(e, StoreError::ConcurrentWrite { .. }),
                "{code}: {e}"
            );
        }
        // Any other error stays what it was.
        let e = classified("23505", Some("some_other_key"));
        assert!(matches!(e, StoreError::Database(_)), "{e}");
    }
}
