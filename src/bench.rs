//! The benchmark behind `ecp-inventory bench`: the whole job (simulator on
//! loopback, in-process; a real Postgres) at several fleet sizes, each phase
//! measured for wall time, throughput, rows written and peak RSS, next to the time
//! Postgres itself takes to COPY the same instance rows into a plain table.
//!
//! Phases per fleet size, each on a fresh database:
//! - `first`: the first sync (every instance created, with its history);
//! - `no-change`: a re-sync of the unchanged fleet (must write nothing);
//! - `churn`: a re-sync after `churn` of the fleet changed (status, names, tags,
//!   disks, volatile fields, creations and deletions);
//! - `copy`: `COPY` of the synced `ecp.instances` rows, dumped to a temporary file
//!   beforehand, into a plain unindexed table: the physical limit of the machine;
//! - then, optionally, more churned runs up to `history_runs` and the time of every
//!   view and every query under `sql/`.
//!
//! Peak RSS is this process's `VmHWM`, reset before each phase through
//! `/proc/self/clear_refs`. The simulator runs in a child process (this binary's
//! `simulate`), so that the peak is the job's own and not the simulated fleet's
//! (churn keeps every changed instance in the simulator's memory); it still
//! competes for the same cores.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{Client, ClientConfig, Credentials};
use crate::simulator::{
    ChurnSpec, SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET,
};
use crate::store::{Store, StoreConfig};
use crate::sync::{self, Regions, RunReport, SyncSettings};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub sizes: Vec<usize>,
    /// Share of the fleet changed before the churn phase.
    pub churn: f64,
    /// Total runs of history before the queries are timed (0: no query phase).
    pub history_runs: usize,
    /// COPY baselines taken per fleet size (their median is the baseline).
    pub copy_runs: usize,
    /// First syncs are staged instead of written straight into the tables.
    pub staged_first_sync: bool,
    /// Latency added per simulated request for the concurrency check (0: skip it).
    pub latency_ms: u64,
    /// Fleet size of the concurrency check.
    pub latency_instances: usize,
    pub seed: u64,
    /// Directory of the `.sql` files to time (missing: only the views are timed).
    pub sql_dir: PathBuf,
    /// Where the COPY baseline's dump goes (deleted afterwards).
    pub scratch_dir: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    pub instances: usize,
    pub phase: String,
    pub wall_secs: f64,
    pub instances_per_sec: f64,
    /// Rows inserted, updated or deleted in the ecp tables (pg_stat_user_tables).
    pub rows_written: i64,
    /// Of those, rows inserted or updated in instances, instance_versions and
    /// instance_changes (must be 0 for the no-change phase).
    pub history_rows_written: i64,
    pub peak_rss_mb: f64,
    /// Wall time over the COPY baseline of the same size.
    pub ratio_to_copy: Option<f64>,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub restored: u64,
    pub unchanged: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub instances: usize,
    pub history_runs: usize,
    pub query: String,
    pub secs: f64,
    pub rows: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConcurrencyResult {
    pub latency_ms: u64,
    pub instances: usize,
    /// First sync of one region.
    pub one_region_secs: f64,
    /// Re-sync of the same region, nothing changed (mostly waiting on the API).
    pub one_region_resync_secs: f64,
    pub one_region_instances: u64,
    pub all_regions_secs: f64,
    pub all_regions_resync_secs: f64,
    pub all_regions: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    pub phases: Vec<PhaseResult>,
    pub queries: Vec<QueryResult>,
    pub concurrency: Option<ConcurrencyResult>,
    /// The server's version and the settings the numbers depend on.
    pub server: String,
}

