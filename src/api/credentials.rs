//! The key pair (and optional STS token) a request is signed with.

use crate::secret::Secret;

/// Environment variables read by every Alibaba Cloud SDK's default chain.
pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Not secret on its own (it is sent in clear in every Authorization header).
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// Present for STS credentials (`STS.` access key ids).
    pub security_token: Option<Secret>,
}

impl Credentials {
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<Secret>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
        }
    }

    /// The secret and the security token, to keep out of what is shown.
    pub fn secrets(&self) -> Vec<&str> {
        std::iter::once(self.access_key_secret.expose())
            .chain(self.security_token.as_ref().map(Secret::expose))
            .collect()
    }

    pub fn with_security_token(mut self, token: impl Into<Secret>) -> Self {
        self.security_token = Some(token.into());
        self
    }
}

/// Why no credentials could be had, and whether that may pass on its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String, Persistence);

/// Whether asking again may help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persistence {
    /// Only a change of configuration helps: nothing configured, a file or
    /// variable wrong, credentials the service refused.
    Lasting,
    /// The credentials service could not be reached, timed out, throttled or
    /// failed on its side (HTTP 5xx): the same request may work in a moment.
    Passing,
}

impl CredentialsError {
    /// A failure that only a change of configuration fixes.
    pub fn new(message: impl Into<String>) -> Self {
        CredentialsError(message.into(), Persistence::Lasting)
    }

    /// A failure of the credentials service that may pass (see [`Self::is_transient`]).
    pub fn transient(message: impl Into<String>) -> Self {
        CredentialsError(message.into(), Persistence::Passing)
    }

    /// The credentials service was unreachable or failed on its side: asking
    /// again later may work, and the configuration is not known to be wrong.
    pub fn is_transient(&self) -> bool {
        self.1 == Persistence::Passing
    }

    /// The same failure, its message rewritten (usually to say what was being done).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        CredentialsError(f(self.0), self.1)
    }
}

/// The boxed future a provider returns (object-safe without extra crates).
pub type CredentialsFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Credentials, CredentialsError>> + Send + 'a>,
>;

/// Something that yields credentials, possibly fetching or refreshing them (STS
/// through OIDC, the ECS metadata service). The client asks before every attempt,
/// so a provider must cache and refresh on its own schedule.
pub trait CredentialsProvider: Send + Sync + std::fmt::Debug {
    fn credentials(&self) -> CredentialsFuture<'_>;
    /// A short name for logs and `x-acs-credentials-provider` (e.g. `env`, `oidc_role_arn`).
    fn name(&self) -> &str;
}

/// Fixed credentials: a key pair, or an STS triple, known up front.
#[derive(Clone, Debug)]
pub struct StaticProvider {
    credentials: Credentials,
    name: String,
}

impl StaticProvider {
    pub fn new(credentials: Credentials, name: impl Into<String>) -> Self {
        StaticProvider {
            credentials,
            name: name.into(),
        }
    }
}

impl CredentialsProvider for StaticProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let c = self.credentials.clone();
        Box::pin(async move { Ok(c) })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl From<Credentials> for std::sync::Arc<dyn CredentialsProvider> {
    fn from(c: Credentials) -> Self {
        let name = if c.security_token.is_some() {
            "static_sts"
        } else {
            "static_ak"
        };
        std::sync::Arc::new(StaticProvider::new(c, name))
    }
}
