//! The RAM role attached to an ECS instance, read from the instance metadata
//! service (IMDS) at 100.100.100.200, preferring the hardened IMDSv2 flow (a
//! session token from `PUT /latest/api/token`) and falling back to plain GETs
//! unless that is disabled.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::cache::CredentialsCache;
use super::settings::vars;
use super::wire::{describe_transport_error, fetch_body, MetadataCredentials};
use super::{ChainSettings, Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};

pub(crate) const DEFAULT_IMDS_ENDPOINT: &str = "http://100.100.100.200";
/// The SDKs' timeouts: the service is link-local, so anything slower means it is
/// not there (a laptop, a container outside ECS) and the chain should move on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Six hours, the SDKs' choice; a token is fetched per refresh anyway.
const TOKEN_TTL_SECONDS: &str = "21600";
const TOKEN_PATH: &str = "/latest/api/token";
const ROLES_PATH: &str = "/latest/meta-data/ram/security-credentials/";
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";

/// STS credentials of the instance's RAM role, refreshed before they expire.
#[derive(Debug)]
pub struct EcsRamRoleProvider {
    base_url: String,
    /// Configured, or found by listing once and then kept.
    role_name: OnceLock<String>,
    /// The service has answered with credentials: this is an ECS instance, and
    /// the service out of reach later is an outage, not a wrong guess.
    answered: AtomicBool,
    imdsv1_disabled: bool,
    http: reqwest::Client,
    cache: CredentialsCache,
}

impl EcsRamRoleProvider {
    pub const NAME: &'static str = "ecs_ram_role";

