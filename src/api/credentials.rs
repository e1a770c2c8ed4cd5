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

    pub fn with_security_token(mut self, token: impl Into<Secret>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// Reads the three standard environment variables. `Ok(None)` when the key pair
    /// is not set at all; an error naming the variable when only half of it is.
    pub fn from_env() -> Result<Option<Self>, String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (get(ENV_ACCESS_KEY_ID), get(ENV_ACCESS_KEY_SECRET)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(format!(
                "{ENV_ACCESS_KEY_ID} is set but {ENV_ACCESS_KEY_SECRET} is not; set both"
            )),
            (None, Some(_)) => Err(format!(
                "{ENV_ACCESS_KEY_SECRET} is set but {ENV_ACCESS_KEY_ID} is not; set both"
            )),
            (Some(id), Some(secret)) => {
                let mut c = Credentials::new(id, secret);
                c.security_token = get(ENV_SECURITY_TOKEN).map(Secret::new);
                Ok(Some(c))
            }
        }
    }
}
