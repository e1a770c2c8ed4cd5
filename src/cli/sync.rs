//! `ecp-inventory sync`: the main job.

use std::io::IsTerminal;
use std::path::PathBuf;

use chrono::FixedOffset;

use super::db::{connect, DbArgs};
use super::{ApiArgs, FilterArgs};
use crate::config::ConfigFile;
use crate::error::ConfigError;
use crate::multi::{self, SourceJob};
use crate::normalize::NormalizeOptions;
use crate::secret::without_password;
use crate::store::{ApplyOptions, Store, StoreConfig};
use crate::sync::{self, Regions, RunReport, SyncSettings};
use crate::{metrics, progress};
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One summary line on stdout.
    Text,
    /// What the command did as one JSON object on stdout (for sync, the run
    /// report).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub db: DbArgs,

    /// Business regions to crawl (repeatable), or `all` for every region
    /// DescribeRegions lists.
    #[arg(long = "region", value_name = "ID|all", default_value = "all")]
    pub regions: Vec<String>,

    /// The account alias stored with every row, to tell accounts apart.
    #[arg(long, default_value = "default")]
    pub source: String,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Columns kept current without opening a version or a change row, comma
    /// separated. `--volatile-fields ''` makes none volatile: every change of
    /// every column is history.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_VOLATILE_FIELDS)]
    pub volatile_fields: Vec<String>,

    /// Refuse to apply a crawl that would mark more than this share of a scope
    /// deleted.
    #[arg(long, default_value_t = 0.5)]
    pub max_delete_share: f64,

    /// Apply even a crawl that deletes more than --max-delete-share, or that
    /// returns nothing where instances existed.
    #[arg(long)]
    pub allow_mass_delete: bool,

    /// Seconds to wait for a scope that another run is syncing.
    #[arg(long, default_value_t = 30.0)]
    pub lock_wait_secs: f64,

    /// Do not migrate the schema first; refuse one that is behind (for a
    /// database user that may not change the schema).
    #[arg(long, env = "ECP_NO_MIGRATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_migrate: bool,

    /// The zone of GmtCreate and GmtModified, which the API sends without one
    /// (e.g. +08:00). Default: UTC.
    #[arg(long, value_parser = parse_offset)]
    pub naive_time_zone: Option<FixedOffset>,

    /// Regions crawled at once.
    #[arg(long, default_value_t = 6)]
    pub concurrency: usize,

    /// What to print on stdout when the run ends.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// A TOML file listing the accounts (sources) to crawl, each with its own
    /// credentials, endpoint, regions and filters. Without it, one account from
    /// the flags and the environment. One `[[source]]` table per account:
    ///
    ///   [[source]]
    ///   alias = "prod-cn"                        # stored as `source`
    ///   access_key_id_env = "PROD_CN_AK_ID"      # names of variables
    ///   access_key_secret_env = "PROD_CN_AK_SECRET"
    ///   regions = "all"                          # or ["cn-shanghai", ...]
    ///
    /// Other keys: profile, credentials = "default", security_token_env,
    /// endpoint, rate_limit, naive_time_zone, filters = { status, instance_ids,
    /// instance_group_ids, tags, charge_type, instance_name } (README, "Several
    /// accounts and regions").
    #[arg(long, env = "ECP_CONFIG", value_name = "FILE", verbatim_doc_comment)]
    pub config: Option<PathBuf>,

    /// Push the run's metrics to this Prometheus Pushgateway, e.g.
    /// http://pushgateway:9091 (to {URL}/metrics/job/ecp_inventory).
    #[arg(
        long,
        env = "ECP_PUSHGATEWAY_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub pushgateway_url: Option<String>,

    /// Write the run's metrics to this file (atomically), for node_exporter's
    /// textfile collector.
    #[arg(long, env = "ECP_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Never show the progress line (shown when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// `store::DEFAULT_VOLATILE_FIELDS` as the flag takes it (and `--help` shows it).
