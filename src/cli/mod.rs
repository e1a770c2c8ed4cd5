//! The command line: clap definitions, one module per subcommand, each turning its
//! flags into validated settings before any I/O and then calling the library.

mod api_args;
mod bench;
mod crawl;
mod db;
mod demo;
mod migrate;
mod nodelay;
mod prune;
mod retire;
mod sync;

use clap::{Parser, Subcommand};

use crate::telemetry::LogFormat;

pub use api_args::{ApiArgs, FilterArgs};
pub use db::{connect, DbArgs};
pub use prune::{parse_age, PruneArgs};
pub use sync::{OutputFormat, SyncArgs};

/// The longest a flag of seconds may ask for: a year. Past that the number is a
/// mistake, and a `Duration` cannot hold every float (1e20 panicked).
const LONGEST_SECONDS: f64 = 365.0 * 86_400.0;

/// The flag `flag`'s `value`, seconds, as a `Duration`: more than zero (or zero
/// too, if `zero_ok`), a year at most.
pub(crate) fn seconds(
    flag: &str,
    value: f64,
    zero_ok: bool,
) -> Result<std::time::Duration, crate::error::ConfigError> {
    let least_ok = if zero_ok { value >= 0.0 } else { value > 0.0 };
    if value.is_finite() && least_ok && value <= LONGEST_SECONDS {
        Ok(std::time::Duration::from_secs_f64(value))
    } else {
        let least = if zero_ok {
            "zero or more"
        } else {
            "more than zero"
        };
        Err(crate::error::ConfigError::new(format!(
            "{flag} must be {least}, and at most {LONGEST_SECONDS} (a year), not {value}"
        )))
    }
}

/// Keeps an always-current, fully historied inventory of Alibaba Cloud Elastic
/// Cloud Phone instances in PostgreSQL.
///
/// Credentials come from the default chain of the Alibaba Cloud SDKs:
/// ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus
/// ALIBABA_CLOUD_SECURITY_TOKEN for STS); RRSA (ALIBABA_CLOUD_ROLE_ARN,
/// ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE); the aliyun CLI
/// profile or a section of ~/.alibabacloud/credentials.ini (ALIBABA_CLOUD_PROFILE);
/// the ECS RAM role. `sync --config FILE` gives each account its own.
///
/// Exit codes: 0 success, 1 the run failed, 2 bad usage or configuration,
/// 3 another run holds the scope's lock, 4 a deletion was refused for lack of
/// evidence.
#[derive(Debug, Parser)]
#[command(name = "ecp-inventory", version, propagate_version = true)]
pub struct Cli {
    /// Log format; default: text on a terminal, json otherwise.
    #[arg(long, global = true, value_enum, env = "ECP_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log level or filter (error, warn, info, debug, trace, or
    /// `ecp_inventory=debug`). RUST_LOG wins when set.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "ECP_LOG_LEVEL",
        value_parser = crate::telemetry::parse_level
    )]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand takes negative numbers as values (`--lock-wait-secs -5`), so
/// that the flag's own check says what it accepts, rather than clap taking the
/// value for an unknown flag.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Crawl every region, store instances with their history, record the run.
    ///
    /// Example: ecp-inventory sync --database-url postgres://... --region all
    #[command(allow_negative_numbers = true)]
    Sync(sync::SyncArgs),
    /// Apply pending database migrations (sync does this itself unless --no-migrate).
    #[command(allow_negative_numbers = true)]
    Migrate(migrate::MigrateArgs),
    /// The whole job on an embedded default: a local PostgreSQL, the simulated
    /// API, two syncs with churn between them, and what changed.
    #[command(allow_negative_numbers = true)]
    Demo(demo::DemoArgs),
    /// Crawl every page of one scope and print each instance as one JSON line.
    ///
    /// Example: ecp-inventory crawl --endpoint http://127.0.0.1:8790 --region cn-shanghai
    #[command(allow_negative_numbers = true)]
    Crawl(crawl::CrawlArgs),
    /// Remove history older than a horizon (versions that ended, changes observed
    /// before it); the fleet as of any instant inside the horizon is unchanged.
    ///
    /// Example: ecp-inventory prune --older-than 400d
    #[command(allow_negative_numbers = true)]
    Prune(prune::PruneArgs),
    /// Mark every current instance of a region, or of all regions of an account,
    /// deleted: for an account closed or a region given up, which no sync will
    /// list again (only a complete crawl of a region marks its instances deleted).
    /// Recorded as a run of its own; a later sync that lists one restores it.
    ///
    /// Example: ecp-inventory retire --source old-account --region all --dry-run
    #[command(allow_negative_numbers = true)]
    Retire(retire::RetireArgs),
    /// Serve a simulated Elastic Cloud Phone API on loopback, for trying the tool and for tests
    ///
    /// Example: ecp-inventory simulate --listen 127.0.0.1:8790 --instances 5000 --seed 7
    ///
    /// While it runs, unsigned control calls change it (JSON bodies):
    ///   POST /_sim/churn   {"seed": 1, "create": 10, "delete": 5, "status": 20,
    ///                       "rename": 0, "retag": 0, "resize_disk": 0, "volatile": 0}
    ///                      changes that many instances; answers which ones
    ///   POST /_sim/faults  the fault flags below by name, e.g. {"throttle_rate": 0.1,
    ///                      "latency_ms": 50}, in place of the current ones (a flag
    ///                      left out is off); GET shows the current ones
    ///   GET  /_sim/stats   requests, pages and instances served
    ///   GET  /_sim/fleet   every instance as the API would list it
    ///
    /// Example: curl -X POST localhost:8790/_sim/churn -d '{"seed": 1, "status": 20}'
    #[command(verbatim_doc_comment)]
    #[command(allow_negative_numbers = true)]
    Simulate(crate::simulator::SimulateArgs),
    /// Benchmark the pipeline on a local PostgreSQL and the simulator: first
    /// sync, no-change and churned re-syncs, against a plain COPY of the same rows.
    ///
    /// Example: ecp-inventory bench --sizes 10000,100000 --json bench.json
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
}

/// Writes one line to stdout. By then the command's work is done (a run
/// committed, history pruned), so a reader that went away (`| head -1`) does not
/// fail it, and certainly does not make it panic, as `println!` would, with exit
/// 101 after a successful run; any other failure to write is logged.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "could not write to stdout");
        }
    }
}

/// Runs the command; `Ok` carries the exit code (a sync may finish with failed
/// scopes, which it has recorded and reported).
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Sync(args) => sync::run(args).await,
        Command::Migrate(args) => migrate::run(args).await.map(|()| 0),
        Command::Demo(args) => demo::run(args).await.map(|()| 0),
        Command::Crawl(args) => crawl::run(args).await.map(|()| 0),
        Command::Prune(args) => prune::run(args).await.map(|()| 0),
        Command::Retire(args) => retire::run(args).await.map(|()| 0),
        Command::Simulate(args) => crate::simulator::run_cli(args).await.map(|()| 0),
        Command::Bench(args) => bench::run(args).await.map(|()| 0),
    }
}
