//! The run ledger: opening a run (`ecp.sync_runs`), finishing it, and marking
//! the runs of dead processes abandoned; and the scopes' lines
//! (`ecp.sync_run_scopes`), which a scope's apply writes in its transaction, or
//! these functions after it failed or was given up.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use tracing::{debug, info, warn};

use super::lock::{lock_run, RUN_LOCK_NAMESPACE};
use super::{stage, ApplyCounts, Scope, ScopeSync, Store, StoreError};

/// How a run ended, as the caller judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    Failed(String),
}

/// Closes a run, finished or abandoned: one statement sums a run's counts.
const FINISH_RUN: &str = include_str!("sql/finish_run.sql");

/// What a run knows of a scope it gave up on a signal: how far its crawl got.
pub struct GivenUpScope<'a> {
    pub scope: &'a Scope,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub pages: u64,
    pub records: u64,
    pub skipped: u64,
    pub problems: u64,
    /// The crawl had reached its last page (the apply was given up).
    pub complete: bool,
    pub error: &'a str,
}

/// A run in progress. Holds its own connection with the run's advisory lock, so
/// the run counts as alive exactly as long as this value (and its process) lives.
pub struct Run {
    store: Store,
    run_id: i64,
    liveness: PgConnection,
}

impl Run {
    pub fn id(&self) -> i64 {
        self.run_id
    }

    /// The store the run writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Locks the scope (waiting up to `lock_wait`) and opens its staging area.
    pub async fn begin_scope(
        &self,
        scope: Scope,
        lock_wait: std::time::Duration,
    ) -> Result<ScopeSync, StoreError> {
        stage::begin(self.store.clone(), self.run_id, scope, lock_wait).await
    }

    /// Records the ledger line of a scope given up on a signal (its own
    /// connection went with it). The server gives the insert `within`: a
    /// stopping process must not wait on a ledger another session holds locked.
    pub async fn record_given_up(
        &self,
        scope: &GivenUpScope<'_>,
        within: std::time::Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.pool.begin().await?;
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(format!("{}ms", within.as_millis()))
            .execute(&mut *tx)
            .await?;
        insert_given_up_line(&mut tx, self.run_id, scope).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the run with its status and the counts summed over its scopes.
    pub async fn finish(self, outcome: RunOutcome) -> Result<(), StoreError> {
        let (status, error) = match &outcome {
            RunOutcome::Succeeded => ("succeeded", None),
            RunOutcome::Failed(e) => ("failed", Some(super::storable(e))),
        };
        let (written, seen): (i64, i64) = sqlx::query_as(FINISH_RUN)
            .bind(self.run_id)
            .bind(status)
            .bind(error)
            .fetch_one(&self.store.pool)
            .await?;
        info!(run_id = self.run_id, status, "run finished");
        if needs_fresh_statistics(written, seen) {
            refresh_statistics(&self.store.pool).await;
        }
        // Closing releases the liveness lock; only after the row says it finished.
        self.liveness.close().await?;
        Ok(())
    }
}

/// A run that wrote much of the fleet (a first sync above all) leaves the tables
/// unlike what the planner last sampled. Autovacuum analyzes them eventually, but
/// the next run or an analyst's query may come first, and a plan made for an empty
/// `ecp.instances` turns the next apply's anti-join quadratic.
fn needs_fresh_statistics(written: i64, seen: i64) -> bool {
    written >= 1000 && written * 10 >= seen
}

/// Best effort: the run is already recorded, and autovacuum will do it anyway.
async fn refresh_statistics(pool: &PgPool) {
    // Only a table's owner may analyze it: for a job user with the least rights
    // the server would only answer with a warning per table.
    let owner: Result<bool, _> = sqlx::query_scalar(
        "SELECT bool_and(pg_has_role(c.relowner, 'USAGE')) FROM pg_class c \
         WHERE c.oid IN ('ecp.instances'::regclass, 'ecp.instance_versions'::regclass, \
                         'ecp.instance_disks'::regclass, 'ecp.instance_tags'::regclass)",
    )
    .fetch_one(pool)
    .await;
    if !matches!(owner, Ok(true)) {
        debug!("statistics left to autovacuum: this user does not own the tables");
        return;
    }
    let started = std::time::Instant::now();
    // The columns the apply and the views join and filter on: sampling the wide
    // ones (raw above all) would cost seconds and change no plan. One table per
    // connection, all at once: a first sync of 100k waited a second for them
    // one after the other, on one core.
    //
    // A sample of 3,000 rows (target 10) rather than the server's 30,000: what
    // the next plans need is the tables' sizes and that instance_id is unique,
    // which a small sample tells as well, in 12 ms instead of 150 ms for
    // ecp.instances at 100k. It only bridges the time until autovacuum, which
    // still comes: an ANALYZE of some columns leaves the table's count of
    // changes since its last analysis as it was, and autovacuum then samples
    // every column at the server's target.
    const ANALYZE: [&str; 4] = [
        "ANALYZE ecp.instances (instance_id, source, biz_region_id, deleted_at)",
        "ANALYZE ecp.instance_versions (instance_id, valid_from, valid_to)",
        "ANALYZE ecp.instance_disks (instance_id)",
        "ANALYZE ecp.instance_tags (instance_id, kind, tag_key)",
    ];
    let analyzed = futures_util::future::try_join_all(ANALYZE.map(|statement| async move {
        // Both in one transaction: the target goes back with its end.
        let mut tx = pool.begin().await?;
        sqlx::raw_sql("SET LOCAL default_statistics_target = 10")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(statement).execute(&mut *tx).await?;
        tx.commit().await
    }))
    .await;
    match analyzed {
        Ok(_) => info!(
            duration_ms = started.elapsed().as_millis() as u64,
            "statistics refreshed after a large run"
        ),
        Err(e) => warn!(error = %e, "could not refresh statistics; autovacuum will"),
    }
}

pub(crate) async fn mark_abandoned_runs(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(include_str!("sql/mark_abandoned.sql"))
        .bind(RUN_LOCK_NAMESPACE)
        .fetch_all(pool)
        .await?;
    for id in &ids {
        // Nobody holds the run: its process is gone for good, so closing it
        // twice (two runs starting at once) writes the same values twice.
        sqlx::query(FINISH_RUN)
            .bind(id)
            .bind("abandoned")
            .bind("the process running it ended before finishing it")
            .execute(pool)
            .await?;
        warn!(
            run_id = id,
            "marked run abandoned: its process ended before finishing it"
        );
    }
    Ok(ids)
}

/// What a run does, as `ecp.sync_runs.command` records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunCommand {
    /// A crawl of the API.
    Sync,
    /// Current instances of scopes marked deleted by an operator.
    Retire,
}

