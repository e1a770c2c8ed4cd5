//! The run ledger (`ecp.sync_runs`): opening a run, finishing it, and marking the
//! runs of dead processes abandoned. Scope lines (`ecp.sync_run_scopes`) are
//! written by [`super::ScopeSync`].

use sqlx::{Connection, PgConnection, PgPool};
use tracing::{debug, info, warn};

use super::lock::{lock_run, RUN_LOCK_NAMESPACE};
use super::{stage, Scope, ScopeSync, Store, StoreError};

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
        super::apply::record_given_up(&mut tx, self.run_id, scope).await?;
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
    let analyzed = sqlx::raw_sql(
        // The columns the apply and the views join and filter on: sampling the
        // wide ones (raw above all) would cost seconds and change no plan.
        "ANALYZE ecp.instances (instance_id, source, biz_region_id, deleted_at), \
         ecp.instance_versions (instance_id, valid_from, valid_to), \
         ecp.instance_disks (instance_id), ecp.instance_tags (instance_id, kind, tag_key)",
    )
    .execute(pool)
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
