//! `simulate`: the simulator as a command, for the demo and for poking at it with
//! the official SDKs. The flags become a [`SimulatorConfig`] before anything binds.

use anyhow::Context as _;
use std::net::SocketAddr;

use super::fleet_file::{parse_fleet_file, region_of, regions_of};
use super::{
    Clock, Faults, Simulator, SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET,
};
use crate::api::credentials::{ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN};
use crate::api::Credentials;

#[derive(Clone, Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: SocketAddr,
    /// Number of instances in the generated fleet.
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    /// Serve these instances instead of a generated fleet: a file of
    /// `DescribeAndroidInstances` answers (captured pages, concatenated), arrays
    /// of instance objects, or one instance object per line. Records are served
    /// exactly as written, in file order; the regions are those their `RegionId`
    /// names, unless --regions says otherwise.
    #[arg(long, value_name = "PATH", conflicts_with = "instances")]
    pub fleet_file: Option<std::path::PathBuf>,
    /// Fleet seed: the same seed gives the same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Business regions, comma-separated (default: the six documented ones).
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Access key id the simulator accepts.
    #[arg(long, env = ENV_ACCESS_KEY_ID, default_value = DEFAULT_ACCESS_KEY_ID)]
    pub access_key_id: String,
    /// Its secret.
    #[arg(long, env = ENV_ACCESS_KEY_SECRET, hide_env_values = true, default_value = DEFAULT_ACCESS_KEY_SECRET, hide_default_value = true)]
    pub access_key_secret: String,
    /// Security token required with an STS key id (`STS.` prefix).
    #[arg(long, env = ENV_SECURITY_TOKEN, hide_env_values = true)]
    pub security_token: Option<String>,
    /// Freeze the simulator clock at this RFC 3339 time (to replay signed requests).
    #[arg(long)]
    pub fixed_clock: Option<chrono::DateTime<chrono::Utc>>,
    /// Fraction of requests refused with Throttling.User (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// With throttling: send `x-acs-retry-after: MS` (status 429, code Throttling).
    #[arg(long)]
    pub retry_after_ms: Option<u64>,
    /// Fraction of requests answered 500 InternalError.
    #[arg(long = "error-500-rate", default_value_t = 0.0)]
    pub error_500_rate: f64,
    /// Fraction of requests answered 503 ServiceUnavailable.
    #[arg(long = "error-503-rate", default_value_t = 0.0)]
    pub error_503_rate: f64,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// From page K on, answer with the request's own NextToken (a stuck cursor).
    #[arg(long, value_name = "K")]
    pub stuck_token_page: Option<u32>,
    /// Page K has no instances (but a NextToken).
    #[arg(long, value_name = "K")]
    pub empty_page: Option<u32>,
    /// The last instance of page K is repeated on page K+1.
    #[arg(long, value_name = "K")]
    pub duplicate_page: Option<u32>,
    /// Page K's JSON body is truncated.
    #[arg(long, value_name = "K")]
    pub malformed_json_page: Option<u32>,
    /// Page K is an HTML 502 page.
    #[arg(long = "html-502-page", value_name = "K")]
    pub html_502_page: Option<u32>,
    /// Every request for page K or later fails with 500 InternalError.
    #[arg(long, value_name = "K")]
    pub fail_from_page: Option<u32>,
    /// Page K ends the listing (empty NextToken) while TotalCount still counts
    /// the instances after it.
    #[arg(long, value_name = "K")]
    pub last_page_early: Option<u32>,
}

