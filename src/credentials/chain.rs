//! The default chain, in the SDKs' order: environment → OIDC/RRSA (only when its
//! three variables are set) → aliyun CLI profile → credentials file → ECS RAM
//! role (unless disabled) → credentials URI (only when set). The first provider that yields credentials
//! is kept for the life of the chain; if none does, one error gives every reason.

use std::sync::{Arc, OnceLock};

use super::settings::vars;
use super::{
    ChainSettings, CliProfileProvider, Credentials, CredentialsError, CredentialsFuture,
    CredentialsProvider, EcsRamRoleProvider, EnvProvider, OidcProvider, ProfileFileProvider,
    UriProvider,
};

/// How to get out of "no credentials", appended to the chain's error.
const HOW_TO_FIX: &str = "To fix: set ALIBABA_CLOUD_ACCESS_KEY_ID and \
    ALIBABA_CLOUD_ACCESS_KEY_SECRET (plus ALIBABA_CLOUD_SECURITY_TOKEN for STS \
    credentials); or, on ACK with RRSA, ALIBABA_CLOUD_ROLE_ARN, \
    ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE; or create a \
    profile with `aliyun configure`, or a section in ~/.alibabacloud/credentials.ini \
    (pick either with ALIBABA_CLOUD_PROFILE); or run on an ECS instance with a RAM role \
    attached.";

const NAME_PREFIX: &str = "default";

/// Finds credentials on first use and then sticks with the provider that gave them.
#[derive(Debug)]
pub struct DefaultChain {
    settings: ChainSettings,
    /// The winning provider and the chain's name for it (`default/<provider>`).
    chosen: OnceLock<(Arc<dyn CredentialsProvider>, String)>,
    /// Held while resolving, so concurrent first calls probe the providers once.
    resolving: tokio::sync::Mutex<()>,
}

impl DefaultChain {
    pub fn new(settings: ChainSettings) -> Self {
        DefaultChain {
            settings,
            chosen: OnceLock::new(),
            resolving: tokio::sync::Mutex::new(()),
        }
    }

    /// The chain over this process's environment and home directory.
    pub fn from_process_env() -> Self {
        Self::new(ChainSettings::from_process_env())
    }

    pub fn settings(&self) -> &ChainSettings {
        &self.settings
    }

    /// The provider in use, once credentials have been found.
    pub fn chosen(&self) -> Option<&Arc<dyn CredentialsProvider>> {
        self.chosen.get().map(|(p, _)| p)
    }

    async fn get(&self) -> Result<Credentials, CredentialsError> {
        if let Some((provider, _)) = self.chosen.get() {
            return provider.credentials().await;
        }
        let _resolving = self.resolving.lock().await;
        if let Some((provider, _)) = self.chosen.get() {
            return provider.credentials().await;
        }
        let (provider, credentials, skipped) = self.resolve().await?;
        let name = format!("{NAME_PREFIX}/{}", provider.name());
        // Why the providers before it gave none, said where it shows: a broken
        // file of an earlier one (a malformed CLI config, a mode not supported)
        // silently makes the job run as another identity otherwise.
        tracing::info!(provider = %name, skipped = %skipped.join("; "),
                       "using credentials from the default chain");
        if provider.name() != EnvProvider::NAME {
            if let Some(half) = half_set_env_pair(&self.settings) {
                tracing::warn!(provider = %name,
                    "{half}: the environment's key was not used, and the credentials come \
                     from {name} instead (another account's?); set both variables, or neither");
            }
        }
        let _ = self.chosen.set((provider, name));
        Ok(credentials)
    }

    /// Tries each provider in order; the first with credentials wins. When none
    /// does and one of them failed for a reason that may pass (its credentials
    /// service unreachable or failing), the error is transient: nothing is
    /// chosen, so the next call resolves again.
    async fn resolve(
        &self,
    ) -> Result<(Arc<dyn CredentialsProvider>, Credentials, Vec<String>), CredentialsError> {
        let mut reasons: Vec<String> = Vec::new();
        let mut passing: Option<&str> = None;
        for (name, build) in STEPS {
            let provider = match build(&self.settings) {
                Ok(provider) => provider,
                Err(why) => {
                    reasons.push(format!("{name}: {why}"));
                    continue;
                }
            };
            match provider.credentials().await {
                Ok(credentials) => return Ok((provider, credentials, reasons)),
                Err(e) => {
                    tracing::debug!(provider = name, reason = %e, "no credentials from this provider");
                    if e.is_transient() {
                        passing.get_or_insert(name);
                    }
                    reasons.push(format!("{name}: {e}"));
                }
            }
        }
        let tried = reasons.join("; ");
        Err(match passing {
            Some(name) => CredentialsError::transient(format!(
                "no Alibaba Cloud credentials from the default chain for now: the {name} \
                 provider's service did not answer or failed, which may pass (the request \
                 is retried). Tried, in order: {tried}. If it lasts, check that the service \
                 named there is reachable from here."
            )),
            None => CredentialsError::new(format!(
                "no Alibaba Cloud credentials found by the default chain. Tried, in order: \
                 {tried}. {HOW_TO_FIX}"
            )),
        })
    }
}