pub(crate) async fn start_run(
    store: Store,
    tool_version: &str,
    command: RunCommand,
) -> Result<Run, StoreError> {
    mark_abandoned_runs(&store.pool).await?;
    // A dedicated connection, not returned to the pool: its advisory lock must
    // live exactly as long as the run.
    let mut liveness = store.pool.acquire().await?.detach();
    // Insert and lock in one transaction: other sessions see the 'running' row only
    // once the lock is held, so they can never mistake it for abandoned.
    let mut tx = liveness.begin().await?;
    // A sync leaves the command to the column's default, so that it also runs on
    // a schema from before migration 0034 (tests of upgrades sync on those).
    let insert = match command {
        RunCommand::Sync => "INSERT INTO ecp.sync_runs (tool_version) VALUES ($1) RETURNING run_id",
        RunCommand::Retire => {
            "INSERT INTO ecp.sync_runs (tool_version, command) VALUES ($1, 'retire') \
             RETURNING run_id"
        }
    };
    let run_id: i64 = sqlx::query_scalar(insert)
        .bind(tool_version)
        .fetch_one(&mut *tx)
        .await?;
    lock_run(&mut tx, run_id).await?;
    tx.commit().await?;
    info!(run_id, "run started");
    Ok(Run {
        store,
        run_id,
        liveness,
    })
}

/// How far a scope's crawl got, as its ledger line says.
pub(super) struct ScopeStats {
    started_at: DateTime<Utc>,
    pages: i64,
    records: i64,
    pub(super) skipped: i64,
    problems: i64,
}

impl From<&ScopeSync> for ScopeStats {
    fn from(s: &ScopeSync) -> Self {
        ScopeStats {
            started_at: s.started_at,
            pages: s.pages,
            records: s.records,
            skipped: s.skipped,
            problems: s.problems,
        }
    }
}

/// A scope's line, written in its apply's transaction or after it failed.
pub(super) const RECORD_SCOPE: &str = include_str!("sql/record_scope.sql");
/// A line written on another connection than the scope's own yields to one the
/// scope wrote itself.
const RECORD_ELSEWHERE: &str = concat!(
    include_str!("sql/record_scope.sql"),
    "ON CONFLICT (run_id, source, biz_region_id) DO NOTHING"
);

