//! The environment the credential providers look at, captured once as a value:
//! variables, the home directory and endpoint overrides. Production code builds it
//! with [`ChainSettings::from_process_env`]; tests build one by hand.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Names of the environment variables the chain reads. The SDKs' names, plus two
/// endpoint overrides of ours (`ALIBABA_CLOUD_STS_ENDPOINT`,
/// `ALIBABA_CLOUD_ECS_METADATA_ENDPOINT`) so tests and unusual networks can point
/// the providers elsewhere.
pub mod vars {
    pub use crate::api::credentials::{
        ENV_ACCESS_KEY_ID as ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET as ACCESS_KEY_SECRET,
        ENV_SECURITY_TOKEN as SECURITY_TOKEN,
    };

    pub const ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
    pub const OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
    pub const OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
    pub const ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
    pub const STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
    pub const VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
    pub const STS_ENDPOINT: &str = "ALIBABA_CLOUD_STS_ENDPOINT";

    pub const CLI_PROFILE_DISABLED: &str = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED";
    pub const PROFILE: &str = "ALIBABA_CLOUD_PROFILE";

    pub const ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
    pub const ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
    pub const IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";
    pub const ECS_METADATA_ENDPOINT: &str = "ALIBABA_CLOUD_ECS_METADATA_ENDPOINT";

    pub const CREDENTIALS_URI: &str = "ALIBABA_CLOUD_CREDENTIALS_URI";

    pub const CREDENTIALS_FILE: &str = "ALIBABA_CLOUD_CREDENTIALS_FILE";
}

/// Every variable whose name starts with this is captured from the process.
const VAR_PREFIX: &str = "ALIBABA_CLOUD_";

/// A snapshot of what the providers may read. Explicit endpoint fields win over
/// the corresponding variables, which win over the SDK defaults.
#[derive(Clone, Default)]
pub struct ChainSettings {
    vars: BTreeMap<String, String>,
    /// Where `.aliyun/config.json` is looked for.
    pub home_dir: Option<PathBuf>,
    /// Overrides the whole CLI config path (tests, or a non-standard location).
    pub cli_config_path: Option<PathBuf>,
    /// STS base URL, e.g. `http://127.0.0.1:8080` (a bare host means `https://`).
    pub sts_endpoint: Option<String>,
    /// ECS metadata base URL (a bare host means `http://`).
    pub imds_endpoint: Option<String>,
}

impl ChainSettings {
    /// The `ALIBABA_CLOUD_*` variables and the home directory of this process.
    pub fn from_process_env() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(VAR_PREFIX));
        ChainSettings {
            vars: vars.collect(),
            home_dir: home_dir_from_process(),
            ..ChainSettings::default()
        }
    }

    /// Settings from the given variables only, with no home directory.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        ChainSettings {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            ..ChainSettings::default()
        }
    }

    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    pub fn with_home_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home_dir = Some(dir.into());
        self
    }

    pub fn with_cli_config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cli_config_path = Some(path.into());
        self
    }

    pub fn with_sts_endpoint(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint = Some(url.into());
        self
    }

    pub fn with_imds_endpoint(mut self, url: impl Into<String>) -> Self {
        self.imds_endpoint = Some(url.into());
        self
    }

    /// A variable's value; an empty value counts as unset, as in the SDKs.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A boolean switch: only `true` (any case) turns it on, as in the SDKs.
    pub fn flag(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The aliyun CLI config file: the explicit path, else `~/.aliyun/config.json`.
    pub fn cli_config_path(&self) -> Option<PathBuf> {
        self.cli_config_path
            .clone()
            .or_else(|| Some(self.home_dir.as_ref()?.join(".aliyun").join("config.json")))
    }

    /// The credentials file: `ALIBABA_CLOUD_CREDENTIALS_FILE`, else
    /// `~/.alibabacloud/credentials.ini`.
    pub fn credentials_file_path(&self) -> Option<PathBuf> {
        match self.var(vars::CREDENTIALS_FILE) {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(
                self.home_dir
                    .as_ref()?
                    .join(".alibabacloud")
                    .join("credentials.ini"),
            ),
        }
    }

    /// The STS endpoint for a profile that names its own region and VPC choice
    /// (CLI profiles' `sts_region`, `enable_vpc`), unless an explicit endpoint
    /// overrides every profile.
    pub fn sts_endpoint_for_profile(&self, region: Option<&str>, vpc: Option<bool>) -> String {
        if self.sts_endpoint.is_some() || self.var(vars::STS_ENDPOINT).is_some() {
            return self.sts_endpoint();
        }
        let region = region
            .filter(|r| !r.is_empty())
            .or(self.var(vars::STS_REGION));
        sts_endpoint_for(region, vpc.unwrap_or(self.flag(vars::VPC_ENDPOINT_ENABLED)))
    }

    /// STS base URL: explicit, else `ALIBABA_CLOUD_STS_ENDPOINT`, else derived from
    /// `ALIBABA_CLOUD_STS_REGION` and `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`.
    pub fn sts_endpoint(&self) -> String {
        if let Some(url) = self
            .sts_endpoint
            .as_deref()
            .or(self.var(vars::STS_ENDPOINT))
        {
            return with_scheme(url, "https");
        }
        sts_endpoint_for(
            self.var(vars::STS_REGION),
            self.flag(vars::VPC_ENDPOINT_ENABLED),
        )
    }

    /// ECS metadata base URL: explicit, else `ALIBABA_CLOUD_ECS_METADATA_ENDPOINT`,
    /// else the link-local service every ECS instance has.
    pub fn imds_endpoint(&self) -> String {
        let url = self
            .imds_endpoint
            .as_deref()
            .or(self.var(vars::ECS_METADATA_ENDPOINT))
            .unwrap_or(crate::credentials::ecs::DEFAULT_IMDS_ENDPOINT);
        with_scheme(url, "http")
    }
}

