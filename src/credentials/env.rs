//! The first link of the chain: a key pair (and optional STS token) in
//! `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and
//! `ALIBABA_CLOUD_SECURITY_TOKEN`.

use super::settings::vars;
use super::{ChainSettings, Credentials, CredentialsError, CredentialsFuture, CredentialsProvider};
use crate::secret::Secret;

/// Credentials from the environment, read once when the provider is built (the
/// environment of a running batch job does not change).
#[derive(Clone, Debug)]
pub struct EnvProvider {
    found: Result<Credentials, String>,
}

impl EnvProvider {
    pub const NAME: &'static str = "env";

    pub fn from_process_env() -> Self {
        Self::from_settings(&ChainSettings::from_process_env())
    }

    pub fn from_settings(settings: &ChainSettings) -> Self {
        let id = settings.var(vars::ACCESS_KEY_ID);
        let secret = settings.var(vars::ACCESS_KEY_SECRET);
        let found = match (id, secret) {
            (Some(id), Some(secret)) => {
                let mut c = Credentials::new(id, Secret::new(secret));
                c.security_token = settings.var(vars::SECURITY_TOKEN).map(Secret::new);
                Ok(c)
            }
            (None, None) => Err(format!(
                "{} and {} are not set",
                vars::ACCESS_KEY_ID,
                vars::ACCESS_KEY_SECRET
            )),
            (Some(_), None) => Err(format!(
                "{} is set but {} is not; set both",
                vars::ACCESS_KEY_ID,
                vars::ACCESS_KEY_SECRET
            )),
            (None, Some(_)) => Err(format!(
                "{} is set but {} is not; set both",
                vars::ACCESS_KEY_SECRET,
                vars::ACCESS_KEY_ID
            )),
        };
        EnvProvider { found }
    }
}

impl CredentialsProvider for EnvProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        let result = self.found.clone().map_err(CredentialsError::new);
        Box::pin(async move { result })
    }

    fn name(&self) -> &str {
        Self::NAME
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_pair_and_optional_token() {
        let s = ChainSettings::from_vars([
            (vars::ACCESS_KEY_ID, "LTAIexample"),
            (vars::ACCESS_KEY_SECRET, "env-secret-value"),
        ]);
        let c = EnvProvider::from_settings(&s).credentials().await.unwrap();
        assert_eq!(c.access_key_id, "LTAIexample");
        assert_eq!(c.access_key_secret.expose(), "env-secret-value");
        assert!(c.security_token.is_none());

        let s = s.with_var(vars::SECURITY_TOKEN, "env-token-value");
        let p = EnvProvider::from_settings(&s);
        let c = p.credentials().await.unwrap();
        assert_eq!(c.security_token.unwrap().expose(), "env-token-value");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("env-secret-value") && !dbg.contains("env-token-value"));
    }

    #[tokio::test]
    async fn missing_or_half_set_pair_is_an_error_naming_the_variables() {
        let e = EnvProvider::from_settings(&ChainSettings::default())
            .credentials()
            .await
            .unwrap_err();
        assert!(e.0.contains(vars::ACCESS_KEY_ID) && e.0.contains(vars::ACCESS_KEY_SECRET));

        let s = ChainSettings::from_vars([(vars::ACCESS_KEY_ID, "LTAIexample")]);
        let e = EnvProvider::from_settings(&s)
            .credentials()
            .await
            .unwrap_err();
        assert!(e.0.contains("set both"), "{e}");
    }
}
