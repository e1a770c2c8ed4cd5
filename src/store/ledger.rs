//! The run ledger (`ecp.sync_runs`): opening a run, finishing it, and marking the
//! runs of dead processes abandoned. Scope lines (`ecp.sync_run_scopes`) are
//! written by [`super::ScopeSync`].

use sqlx::{Connection, PgConnection, PgPool};
use tracing::{info, warn};

use super::lock::{lock_run, RUN_LOCK_NAMESPACE};
use super::{stage, Scope, ScopeSync, Store, StoreError};

/// How a run ended, as the caller judges it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    Failed(String),
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

    /// Locks the scope (waiting up to `lock_wait`) and opens its staging area.
    pub async fn begin_scope(
        &self,
        scope: Scope,
        lock_wait: std::time::Duration,
    ) -> Result<ScopeSync, StoreError> {
        stage::begin(self.store.clone(), self.run_id, scope, lock_wait).await
    }

    /// Closes the run with its status and the counts summed over its scopes.
    pub async fn finish(self, outcome: RunOutcome) -> Result<(), StoreError> {
        let (status, error) = match &outcome {
            RunOutcome::Succeeded => ("succeeded", None),
            RunOutcome::Failed(e) => ("failed", Some(e.as_str())),
        };
        sqlx::query(include_str!("sql/finish_run.sql"))
            .bind(self.run_id)
            .bind(status)
            .bind(error)
            .execute(&self.store.pool)
            .await?;
        info!(run_id = self.run_id, status, "run finished");
        // Closing releases the liveness lock; only after the row says it finished.
        self.liveness.close().await?;
        Ok(())
    }
}

pub(crate) async fn mark_abandoned_runs(pool: &PgPool) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(include_str!("sql/mark_abandoned.sql"))
        .bind(RUN_LOCK_NAMESPACE)
        .fetch_all(pool)
        .await?;
    for id in &ids {
        warn!(
            run_id = id,
            "marked run abandoned: its process ended before finishing it"
        );
    }
    Ok(ids)
}

pub(crate) async fn start_run(store: Store, tool_version: &str) -> Result<Run, StoreError> {
    mark_abandoned_runs(&store.pool).await?;
    // A dedicated connection, not returned to the pool: its advisory lock must
    // live exactly as long as the run.
    let mut liveness = store.pool.acquire().await?.detach();
    // Insert and lock in one transaction: other sessions see the 'running' row only
    // once the lock is held, so they can never mistake it for abandoned.
    let mut tx = liveness.begin().await?;
    let run_id: i64 =
        sqlx::query_scalar("INSERT INTO ecp.sync_runs (tool_version) VALUES ($1) RETURNING run_id")
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
