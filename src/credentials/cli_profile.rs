//! The aliyun CLI's configuration, `~/.aliyun/config.json`: the profile named by
//! `ALIBABA_CLOUD_PROFILE`, else the file's `current` one. Modes `AK` and
//! `StsToken` give fixed credentials; `RamRoleArn` assumes a role with the
//! profile's access key, `ChainableRamRoleArn` with another profile's
//! credentials; `EcsRamRole` and `OIDC` hand over to the providers of the same
//! name; the others are reported as unsupported.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::settings::vars;
use super::wire::read_config_file;
use super::{
    ChainSettings, Credentials, CredentialsError, CredentialsFuture, CredentialsProvider,
    EcsRamRoleProvider, OidcConfig, OidcProvider, RamRoleArnProvider, RamRoleConfig,
};
use crate::api::credentials::StaticProvider;
use crate::secret::Secret;

/// Credentials from one profile of the aliyun CLI config, read when built.
#[derive(Debug)]
pub struct CliProfileProvider {
    /// `cli_profile/<kind>`, e.g. `cli_profile/static_ak`.
    name: String,
    profile: String,
    inner: Arc<dyn CredentialsProvider>,
}

/// `ChainableRamRoleArn` profiles name their source profile; a chain this long
/// is a loop.
const MAX_SOURCE_PROFILES: usize = 8;

#[derive(Deserialize)]
struct CliConfig {
    #[serde(default)]
    current: String,
    #[serde(default)]
    profiles: Vec<CliProfile>,
}

/// One profile. Holds secrets as plain strings, hence no `Debug`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CliProfile {
    name: String,
    mode: String,
    access_key_id: String,
    access_key_secret: String,
    sts_token: String,
    ram_role_name: String,
    ram_role_arn: String,
    oidc_provider_arn: String,
    oidc_token_file: String,
    role_session_name: String,
    ram_session_name: String,
    expired_seconds: Option<u32>,
    policy: String,
    external_id: String,
    sts_region: String,
    enable_vpc: Option<bool>,
    source_profile: String,
}

impl CliProfileProvider {
    pub const NAME_PREFIX: &'static str = "cli_profile";

    /// The config at [`ChainSettings::cli_config_path`], the profile from
    /// `ALIBABA_CLOUD_PROFILE` or the file's `current`. An error when disabled by
    /// `ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true`.
    pub fn from_settings(settings: &ChainSettings) -> Result<Self, CredentialsError> {
        if settings.flag(vars::CLI_PROFILE_DISABLED) {
            return Err(CredentialsError::new(format!(
                "disabled by {}=true",
                vars::CLI_PROFILE_DISABLED
            )));
        }
        let path = settings.cli_config_path().ok_or_else(|| {
            CredentialsError::new("no home directory, so no ~/.aliyun/config.json")
        })?;
        Self::load(&path, settings.var(vars::PROFILE), settings)
    }

    /// A given file and profile (`None`: the file's `current`).
    pub fn from_file(path: &Path, profile: Option<&str>) -> Result<Self, CredentialsError> {
        Self::load(path, profile, &ChainSettings::default())
    }