const DEFAULT_VOLATILE_FIELDS: &str = "session_status,rate,modified_at";

fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    s.parse::<FixedOffset>()
        .map_err(|_| format!("{s:?} is not a UTC offset like +08:00"))
}

impl SyncArgs {
    /// Where the metrics go, checked before the run: a Pushgateway URL that
    /// does not parse, or a metrics file whose directory is missing (found once
    /// the run is over, it was a warning, and no metrics).
    fn check_metrics_outlets(&self) -> Result<(), ConfigError> {
        self.check_pushgateway_url()?;
        let Some(path) = &self.metrics_file else {
            return Ok(());
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if dir.is_dir() {
            Ok(())
        } else {
            Err(ConfigError::new(format!(
                "--metrics-file: the directory {} does not exist (node_exporter's textfile \
                 directory, for instance, must be there already)",
                dir.display()
            )))
        }
    }

    /// Checked here rather than by clap, whose message would repeat the value,
    /// password and all; and before the run, which reports a failure there.
    fn check_pushgateway_url(&self) -> Result<(), ConfigError> {
        let Some(url) = &self.pushgateway_url else {
            return Ok(());
        };
        let scheme = reqwest::Url::parse(url).map(|u| u.scheme().to_owned());
        if matches!(scheme.as_deref(), Ok("http" | "https")) {
            Ok(())
        } else {
            Err(ConfigError::new(
                "--pushgateway-url (or ECP_PUSHGATEWAY_URL) is not an http(s) URL like \
                 http://pushgateway:9091",
            ))
        }
    }

    /// The store's configuration, checked.
    fn store_config(&self) -> Result<StoreConfig, ConfigError> {
        let config = StoreConfig {
            // `''` is the empty list, not a column named "".
            volatile_fields: self
                .volatile_fields
                .iter()
                .map(|f| f.trim())
                .filter(|f| !f.is_empty())
                .map(String::from)
                .collect(),
            ..StoreConfig::default()
        };
        config
            .check()
            .map_err(|e| ConfigError::new(format!("--volatile-fields: {e}")))?;
        Ok(config)
    }

    pub fn settings(&self) -> Result<SyncSettings, ConfigError> {
        if !(0.0..=1.0).contains(&self.max_delete_share) {
            return Err(ConfigError::new(
                "--max-delete-share must be between 0 and 1",
            ));
        }
        let lock_wait = super::seconds("--lock-wait-secs", self.lock_wait_secs, true)?;
        // Each region applying holds a database connection of its own.
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new(format!(
                "--concurrency must be between 1 and {MAX_CONCURRENCY}: each region crawled \
                 at once holds a database connection"
            )));
        }
        if self.source.trim().is_empty() {
            return Err(ConfigError::new(
                "--source is empty: it is the account alias stored with every row \
                 (default: default)",
            ));
        }
        let regions = Regions::parse(&self.regions).map_err(|e| {
            ConfigError::new(format!("--region: {e}; name a region (cn-shanghai) or all"))
        })?;
        Ok(SyncSettings {
            source: self.source.clone(),
            regions,
            filters: self.filters.request(None),
            crawl: self.api.crawl_options(),
            apply: ApplyOptions {
                filtered: false,
                max_delete_share: self.max_delete_share,
                allow_mass_delete: self.allow_mass_delete,
                ..ApplyOptions::default()
            },
            normalize: NormalizeOptions {
                naive_time_zone: self.naive_time_zone,
            },
            lock_wait,
            concurrency: self.concurrency,
        })
    }
}

