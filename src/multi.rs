//! One run over several sources (accounts), each with its own client, regions and
//! filters: the `sync --config FILE` case. Every scope of every source is crawled
//! under one run row, concurrently up to `concurrency`; a source whose region
//! listing fails, like a scope that fails, is reported and does not stop the rest.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tracing::{info, warn, Instrument};

use crate::api::Client;
use crate::store::{RunOutcome, Scope, Store};
use crate::sync::{
    list_regions, sync_scope, Counts, FailureKind, Regions, RunReport, ScopeReport, SyncError,
    SyncSettings,
};

/// What `biz_region_id` says in the report of a source whose regions could not
/// be listed.
pub const REGIONS_UNKNOWN: &str = "*";

/// One account to crawl: its client and its settings (`source`, `regions` and
/// `filters` are per source; the rest is usually shared).
#[derive(Clone)]
pub struct SourceJob {
    pub client: Client,
    pub settings: SyncSettings,
}

/// Crawls every scope of every source into one run. An error only when the run
/// could not be started or recorded at all.
pub async fn run(
    store: &Store,
    jobs: &[SourceJob],
    concurrency: usize,
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    let run = Arc::new(store.start_run(env!("CARGO_PKG_VERSION")).await?);
    let run_id = run.id();
    let span = tracing::info_span!("run", run_id);
    let sources: Vec<&str> = jobs.iter().map(|j| j.settings.source.as_str()).collect();
    info!(parent: &span, sources = ?sources, "run started");

    // Regions of each source, listed concurrently.
    let listed = futures_util::future::join_all(jobs.iter().map(|job| {
        let source_span =
            tracing::info_span!(parent: &span, "source", source = %job.settings.source);
        async move {
            match &job.settings.regions {
                Regions::Only(list) => Ok(list.clone()),
                Regions::All => list_regions(&job.client).await,
            }
        }
        .instrument(source_span)
    }))
    .await;

    let mut failed_sources: Vec<ScopeReport> = Vec::new();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut index = 0usize;
    for (job, regions) in jobs.iter().zip(listed) {
        let regions = match regions {
            Ok(r) => r,
            Err(e) => {
                warn!(parent: &span, source = %job.settings.source, error = %e, "source skipped");
                failed_sources.push(ScopeReport {
                    source: job.settings.source.clone(),
                    biz_region_id: REGIONS_UNKNOWN.into(),
                    error: Some(e.to_string()),
                    failure: Some(FailureKind::Other),
                    ..Default::default()
                });
                continue;
            }
        };
        for region in regions {
            let (run, job, permits) = (run.clone(), job.clone(), permits.clone());
            let scope = Scope::new(job.settings.source.clone(), region);
            let scope_span = tracing::info_span!(parent: &span, "scope", scope = %scope);
            let i = index;
            index += 1;
            tasks.spawn(
                async move {
                    let _permit = permits.acquire_owned().await.expect("never closed");
                    (i, sync_scope(&run, &job.client, scope, &job.settings).await)
                }
                .instrument(scope_span),
            );
        }
    }
    let mut scopes: Vec<(usize, ScopeReport)> = Vec::with_capacity(index);
    while let Some(joined) = tasks.join_next().await {
        scopes.push(joined.expect("scope tasks do not panic"));
    }
    scopes.sort_by_key(|(i, _)| *i);
    let mut scopes: Vec<ScopeReport> = scopes.into_iter().map(|(_, s)| s).collect();
    scopes.extend(failed_sources);

    let mut totals = Counts::default();
    for c in scopes.iter().filter_map(|s| s.counts) {
        totals += c;
    }
    let failures: Vec<String> = scopes
        .iter()
        .filter_map(|s| {
            let e = s.error.as_ref()?;
            Some(format!("{}/{}: {e}", s.source, s.biz_region_id))
        })
        .collect();
    let (outcome, status) = if failures.is_empty() {
        (RunOutcome::Succeeded, "succeeded")
    } else {
        (RunOutcome::Failed(failures.join("; ")), "failed")
    };
    let run = Arc::try_unwrap(run).unwrap_or_else(|_| unreachable!("every scope task has ended"));
    run.finish(outcome).await?;
    let (mut requests, mut retries, mut throttled) = (0, 0, 0);
    for job in jobs {
        let stats = job.client.stats();
        requests += stats.requests();
        retries += stats.retries();
        throttled += stats.throttled();
    }
    Ok(RunReport {
        run_id,
        status,
        duration_secs: started.elapsed().as_secs_f64(),
        requests,
        retries,
        throttled,
        totals,
        scopes,
    })
}
