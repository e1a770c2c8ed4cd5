//! One run over several sources (accounts), each with its own client, regions and
//! filters: the `sync --config FILE` case. Every scope of every source is crawled
//! under one run row, concurrently up to `concurrency`; a source whose region
//! listing fails, like a scope that fails, is reported and does not stop the rest.

use std::time::Instant;

use tracing::{info, warn, Instrument};

use crate::api::Client;
use crate::store::{Scope, Store};
use crate::sync::{
    resolve_regions, run_scopes, FailureKind, RunReport, ScopeJob, ScopeReport, SyncError,
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
    let run = store.start_run(env!("CARGO_PKG_VERSION")).await?;
    let span = tracing::info_span!("run", run_id = run.id());
    let sources: Vec<&str> = jobs.iter().map(|j| j.settings.source.as_str()).collect();
    info!(parent: &span, sources = %sources.join(","), "sources to crawl");

    // Regions of each source, listed concurrently. A signal meanwhile leaves
    // every source unreached, and the run is recorded failed at once.
    let listing = futures_util::future::join_all(jobs.iter().map(|job| {
        let source_span =
            tracing::info_span!(parent: &span, "source", source = %job.settings.source);
        resolve_regions(&job.client, &job.settings.regions).instrument(source_span)
    }));
    let listed = tokio::select! {
        biased;
        listed = listing => listed,
        signal = crate::interrupt::interrupted() => jobs
            .iter()
            .map(|_| Err(SyncError::Interrupted(signal)))
            .collect(),
    };

    let mut unreached: Vec<ScopeReport> = Vec::new();
    let mut scopes = Vec::new();
    for (job, regions) in jobs.iter().zip(listed) {
        match regions {
            Ok(regions) => scopes.extend(regions.into_iter().map(|region| ScopeJob {
                scope: Scope::new(job.settings.source.clone(), region),
                client: job.client.clone(),
                settings: job.settings.clone(),
            })),
            Err(e) => {
                let (failure, error) = match e {
                    SyncError::Interrupted(signal) => (
                        FailureKind::Interrupted,
                        format!("interrupted by {signal} while listing the source's regions"),
                    ),
                    // A region the account does not have, none at all, or
                    // credentials the service refuses: the configuration is
                    // wrong, not the run.
                    e if e.is_configuration() => (FailureKind::Configuration, e.to_string()),
                    e => (FailureKind::Other, e.to_string()),
                };
                // The error as the ledger records it (a signal here comes after
                // the run was, so not the sync's "before the run started").
                warn!(parent: &span, source = %job.settings.source, error = %error, "source skipped");
                unreached.push(ScopeReport::unreached(&job.settings.source, error, failure));
            }
        }
    }
    let clients: Vec<&Client> = jobs.iter().map(|j| &j.client).collect();
    run_scopes(
        run,
        &span,
        scopes,
        concurrency,
        unreached,
        &clients,
        started,
    )
    .await
}