    /// The profile the credentials come from.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    fn load(
        path: &Path,
        profile: Option<&str>,
        settings: &ChainSettings,
    ) -> Result<Self, CredentialsError> {
        let text = read_config_file(path)?;
        // Only the position: serde may quote a value, and the file holds secrets.
        let config: CliConfig = serde_json::from_str(&text).map_err(|e| {
            CredentialsError::new(format!(
                "{} is not valid aliyun CLI JSON (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;

        let (wanted, from) = match profile {
            Some(p) => (p.to_owned(), format!(" (from {})", vars::PROFILE)),
            None if !config.current.is_empty() => (config.current.clone(), String::new()),
            None => {
                return Err(CredentialsError::new(format!(
                    "{} names no current profile; set {} or run `aliyun configure`",
                    path.display(),
                    vars::PROFILE
                )))
            }
        };
        let found = find_profile(&config, &wanted, &from, path)?;
        let inner = provider_for(&config, found, path, settings, 0)?;
        Ok(CliProfileProvider {
            name: format!("{}/{}", Self::NAME_PREFIX, inner.name()),
            profile: wanted,
            inner,
        })
    }
}

fn find_profile<'c>(
    config: &'c CliConfig,
    wanted: &str,
    from: &str,
    path: &Path,
) -> Result<&'c CliProfile, CredentialsError> {
    config
        .profiles
        .iter()
        .find(|p| p.name == wanted)
        .ok_or_else(|| {
            let known: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
            CredentialsError::new(format!(
                "profile {wanted:?}{from} is not in {} (profiles there: {})",
                path.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// What a profile's mode turns into: the provider doing the work (its name is
/// the chain's suffix). `depth` counts the source profiles followed so far.
fn provider_for(
    config: &CliConfig,
    p: &CliProfile,
    path: &Path,
    settings: &ChainSettings,
    depth: usize,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    let missing = |field: &str| {
        CredentialsError::new(format!(
            "profile {:?} (mode {}) in {} has no {field}",
            p.name,
            p.mode,
            path.display()
        ))
    };
    let require = |value: &str, field: &str| {
        if value.is_empty() {
            Err(missing(field))
        } else {
            Ok(())
        }
    };
    match p.mode.as_str() {
        // The CLI itself treats a profile without a mode as an access key one.
        "AK" | "" => {
            require(&p.access_key_id, "access_key_id")?;
            require(&p.access_key_secret, "access_key_secret")?;
            let c = Credentials::new(&p.access_key_id, Secret::new(&*p.access_key_secret));
            Ok(Arc::new(StaticProvider::new(c, "static_ak")))
        }
        "RamRoleArn" | "ChainableRamRoleArn" => {
            require(&p.ram_role_arn, "ram_role_arn")?;
            let source: Arc<dyn CredentialsProvider> = if p.mode == "RamRoleArn" {
                require(&p.access_key_id, "access_key_id")?;
                require(&p.access_key_secret, "access_key_secret")?;
                let c = Credentials::new(&p.access_key_id, Secret::new(&*p.access_key_secret));
                Arc::new(StaticProvider::new(c, "static_ak"))
            } else {
                require(&p.source_profile, "source_profile")?;
                if depth >= MAX_SOURCE_PROFILES {
                    return Err(CredentialsError::new(format!(
                        "profile {:?} in {}: source_profile goes on for more than \
                         {MAX_SOURCE_PROFILES} profiles (a loop?)",
                        p.name,
                        path.display()
                    )));
                }
                let from = format!(" (source_profile of {:?})", p.name);
                let source = find_profile(config, &p.source_profile, &from, path)?;
                provider_for(config, source, path, settings, depth + 1)?
            };
            let endpoint = settings.sts_endpoint_for_profile(Some(&p.sts_region), p.enable_vpc);
            let mut role = RamRoleConfig::new(&p.ram_role_arn, endpoint);
            if let Some(session) = session_name(&p.ram_session_name, settings) {
                role.role_session_name = session;
            }
            if let Some(seconds) = p.expired_seconds.filter(|s| *s > 0) {
                role.duration_seconds = seconds;
            }
            role.policy = Some(p.policy.clone()).filter(|v| !v.is_empty());
            role.external_id = Some(p.external_id.clone()).filter(|v| !v.is_empty());
            Ok(Arc::new(RamRoleArnProvider::new(role, source)?))
        }
        "StsToken" => {
            require(&p.access_key_id, "access_key_id")?;
            require(&p.access_key_secret, "access_key_secret")?;
            require(&p.sts_token, "sts_token")?;
            let c = Credentials::new(&p.access_key_id, Secret::new(&*p.access_key_secret))
                .with_security_token(Secret::new(&*p.sts_token));
            Ok(Arc::new(StaticProvider::new(c, "static_sts")))
        }
        "EcsRamRole" => {
            let mut ecs = EcsRamRoleProvider::from_settings(settings)?;
            if !p.ram_role_name.is_empty() {
                ecs = ecs.with_role_name(&p.ram_role_name);
            }
            Ok(Arc::new(ecs))
        }
        "OIDC" => {
            require(&p.ram_role_arn, "ram_role_arn")?;
            require(&p.oidc_provider_arn, "oidc_provider_arn")?;
            require(&p.oidc_token_file, "oidc_token_file")?;
            let mut config = OidcConfig::new(
                &p.ram_role_arn,
                &p.oidc_provider_arn,
                PathBuf::from(&p.oidc_token_file),
            )
            .with_sts_endpoint(
                settings.sts_endpoint_for_profile(Some(&p.sts_region), p.enable_vpc),
            );
            if let Some(session) = session_name(&p.role_session_name, settings) {
                config.role_session_name = session;
            }
            if let Some(seconds) = p.expired_seconds.filter(|s| *s > 0) {
                config.duration_seconds = seconds;
            }
            config.policy = Some(p.policy.clone()).filter(|v| !v.is_empty());
            Ok(Arc::new(OidcProvider::new(config)?))
        }
        other => Err(CredentialsError::new(format!(
            "profile {:?} in {} uses mode {other}, which is not supported here \
             (supported: AK, StsToken, RamRoleArn, ChainableRamRoleArn, EcsRamRole, OIDC)",
            p.name,
            path.display()
        ))),
    }
}

/// The profile's session name, else the one the SDKs read from the environment.
fn session_name(profile: &str, settings: &ChainSettings) -> Option<String> {
    Some(profile)
        .filter(|s| !s.is_empty())
        .or(settings.var(vars::ROLE_SESSION_NAME))
        .map(str::to_owned)
}

impl CredentialsProvider for CliProfileProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        self.inner.credentials()
    }

    fn name(&self) -> &str {
        &self.name
    }
}
