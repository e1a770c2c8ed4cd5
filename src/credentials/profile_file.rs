//! The credentials file of the SDKs: `ALIBABA_CLOUD_CREDENTIALS_FILE`, else
//! `~/.alibabacloud/credentials.ini`; the section named by `ALIBABA_CLOUD_PROFILE`,
//! else `default`. Its `type` picks the provider:
//!
//! ```ini
//! [default]
//! type = access_key            # access_key_id, access_key_secret
//! [role]
//! type = ram_role_arn          # + role_arn, role_session_name, policy
//! [pod]
//! type = oidc_role_arn         # role_arn, oidc_provider_arn, oidc_token_file_path
//! [ecs]
//! type = ecs_ram_role          # role_name (optional)
//! ```

use std::collections::BTreeMap;
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

/// Credentials from one section of the credentials file, read when built.
#[derive(Debug)]
pub struct ProfileFileProvider {
    /// `profile/<kind>`, e.g. `profile/static_ak`, as the SDKs report it.
    name: String,
    inner: Arc<dyn CredentialsProvider>,
}

/// One section's keys (lower-cased) and values. Holds secrets, hence no `Debug`.
type Section = BTreeMap<String, String>;

impl ProfileFileProvider {
    pub const NAME_PREFIX: &'static str = "profile";

    /// The file and section the settings name. A missing file, like a missing
    /// section, is the chain's reason to move on, naming the file.
    pub fn from_settings(settings: &ChainSettings) -> Result<Self, CredentialsError> {
        let path = settings.credentials_file_path().ok_or_else(|| {
            CredentialsError::new("no home directory, so no ~/.alibabacloud/credentials.ini")
        })?;
        let section = settings.var(vars::PROFILE).unwrap_or("default");
        Self::load(&path, section, settings)
    }

    fn load(path: &Path, wanted: &str, settings: &ChainSettings) -> Result<Self, CredentialsError> {
        let text = read_config_file(path)?;
        let sections = parse_ini(&text).map_err(|line| {
            CredentialsError::new(format!(
                "{} line {line} is neither a [section], a key = value nor a comment",
                path.display()
            ))
        })?;
        let Some(section) = sections.get(wanted) else {
            let known: Vec<&str> = sections.keys().map(String::as_str).collect();
            return Err(CredentialsError::new(format!(
                "{} has no section [{wanted}] (sections there: {}; pick one with {})",
                path.display(),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
                vars::PROFILE
            )));
        };
        let inner = provider_for(section, wanted, path, settings)?;
        Ok(ProfileFileProvider {
            name: format!("{}/{}", Self::NAME_PREFIX, inner.name()),
            inner,
        })
    }
}

