//! Retention: removes history older than a horizon without changing any answer
//! about an instant at or after it. A version is removed only if it stopped being
//! valid before the horizon (`valid_to < horizon`), so `instances_as_of(ts)` for
//! every `ts >= horizon` returns the same rows; current versions (`valid_to IS
//! NULL`) always stay. Change rows observed before the horizon go too. The run
//! ledger and `ecp.instances` are left alone. The fleet count moves behind
//! `ecp.fleet_daily` are merged, one row per quarter hour and key.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError};

/// What a prune removed (or, in a dry run, would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PruneCounts {
    pub versions: u64,
    pub changes: u64,
}

impl Store {
    /// Deletes the versions and changes older than `horizon`, in one transaction;
    /// with `dry_run`, only counts them.
    pub async fn prune(
        &self,
        horizon: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PruneCounts, StoreError> {
        let mut tx = self.pool.begin().await?;
        let counts = if dry_run {
            let versions: i64 = sqlx::query_scalar(include_str!("sql/prune_count_versions.sql"))
                .bind(horizon)
                .fetch_one(&mut *tx)
                .await?;
            let changes: i64 = sqlx::query_scalar(include_str!("sql/prune_count_changes.sql"))
                .bind(horizon)
                .fetch_one(&mut *tx)
                .await?;
            PruneCounts {
                versions: versions as u64,
                changes: changes as u64,
            }
        } else {
            // No apply may end a version while this runs: one that commits
            // between the unlinking below and the deletion would leave a new
            // version whose predecessor is deleted without it being marked
            // (instance_versions_names_its_predecessor then fails the prune).
            // This mode waits for the applies under way and holds new ones at
            // their first write to the versions until the commit; readers are
            // not held.
            sqlx::query("LOCK TABLE ecp.instance_versions IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/prune_unlink_versions.sql"))
                .bind(horizon)
                .execute(&mut *tx)
                .await?;
            let versions = sqlx::query(include_str!("sql/prune_versions.sql"))
                .bind(horizon)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let changes = sqlx::query(include_str!("sql/prune_changes.sql"))
                .bind(horizon)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // After the versions: deleting them adds rows to merge.
            sqlx::query(include_str!("sql/prune_fleet_counts.sql"))
                .execute(&mut *tx)
                .await?;
            PruneCounts { versions, changes }
        };
        tx.commit().await?;
        Ok(counts)
    }
}