/// Runs the benchmark. `fresh_db` returns the URL of a new, empty database.
pub async fn run<F, Fut>(config: &BenchConfig, mut fresh_db: F) -> anyhow::Result<BenchReport>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let mut report = BenchReport::default();
    for &n in &config.sizes {
        let url = fresh_db().await?;
        if report.server.is_empty() {
            report.server = describe_server(&url).await?;
            eprintln!("bench: {}", report.server);
        }
        bench_size(config, n, &url, &mut report).await?;
    }
    if config.latency_ms > 0 {
        let url = fresh_db().await?;
        report.concurrency = Some(concurrency_check(config, &url).await?);
        let url = fresh_db().await?;
        let c = report.concurrency.as_mut().expect("just set");
        let one = timed_sync(config, &url, c.instances, Some(1)).await?;
        c.one_region_secs = one.first_secs;
        c.one_region_resync_secs = one.resync_secs;
        c.one_region_instances = one.instances;
    }
    Ok(report)
}

/// One line naming the server and the settings that move the numbers.
async fn describe_server(url: &str) -> anyhow::Result<String> {
    let pool = crate::cli::connect(url, 1).await?;
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, current_setting(name) FROM pg_settings \
         WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'fsync', \
                        'synchronous_commit', 'full_page_writes', 'wal_compression') \
         ORDER BY name",
    )
    .fetch_all(&pool)
    .await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    let settings: Vec<String> = settings
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    Ok(format!("PostgreSQL {version}: {}", settings.join(", ")))
}

fn store_config(config: &BenchConfig) -> StoreConfig {
    StoreConfig {
        direct_first_load: !config.staged_first_sync,
        ..StoreConfig::default()
    }
}

fn client_for(endpoint: String) -> anyhow::Result<Client> {
    Ok(Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint,
            // No client-side rate limit: the benchmark measures the pipeline.
            rate_limiter: None,
            ..Default::default()
        },
    )?)
}

async fn bench_size(
    config: &BenchConfig,
    n: usize,
    url: &str,
    report: &mut BenchReport,
) -> anyhow::Result<()> {
    eprintln!("bench: {n} instances");
    let settings = SyncSettings::default();
    // As many connections as `sync` opens for these settings.
    let pool = crate::cli::connect(url, settings.connections()).await?;
    let store = Store::new(pool.clone(), store_config(config))?;
    store.migrate().await?;
    let sim = SimProcess::start(n, config.seed, 0).await?;
    // A client per run, as each run of the job has: a run's report counts the
    // requests of its client.
    let fresh_client = || client_for(sim.endpoint.clone());

    let client = fresh_client()?;
    let first = phase(&pool, "first", n, || sync::run(&store, &client, &settings)).await?;
    let copy_secs = copy_baseline(&pool, &config.scratch_dir, config.copy_runs).await?;
    let client = fresh_client()?;
    let again = phase(&pool, "no-change", n, || {
        sync::run(&store, &client, &settings)
    })
    .await?;
    sim.churn(&churn_spec(config.seed, n, config.churn)).await?;
    let client = fresh_client()?;
    let churned = phase(&pool, "churn", n, || sync::run(&store, &client, &settings)).await?;

    let copy = PhaseResult {
        instances: n,
        phase: "copy".into(),
        wall_secs: copy_secs,
        instances_per_sec: n as f64 / copy_secs,
        rows_written: n as i64,
        history_rows_written: 0,
        // Measured in the server, not in this process.
        peak_rss_mb: f64::NAN,
        ratio_to_copy: Some(1.0),
        created: 0,
        updated: 0,
        deleted: 0,
        restored: 0,
        unchanged: 0,
    };
    for mut p in [first, again, churned] {
        p.ratio_to_copy = Some(p.wall_secs / copy_secs);
        report.phases.push(p);
    }
    report.phases.push(copy);

    // The three phases are the first three runs of history.
    if config.history_runs > 0 {
        for run in 4..=config.history_runs {
            sim.churn(&churn_spec(config.seed + run as u64, n, config.churn))
                .await?;
            let r = sync::run(&store, &fresh_client()?, &settings).await?;
            r.ensure_succeeded()?;
            eprintln!("bench: history run {run}: {}", r.summary_line());
        }
        // The steady state autovacuum reaches minutes after a large write:
        // statistics, and a visibility map that lets index-only scans (tag
        // coverage, counts) skip the heap. Timing before it would measure the
        // moment right after the write instead.
        sqlx::raw_sql("VACUUM ANALYZE").execute(&pool).await?;
        // The middle of the run before the last, as analysts would pass it.
        let mid_history: String = sqlx::query_scalar(
            "SELECT quote_literal(started_at + (finished_at - started_at) / 2) \
             FROM ecp.sync_runs ORDER BY run_id DESC OFFSET 1 LIMIT 1",
        )
        .fetch_one(&pool)
        .await?;
        // On a session of the server's defaults, as an analyst's or a BI
        // tool's: the job's own sessions turn JIT off.
        let mut analyst = quiet_session(url).await?;
        for (name, sql) in queries(&config.sql_dir)? {
            let sql = sql.replace("{{mid_history}}", &mid_history);
            let t = Instant::now();
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut analyst)
                .await
                .with_context(|| format!("query {name}"))?
                .len();
            report.queries.push(QueryResult {
                instances: n,
                history_runs: config.history_runs,
                query: name,
                secs: t.elapsed().as_secs_f64(),
                rows,
            });
        }
        analyst.close().await?;
    }
    sim.stop().await;
    pool.close().await;
    Ok(())
}

