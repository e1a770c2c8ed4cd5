//! RRSA on Kubernetes (ACK): exchanging the pod's projected OIDC token for STS
//! credentials with `AssumeRoleWithOIDC`, and refreshing them before they expire.
//! The call is unsigned; the token itself is the proof of identity.

use chrono::{DateTime, Utc};
use std::path::PathBuf;

use super::cache::CredentialsCache;
use super::settings::vars;
use super::wire::{fetch_body, sts_client, sts_credentials, DEFAULT_DURATION_SECONDS};
use super::{ChainSettings, Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};

/// What `AssumeRoleWithOIDC` needs. Build it by hand, or from the RRSA variables
/// that ACK injects into the pod with [`OidcConfig::from_settings`].
#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    /// Read again on every refresh: the kubelet rotates the token in place.
    pub token_file: PathBuf,
    /// Shows up in ActionTrail as who assumed the role.
    pub role_session_name: String,
    /// Base URL, e.g. `https://sts.cn-hangzhou.aliyuncs.com` or a loopback fake.
    pub sts_endpoint: String,
    pub duration_seconds: u32,
    /// Optional inline policy narrowing the role's permissions.
    pub policy: Option<String>,
}

impl OidcConfig {
    pub fn new(
        role_arn: impl Into<String>,
        oidc_provider_arn: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> Self {
        OidcConfig {
            role_arn: role_arn.into(),
            oidc_provider_arn: oidc_provider_arn.into(),
            token_file: token_file.into(),
            role_session_name: default_session_name(),
            sts_endpoint: ChainSettings::default().sts_endpoint(),
            duration_seconds: DEFAULT_DURATION_SECONDS,
            policy: None,
        }
    }

    /// `None` unless all three of `ALIBABA_CLOUD_ROLE_ARN`,
    /// `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` and `ALIBABA_CLOUD_OIDC_TOKEN_FILE` are set.
    pub fn from_settings(settings: &ChainSettings) -> Option<Self> {
        let mut config = OidcConfig::new(
            settings.var(vars::ROLE_ARN)?,
            settings.var(vars::OIDC_PROVIDER_ARN)?,
            settings.var(vars::OIDC_TOKEN_FILE)?,
        );
        if let Some(name) = settings.var(vars::ROLE_SESSION_NAME) {
            config.role_session_name = name.to_owned();
        }
        config.sts_endpoint = settings.sts_endpoint();
        Some(config)
    }

    pub fn with_sts_endpoint(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint = url.into();
        self
    }
}

fn default_session_name() -> String {
    format!("ecp-inventory-{}", Utc::now().timestamp())
}

/// STS credentials for a RAM role, assumed with the pod's OIDC token.
#[derive(Debug)]
pub struct OidcProvider {
    config: OidcConfig,
    http: reqwest::Client,
    cache: CredentialsCache,
}

impl OidcProvider {
    pub const NAME: &'static str = "oidc_role_arn";

    pub fn new(config: OidcConfig) -> Result<Self, CredentialsError> {
        let http = sts_client("OIDC", &config.sts_endpoint, config.duration_seconds)?;
        Ok(OidcProvider {
            config,
            http,
            cache: CredentialsCache::default(),
        })
    }

    /// `Ok(None)` when the RRSA variables are not all set.
    pub fn from_settings(settings: &ChainSettings) -> Result<Option<Self>, CredentialsError> {
        OidcConfig::from_settings(settings)
            .map(OidcProvider::new)
            .transpose()
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn assume_role(&self) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let token = self.read_token().await?;
        let role = &self.config.role_arn;
        let say = |detail: String| {
            // STS does not echo the token today; make sure it never can reach a log.
            let detail = crate::secret::redact(&detail, &[&token]);
            format!(
                "STS AssumeRoleWithOIDC for role {role} at {} failed: {detail}",
                self.config.sts_endpoint
            )
        };
        let fail = |detail: String| CredentialsError::new(say(detail));

        let mut url = reqwest::Url::parse(&self.config.sts_endpoint)
            .map_err(|e| fail(format!("bad endpoint: {e}")))?;
        url.set_path("/");
        {
            let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let duration = self.config.duration_seconds.to_string();
            let mut query = url.query_pairs_mut();
            query
                .append_pair("Action", "AssumeRoleWithOIDC")
                .append_pair("Format", "JSON")
                .append_pair("Version", "2015-04-01")
                .append_pair("Timestamp", &timestamp)
                .append_pair("DurationSeconds", &duration)
                .append_pair("RoleArn", role)
                .append_pair("OIDCProviderArn", &self.config.oidc_provider_arn)
                .append_pair("OIDCToken", &token)
                .append_pair("RoleSessionName", &self.config.role_session_name);
            if let Some(policy) = &self.config.policy {
                query.append_pair("Policy", policy);
            }
        }

        let body = fetch_body(self.http.get(url))
            .await
            .map_err(|e| e.map_message(say))?;
        sts_credentials(&body, "STS AssumeRoleWithOIDC").map_err(|e| e.map_message(say))
    }

    async fn read_token(&self) -> Result<String, CredentialsError> {
        let path = &self.config.token_file;
        let token = tokio::fs::read_to_string(path).await.map_err(|e| {
            CredentialsError::new(format!(
                "cannot read the OIDC token file {} ({}): {e}",
                path.display(),
                vars::OIDC_TOKEN_FILE
            ))
        })?;
        // A JWT has no whitespace; a trailing newline from an editor or `echo` is noise.
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(CredentialsError::new(format!(
                "the OIDC token file {} is empty",
                path.display()
            )));
        }
        Ok(token)
    }
}

impl CredentialsProvider for OidcProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get_or_refresh(Self::NAME, || self.assume_role()))
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_needs_all_three_variables() {
        let s = ChainSettings::from_vars([
            (vars::ROLE_ARN, "acs:ram::1:role/r"),
            (vars::OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
        ]);
        assert!(OidcConfig::from_settings(&s).is_none());
        let s = s
            .with_var(vars::OIDC_TOKEN_FILE, "/var/run/token")
            .with_var(vars::ROLE_SESSION_NAME, "sess")
            .with_var(vars::STS_REGION, "cn-beijing");
        let c = OidcConfig::from_settings(&s).unwrap();
        assert_eq!(c.role_session_name, "sess");
        assert_eq!(c.sts_endpoint, "https://sts.cn-beijing.aliyuncs.com");
        assert_eq!(c.duration_seconds, 3600);
    }

    #[test]
    fn short_sessions_are_rejected() {
        let mut c = OidcConfig::new("r", "p", "/t");
        c.duration_seconds = 60;
        assert!(OidcProvider::new(c).unwrap_err().0.contains("900"));
    }
}