/// The sources of `--config FILE`, each with its own client; the flags give
/// everything the file does not.
fn config_jobs(
    args: &SyncArgs,
    settings: &SyncSettings,
    path: &std::path::Path,
) -> Result<Vec<SourceJob>, ConfigError> {
    if args.regions != ["all"] || args.source != "default" || settings.filters.is_filtered() {
        return Err(ConfigError::new(
            "--region, --source and filters go in the config file's [[source]] tables \
             when --config is given",
        ));
    }
    let file = ConfigFile::load(path)?;
    let base = args.api.client_config()?;
    let env = file.settings_from_process_env();
    let mut jobs = Vec::with_capacity(file.sources.len());
    for source in &file.sources {
        let s = source.source(&base, Some(args.api.rate_limit), &env)?;
        jobs.push(SourceJob {
            client: s.client,
            settings: SyncSettings {
                source: s.alias,
                regions: s.regions,
                filters: s.filters,
                normalize: NormalizeOptions {
                    naive_time_zone: s.naive_time_zone.or(settings.normalize.naive_time_zone),
                },
                ..settings.clone()
            },
        });
    }
    Ok(jobs)
}

/// Runs the job; the report decides the exit code. A run that fails before it
/// has a report (credentials, endpoint, database) still leaves metrics that say
/// it failed.
pub async fn run(args: SyncArgs) -> anyhow::Result<u8> {
    let result = match args.check_metrics_outlets() {
        // Where the metrics would go is wrong itself: nothing to deliver them to.
        Err(e) => Err(e.into()),
        Ok(()) => {
            let result = run_job(&args).await;
            if result.is_err() {
                let now = chrono::Utc::now().timestamp() as f64;
                let body = metrics::render_failed_start(now);
                deliver_metrics(&args, body, metrics::Delivery::Update).await;
            }
            result
        }
    };
    // A reader of stdout gets one JSON object whatever happened: a run that
    // could not start or be recorded has no report, so it says why.
    if let (Err(e), OutputFormat::Json) = (&result, args.output) {
        let failed = serde_json::json!({
            "run_id": null,
            "status": "failed",
            "error": crate::error::chain_message(e),
            "exit_code": crate::error::exit_code(e),
        });
        say!("{failed}");
    }
    result
}

/// The most regions crawled at once (`--concurrency`).
const MAX_CONCURRENCY: usize = 64;

/// What the run needs before it starts: the API client (or the config file's
/// jobs) and the store, migrated and checked.
async fn set_up(
    args: &SyncArgs,
    settings: &SyncSettings,
    store_config: StoreConfig,
) -> anyhow::Result<(Option<crate::api::Client>, Vec<SourceJob>, Store)> {
    let (client, jobs) = match &args.config {
        Some(path) => (None, config_jobs(args, settings, path)?),
        None => (Some(args.api.client().await?), Vec::new()),
    };
    let pool = connect(args.db.url()?, settings.connections()).await?;
    let store = Store::new(pool, store_config)?;
    if args.no_migrate {
        store.check_schema().await?;
    } else {
        store.migrate().await?;
    }
    let metrics = args.pushgateway_url.is_some() || args.metrics_file.is_some();
    store.check_privileges(metrics).await?;
    Ok((client, jobs, store))
}

async fn run_job(args: &SyncArgs) -> anyhow::Result<u8> {
    let settings = args.settings()?;
    let store_config = args.store_config()?;
    // Caught from here on: a signal while the job connects, migrates or checks
    // its privileges ends it with nothing written (a migration in progress
    // rolls back with its connection) and exit 1, as the README says, instead
    // of killing the process by the signal's default (exit 143).
    crate::interrupt::listen();
    let (client, jobs, store) = tokio::select! {
        biased;
        ready = set_up(args, &settings, store_config) => ready?,
        signal = crate::interrupt::interrupted() => {
            return Err(sync::SyncError::Interrupted(signal).into())
        }
    };
    if !args.no_progress && std::io::stderr().is_terminal() {
        progress::start();
    }
    let result = match &client {
        Some(client) => sync::run(&store, client, &settings).await,
        None => multi::run(&store, &jobs, settings.concurrency).await,
    };
    progress::finish();
    let report = result?;
    print_report(&report, args.output)?;
    export_metrics(&store, &report, args).await;
    Ok(report.exit_code())
}