/// A plain session with the server's defaults, for statements that are slow
/// by design or timed by the caller: sqlx would warn of each one past a second,
/// with its whole text.
pub(crate) async fn quiet_session(url: &str) -> anyhow::Result<PgConnection> {
    Ok(url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .log_slow_statements(log::LevelFilter::Off, Duration::ZERO)
        .connect()
        .await?)
}

/// About `share` of the fleet changes, spread over the kinds of change.
fn churn_spec(seed: u64, n: usize, share: f64) -> ChurnSpec {
    let total = (n as f64 * share).round() as usize;
    let part = |f: f64| ((total as f64) * f).round() as usize;
    ChurnSpec {
        seed,
        create: part(0.1),
        delete: part(0.1),
        status: part(0.3),
        rename: part(0.1),
        retag: part(0.2),
        resize_disk: part(0.1),
        volatile: part(0.1),
    }
}

/// Row counters of the ecp tables: (all writes, inserts+updates of the history
/// tables).
async fn write_counters(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await?;
    let (all, history): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint, \
                COALESCE(sum(n_tup_ins + n_tup_upd) FILTER (WHERE relname IN \
                  ('instances', 'instance_versions', 'instance_changes')), 0)::bigint \
         FROM pg_stat_user_tables \
         WHERE schemaname = 'ecp' AND relname IN ('instances', 'instance_versions', \
               'instance_changes', 'instance_disks', 'instance_tags')",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((all, history))
}

/// Lets the sessions that just ended report their counters.
async fn settle_stats() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn phase<F, Fut>(
    pool: &PgPool,
    name: &str,
    n: usize,
    sync_once: F,
) -> anyhow::Result<PhaseResult>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<RunReport, sync::SyncError>>,
{
    sqlx::raw_sql("CHECKPOINT").execute(pool).await?;
    settle_stats().await;
    let before = write_counters(pool).await?;
    reset_peak_rss();
    let t = Instant::now();
    let r = sync_once().await?;
    let wall = t.elapsed().as_secs_f64();
    let rss = peak_rss_mb();
    r.ensure_succeeded()?;
    settle_stats().await;
    let after = write_counters(pool).await?;
    eprintln!("bench: {name}: {:.2} s; {}", wall, r.summary_line());
    Ok(PhaseResult {
        instances: n,
        phase: name.into(),
        wall_secs: wall,
        instances_per_sec: n as f64 / wall,
        rows_written: after.0 - before.0,
        history_rows_written: after.1 - before.1,
        peak_rss_mb: rss,
        ratio_to_copy: None,
        created: r.totals.created,
        updated: r.totals.updated,
        deleted: r.totals.deleted,
        restored: r.totals.restored,
        unchanged: r.totals.unchanged,
    })
}