/// One variable of the environment's key pair set without the other, said: the
/// chain then moves on, as the SDKs' does, and may find another identity's
/// credentials (a profile of another account), whose instances would be stored
/// under this run's source.
fn half_set_env_pair(settings: &ChainSettings) -> Option<String> {
    let id = settings.var(vars::ACCESS_KEY_ID).is_some();
    let secret = settings.var(vars::ACCESS_KEY_SECRET).is_some();
    let (set, unset) = match (id, secret) {
        (true, false) => (vars::ACCESS_KEY_ID, vars::ACCESS_KEY_SECRET),
        (false, true) => (vars::ACCESS_KEY_SECRET, vars::ACCESS_KEY_ID),
        _ => return None,
    };
    Some(format!("{set} is set but {unset} is not"))
}

/// Builds a provider from the settings, or says why it does not apply.
type Step = fn(&ChainSettings) -> Result<Arc<dyn CredentialsProvider>, String>;

/// The chain, in the SDKs' order. Providers are built only when reached, so a
/// working environment never reads the CLI config or probes the metadata service.
const STEPS: [(&str, Step); 6] = [
    (EnvProvider::NAME, |s| {
        Ok(Arc::new(EnvProvider::from_settings(s)))
    }),
    (OidcProvider::NAME, |s| {
        match OidcProvider::from_settings(s) {
            Ok(Some(p)) => Ok(Arc::new(p)),
            Ok(None) => Err(format!(
                "not configured ({}, {} and {} are not all set)",
                vars::ROLE_ARN,
                vars::OIDC_PROVIDER_ARN,
                vars::OIDC_TOKEN_FILE
            )),
            Err(e) => Err(e.0),
        }
    }),
    (CliProfileProvider::NAME_PREFIX, |s| {
        CliProfileProvider::from_settings(s)
            .map(|p| Arc::new(p) as Arc<dyn CredentialsProvider>)
            .map_err(|e| e.0)
    }),
    (ProfileFileProvider::NAME_PREFIX, |s| {
        ProfileFileProvider::from_settings(s)
            .map(|p| Arc::new(p) as Arc<dyn CredentialsProvider>)
            .map_err(|e| e.0)
    }),
    (EcsRamRoleProvider::NAME, |s| {
        if s.flag(vars::ECS_METADATA_DISABLED) {
            return Err(format!("disabled by {}=true", vars::ECS_METADATA_DISABLED));
        }
        EcsRamRoleProvider::from_settings(s)
            .map(|p| Arc::new(p) as Arc<dyn CredentialsProvider>)
            .map_err(|e| e.0)
    }),
    (UriProvider::NAME, |s| match UriProvider::from_settings(s) {
        Ok(Some(p)) => Ok(Arc::new(p)),
        Ok(None) => Err(format!(
            "not configured ({} is not set)",
            vars::CREDENTIALS_URI
        )),
        Err(e) => Err(e.0),
    }),
];

impl CredentialsProvider for DefaultChain {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.get())
    }

    /// `default` until resolved, then `default/<provider>`, e.g. `default/env`.
    fn name(&self) -> &str {
        self.chosen
            .get()
            .map(|(_, name)| name.as_str())
            .unwrap_or(NAME_PREFIX)
    }
}

impl From<DefaultChain> for Arc<dyn CredentialsProvider> {
    fn from(chain: DefaultChain) -> Self {
        Arc::new(chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_of_the_environments_key_pair_is_told() {
        let none = ChainSettings::from_vars([(vars::ECS_METADATA_DISABLED, "true")]);
        assert_eq!(half_set_env_pair(&none), None);
        let both = none
            .clone()
            .with_var(vars::ACCESS_KEY_ID, "LTAIenv")
            .with_var(vars::ACCESS_KEY_SECRET, "env-secret");
        assert_eq!(half_set_env_pair(&both), None);
        let id = none.clone().with_var(vars::ACCESS_KEY_ID, "LTAIenv");
        assert_eq!(
            half_set_env_pair(&id).as_deref(),
            Some("ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not")
        );
        let secret = none.with_var(vars::ACCESS_KEY_SECRET, "env-secret");
        assert!(half_set_env_pair(&secret)
            .unwrap()
            .starts_with("ALIBABA_CLOUD_ACCESS_KEY_SECRET is set"));
    }
}
