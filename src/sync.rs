//! The pipeline: for each scope (an account's business region), crawl every page,
//! normalize each record, stage it, and apply the snapshot once the crawl has
//! reached its last page. Scopes run concurrently under the client's shared rate
//! limit; a scope that fails does not stop the others, and the run's ledger row
//! says which failed and why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn, Instrument};

use crate::api::model::{DescribeAndroidInstancesRequest, DescribeRegionsRequest};
use crate::api::{ApiError, Client};
use crate::crawl::{self, CrawlOptions};
use crate::error::{EXIT_CONFIG, EXIT_FAILED, EXIT_LOCK_BUSY, EXIT_OK, EXIT_REFUSED_DELETION};
use crate::normalize::{normalize, NormalizeOptions, Normalized};
use crate::store::{ApplyCounts, ApplyOptions, Run, RunOutcome, Scope, Store, StoreError};

/// Which business regions to crawl.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Regions {
    /// Every region `DescribeRegions` lists for the account.
    All,
    Only(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The account alias, the `source` of every row.
    pub source: String,
    pub regions: Regions,
    /// Filters sent with every page; `BizRegionId` is set per scope.
    pub filters: DescribeAndroidInstancesRequest,
    pub crawl: CrawlOptions,
    pub apply: ApplyOptions,
    pub normalize: NormalizeOptions,
    /// How long to wait for a scope that another run holds.
    pub lock_wait: Duration,
    /// Scopes crawled at once. The rate limit, not this, bounds the request rate.
    pub concurrency: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            source: "default".into(),
            regions: Regions::All,
            filters: DescribeAndroidInstancesRequest::default(),
            crawl: CrawlOptions::default(),
            apply: ApplyOptions::default(),
            normalize: NormalizeOptions::default(),
            lock_wait: Duration::from_secs(30),
            concurrency: 6,
        }
    }
}

impl SyncSettings {
    /// The database connections a run of these settings needs: one per scope
    /// crawled at once (its transaction), and a few for the ledger and for
    /// recording a scope's failure on another connection than its own.
    pub fn connections(&self) -> u32 {
        u32::try_from(self.concurrency)
            .unwrap_or(u32::MAX)
            .saturating_add(4)
    }
}

/// How one scope went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScopeReport {
    pub source: String,
    pub biz_region_id: String,
    pub pages: u64,
    pub instances: u64,
    /// Listed again on a nearby page: counted once in `instances`, and the later
    /// listing stored.
    pub duplicates: u64,
    /// Records that could not be normalized at all (no instance id).
    pub skipped: u64,
    /// Field values that could not be parsed (column NULL, value kept in raw).
    pub field_problems: u64,
    /// How many instances the service counted: the largest `TotalCount` of the
    /// crawl's pages.
    pub total_count: Option<u64>,
    /// The crawl was not taken as evidence of deletions, and none was marked:
    /// it returned clearly fewer distinct instances than `total_count`, or skipped
    /// records it could not identify.
    pub deletions_withheld: bool,
    /// The crawl reached its last page.
    pub complete: bool,
    pub counts: Option<Counts>,
    pub error: Option<String>,
    #[serde(skip)]
    pub failure: Option<FailureKind>,
    /// When the scope's crawl started, once it holds its lock.
    #[serde(skip)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    LockBusy,
    RefusedDeletion,
    /// The source's configuration is wrong: a region its account does not have,
    /// or credentials the service refuses.
    Configuration,
    /// Given up on a signal (SIGTERM, Ctrl-C).
    Interrupted,
    Other,
}

/// The apply counts, serializable for `--output json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub restored: u64,
}

impl From<ApplyCounts> for Counts {
    fn from(c: ApplyCounts) -> Self {
        Counts {
            created: c.created,
            updated: c.updated,
            unchanged: c.unchanged,
            deleted: c.deleted,
            restored: c.restored,
        }
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.restored += o.restored;
    }
}

