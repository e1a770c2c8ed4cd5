//! Flags shared by every subcommand that calls the API.

use std::sync::Arc;

use crate::api::client::DEFAULT_ENDPOINT;
use crate::api::credentials::CredentialsProvider;
use crate::api::model::{DescribeAndroidInstancesRequest, Tag, CHARGE_TYPES, STATUSES};
use crate::api::ratelimit::RateLimiter;
use crate::api::retry::RetryPolicy;
use crate::api::{Client, ClientConfig};
use crate::crawl::{CrawlOptions, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE};
use crate::credentials::DefaultChain;
use crate::error::ConfigError;
use tracing::warn;

#[derive(Clone, Debug, clap::Args)]
pub struct ApiArgs {
    /// The API endpoint. http is accepted, for a simulator on loopback.
    #[arg(long, env = "ECP_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// Instances per page (MaxResults), 1 to 100.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub page_size: u32,

    /// Stop with an error after this many pages of one scope (a cursor that never
    /// ends would otherwise loop forever).
    #[arg(long, default_value_t = DEFAULT_MAX_PAGES, value_parser = parse_max_pages)]
    pub max_pages: u64,

    /// Seconds allowed for one HTTP attempt.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_secs: f64,

    /// Attempts per call, the first included; throttling, 5xx and network errors
    /// are retried with exponential back-off.
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts)]
    pub max_attempts: u32,

    /// Longest time one call may spend retrying, in seconds.
    #[arg(long, default_value_t = RetryPolicy::default().max_elapsed.as_secs_f64())]
    pub max_retry_secs: f64,

    /// Requests per second at most, shared by all concurrent crawls of a run.
    #[arg(long, default_value_t = 10.0)]
    pub rate_limit: f64,
}

impl ApiArgs {
    pub fn client_config(&self) -> Result<ClientConfig, ConfigError> {
        let timeout = super::seconds("--timeout-secs", self.timeout_secs, false)?;
        let max_elapsed = super::seconds("--max-retry-secs", self.max_retry_secs, false)?;
        let rate = crate::api::ratelimit::check_rate("--rate-limit", self.rate_limit)
            .map_err(ConfigError::new)?;
        if self.max_attempts == 0 {
            return Err(ConfigError::new("--max-attempts must be at least 1"));
        }
        Ok(ClientConfig {
            endpoint: self.endpoint.clone(),
            timeout,
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                max_elapsed,
                ..RetryPolicy::default()
            },
            rate_limiter: Some(Arc::new(RateLimiter::new(rate))),
            stats: Arc::default(),
        })
    }

    pub fn crawl_options(&self) -> CrawlOptions {
        CrawlOptions {
            page_size: self.page_size,
            max_pages: self.max_pages,
        }
    }

    /// A client whose credentials come from the SDKs' default chain (environment,
    /// RRSA, the aliyun CLI's profile, the credentials file, the ECS RAM role). The chain is asked once
    /// here, so missing credentials fail before any work, naming every place looked.
    /// A credentials service that is down (STS for RRSA, say) is no such mistake:
    /// the requests ask again under the retry policy, and a run that cannot get
    /// past it fails as any outage does (exit 1), recorded in the ledger.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let chain = DefaultChain::from_process_env();
        match chain.credentials().await {
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                warn!(error = %e, "no credentials yet; each request asks again while it is retried");
            }
            Err(e) => return Err(ConfigError::new(format!("no usable credentials: {e}")).into()),
        }
        let provider: Arc<dyn CredentialsProvider> = chain.into();
        let client = Client::new(provider, self.client_config()?).map_err(ConfigError::from)?;
        Ok(client)
    }
}

/// Filters narrow a crawl. A filtered crawl is never taken as evidence that an
/// instance it did not return was deleted.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FilterArgs {
    /// Only instances in this state (RUNNING, STOPPED, ...).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: Option<String>,
    /// Only these instances (repeatable).
    #[arg(long = "instance-id", value_name = "ID")]
    pub instance_ids: Vec<String>,
    /// Only instances of these groups (repeatable).
    #[arg(long = "instance-group-id", value_name = "ID")]
    pub instance_group_ids: Vec<String>,
    /// Only instances carrying this tag, as KEY=VALUE or KEY (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = Tag::parse_filter)]
    pub tags: Vec<Tag>,
    /// Only PrePaid or PostPaid instances.
    #[arg(long, value_parser = CHARGE_TYPES)]
    pub charge_type: Option<String>,
    /// Only instances with this name.
    #[arg(long)]
    pub instance_name: Option<String>,
}

impl FilterArgs {
    pub fn request(&self, biz_region_id: Option<&str>) -> DescribeAndroidInstancesRequest {
        DescribeAndroidInstancesRequest {
            biz_region_id: biz_region_id.map(str::to_owned),
            status: self.status.clone(),
            android_instance_ids: self.instance_ids.clone(),
            instance_group_ids: self.instance_group_ids.clone(),
            tag: self.tags.clone(),
            charge_type: self.charge_type.clone(),
            android_instance_name: self.instance_name.clone(),
            ..Default::default()
        }
    }
}

fn parse_max_pages(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a number of pages")),
    }
}