impl SimulateArgs {
    pub fn config(&self) -> anyhow::Result<SimulatorConfig> {
        anyhow::ensure!(!self.access_key_id.is_empty(), "--access-key-id is empty");
        let mut credentials =
            Credentials::new(self.access_key_id.clone(), self.access_key_secret.clone());
        if let Some(token) = &self.security_token {
            credentials = credentials.with_security_token(token.clone());
        }
        let mut config = SimulatorConfig {
            instances: self.instances,
            seed: self.seed,
            credentials: vec![credentials],
            clock: self.fixed_clock.map_or(Clock::System, Clock::Fixed),
            faults: Faults {
                seed: self.fault_seed,
                throttle_rate: self.throttle_rate,
                retry_after_ms: self.retry_after_ms,
                error_500_rate: self.error_500_rate,
                error_503_rate: self.error_503_rate,
                latency_ms: self.latency_ms,
                stuck_token_page: self.stuck_token_page,
                empty_page: self.empty_page,
                duplicate_page: self.duplicate_page,
                malformed_json_page: self.malformed_json_page,
                html_502_page: self.html_502_page,
                fail_from_page: self.fail_from_page,
                last_page_early: self.last_page_early,
            },
            ..SimulatorConfig::default()
        };
        config
            .faults
            .check(|field| format!("--{}", field.replace('_', "-")))
            .map_err(anyhow::Error::msg)?;
        if let Some(path) = &self.fleet_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--fleet-file {}: cannot read it", path.display()))?;
            let records = parse_fleet_file(&text)
                .map_err(|e| anyhow::anyhow!("--fleet-file {}: {e}", path.display()))?;
            let regions = regions_of(&records);
            let unplaced = records
                .iter()
                .filter(|r| region_of(&r.fields).is_none())
                .count();
            if unplaced > 0 {
                tracing::warn!(
                    records = unplaced,
                    "records without a RegionId: only a crawl without a region lists them"
                );
            }
            if !regions.is_empty() {
                config.regions = regions;
            }
            config.records = Some(records);
        }
        if !self.regions.is_empty() {
            config.regions = self.regions.clone();
        }
        Ok(config)
    }
}

/// Serves until Ctrl-C.
pub async fn run_cli(args: SimulateArgs) -> anyhow::Result<()> {
    // Flags that cannot make a simulator are a usage mistake: exit 2.
    let config = args
        .config()
        .map_err(|e| crate::error::ConfigError::new(format!("{e:#}")))?;
    if !args.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %args.listen,
            "listening beyond loopback: the control calls under /_sim/ are unsigned, so \
             whoever reaches this address can change the simulated fleet"
        );
    }
    let key_id = args.access_key_id.clone();
    let sim = Simulator::new(config);
    let running = sim
        .start(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let fleet = match &args.fleet_file {
        Some(path) => format!("{} instances from {}", sim.instance_count(), path.display()),
        None => format!("{} instances, seed {}", sim.instance_count(), sim.seed()),
    };
    say!(
        "simulator: eds-aic 2023-09-30 on {} ({fleet}), accepting access key id {key_id}; admin under {}/_sim/",
        running.endpoint(),
        running.endpoint()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags_become_a_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--instances",
            "5",
            "--regions",
            "cn-hangzhou,cn-beijing",
            "--access-key-id",
            "k",
            "--access-key-secret",
            "s",
            "--throttle-rate",
            "0.25",
            "--retry-after-ms",
            "200",
            "--html-502-page",
            "3",
        ])
        .unwrap();
        let config = cli.args.config().unwrap();
        assert_eq!(config.instances, 5);
        assert_eq!(config.regions, ["cn-hangzhou", "cn-beijing"]);
        assert_eq!(config.credentials[0].access_key_id, "k");
        assert_eq!(config.faults.throttle_rate, 0.25);
        assert_eq!(config.faults.retry_after_ms, Some(200));
        assert_eq!(config.faults.html_502_page, Some(3));
    }

    #[test]
    fn rates_out_of_range_are_refused_naming_the_flag() {
        let cli = Cli::try_parse_from(["x", "--error-503-rate", "1.5"]).unwrap();
        let err = cli.args.config().unwrap_err().to_string();
        assert!(err.contains("--error-503-rate"), "{err}");
    }
}