/// What a scope's line says of its outcome.
pub(super) struct ScopeLine<'a> {
    pub complete: bool,
    pub applied: bool,
    pub filtered: bool,
    pub counts: Option<ApplyCounts>,
    pub snapshot_at: Option<DateTime<Utc>>,
    pub error: Option<&'a str>,
}

/// Records a scope that was not applied, after rolling back its transaction if
/// open (an apply's, or a direct load's): nothing of the scope is written.
pub(super) async fn record_failed_scope(
    s: &mut ScopeSync,
    complete: bool,
    filtered: bool,
    error: &str,
) -> Result<(), StoreError> {
    s.roll_back().await;
    let stats = ScopeStats::from(&*s);
    let line = ScopeLine {
        complete,
        applied: false,
        filtered,
        counts: None,
        snapshot_at: if complete { s.last_observed_at } else { None },
        error: Some(error),
    };
    let (run_id, scope) = (s.run_id, s.scope.clone());
    let Err(first) =
        insert_scope_line(&mut s.conn, RECORD_SCOPE, run_id, &scope, &stats, &line).await
    else {
        return Ok(());
    };
    // The scope's own connection may be what failed (the server restarted, the
    // session was ended): the line then goes through the pool, as the run's own
    // does, or the ledger would not say that the scope was crawled, nor why it
    // failed. (If the first try reached the server after all, its line stands.)
    // Within a few seconds: a server that is down is waited for once, by the
    // run's own line, and a lock held elsewhere must not keep the process from
    // ending. If this fails too, the first failure is the one to tell.
    debug!(%scope, error = %first, "recording the scope on another connection");
    let elsewhere = async {
        let mut conn = s.store.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(RECORD_ELSEWHERE_TIMEOUT)
            .execute(&mut *tx)
            .await?;
        insert_scope_line(&mut tx, RECORD_ELSEWHERE, run_id, &scope, &stats, &line).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    };
    match tokio::time::timeout(RECORD_ELSEWHERE_WITHIN, elsewhere).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(second)) => {
            debug!(%scope, error = %second, "could not record the scope on another connection");
            Err(first)
        }
        Err(_) => Err(first),
    }
}

/// How long a scope's line may take on another connection when its own
/// failed, and its statement there.
const RECORD_ELSEWHERE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
const RECORD_ELSEWHERE_TIMEOUT: &str = "SET LOCAL statement_timeout = '4s'";

/// Records a scope whose staging connection is gone: it was given up on a
/// signal, dropped wherever its work stood. Its own line may have been written
/// just before (a failure recorded as the signal came), which then stands.
async fn insert_given_up_line(
    conn: &mut PgConnection,
    run_id: i64,
    g: &GivenUpScope<'_>,
) -> Result<(), StoreError> {
    let stats = ScopeStats {
        started_at: g.started_at,
        pages: g.pages as i64,
        records: g.records as i64,
        skipped: g.skipped as i64,
        problems: g.problems as i64,
    };
    let line = ScopeLine {
        complete: g.complete,
        applied: false,
        filtered: false,
        counts: None,
        snapshot_at: None,
        error: Some(g.error),
    };
    insert_scope_line(conn, RECORD_ELSEWHERE, run_id, g.scope, &stats, &line).await
}

pub(super) async fn insert_scope_line(
    conn: &mut PgConnection,
    sql: &'static str,
    run_id: i64,
    scope: &Scope,
    stats: &ScopeStats,
    line: &ScopeLine<'_>,
) -> Result<(), StoreError> {
    let c = line.counts.unwrap_or_default();
    let n = |v: u64| v as i64;
    sqlx::query(sql)
        .bind(run_id)
        .bind(&scope.source)
        .bind(&scope.biz_region_id)
        .bind(line.complete)
        .bind(line.applied)
        .bind(line.filtered)
        .bind(stats.pages)
        .bind(if line.counts.is_some() {
            n(c.seen)
        } else {
            stats.records
        })
        .bind(stats.skipped)
        .bind(stats.problems)
        .bind(n(c.created))
        .bind(n(c.updated))
        .bind(n(c.deleted))
        .bind(n(c.restored))
        .bind(n(c.unchanged))
        .bind(n(c.volatile))
        .bind(stats.started_at)
        .bind(line.snapshot_at)
        .bind(line.error.map(super::storable))
        .execute(conn)
        .await?;
    Ok(())
}