/// What a section's `type` turns into.
fn provider_for(
    section: &Section,
    name: &str,
    path: &Path,
    settings: &ChainSettings,
) -> Result<Arc<dyn CredentialsProvider>, CredentialsError> {
    let get = |key: &str| {
        section
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let kind = get("type").unwrap_or("");
    let require = |key: &str| {
        get(key).ok_or_else(|| {
            CredentialsError::new(format!(
                "section [{name}] (type {kind}) of {} has no {key}",
                path.display()
            ))
        })
    };
    let access_key = || -> Result<Credentials, CredentialsError> {
        Ok(Credentials::new(
            require("access_key_id")?,
            Secret::new(require("access_key_secret")?),
        ))
    };
    // The section's, else the one the SDKs read from the environment.
    let session_name = get("role_session_name").or(settings.var(vars::ROLE_SESSION_NAME));
    match kind {
        "access_key" => Ok(Arc::new(StaticProvider::new(access_key()?, "static_ak"))),
        "ram_role_arn" => {
            let source = Arc::new(StaticProvider::new(access_key()?, "static_ak"));
            let mut config = RamRoleConfig::new(require("role_arn")?, settings.sts_endpoint());
            if let Some(session) = session_name {
                config.role_session_name = session.to_owned();
            }
            config.policy = get("policy").map(str::to_owned);
            Ok(Arc::new(RamRoleArnProvider::new(config, source)?))
        }
        "oidc_role_arn" => {
            let mut config = OidcConfig::new(
                require("role_arn")?,
                require("oidc_provider_arn")?,
                PathBuf::from(require("oidc_token_file_path")?),
            )
            .with_sts_endpoint(settings.sts_endpoint());
            if let Some(session) = session_name {
                config.role_session_name = session.to_owned();
            }
            config.policy = get("policy").map(str::to_owned);
            Ok(Arc::new(OidcProvider::new(config)?))
        }
        "ecs_ram_role" => {
            let mut ecs = EcsRamRoleProvider::from_settings(settings)?;
            if let Some(role) = get("role_name") {
                ecs = ecs.with_role_name(role);
            }
            Ok(Arc::new(ecs))
        }
        other => Err(CredentialsError::new(format!(
            "section [{name}] of {} has type {other:?}, which is not supported here \
             (supported: access_key, ram_role_arn, oidc_role_arn, ecs_ram_role)",
            path.display()
        ))),
    }
}

/// Sections of an INI text, as Python's `configparser` reads the SDK's files:
/// `[name]` headers, `key = value` or `key: value` (keys lower-cased), comment
/// lines starting with `#` or `;`, an indented line continuing the value above
/// (a policy document over several lines), and anything after a `#` in a value
/// dropped. Keys before the first header are ignored. A line that is none of
/// these is an error, with its number.
fn parse_ini(text: &str) -> Result<BTreeMap<String, Section>, usize> {
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    // The key a deeper-indented line continues, and the key line's indentation.
    let mut last_key: Option<(String, usize)> = None;
    for (number, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let indent = raw_line.len() - raw_line.trim_start().len();
        let open = current.as_ref().and_then(|c| sections.get_mut(c));
        let continued = last_key.as_ref().filter(|(_, at)| indent > *at);
        if let (Some(section), Some((key, _))) = (open, continued) {
            let value = section.entry(key.clone()).or_default();
            let more = line.split('#').next().unwrap_or_default().trim();
            value.push('\n');
            value.push_str(more);
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            last_key = None;
            continue;
        }
        let split = line
            .find(['=', ':'])
            .map(|at| (&line[..at], &line[at + 1..]));
        let Some((key, value)) = split else {
            return Err(number + 1);
        };
        let value = value.split('#').next().unwrap_or_default().trim();
        if let Some(section) = current.as_ref().and_then(|c| sections.get_mut(c)) {
            let key = key.trim().to_ascii_lowercase();
            section.insert(key.clone(), value.to_owned());
            last_key = Some((key, indent));
        }
    }
    Ok(sections)
}

impl CredentialsProvider for ProfileFileProvider {
    fn credentials(&self) -> CredentialsFuture<'_> {
        self.inner.credentials()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_reads_like_configparser() {
        let text = "stray = 1\n# a comment\n; another\n[default]\nType = access_key\n\
                    access_key_id: LTAI # trailing comment\naccess_key_secret = s=cret\n\n[ other ]\n";
        let s = parse_ini(text).unwrap();
        let d = &s["default"];
        assert_eq!(d["type"], "access_key");
        assert_eq!(d["access_key_id"], "LTAI");
        assert_eq!(d["access_key_secret"], "s=cret");
        assert!(s["other"].is_empty());
        assert_eq!(s.len(), 2, "keys before a header belong to no section");
        assert_eq!(parse_ini("[a]\njust words\n").err(), Some(2));
        let s = parse_ini("[role]\npolicy = {\n    \"Version\": \"1\"\n  }\ntype = ram_role_arn\n")
            .unwrap();
        assert_eq!(s["role"]["policy"], "{\n\"Version\": \"1\"\n}");
        assert_eq!(s["role"]["type"], "ram_role_arn");
        // Keys indented alike are keys, not a continuation.
        let s = parse_ini("[default]\n  type = access_key\n  access_key_id = LTAI\n").unwrap();
        assert_eq!(s["default"]["type"], "access_key");
        assert_eq!(s["default"]["access_key_id"], "LTAI");
    }
}