/// Metrics are a side channel: a failure to deliver them is logged, and does not
/// change the run's exit code (alert on the metrics' age to catch it).
async fn export_metrics(store: &Store, report: &RunReport, args: &SyncArgs) {
    if args.pushgateway_url.is_none() && args.metrics_file.is_none() {
        return;
    }
    let facts = match metrics::FleetFacts::query(store.pool()).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "could not count instances for the metrics");
            metrics::FleetFacts::default()
        }
    };
    let now = chrono::Utc::now().timestamp() as f64;
    let body = metrics::render(report, &facts, now);
    deliver_metrics(args, body, metrics::Delivery::Replace).await;
}

/// To the metrics file and the Pushgateway, whichever are set.
async fn deliver_metrics(args: &SyncArgs, body: String, delivery: metrics::Delivery) {
    if let Some(path) = &args.metrics_file {
        let text = match delivery {
            metrics::Delivery::Replace => Cow::Borrowed(body.as_str()),
            // A file that cannot be read (none yet) has nothing to keep.
            metrics::Delivery::Update => Cow::Owned(metrics::update_families(
                &std::fs::read_to_string(path).unwrap_or_default(),
                &body,
            )),
        };
        match metrics::write_textfile(path, &text) {
            Ok(()) => tracing::info!(path = %path.display(), "metrics written"),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file")
            }
        }
    }
    if let Some(url) = &args.pushgateway_url {
        match metrics::push(url, body, delivery).await {
            Ok(()) => {
                tracing::info!(url = %without_password(&metrics::push_url(url)), "metrics pushed")
            }
            Err(e) => {
                tracing::warn!(url = %without_password(&metrics::push_url(url)), error = %e, "could not push the metrics")
            }
        }
    }
}

pub fn print_report(report: &RunReport, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => say!("{}", report.summary_line()),
        OutputFormat::Json => say!("{}", serde_json::to_string(report)?),
    }
    for scope in report.scopes.iter() {
        if let Some(error) = &scope.error {
            let name = format!("{}/{}", scope.source, scope.biz_region_id);
            let error = crate::error::one_line(error);
            // Some errors name their scope already ("scope default/cn-shanghai is
            // locked by another run"): once is enough.
            if error.starts_with(&format!("scope {name} ")) {
                eprintln!("error: {error}");
            } else {
                eprintln!("error: scope {name}: {error}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_rates_out_of_range_are_refused_by_name() {
        use clap::Parser;
        for (flag, value) in [
            ("--lock-wait-secs", "1e20"),
            ("--lock-wait-secs", "-1"),
            ("--max-delete-share", "-0.5"),
            ("--timeout-secs", "1e20"),
            ("--timeout-secs", "0"),
            ("--max-retry-secs", "inf"),
            ("--rate-limit", "1e-300"),
            ("--rate-limit", "0"),
        ] {
            // Apart, as typed: a negative value is a value, not a flag.
            let cli =
                crate::cli::Cli::try_parse_from(["ecp-inventory", "sync", flag, value]).unwrap();
            let crate::cli::Command::Sync(args) = cli.command else {
                panic!("not a sync");
            };
            let err = match (args.settings(), args.api.client_config()) {
                (Err(e), _) | (_, Err(e)) => e.to_string(),
                _ => panic!("{flag}={value} was taken"),
            };
            assert!(err.starts_with(flag), "{err}");
        }
        // A lock wait of zero is a choice: fail at once when the lock is held.
        let cli = crate::cli::Cli::try_parse_from(["ecp-inventory", "sync", "--lock-wait-secs=0"])
            .unwrap();
        let crate::cli::Command::Sync(args) = cli.command else {
            panic!("not a sync");
        };
        assert!(args.settings().is_ok());
    }

    #[test]
    fn the_volatile_fields_default_is_the_stores() {
        assert_eq!(
            DEFAULT_VOLATILE_FIELDS,
            crate::store::DEFAULT_VOLATILE_FIELDS.join(",")
        );
    }
}
