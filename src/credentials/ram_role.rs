//! A RAM role assumed with other credentials: STS `AssumeRole`, signed with the
//! source credentials (an access key, or the STS credentials of another role),
//! refreshed before the session expires. This is what `aliyun configure --mode
//! RamRoleArn` sets up, and `type = ram_role_arn` in the credentials file.
//!
//! The call is an RPC-style GET signed with HMAC-SHA1 (the V1 signature), as
//! the SDKs send it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::cache::CredentialsCache;
use super::wire::{fetch_body, sts_client, sts_credentials, DEFAULT_DURATION_SECONDS};
use super::{Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};
use crate::api::sign::sign_v1;

/// What `AssumeRole` needs besides the source credentials.
#[derive(Clone, Debug)]
pub struct RamRoleConfig {
    /// `acs:ram::<account>:role/<name>`.
    pub role_arn: String,
    /// Shows up in ActionTrail as who assumed the role.
    pub role_session_name: String,
    pub duration_seconds: u32,
    /// Optional inline policy narrowing the role's permissions.
    pub policy: Option<String>,
    /// Required by roles whose trust policy asks for one.
    pub external_id: Option<String>,
    /// Base URL, e.g. `https://sts.cn-hangzhou.aliyuncs.com` or a loopback fake.
    pub sts_endpoint: String,
}

impl RamRoleConfig {
    pub fn new(role_arn: impl Into<String>, sts_endpoint: impl Into<String>) -> Self {
        RamRoleConfig {
            role_arn: role_arn.into(),
            role_session_name: format!("ecp-inventory-{}", Utc::now().timestamp()),
            duration_seconds: DEFAULT_DURATION_SECONDS,
            policy: None,
            external_id: None,
            sts_endpoint: sts_endpoint.into(),
        }
    }
}

/// STS credentials for a role, assumed with the credentials of `source`.
#[derive(Debug)]
pub struct RamRoleArnProvider {
    config: RamRoleConfig,
    source: Arc<dyn CredentialsProvider>,
    /// `ram_role_arn/<source>`, as the SDKs name it.
    name: String,
    http: reqwest::Client,
    cache: CredentialsCache,
}

impl RamRoleArnProvider {
    pub const NAME: &'static str = "ram_role_arn";

    pub fn new(
        config: RamRoleConfig,
        source: Arc<dyn CredentialsProvider>,
    ) -> Result<Self, CredentialsError> {
        if config.role_arn.is_empty() {
            return Err(CredentialsError::new(
                "a RAM role ARN is required to assume a role".to_owned(),
            ));
        }
        let http = sts_client("role", &config.sts_endpoint, config.duration_seconds)?;
        Ok(RamRoleArnProvider {
            name: format!("{}/{}", Self::NAME, source.name()),
            config,
            source,
            http,
            cache: CredentialsCache::default(),
        })
    }

    pub fn config(&self) -> &RamRoleConfig {
        &self.config
    }

    async fn assume_role(&self) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let role = &self.config.role_arn;
        let say = |detail: String| {
            format!(
                "STS AssumeRole for role {role} at {} failed: {detail}",
                self.config.sts_endpoint
            )
        };
        let fail = |detail: String| CredentialsError::new(say(detail));
        let source = self
            .source
            .credentials()
            .await
            .map_err(|e| e.map_message(|m| say(format!("no source credentials: {m}"))))?;

        let mut params: Vec<(String, String)> = [
            ("Action", "AssumeRole".to_owned()),
            ("Format", "JSON".to_owned()),
            ("Version", "2015-04-01".to_owned()),
            ("DurationSeconds", self.config.duration_seconds.to_string()),
            ("RoleArn", role.clone()),
            ("RoleSessionName", self.config.role_session_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_owned()),
            ("SignatureVersion", "1.0".to_owned()),
            (
                "Timestamp",
                Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ),
            (
                "SignatureNonce",
                format!("{:032x}", rand::rng().random::<u128>()),
            ),
            ("AccessKeyId", source.access_key_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in [
            ("Policy", &self.config.policy),
            ("ExternalId", &self.config.external_id),
        ] {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                params.push((key.to_owned(), value.clone()));
            }
        }
        if let Some(token) = &source.security_token {
            params.push(("SecurityToken".to_owned(), token.expose().to_owned()));
        }
        let signature = sign_v1("GET", &params, source.access_key_secret.expose()).signature;
        params.push(("Signature".to_owned(), signature));

        let mut url = reqwest::Url::parse(&self.config.sts_endpoint)
            .map_err(|e| fail(format!("bad endpoint: {e}")))?;
        url.set_path("/");
        url.query_pairs_mut().extend_pairs(&params);
        // The query holds the source's security token: fetch_body's errors never
        // quote the URL, but STS may quote the request back (its string to
        // sign), so the source's token and secret are hidden by value too.
        let token = source.security_token.as_ref().map(|t| t.expose());
        let secrets: Vec<&str> = token
            .into_iter()
            .chain([source.access_key_secret.expose()])
            .collect();
        let say = |detail: String| say(crate::secret::redact(&detail, &secrets));
        let body = fetch_body(self.http.get(url))
            .await
            .map_err(|e| e.map_message(say))?;
        sts_credentials(&body, "STS AssumeRole").map_err(|e| e.map_message(say))
    }
}

impl CredentialsProvider for RamRoleArnProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get_or_refresh(Self::NAME, || self.assume_role()))
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::credentials::StaticProvider;

    fn source() -> Arc<dyn CredentialsProvider> {
        Arc::new(StaticProvider::new(
            Credentials::new("AK", "secret"),
            "static_ak",
        ))
    }

    #[test]
    fn a_role_and_a_long_enough_session_are_required() {
        let e =
            RamRoleArnProvider::new(RamRoleConfig::new("", "https://sts.aliyuncs.com"), source())
                .unwrap_err();
        assert!(e.0.contains("ARN"), "{e}");
        let mut c = RamRoleConfig::new("acs:ram::1:role/r", "https://sts.aliyuncs.com");
        c.duration_seconds = 60;
        assert!(RamRoleArnProvider::new(c, source())
            .unwrap_err()
            .0
            .contains("900"));
        let c = RamRoleConfig::new("acs:ram::1:role/r", "https://sts.aliyuncs.com");
        let p = RamRoleArnProvider::new(c, source()).unwrap();
        assert_eq!(p.name(), "ram_role_arn/static_ak");
    }
}
