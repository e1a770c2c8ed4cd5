//! Advisory locks: one per scope so two overlapping runs never stage and apply the
//! same scope at once, and one per run so a later run can tell a live run from one
//! whose process died. Both are session-level: they last as long as the connection
//! that took them, and Postgres drops them when that connection ends, however the
//! process ended.

use std::time::{Duration, Instant};

use sqlx::PgConnection;

use super::{Scope, StoreError};

/// First key of the two-key advisory locks on scopes ("ECP" + 1).
pub(crate) const SCOPE_LOCK_NAMESPACE: i32 = 0x4543_5001;
/// First key of the two-key advisory locks held by live runs ("ECP" + 2).
pub(crate) const RUN_LOCK_NAMESPACE: i32 = 0x4543_5002;

/// How often a busy scope lock is retried while waiting. Short next to a crawl,
/// long enough not to load the server.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Takes the scope's lock on `conn`, retrying until `wait` has passed.
pub(crate) async fn lock_scope(
    conn: &mut PgConnection,
    scope: &Scope,
    wait: Duration,
) -> Result<(), StoreError> {
    let started = Instant::now();
    loop {
        // hashtext maps the scope to the int4 second key; a collision between two
        // scopes only serializes them, which is harmless.
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2 || E'\\x1f' || $3))")
                .bind(SCOPE_LOCK_NAMESPACE)
                .bind(&scope.source)
                .bind(&scope.biz_region_id)
                .fetch_one(&mut *conn)
                .await?;
        if got {
            return Ok(());
        }
        if started.elapsed() >= wait {
            return Err(StoreError::LockBusy {
                scope: scope.clone(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(LOCK_POLL_INTERVAL.min(wait.saturating_sub(started.elapsed()))).await;
    }
}

/// Marks the run as alive for as long as `conn` stays open.
pub(crate) async fn lock_run(conn: &mut PgConnection, run_id: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_lock($1, $2::integer)")
        .bind(RUN_LOCK_NAMESPACE)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