    /// `base_url` is normally [`ChainSettings::imds_endpoint`] (`http://100.100.100.200`).
    pub fn new(base_url: impl Into<String>) -> Result<Self, CredentialsError> {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base_url).map_err(|e| {
            CredentialsError::new(format!(
                "ECS metadata endpoint {base_url:?} is not a URL: {e}"
            ))
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            // A proxy cannot reach the instance's link-local address.
            .no_proxy()
            .user_agent(super::USER_AGENT)
            // Secrets travel in this exchange: never to another address.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                CredentialsError::new(format!(
                    "cannot build the HTTP client for ECS metadata: {e}"
                ))
            })?;
        Ok(EcsRamRoleProvider {
            base_url,
            role_name: OnceLock::new(),
            answered: AtomicBool::new(false),
            imdsv1_disabled: false,
            http,
            cache: CredentialsCache::default(),
        })
    }

    /// Skips listing the roles attached to the instance.
    pub fn with_role_name(mut self, role: impl Into<String>) -> Self {
        self.role_name = OnceLock::from(role.into());
        self
    }

    /// Fail instead of falling back to token-less requests when no token is had.
    pub fn with_imdsv1_disabled(mut self, disabled: bool) -> Self {
        self.imdsv1_disabled = disabled;
        self
    }

    /// From `ALIBABA_CLOUD_ECS_METADATA` (role name), `ALIBABA_CLOUD_IMDSV1_DISABLED`
    /// and the endpoint override. `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true`
    /// refuses it, as the SDKs' provider does: a profile naming the ECS role must
    /// not probe the metadata service either.
    pub fn from_settings(settings: &ChainSettings) -> Result<Self, CredentialsError> {
        if settings.flag(vars::ECS_METADATA_DISABLED) {
            return Err(CredentialsError::new(format!(
                "the ECS RAM role is disabled by {}=true",
                vars::ECS_METADATA_DISABLED
            )));
        }
        let mut provider = EcsRamRoleProvider::new(settings.imds_endpoint())?
            .with_imdsv1_disabled(settings.flag(vars::IMDSV1_DISABLED));
        if let Some(role) = settings.var(vars::ECS_METADATA) {
            provider = provider.with_role_name(role);
        }
        Ok(provider)
    }

    async fn fetch(&self) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let (token, why_none) = match self.session_token().await? {
            Ok(token) => (Some(token), None),
            Err(why) => (None, Some(why)),
        };
        // A request without a token that fails says why there was none: on an
        // instance that requires IMDSv2 the refusal is the token's failure.
        let without_token = |e: CredentialsError| match &why_none {
            Some(why) => {
                e.map_message(|m| format!("{m} (asked without a token: getting one failed: {why})"))
            }
            None => e,
        };
        self.fetch_with(token.as_deref())
            .await
            .map_err(without_token)
    }

    async fn fetch_with(
        &self,
        token: Option<&str>,
    ) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let role = match self.role_name.get() {
            Some(role) => role.clone(),
            None => {
                let role = self.discover_role(token).await?;
                self.role_name.get_or_init(|| role).clone()
            }
        };
        let path = format!("{ROLES_PATH}{role}");
        let body = self.get(&path, token).await?;
        let fetched =
            MetadataCredentials::parse(&body, &format!("ECS metadata for RAM role {role}"))?;
        self.answered.store(true, Ordering::Relaxed);
        Ok(fetched)
    }

    /// The IMDSv2 session token, or why there is none, to carry on without one
    /// (IMDSv1).
    async fn session_token(&self) -> Result<Result<String, String>, CredentialsError> {
        let url = format!("{}{TOKEN_PATH}", self.base_url);
        let response = self
            .http
            .put(&url)
            .header(TOKEN_TTL_HEADER, TOKEN_TTL_SECONDS)
            .send()
            .await;
        let mut may_pass = false;
        let why = match response {
            // Nothing answering at all: no point in trying IMDSv1 at the same address.
            // Before the service ever answered, that means "not on ECS"; after, it
            // is down for a moment, and asking again may work. A service that took
            // the connection but did not answer the PUT in time is asked without a
            // token (below), as the SDKs do on any failure of the PUT.
            Err(e) if e.is_connect() => {
                let message = format!(
                    "ECS metadata service at {} is unreachable (not on ECS?): {}",
                    self.base_url,
                    describe_transport_error(e)
                );
                return Err(if self.answered.load(Ordering::Relaxed) {
                    CredentialsError::transient(message)
                } else {
                    CredentialsError::new(message)
                });
            }
            Err(e) => {
                // A moment's trouble once the service has answered: with IMDSv1
                // refused below, the refresh is then retried rather than failed.
                may_pass = e.is_timeout() && self.answered.load(Ordering::Relaxed);
                describe_transport_error(e)
            }
            Ok(response) if response.status().is_success() => {
                let token = response.text().await.map_err(|e| {
                    CredentialsError::new(format!(
                        "reading the ECS metadata token failed: {}",
                        describe_transport_error(e)
                    ))
                })?;
                let token = token.trim();
                if !token.is_empty() {
                    return Ok(Ok(token.to_owned()));
                }
                "the token was empty".to_owned()
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
        };
        if self.imdsv1_disabled {
            let message = format!(
                "getting an ECS metadata token from {url} failed ({why}) and {}=true forbids \
                 requests without one",
                vars::IMDSV1_DISABLED
            );
            return Err(if may_pass {
                CredentialsError::transient(message)
            } else {
                CredentialsError::new(message)
            });
        }
        tracing::debug!(reason = %why, "no ECS metadata token; continuing without (IMDSv1)");
        Ok(Err(why))
    }

    async fn discover_role(&self, token: Option<&str>) -> Result<String, CredentialsError> {
        let body = self.get(ROLES_PATH, token).await?;
        let listing = String::from_utf8_lossy(&body);
        // One role per instance; take the first line should the service list more.
        match listing.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(role) => Ok(role.to_owned()),
            None => Err(CredentialsError::new(format!(
                "no RAM role is attached to this ECS instance ({}{ROLES_PATH} is empty); \
                 attach one or set {}",
                self.base_url,
                vars::ECS_METADATA
            ))),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<Vec<u8>, CredentialsError> {
        let url = format!("{}{path}", self.base_url);
        let mut request = self.http.get(&url);
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token);
        }
        fetch_body(request)
            .await
            .map_err(|e| e.map_message(|detail| format!("GET {url} failed: {detail}")))
    }
}

impl CredentialsProvider for EcsRamRoleProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get_or_refresh(Self::NAME, || self.fetch()))
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}
