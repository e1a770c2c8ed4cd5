//! Retiring scopes: an operator's word that the instances of a scope are gone (an
//! account closed, a region given up). A crawl can no longer say so: only a
//! complete, unfiltered crawl of the scope itself marks its instances deleted,
//! and nothing will crawl it again, so they would stay current for ever.
//!
//! A retirement is a run of its own (`command = 'retire'`): each scope is applied
//! as a complete crawl that found nothing, so every instance gets its deleted
//! version and change row, naming that run, and a later sync that lists one
//! again restores it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::ledger::{self, RunCommand};
use super::{ApplyOptions, RunOutcome, Scope, Store, StoreError};

/// A scope retired, or one that could be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredScope {
    pub scope: Scope,
    /// Its current instances: those marked deleted (or that would be, in a plan).
    pub instances: u64,
    /// When its last applied complete crawl ended (none: never crawled whole).
    pub last_crawl: Option<DateTime<Utc>>,
}

const UNSYNCED_SCOPES: &str = include_str!("sql/unsynced_scopes.sql");

/// Nothing to compare the scope with: every current instance goes.
const RETIRE: ApplyOptions = ApplyOptions {
    filtered: false,
    max_delete_share: 1.0,
    allow_mass_delete: true,
    total_count: None,
    unlisted_gone: None,
};

impl Store {
    /// The regions of `source` that hold current instances, in order; a source
    /// the database has never recorded (a misspelt alias) is an error that lists
    /// the scopes holding instances.
    pub async fn source_scopes_holding(&self, source: &str) -> Result<Vec<Scope>, StoreError> {
        let scopes = self.scopes_holding(source).await?;
        if scopes.is_empty() {
            let recorded: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM ecp.sync_run_scopes WHERE source = $1)",
            )
            .bind(source)
            .fetch_one(&self.pool)
            .await?;
            if !recorded {
                return Err(StoreError::UnknownScope {
                    scope: Scope::new(source, "*"),
                    known: self.scopes_with_instances().await?,
                });
            }
        }
        Ok(scopes)
    }

    /// The regions of `source` that hold current instances, in order.
    pub async fn scopes_holding(&self, source: &str) -> Result<Vec<Scope>, StoreError> {
        let regions: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT biz_region_id FROM ecp.instances \
             WHERE source = $1 AND deleted_at IS NULL ORDER BY 1",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        Ok(regions.into_iter().map(|r| Scope::new(source, r)).collect())
    }

    /// What retiring `scopes` would mark deleted. A scope the database has never
    /// recorded (a misspelt alias or region) is an error that lists the scopes
    /// holding instances.
    pub async fn retirement_plan(&self, scopes: &[Scope]) -> Result<Vec<RetiredScope>, StoreError> {
        let mut plan = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let (instances, last_crawl, recorded): (i64, Option<DateTime<Utc>>, bool) =
                sqlx::query_as(
                    "SELECT (SELECT count(*) FROM ecp.instances \
                             WHERE source = $1 AND biz_region_id = $2 AND deleted_at IS NULL), \
                            (SELECT max(snapshot_at) FROM ecp.sync_run_scopes \
                             WHERE source = $1 AND biz_region_id = $2 AND applied AND complete \
                               AND NOT filtered AND pages_fetched > 0), \
                            EXISTS (SELECT 1 FROM ecp.sync_run_scopes \
                                    WHERE source = $1 AND biz_region_id = $2)",
                )
                .bind(&scope.source)
                .bind(&scope.biz_region_id)
                .fetch_one(&self.pool)
                .await?;
            if instances == 0 && !recorded {
                return Err(StoreError::UnknownScope {
                    scope: scope.clone(),
                    known: self.scopes_with_instances().await?,
                });
            }
            plan.push(RetiredScope {
                scope: scope.clone(),
                instances: instances as u64,
                last_crawl,
            });
        }
        Ok(plan)
    }

    /// Marks every current instance of each scope deleted, in one run recorded as
    /// `retire`: per scope one transaction under the scope's lock (waiting up to
    /// `lock_wait` for a sync that holds it). Returns the run and what each scope
    /// had. The first scope that fails ends the run as failed; those before it
    /// stay retired.
    pub async fn retire(
        &self,
        tool_version: &str,
        scopes: &[Scope],
        lock_wait: Duration,
    ) -> Result<(i64, Vec<RetiredScope>), StoreError> {
        let plan = self.retirement_plan(scopes).await?;
        let run = ledger::start_run(self.clone(), tool_version, RunCommand::Retire).await?;
        let run_id = run.id();
        let mut retired = Vec::with_capacity(plan.len());
        for planned in plan {
            let applied = match run.begin_scope(planned.scope.clone(), lock_wait).await {
                Ok(staging) => staging.apply(&RETIRE).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(counts) => {
                    // Said as each one commits: should a later scope fail, the
                    // log still tells which ones were retired.
                    info!(run_id, scope = %planned.scope, instances = counts.deleted,
                          "scope retired");
                    retired.push(RetiredScope {
                        instances: counts.deleted,
                        ..planned
                    });
                }
                Err(e) => {
                    // The scope's own error is the one to report, even if the
                    // ledger cannot be closed (the next run marks it abandoned).
                    if let Err(finish) = run.finish(RunOutcome::Failed(e.to_string())).await {
                        warn!(run_id, error = %finish, "could not record the failed retirement");
                    }
                    return Err(e);
                }
            }
        }
        run.finish(RunOutcome::Succeeded).await?;
        Ok((run_id, retired))
    }

    /// Scopes that hold current instances but that no run has tried to crawl
    /// since `since` (by the runs' own start times, the server's clock): a region
    /// dropped from the configuration, an alias renamed, an account closed. Their
    /// instances stay current until a crawl of the scope or a retirement says
    /// otherwise. A scope whose crawls fail is not one: each run reports those.
    /// `last_crawl` is the end of its last applied complete, unfiltered crawl.
    pub async fn unsynced_scopes(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RetiredScope>, StoreError> {
        let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> =
            sqlx::query_as(UNSYNCED_SCOPES)
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(source, region, instances, last_crawl)| RetiredScope {
                scope: Scope::new(source, region),
                instances: instances as u64,
                last_crawl,
            })
            .collect())
    }

    /// "source/region" of every scope holding current instances, for messages.
    async fn scopes_with_instances(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT source || '/' || biz_region_id FROM ecp.instances \
             WHERE deleted_at IS NULL ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