/// Dumps ecp.instances (the rows the sync wrote) to a file, then times `runs`
/// COPYs of that file, each into a new plain table with the same columns and no
/// index, and returns the median. The columns keep their compression method
/// (lz4 for raw where the server has it) and the table its storage parameters:
/// a baseline stored differently would be slower or faster than the table it
/// stands for.
async fn copy_baseline(pool: &PgPool, scratch: &Path, runs: usize) -> anyhow::Result<f64> {
    tokio::fs::create_dir_all(scratch).await?;
    let path = scratch.join(format!("copy-baseline-{}.txt", std::process::id()));
    let mut conn = pool.acquire().await?.detach();
    {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut out = conn.copy_out_raw("COPY ecp.instances TO STDOUT").await?;
        while let Some(chunk) = out.try_next().await? {
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        times.push(time_copy(&mut conn, &path).await?);
    }
    conn.close().await?;
    let _ = tokio::fs::remove_file(&path).await;
    let each: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    let secs = median(&mut times);
    eprintln!(
        "bench: copy baseline: {secs:.2} s (median of {} s)",
        each.join(", ")
    );
    Ok(secs)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// One timed COPY of the dump into a fresh baseline table.
async fn time_copy(conn: &mut PgConnection, dump: &Path) -> anyhow::Result<f64> {
    // LIKE copies neither the table's storage parameters nor, without INCLUDING,
    // the columns' compression: both are set as for ecp.instances.
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS public.bench_copy_baseline; \
         CREATE TABLE public.bench_copy_baseline (LIKE ecp.instances INCLUDING COMPRESSION); \
         DO $$ DECLARE options text; BEGIN \
             SELECT array_to_string(reloptions, ', ') INTO options \
             FROM pg_class WHERE oid = 'ecp.instances'::regclass; \
             IF options IS NOT NULL THEN \
                 EXECUTE format('ALTER TABLE public.bench_copy_baseline SET (%s)', options); \
             END IF; \
         END $$; \
         CHECKPOINT",
    )
    .execute(&mut *conn)
    .await?;
    let mut file = tokio::fs::File::open(dump).await?;
    let mut chunk = vec![0u8; 1 << 20];
    let t = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY public.bench_copy_baseline FROM STDIN")
        .await?;
    loop {
        let got = file.read(&mut chunk).await?;
        if got == 0 {
            break;
        }
        copy.send(&chunk[..got]).await?;
    }
    copy.finish().await?;
    let secs = t.elapsed().as_secs_f64();
    sqlx::raw_sql("DROP TABLE public.bench_copy_baseline")
        .execute(&mut *conn)
        .await?;
    Ok(secs)
}

/// The views and table functions of the SQL interface, plus every file under
/// `sql_dir`.
fn queries(sql_dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut list: Vec<(String, String)> = [
        (
            "current_instances (count)",
            "SELECT count(*) FROM ecp.current_instances",
        ),
        (
            "current_instances (one region, 100 rows)",
            "SELECT * FROM ecp.current_instances WHERE biz_region_id = 'cn-shanghai' \
             ORDER BY instance_id LIMIT 100",
        ),
        (
            "change_feed (newest 100)",
            "SELECT * FROM ecp.change_feed LIMIT 100",
        ),
        (
            "change_feed (one instance)",
            "SELECT * FROM ecp.change_feed WHERE instance_id = \
             (SELECT min(instance_id) FROM ecp.instances)",
        ),
        (
            "instances_as_of (count, mid-history, a literal)",
            "SELECT count(*) FROM ecp.instances_as_of({{mid_history}})",
        ),
        (
            // A sub-select as the argument keeps Postgres from inlining the
            // function: every version valid then goes through a tuplestore.
            "instances_as_of (count, mid-history, a sub-select)",
            "SELECT count(*) FROM ecp.instances_as_of(\
             (SELECT started_at + (finished_at - started_at) / 2 FROM ecp.sync_runs \
              ORDER BY run_id DESC OFFSET 1 LIMIT 1))",
        ),
        (
            // The form the README shows for a computed moment: inlined again.
            "instances_as_of (count, mid-history, a lateral join)",
            "SELECT count(*) FROM (SELECT started_at + (finished_at - started_at) / 2 AS ts \
             FROM ecp.sync_runs ORDER BY run_id DESC OFFSET 1 LIMIT 1) r \
             CROSS JOIN LATERAL ecp.instances_as_of(r.ts)",
        ),
        (
            "run_diff (last two runs)",
            "SELECT * FROM ecp.run_diff(\
             (SELECT max(run_id) - 1 FROM ecp.sync_runs), (SELECT max(run_id) FROM ecp.sync_runs))",
        ),
        (
            "fleet_daily (last 7 days)",
            "SELECT * FROM ecp.fleet_daily WHERE day >= current_date - 7",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    if let Ok(dir) = std::fs::read_dir(sql_dir) {
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)?;
            let name = format!(
                "sql/{}",
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            list.push((name, text));
        }
    }
    Ok(list)
}

/// Six regions with latency on every request: the time of a first sync and of a
/// no-change re-sync of all of them (the one-region times are filled in by the
/// caller).
async fn concurrency_check(config: &BenchConfig, url: &str) -> anyhow::Result<ConcurrencyResult> {
    let all = timed_sync(config, url, config.latency_instances, None).await?;
    Ok(ConcurrencyResult {
        latency_ms: config.latency_ms,
        instances: config.latency_instances,
        one_region_secs: 0.0,
        one_region_resync_secs: 0.0,
        one_region_instances: 0,
        all_regions_secs: all.first_secs,
        all_regions_resync_secs: all.resync_secs,
        all_regions: all.scopes,
    })
}

struct TimedSync {
    first_secs: f64,
    resync_secs: f64,
    instances: u64,
    scopes: usize,
}

/// A first sync and a no-change re-sync with latency; `only` limits them to that
/// many regions.
async fn timed_sync(
    config: &BenchConfig,
    url: &str,
    n: usize,
    only: Option<usize>,
) -> anyhow::Result<TimedSync> {
    let regions = SimulatorConfig::default().regions;
    let settings = SyncSettings {
        regions: Regions::Only(
            regions
                .into_iter()
                .take(only.unwrap_or(usize::MAX))
                .collect(),
        ),
        ..Default::default()
    };
    let pool = crate::cli::connect(url, settings.connections()).await?;
    let store = Store::new(pool.clone(), store_config(config))?;
    store.migrate().await?;
    let sim = SimProcess::start(n, config.seed, config.latency_ms).await?;
    let mut secs = [0.0; 2];
    let mut last = None;
    for (i, what) in ["first sync", "re-sync"].into_iter().enumerate() {
        let client = client_for(sim.endpoint.clone())?;
        let t = Instant::now();
        let r = sync::run(&store, &client, &settings).await?;
        secs[i] = t.elapsed().as_secs_f64();
        r.ensure_succeeded()?;
        eprintln!(
            "bench: {} region(s), {} ms latency, {what}: {:.2} s; {}",
            r.scopes.len(),
            config.latency_ms,
            secs[i],
            r.summary_line()
        );
        last = Some(r);
    }
    let r = last.expect("two runs");
    sim.stop().await;
    pool.close().await;
    Ok(TimedSync {
        first_secs: secs[0],
        resync_secs: secs[1],
        instances: r.scopes.iter().map(|s| s.instances).sum(),
        scopes: r.scopes.len(),
    })
}

/// The simulator as a child process: this binary's `simulate`, on a free loopback
/// port, killed when dropped.
struct SimProcess {
    child: tokio::process::Child,
    endpoint: String,
    http: reqwest::Client,
}

impl SimProcess {
    async fn start(instances: usize, seed: u64, latency_ms: u64) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let exe = std::env::current_exe().context("locating this binary to run the simulator")?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "--log-level",
                "error",
                "simulate",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--instances", &instances.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--latency-ms", &latency_ms.to_string()])
            // The simulator takes its key from these variables when set: the
            // operator's real ones would make it refuse the bench's key, and
            // have no business in the child anyway.
            .env_remove(crate::api::credentials::ENV_ACCESS_KEY_ID)
            .env_remove(crate::api::credentials::ENV_ACCESS_KEY_SECRET)
            .env_remove(crate::api::credentials::ENV_SECURITY_TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the simulator")?;
        let stdout = child.stdout.take().expect("piped");
        // It says where it listens in its first line: "simulator: ... on http://...".
        let line = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::io::BufReader::new(stdout).lines().next_line(),
        )
        .await
        .context("the simulator did not start within 60 s")??
        .context("the simulator exited before it listened")?;
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no endpoint in the simulator's first line: {line}"))?
            .to_owned();
        Ok(SimProcess {
            child,
            endpoint,
            http: reqwest::Client::new(),
        })
    }

    /// Changes the fleet through the simulator's admin API.
    async fn churn(&self, spec: &ChurnSpec) -> anyhow::Result<()> {
        let answer = self
            .http
            .post(format!("{}/_sim/churn", self.endpoint))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(spec)?)
            .send()
            .await
            .context("asking the simulator to churn")?;
        let status = answer.status();
        anyhow::ensure!(
            status.is_success(),
            "the simulator refused the churn: {status} {}",
            answer.text().await.unwrap_or_default()
        );
        Ok(())
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Resets this process's peak RSS (VmHWM) to its current RSS.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS in MB since start or the last reset (NaN off Linux).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The results as a Markdown table.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    if !report.server.is_empty() {
        out.push_str(&format!("Server: {}\n\n", report.server));
    }
    out.push_str(
        "| instances | phase | wall s | instances/s | rows written | history rows written | peak RSS MB | × COPY |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &report.phases {
        let rss = if p.peak_rss_mb.is_nan() {
            "–".to_owned()
        } else {
            format!("{:.0}", p.peak_rss_mb)
        };
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |\n",
            p.instances,
            p.phase,
            p.wall_secs,
            p.instances_per_sec,
            p.rows_written,
            if p.phase == "copy" {
                "–".to_owned()
            } else {
                p.history_rows_written.to_string()
            },
            rss,
            p.ratio_to_copy
                .map_or("–".to_owned(), |r| format!("{r:.2}")),
        ));
    }
    if !report.queries.is_empty() {
        out.push_str("\n| instances | runs of history | query | seconds | rows |\n|---:|---:|---|---:|---:|\n");
        for q in &report.queries {
            out.push_str(&format!(
                "| {} | {} | {} | {:.3} | {} |\n",
                q.instances, q.history_runs, q.query, q.secs, q.rows
            ));
        }
    }
    if let Some(c) = &report.concurrency {
        out.push_str(&format!(
            "\nConcurrency, {} ms added per request, {} instances over {} regions:\n\n\
             | regions | instances | first sync s | no-change re-sync s |\n\
             |---:|---:|---:|---:|\n\
             | 1 | {} | {:.2} | {:.2} |\n\
             | {} | {} | {:.2} | {:.2} |\n",
            c.latency_ms,
            c.instances,
            c.all_regions,
            c.one_region_instances,
            c.one_region_secs,
            c.one_region_resync_secs,
            c.all_regions,
            c.instances,
            c.all_regions_secs,
            c.all_regions_resync_secs,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_middle_value_whatever_the_order() {
        assert_eq!(median(&mut [7.0, 5.5, 6.0]), 6.0);
        assert_eq!(median(&mut [8.0, 5.0, 6.0, 7.0]), 6.5);
        assert_eq!(median(&mut [4.2]), 4.2);
    }
}