/// How the run went, for the summary line, `--output json` and the exit code.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub status: &'static str,
    pub duration_secs: f64,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub totals: Counts,
    pub scopes: Vec<ScopeReport>,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.scopes.iter().all(|s| s.error.is_none())
    }

    /// For callers to which any failed scope is fatal (the demo, the benchmark):
    /// an error carrying the summary line.
    pub fn ensure_succeeded(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.succeeded(), "the sync failed: {}", self.summary_line());
        Ok(())
    }

    /// Lock contention and refused deletions have codes of their own, so that a
    /// scheduler can tell "try later" and "look at this" from a plain failure.
    pub fn exit_code(&self) -> u8 {
        let kinds: Vec<FailureKind> = self.scopes.iter().filter_map(|s| s.failure).collect();
        if kinds.is_empty() {
            EXIT_OK
        } else if kinds.contains(&FailureKind::Other) || kinds.contains(&FailureKind::Interrupted) {
            EXIT_FAILED
        } else if kinds.contains(&FailureKind::Configuration) {
            EXIT_CONFIG
        } else if kinds.contains(&FailureKind::RefusedDeletion) {
            EXIT_REFUSED_DELETION
        } else {
            EXIT_LOCK_BUSY
        }
    }

    pub fn summary_line(&self) -> String {
        let t = &self.totals;
        let instances: u64 = self.scopes.iter().map(|s| s.instances).sum();
        // Scopes are named by region, and by source too when there are several.
        let several_sources = self
            .scopes
            .iter()
            .any(|s| s.source != self.scopes[0].source);
        let failed: Vec<String> = self
            .scopes
            .iter()
            .filter(|s| s.error.is_some())
            .map(|s| {
                if several_sources {
                    format!("{}/{}", s.source, s.biz_region_id)
                } else {
                    s.biz_region_id.clone()
                }
            })
            .collect();
        let mut line = format!(
            "run {} {}: {} scope{}, {} instances in {:.1}s; {} created, {} updated, {} unchanged, {} deleted, {} restored; {} requests, {} retries",
            self.run_id,
            self.status,
            self.scopes.len(),
            if self.scopes.len() == 1 { "" } else { "s" },
            instances,
            self.duration_secs,
            t.created,
            t.updated,
            t.unchanged,
            t.deleted,
            t.restored,
            self.requests,
            self.retries,
        );
        if !failed.is_empty() {
            line.push_str(&format!("; failed: {}", failed.join(", ")));
        }
        line
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("listing the account's regions: {0}")]
    Regions(#[source] crate::api::ApiError),
    #[error("DescribeRegions returned no region; name them with --region")]
    NoRegions,
    #[error("unknown region {unknown}: the account's regions (DescribeRegions) are {}", known.join(", "), unknown = unknown.join(", "))]
    UnknownRegions {
        unknown: Vec<String>,
        known: Vec<String>,
    },
    #[error("interrupted by {0} before the run started; no run was recorded")]
    Interrupted(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Only the configuration can fix it: a region the account does not have,
    /// none at all, credentials the service refuses.
    pub fn is_configuration(&self) -> bool {
        match self {
            SyncError::UnknownRegions { .. } | SyncError::NoRegions => true,
            SyncError::Regions(api) => api.is_auth(),
            SyncError::Interrupted(_) | SyncError::Store(_) => false,
        }
    }
}

/// One run over every scope. Returns the report whether scopes failed or not; an
/// error only when the run could not be started or recorded at all.
pub async fn run(
    store: &Store,
    client: &Client,
    settings: &SyncSettings,
) -> Result<RunReport, SyncError> {
    let started = Instant::now();
    let listing = resolve_regions(client, &settings.regions);
    // The listing may take minutes of retries: a signal meanwhile ends it here,
    // before any run is recorded.
    let listed = tokio::select! {
        biased;
        regions = listing => regions,
        signal = crate::interrupt::interrupted() => return Err(SyncError::Interrupted(signal)),
    };
    // A mistake in the configuration (a region the account does not have,
    // credentials refused) is said before any run is recorded; the API out of
    // reach is a run that failed, in the ledger like any other.
    let regions = match listed {
        Ok(regions) => regions,
        Err(e) if e.is_configuration() => return Err(e),
        Err(e) => {
            let run = store.start_run(env!("CARGO_PKG_VERSION")).await?;
            let span = tracing::info_span!("run", run_id = run.id());
            warn!(parent: &span, source = %settings.source, error = %e, "the regions could not be listed");
            let unreached =
                ScopeReport::unreached(&settings.source, e.to_string(), FailureKind::Other);
            let (concurrency, clients) = (settings.concurrency, [client]);
            return run_scopes(
                run,
                &span,
                Vec::new(),
                concurrency,
                vec![unreached],
                &clients,
                started,
            )
            .await;
        }
    };
    let run = store.start_run(env!("CARGO_PKG_VERSION")).await?;
    let span = tracing::info_span!("run", run_id = run.id());
    info!(parent: &span, regions = %regions.join(","), source = %settings.source, "regions to crawl");
    let jobs = regions
        .into_iter()
        .map(|region| ScopeJob {
            scope: Scope::new(settings.source.clone(), region),
            client: client.clone(),
            settings: settings.clone(),
        })
        .collect();
    run_scopes(
        run,
        &span,
        jobs,
        settings.concurrency,
        Vec::new(),
        &[client],
        started,
    )
    .await
}

/// One scope of a run, with the client and settings of its source.
pub(crate) struct ScopeJob {
    pub scope: Scope,
    pub client: Client,
    pub settings: SyncSettings,
}

/// Crawls and applies the scopes of a started run, at most `concurrency` at a
/// time, then finishes the run with the outcome of all of them. `unreached` are
/// scopes that failed before any crawl (a source whose regions could not be
/// listed); `clients` are the ones whose request counts the report sums.
pub(crate) async fn run_scopes(
    run: Run,
    span: &tracing::Span,
    jobs: Vec<ScopeJob>,
    concurrency: usize,
    unreached: Vec<ScopeReport>,
    clients: &[&Client],
    started: Instant,
) -> Result<RunReport, SyncError> {
    let run = Arc::new(run);
    let run_id = run.id();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let (run, permits) = (run.clone(), permits.clone());
        let scope_span = tracing::info_span!(parent: span, "scope", scope = %job.scope);
        tasks.spawn(
            async move {
                let mut report = ScopeReport::new(&job.scope);
                let job_scope = job.scope.clone();
                let committing = Arc::new(AtomicBool::new(false));
                // The work fills in the report as it goes, so a scope given up
                // still says how far its crawl got.
                let given_up = {
                    let work = async {
                        let _permit = permits.acquire_owned().await.expect("never closed");
                        let flag = committing.clone();
                        sync_scope(
                            &run,
                            &job.client,
                            job.scope,
                            &job.settings,
                            flag,
                            &mut report,
                        )
                        .await
                    };
                    tokio::pin!(work);
                    // On a signal the scope's work is dropped where it stands: its
                    // staging and lock end with its connection, an open apply rolls
                    // back. A scope that has finished is kept (biased: checked
                    // first), and one whose COMMIT is on its way is waited for: its
                    // outcome is the server's now, a matter of milliseconds (a few
                    // seconds if the connection broke and the scope's failure is
                    // recorded on another, see ledger::record_failed_scope). The
                    // flag is set with no await before the COMMIT is sent, so a
                    // scope dropped here never committed.
                    tokio::select! {
                        biased;
                        () = &mut work => None,
                        signal = crate::interrupt::interrupted() => {
                            if committing.load(Ordering::SeqCst) {
                                work.await;
                                None
                            } else {
                                Some(signal)
                            }
                        }
                    }
                };
                if let Some(signal) = given_up {
                    report.interrupted(signal);
                    record_given_up(&run, &job_scope, &report).await;
                }
                (index, report)
            }
            .instrument(scope_span),
        );
    }
    let mut scopes: Vec<(usize, ScopeReport)> = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        scopes.push(joined.expect("scope tasks do not panic"));
    }
    scopes.sort_by_key(|(i, _)| *i);
    let scopes: Vec<ScopeReport> = scopes
        .into_iter()
        .map(|(_, s)| s)
        .chain(unreached)
        .collect();

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
    let store = run.store().clone();
    run.finish(outcome).await?;
    warn_of_unsynced_scopes(&store).await;
    let (mut requests, mut retries, mut throttled) = (0, 0, 0);
    for client in clients {
        let stats = client.stats();
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

/// How long a scope may go untried before each run points it out: long enough
/// that a weekly job running late, beside a daily one, is not taken for gone.
const UNSYNCED_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// Points out scopes whose instances stay current only because nothing crawls
/// them any more, and how to retire them. Best effort: the run is recorded.
async fn warn_of_unsynced_scopes(store: &Store) {
    let since = chrono::Utc::now() - UNSYNCED_AFTER;
    match store.unsynced_scopes(since).await {
        Ok(scopes) => {
            for s in scopes {
                let last_crawl = s.last_crawl.map(|t| t.to_rfc3339());
                warn!(
                    scope = %s.scope,
                    instances = s.instances,
                    last_crawl = last_crawl.as_deref().unwrap_or("none"),
                    "no run has tried to sync this scope for {} days, yet its instances are still \
                     current: only a complete crawl of it can mark them deleted. If its \
                     region or account is gone, `ecp-inventory retire --source {} --region {}` \
                     marks them deleted; if not, sync it again",
                    UNSYNCED_AFTER.num_days(),
                    s.scope.source,
                    s.scope.biz_region_id,
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not look for scopes no longer synced"),
    }
}

/// How long a stopping run tries to record a scope it gave up. A signal asks
/// for a prompt exit (Kubernetes kills the pod 30 s after SIGTERM by default),
/// and a ledger another session holds locked must not keep it.
const RECORD_GIVEN_UP_WITHIN: Duration = Duration::from_secs(3);

/// The ledger line of a scope given up on a signal, so that `sync_run_scopes`
/// says how far it got. A scope never started (it waited for its turn) was not
/// crawled and gets none.
async fn record_given_up(run: &Run, scope: &Scope, report: &ScopeReport) {
    let Some(started_at) = report.started_at else {
        return;
    };
    let line = crate::store::GivenUpScope {
        scope,
        started_at,
        pages: report.pages,
        records: report.instances,
        skipped: report.skipped,
        problems: report.field_problems,
        complete: report.complete,
        error: report.error.as_deref().unwrap_or_default(),
    };
    // The server bounds the insert; this bounds getting a connection to it.
    let recording = run.record_given_up(&line, RECORD_GIVEN_UP_WITHIN);
    match tokio::time::timeout(RECORD_GIVEN_UP_WITHIN * 2, recording).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not record the scope given up"),
        Err(_) => warn!(
            waited_secs = (RECORD_GIVEN_UP_WITHIN * 2).as_secs(),
            "could not record the scope given up in time"
        ),
    }
}

impl Regions {
    /// The regions a flag or a configuration names: `all` alone, or region ids,
    /// each once (in the order first named). The error says what is wrong with
    /// the list; the caller names the flag or key.
    pub fn parse(list: &[String]) -> Result<Regions, String> {
        if list.is_empty() {
            return Err("names no region (all for every region)".into());
        }
        if list.iter().any(|r| r == "all") {
            if list.len() > 1 {
                return Err("all cannot be combined with other regions".into());
            }
            return Ok(Regions::All);
        }
        let mut regions: Vec<String> = Vec::with_capacity(list.len());
        for r in list {
            usable_region_id(r).map_err(|why| format!("{r:?} cannot be a region: {why}"))?;
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
        Ok(Regions::Only(regions))
    }
}

/// The most bytes of a region id: real ones are a few words (`cn-hangzhou`,
/// `ap-southeast-1`); thousands would not fit the ledger's index.
const MAX_REGION_ID_BYTES: usize = 100;

/// Whether a region id can name a scope. It names one in the database and in
/// every log line: one with control characters (a NUL the database cannot
/// store) or of thousands of bytes is garbage, not a region to crawl.
pub fn usable_region_id(region: &str) -> Result<(), &'static str> {
    if region.trim().is_empty() {
        Err("it is empty")
    } else if region.chars().any(char::is_control) {
        Err("it has control characters")
    } else if region.len() > MAX_REGION_ID_BYTES {
        Err("it is longer than any region id (100 bytes)")
    } else {
        Ok(())
    }
}

pub(crate) async fn list_regions(client: &Client) -> Result<Vec<String>, SyncError> {
    let answer = client
        .describe_regions(&DescribeRegionsRequest::default())
        .await
        .map_err(SyncError::Regions)?;
    let mut regions: Vec<String> = Vec::new();
    for region in answer.region_models.into_iter().filter_map(|r| r.region_id) {
        if let Err(why) = usable_region_id(&region) {
            let start: String = region.chars().take(80).collect();
            warn!(region = ?start, why, "DescribeRegions listed an unusable region id; skipped");
        } else if !regions.contains(&region) {
            regions.push(region);
        }
    }
    if regions.is_empty() {
        return Err(SyncError::NoRegions);
    }
    Ok(regions)
}

/// The scopes' regions: those named, checked, or every one the account has.
pub(crate) async fn resolve_regions(
    client: &Client,
    regions: &Regions,
) -> Result<Vec<String>, SyncError> {
    match regions {
        Regions::Only(list) => check_regions(client, list).await,
        Regions::All => list_regions(client).await,
    }
}

/// The regions in the order given, each once: a region named twice (`--region`
/// repeated, a config file's list) is one scope, crawled once.
fn each_once(regions: &[String]) -> Vec<String> {
    let mut once: Vec<String> = Vec::with_capacity(regions.len());
    for region in regions {
        if !once.contains(region) {
            once.push(region.clone());
        }
    }
    once
}

/// Named regions must be ones `DescribeRegions` lists: the API answers an unknown
/// `BizRegionId` with an empty list, and a typo would otherwise be a silent, empty
/// success. If the service refuses the question for another reason than
/// credentials, or throttles it past the retries, the regions are crawled as
/// given; if it did not answer once the retries were spent (the endpoint
/// unreachable, the service down), that is the error: the listing would spend
/// the same retries again for nothing.
pub(crate) async fn check_regions(
    client: &Client,
    regions: &[String],
) -> Result<Vec<String>, SyncError> {
    let regions = each_once(regions);
    let known = match list_regions(client).await {
        Ok(known) => known,
        // Throttled is no sign the listing would fail: its quota is its own.
        Err(SyncError::Regions(e))
            if e.is_auth() || (matches!(e, ApiError::GaveUp { .. }) && !e.is_throttling()) =>
        {
            return Err(SyncError::Regions(e))
        }
        Err(e) => {
            warn!(error = %e, "could not check the named regions against DescribeRegions");
            return Ok(regions);
        }
    };
    let unknown: Vec<String> = regions
        .iter()
        .filter(|r| !known.contains(r))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(regions)
    } else {
        Err(SyncError::UnknownRegions { unknown, known })
    }
}

/// Progress is logged every this many pages: about every 10 000 instances, a few
/// lines a minute on a large fleet and none on a small one.
const PROGRESS_EVERY_PAGES: u64 = 100;

/// A systematic problem (the API changing a field's format) would otherwise log
/// one line per instance: the first few say what it is, a count says how much.
const PROBLEMS_LOGGED_PER_SCOPE: usize = 20;

/// At most this many instances missing from a complete listing are asked for by
/// id before the apply may mark them deleted (ten requests); a listing that
/// misses more is left to the mass-deletion guard.
const RECHECK_AT_MOST: usize = 1000;

/// Instance ids per recheck request, the most one page can answer.
const RECHECK_IDS_PER_REQUEST: usize = 100;

/// Instance ids per recheck request once the service refused a larger batch:
/// the reference states no limit on `AndroidInstanceIds`, and a service that
/// takes fewer ids a request should not make the listing alone decide.
const RECHECK_IDS_AFTER_REFUSAL: usize = 10;

/// Asks the service by id for the instances current in the scope that the
/// complete listing did not return, before the apply marks them deleted. A
/// paginated listing can lose instances while the service says it ended well
/// (an early last page; a cursor the fleet shifted under): asked by id, those
/// that still exist answer, are staged like any listed instance, and are not
/// deleted. Those that do not answer are gone. An answer that cannot vouch for
/// them (the service failed, or its answer has a next page) makes this run mark
/// nothing deleted. A batch the service refuses is asked again ten ids at a
/// time; a service that refuses from the first question leaves them all to the
/// listing alone, as before any recheck, and a batch refused after others were
/// answered leaves only its own. A store that fails (a staged row refused) fails
/// the scope, as it would at the apply.
///
/// When every instance the listing left out was asked for and the service
/// answered for all of them (or none was left out), how many did not answer:
/// those the apply would mark deleted, gone on the service's word.
async fn recheck_unlisted(
    client: &Client,
    staging: &mut crate::store::ScopeSync,
    settings: &SyncSettings,
    report: &mut ScopeReport,
) -> Result<Option<u64>, StoreError> {
    let unlisted = match staging.unlisted(RECHECK_AT_MOST).await? {
        Some(ids) if ids.is_empty() => return Ok(Some(0)),
        Some(ids) => ids,
        None => return Ok(None),
    };
    let mut vouched = true;
    let (mut found, mut answered, mut left_to_listing) = (0u64, false, 0usize);
    let (mut batch, mut rest) = (RECHECK_IDS_PER_REQUEST, unlisted.as_slice());
    while !rest.is_empty() {
        let ids = &rest[..batch.min(rest.len())];
        let request = DescribeAndroidInstancesRequest {
            biz_region_id: Some(report.biz_region_id.clone()),
            android_instance_ids: ids.to_vec(),
            max_results: Some(RECHECK_IDS_PER_REQUEST as i32),
            ..Default::default()
        };
        let page = match client.describe_android_instances(&request).await {
            Ok(page) => page,
            Err(e @ ApiError::Service { .. }) if !e.is_auth() && !e.is_retryable() => {
                if ids.len() > RECHECK_IDS_AFTER_REFUSAL {
                    debug!(error = %e, ids = ids.len(),
                           "asked by id for too many instances at once? asking for fewer");
                    batch = RECHECK_IDS_AFTER_REFUSAL;
                    continue;
                }
                if !answered {
                    // Refused from the first question: the service does not
                    // take it at all, and would refuse every other batch too.
                    warn!(error = %e, unlisted = unlisted.len(),
                          "the service refused to be asked by id for the instances the listing \
                           left out; they are judged on the listing alone");
                    vouched = false;
                    break;
                }
                // Other batches were answered: this refusal is about these ids
                // (ones the service does not know?); the rest are still asked.
                warn!(error = %e, ids = ids.len(),
                      "the service refused to be asked for some of the instances the listing left \
                       out; those are judged on the listing alone");
                left_to_listing += ids.len();
                vouched = false;
                rest = &rest[ids.len()..];
                continue;
            }
            Err(e) => {
                warn!(error = %e, unlisted = unlisted.len(),
                      "could not ask for the instances the listing left out; none is marked deleted this run");
                report.deletions_withheld = true;
                break;
            }
        };
        answered = true;
        let fetched_at = chrono::Utc::now();
        let rows = asked_for(page.instances, ids, settings, report);
        found += rows.len() as u64;
        staging.push_records(fetched_at, &rows).await?;
        // All the ids asked for fit one page: a next page means the service
        // did not filter by id, or cut its answer short. Following it could list
        // the whole region again, for every hundred ids.
        if page.next_token.is_some_and(|t| !t.is_empty()) {
            warn!(
                unlisted = unlisted.len(),
                "the answer by id for the instances the listing left out has a next page; \
                 none is marked deleted this run"
            );
            report.deletions_withheld = true;
            break;
        }
        rest = &rest[ids.len()..];
    }
    report.instances += found;
    // A recheck that could not vouch withheld the deletions already.
    vouched &= !report.deletions_withheld;
    if found > 0 {
        warn!(
            unlisted = unlisted.len(),
            still_there = found,
            left_to_listing,
            "the listing left out instances that still exist (asked for by id): they are kept"
        );
    } else {
        info!(
            unlisted = unlisted.len(),
            left_to_listing, "instances the listing left out did not answer when asked for by id"
        );
    }
    Ok(vouched.then(|| (unlisted.len() as u64).saturating_sub(found)))
}

/// The records of a recheck that were asked for, normalized. Any other was
/// listed already; a record that cannot be normalized could be one asked for,
/// so the run then marks nothing deleted.
fn asked_for(
    records: Vec<crate::api::model::RawInstance>,
    ids: &[String],
    settings: &SyncSettings,
    report: &mut ScopeReport,
) -> Vec<Normalized> {
    let mut rows = Vec::new();
    for record in records {
        match normalize(record, &settings.normalize) {
            Ok(n) if ids.contains(&n.row.instance_id) => {
                report.field_problems += n.problems.len() as u64;
                rows.push(n);
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "a record asked for by id was skipped; none is marked deleted this run");
                report.deletions_withheld = true;
            }
        }
    }
    rows
}

/// The records of a listed page, normalized into `rows` (emptied first): its
/// first listings, then its repeats, so that those are staged later and win
/// (they are the newer state of their instances). Each field problem is logged,
/// up to the scope's budget, and counted; each record that cannot be read is
/// logged. Returns how many were skipped and how many repeats were kept.
fn normalize_page(
    page: &mut crawl::Page,
    settings: &SyncSettings,
    report: &mut ScopeReport,
    rows: &mut Vec<Normalized>,
) -> (u64, u64) {
    rows.clear();
    let (mut skipped, mut repeats_kept) = (0, 0);
    let first_listings = page.instances.len();
    let records = std::mem::take(&mut page.instances)
        .into_iter()
        .chain(std::mem::take(&mut page.repeated));
    let request_id = page.request_id.as_deref().unwrap_or("");
    for (i, record) in records.enumerate() {
        match normalize(record, &settings.normalize) {
            Ok(n) => {
                let already = report.field_problems as usize;
                let budget = PROBLEMS_LOGGED_PER_SCOPE.saturating_sub(already);
                for p in n.problems.iter().take(budget) {
                    warn!(
                        page = page.number,
                        request_id,
                        instance_id = %n.row.instance_id,
                        field = %p.field,
                        value = %p.value,
                        reason = %p.reason,
                        stored = p.stored,
                        "field value not stored as sent"
                    );
                }
                report.field_problems += n.problems.len() as u64;
                if i >= first_listings {
                    repeats_kept += 1;
                }
                rows.push(n);
            }
            Err(e) => {
                skipped += 1;
                warn!(page = page.number, request_id, error = %e, "record skipped");
            }
        }
    }
    (skipped, repeats_kept)
}

pub(crate) async fn sync_scope(
    run: &Run,
    client: &Client,
    scope: Scope,
    settings: &SyncSettings,
    committing: Arc<AtomicBool>,
    report: &mut ScopeReport,
) {
    let mut staging = match run.begin_scope(scope.clone(), settings.lock_wait).await {
        Ok(s) => {
            report.started_at = Some(s.started_at);
            s
        }
        Err(e) => {
            report.failed(&e);
            return;
        }
    };
    let mut request = settings.filters.clone();
    request.biz_region_id = Some(scope.biz_region_id.clone());
    let filtered = request.is_filtered();
    let mut pages = crawl::spawn(client.clone(), request, settings.crawl.clone());
    let mut rows: Vec<Normalized> = Vec::with_capacity(settings.crawl.page_size as usize);

    let crawl_error = loop {
        let mut page = match pages.recv().await {
            Some(Ok(page)) => page,
            Some(Err(e)) => {
                report.pages = report.pages.max(e.pages_fetched());
                staging.record_pages_fetched(report.pages);
                // Credentials refused for the listing itself (a RAM policy that
                // allows DescribeRegions but not this): only the setup can fix it.
                let kind = if e.api_error().is_some_and(ApiError::is_auth) {
                    FailureKind::Configuration
                } else {
                    FailureKind::Other
                };
                break Some((e.to_string(), kind));
            }
            None => {
                break Some((
                    "the crawl stopped before its last page".to_owned(),
                    FailureKind::Other,
                ))
            }
        };
        let page_span = tracing::debug_span!("page", page = page.number);
        let in_page = page_span.enter();
        let (skipped, repeats_kept) = normalize_page(&mut page, settings, report, &mut rows);
        report.pages = page.number;
        // The largest count of any page: a last page that counts nothing (or
        // less) must not hide the pages that went missing before it.
        report.total_count = page
            .total_count
            .and_then(|t| u64::try_from(t).ok())
            .max(report.total_count);
        let listed = rows.len() as u64 - repeats_kept;
        report.instances += listed;
        report.duplicates += page.duplicates;
        report.skipped += skipped;
        drop(in_page);
        crate::progress::page(&scope, page.number, listed, page.total_count, page.is_last);
        staging.record_skipped(skipped);
        if let Err(e) = staging
            .push_page(page.fetched_at, &rows)
            .instrument(page_span)
            .await
        {
            report.failed(&e);
            // Say so in the ledger (on another connection if this one is what
            // failed); the staged rows are dropped.
            if let Err(record_err) = staging.give_up(&e.to_string()).await {
                warn!(error = %record_err, "could not record the failed scope");
            }
            return;
        }
        if page.number % PROGRESS_EVERY_PAGES == 0 {
            info!(
                pages = page.number,
                instances = report.instances,
                total = page.total_count,
                "crawling"
            );
        }
        if page.is_last {
            break None;
        }
    };
    if report.field_problems as usize > PROBLEMS_LOGGED_PER_SCOPE {
        warn!(
            field_problems = report.field_problems,
            logged = PROBLEMS_LOGGED_PER_SCOPE,
            "more field values were not stored as sent than were logged one by one"
        );
    }
    if let Some((error, kind)) = crawl_error {
        warn!(error = %error, "crawl incomplete; nothing applied");
        if let Err(e) = staging.give_up(&error).await {
            warn!(error = %e, "could not record the failed scope");
        }
        report.error = Some(error);
        report.failure = Some(kind);
        return;
    }
    report.complete = true;
    // A record skipped for want of a usable id was some instance, which this
    // crawl did not store: it is no evidence that any instance is gone.
    report.deletions_withheld = !filtered && report.skipped > 0;
    if report.deletions_withheld {
        warn!(
            skipped = report.skipped,
            "records without a usable instance id (or unreadable) were skipped; no instance is marked deleted this run"
        );
    }
    let mut unlisted_gone = None;
    if !filtered && !settings.apply.filtered && !report.deletions_withheld {
        match recheck_unlisted(client, &mut staging, settings, report).await {
            Ok(gone) => unlisted_gone = gone,
            Err(e) => {
                report.failed(&e);
                if let Err(record_err) = staging.fail(&e.to_string()).await {
                    warn!(error = %record_err, "could not record the failed scope");
                }
                return;
            }
        }
    }
    // A listing that ends clearly short of the service's own count may have lost
    // pages (the reference's pagination traps): the apply, which knows how many
    // distinct instances were staged, then writes what was returned and marks
    // nothing deleted, unless the instances it left out, asked for by id and
    // gone, make up the difference (the count was taken before they went).
    let options = ApplyOptions {
        filtered: filtered || settings.apply.filtered || report.deletions_withheld,
        total_count: report.total_count,
        unlisted_gone,
        ..settings.apply.clone()
    };
    staging.report_commit_to(committing);
    match staging.apply(&options).await {
        Ok(counts) => {
            if let Some(short) = counts.shortfall {
                warn!(
                    returned = counts.seen + report.skipped,
                    total_count = report.total_count,
                    short,
                    "the crawl reached its last page with clearly fewer instances than the service \
                     counted; no instance is marked deleted this run, and if this repeats, \
                     instances may be missing from the listing"
                );
                report.deletions_withheld |= !filtered;
            }
            info!(
                instances = report.instances,
                created = counts.created,
                updated = counts.updated,
                unchanged = counts.unchanged,
                deleted = counts.deleted,
                restored = counts.restored,
                "scope applied"
            );
            report.counts = Some(counts.into());
        }
        Err(e) => report.failed(&e),
    }
}

impl ScopeReport {
    fn new(scope: &Scope) -> Self {
        ScopeReport {
            source: scope.source.clone(),
            biz_region_id: scope.biz_region_id.clone(),
            ..Default::default()
        }
    }

    /// A source whose regions could not be listed: it stands for all of them
    /// (`biz_region_id` is [`crate::multi::REGIONS_UNKNOWN`]).
    pub(crate) fn unreached(source: &str, error: String, failure: FailureKind) -> Self {
        ScopeReport {
            source: source.to_owned(),
            biz_region_id: crate::multi::REGIONS_UNKNOWN.into(),
            error: Some(error),
            failure: Some(failure),
            ..Default::default()
        }
    }

    /// Given up on a signal: what was crawled stays in the report, but nothing of
    /// it was applied.
    fn interrupted(&mut self, signal: &str) {
        self.counts = None;
        self.error = Some(format!(
            "interrupted by {signal} before this scope was done; its crawl or apply was given up"
        ));
        self.failure = Some(FailureKind::Interrupted);
    }

    fn failed(&mut self, e: &StoreError) {
        warn!(error = %e, "scope failed");
        self.failure = Some(match e {
            StoreError::LockBusy { .. } => FailureKind::LockBusy,
            StoreError::RefusedDeletion { .. } => FailureKind::RefusedDeletion,
            _ => FailureKind::Other,
        });
        self.error = Some(e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::{each_once, ScopeReport};

    #[test]
    fn a_scope_in_the_json_report_has_every_key() {
        let json = serde_json::to_value(ScopeReport::default()).unwrap();
        for key in ["total_count", "deletions_withheld", "counts", "error"] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
    }

    #[test]
    fn a_region_named_twice_is_one_scope() {
        let named = ["cn-shanghai", "cn-hangzhou", "cn-shanghai"].map(String::from);
        assert_eq!(each_once(&named), ["cn-shanghai", "cn-hangzhou"]);
    }
}