/// Values may be secrets (`ALIBABA_CLOUD_ACCESS_KEY_SECRET`), so only names print.
impl fmt::Debug for ChainSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainSettings")
            .field("vars_set", &self.vars.keys().collect::<Vec<_>>())
            .field("home_dir", &self.home_dir)
            .field("cli_config_path", &self.cli_config_path)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("imds_endpoint", &self.imds_endpoint)
            .finish()
    }
}

/// The same rule as credentials-go: the regional endpoint when a region is given,
/// the VPC one only together with a region, else the global endpoint.
fn sts_endpoint_for(region: Option<&str>, vpc: bool) -> String {
    match region {
        Some(region) if vpc => format!("https://sts-vpc.{region}.aliyuncs.com"),
        Some(region) => format!("https://sts.{region}.aliyuncs.com"),
        None => "https://sts.aliyuncs.com".to_owned(),
    }
}

/// Accepts `host[:port]` as well as a full URL; drops a trailing slash so paths
/// can be appended.
fn with_scheme(url: &str, default_scheme: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("{default_scheme}://{url}")
    }
}

fn home_dir_from_process() -> Option<PathBuf> {
    let var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset_and_flags_need_true() {
        let s = ChainSettings::from_vars([("A", ""), ("B", "TRUE"), ("C", "1")]);
        assert_eq!(s.var("A"), None);
        assert!(s.flag("B"));
        assert!(!s.flag("C"));
        assert!(!s.flag("MISSING"));
    }

    #[test]
    fn sts_endpoint_precedence() {
        let s = ChainSettings::default();
        assert_eq!(s.sts_endpoint(), "https://sts.aliyuncs.com");
        let s = s.with_var(vars::STS_REGION, "cn-shanghai");
        assert_eq!(s.sts_endpoint(), "https://sts.cn-shanghai.aliyuncs.com");
        let s = s.with_var(vars::VPC_ENDPOINT_ENABLED, "true");
        assert_eq!(s.sts_endpoint(), "https://sts-vpc.cn-shanghai.aliyuncs.com");
        let s = s.with_var(vars::STS_ENDPOINT, "sts.example.com/");
        assert_eq!(s.sts_endpoint(), "https://sts.example.com");
        let s = s.with_sts_endpoint("http://127.0.0.1:9");
        assert_eq!(s.sts_endpoint(), "http://127.0.0.1:9");
    }

    #[test]
    fn imds_endpoint_defaults_to_link_local_over_http() {
        let s = ChainSettings::default();
        assert_eq!(s.imds_endpoint(), "http://100.100.100.200");
        let s = s.with_var(vars::ECS_METADATA_ENDPOINT, "127.0.0.1:1234");
        assert_eq!(s.imds_endpoint(), "http://127.0.0.1:1234");
    }

    #[test]
    fn debug_shows_variable_names_not_values() {
        let s = ChainSettings::from_vars([(vars::ACCESS_KEY_SECRET, "very-secret-value")]);
        let dbg = format!("{s:?}");
        assert!(dbg.contains(vars::ACCESS_KEY_SECRET));
        assert!(!dbg.contains("very-secret-value"));
    }
}
