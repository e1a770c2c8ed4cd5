//! The last link of the chain: a local credentials endpoint named by
//! `ALIBABA_CLOUD_CREDENTIALS_URI` (a sidecar or agent), answering with the same
//! JSON as the ECS metadata service.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::cache::CredentialsCache;
use super::settings::vars;
use super::wire::{fetch_body, MetadataCredentials};
use super::{ChainSettings, Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// STS credentials from `GET <uri>`, refreshed before they expire.
pub struct UriProvider {
    uri: String,
    /// The URI as messages name it: without its query or user info, where a
    /// sidecar may put a token.
    shown: String,
    /// That query, its values and the password: hidden in whatever an answer
    /// quotes back.
    secrets: Vec<String>,
    http: reqwest::Client,
    cache: CredentialsCache,
}

/// The URI as messages show it: its query or user info may carry a token.
impl std::fmt::Debug for UriProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UriProvider")
            .field("uri", &self.shown)
            .finish_non_exhaustive()
    }
}

impl UriProvider {
    pub const NAME: &'static str = "credentials_uri";

    pub fn new(uri: impl Into<String>) -> Result<Self, CredentialsError> {
        let uri = uri.into();
        let mut shown = reqwest::Url::parse(&uri).map_err(|e| {
            // Not the value: it may hold a token.
            CredentialsError::new(format!("credentials URI is not a URL: {e}"))
        })?;
        let secrets: Vec<String> = shown
            .query()
            .into_iter()
            .chain(shown.password())
            .map(str::to_owned)
            .chain(shown.query_pairs().map(|(_, v)| v.into_owned()))
            .collect();
        let hidden = shown.query().is_some() || !shown.username().is_empty();
        shown.set_query(None);
        shown.set_fragment(None);
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let shown = if hidden {
            format!("{shown} (query and user info not shown)")
        } else {
            shown.to_string()
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(super::USER_AGENT)
            // Secrets travel in this exchange: never to another address.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CredentialsError::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(UriProvider {
            uri,
            shown,
            secrets,
            http,
            cache: CredentialsCache::default(),
        })
    }

    /// `Ok(None)` when `ALIBABA_CLOUD_CREDENTIALS_URI` is not set.
    pub fn from_settings(settings: &ChainSettings) -> Result<Option<Self>, CredentialsError> {
        settings
            .var(vars::CREDENTIALS_URI)
            .map(UriProvider::new)
            .transpose()
    }

    async fn fetch(&self) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let say = |detail: String| {
            let detail = crate::secret::redact(&detail, &secrets);
            format!("GET {} failed: {detail}", self.shown)
        };
        let body = fetch_body(self.http.get(&self.uri))
            .await
            .map_err(|e| e.map_message(say))?;
        MetadataCredentials::parse(&body, &format!("credentials URI {}", self.shown))
    }
}

impl CredentialsProvider for UriProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get_or_refresh(Self::NAME, || self.fetch()))
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}
