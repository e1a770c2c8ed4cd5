//! `ecp-inventory bench`: the pipeline's benchmark (see `crate::bench` and
//! BENCHMARKS.md).

use std::path::PathBuf;

use anyhow::Context;

use super::db::parse_secret;
use crate::bench::{self, BenchConfig};
use crate::pg_local::LocalPostgres;
use crate::secret::Secret;

/// The database each fleet size starts from, created afresh.
const BENCH_DATABASE: &str = "ecp_bench";

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A server to benchmark on instead of a local one: the URL's user must be
    /// allowed to create databases; the benchmark drops and recreates the
    /// database `ecp_bench` on that server for each fleet size. Only from the
    /// flag: DATABASE_URL, set for `sync`, may name the production server.
    #[arg(long, value_name = "URL", value_parser = parse_secret)]
    pub database_url: Option<Secret>,

    /// Where the local PostgreSQL keeps its data.
    #[arg(long, default_value = "target/bench-pg")]
    pub data_dir: PathBuf,

    /// Fleet sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub sizes: Vec<usize>,

    /// Share of the fleet changed before the churn phase.
    #[arg(long, default_value_t = 0.01)]
    pub churn: f64,

    /// Runs of history in all before every view and sql/ query is timed: the
    /// three phases are the first three, and each run past them follows a churn
    /// (10: seven more). 0 skips the query phase; 1 to 3 time the queries after
    /// the phases.
    #[arg(long, default_value_t = 0)]
    pub history_runs: usize,

    /// Times the COPY baseline is taken; the median is reported (a single COPY
    /// varies by a fifth from one minute to the next on a busy machine).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub copy_runs: u32,

    /// Stage the first syncs too, as every crawl is staged after the first,
    /// instead of writing them straight into the tables: to compare the two
    #[arg(long)]
    pub staged_first_sync: bool,

    /// Latency added to each simulated request for the check that six regions
    /// crawl concurrently in about one region's time; 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,

    /// Fleet size (over six regions) of the latency check.
    #[arg(long, default_value_t = 30000)]
    pub latency_instances: usize,

    /// Seed of the simulated fleet and its churn.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Directory of the queries timed after the history runs.
    #[arg(long, default_value = "sql")]
    pub sql_dir: PathBuf,

    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The local server's settings, those of a server sized for loading a million
/// instances (the defaults are sized for a laptop): room for the WAL of a first
/// sync between checkpoints (it writes several GB; with the default 1 GB the
/// server checkpoints again and again, and writes a full image of every page it
/// touches after each), and 1 GB of shared buffers instead of 128 MB. Durability
/// stays on (fsync, synchronous_commit). Both the syncs and the COPY baseline run
/// on them.
const BENCH_SERVER: &[(&str, &str)] = &[
    ("shared_buffers", "1GB"),
    ("max_wal_size", "8GB"),
    ("checkpoint_timeout", "15min"),
];

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.churn),
        "--churn must be between 0 and 1"
    );
    anyhow::ensure!(!args.sizes.is_empty(), "--sizes is empty");
    let config = BenchConfig {
        sizes: args.sizes.clone(),
        churn: args.churn,
        history_runs: args.history_runs,
        copy_runs: args.copy_runs as usize,
        staged_first_sync: args.staged_first_sync,
        latency_ms: args.latency_ms,
        latency_instances: args.latency_instances,
        seed: args.seed,
        sql_dir: args.sql_dir.clone(),
        scratch_dir: std::env::temp_dir(),
    };
    // A signal stops the benchmark where it stands: its simulator goes with it
    // (a child killed on drop), and its local server is stopped below.
    crate::interrupt::listen();
    let report = match &args.database_url {
        Some(url) => {
            let url = url.expose().to_owned();
            until_interrupted(bench::run(&config, || recreate_on_server(url.clone()))).await?
        }
        None => {
            let dir = args.data_dir.clone();
            eprintln!("bench: starting a local PostgreSQL under {}", dir.display());
            let pg = tokio::task::spawn_blocking(move || LocalPostgres::start(&dir, BENCH_SERVER))
                .await?
                .with_context(|| {
                    format!(
                        "starting the local PostgreSQL under {}",
                        args.data_dir.display()
                    )
                })?;
            let pg = std::sync::Arc::new(pg);
            // The warm-up inside: a failure (a full disk) or a signal during it
            // still stops the server below.
            let result = until_interrupted(async {
                warm_up(&pg.url("postgres"))
                    .await
                    .context("warming up the local PostgreSQL")?;
                bench::run(&config, || {
                    let pg = pg.clone();
                    async move { Ok(pg.recreate_database(BENCH_DATABASE).await?) }
                })
                .await
            })
            .await;
            let stop = pg.clone();
            let _ = tokio::task::spawn_blocking(move || stop.stop()).await;
            result?
        }
    };
    say!("{}", bench::render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Brings a server the benchmark started to the state of one in service. A
/// new cluster has no write-ahead log to recycle: the first gigabyte written
/// goes into segment files created on the spot, and its shared memory is
/// touched for the first time. A 100k first sync on a new cluster took 0.3-0.5 s
/// longer than the next ones, and as long once 1 GB of WAL had been written
/// and checkpointed (BENCHMARKS.md). The table lives in the `postgres`
/// database, never in the one the phases use.
async fn warm_up(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    eprintln!("bench: warming up the new server (1 GB of WAL, then a checkpoint)");
    // Seconds long by design: not a slow statement to warn of.
    let mut conn = bench::quiet_session(url).await?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_warm_up; \
         CREATE TABLE bench_warm_up (filler text); \
         INSERT INTO bench_warm_up SELECT repeat('x', 900) FROM generate_series(1, 1000000); \
         DROP TABLE bench_warm_up",
    )
    .execute(&mut conn)
    .await?;
    // On its own, once the table is dropped: within the statements above (one
    // transaction) it would first write the doomed table's pages to disk.
    sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// The benchmark's outcome, or an error once SIGINT or SIGTERM has come.
async fn until_interrupted<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        outcome = work => outcome,
        signal = crate::interrupt::interrupted() => {
            anyhow::bail!("interrupted by {signal}: the benchmark stopped")
        }
    }
}

/// Drops and recreates `ecp_bench` on the server of `url`; returns its URL.
async fn recreate_on_server(url: String) -> anyhow::Result<String> {
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    let options: PgConnectOptions = url.parse().context("--database-url")?;
    let mut conn = options.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {BENCH_DATABASE}"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(options.database(BENCH_DATABASE).to_url_lossy().to_string())
}
