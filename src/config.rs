//! The TOML config file (`sync --config FILE`): several accounts ("sources"), each
//! with its own credentials, endpoint, regions and filters, crawled in one run.
//!
//! ```toml
//! [[source]]
//! alias = "prod-cn"                      # stored as `source` on every row
//! access_key_id_env = "PROD_AK_ID"       # names of variables, not values
//! access_key_secret_env = "PROD_AK_SECRET"
//! regions = "all"                        # or ["cn-shanghai", "cn-hangzhou"]
//!
//! [[source]]
//! alias = "intl"
//! profile = "intl"                       # a profile of ~/.aliyun/config.json
//! endpoint = "https://eds-aic.ap-southeast-1.aliyuncs.com"
//! regions = ["ap-southeast-1"]
//! filters = { status = "RUNNING", tags = ["env=prod"] }
//!
//! [[source]]
//! alias = "ack"                          # no credential keys: the default chain
//! ```
//!
//! Credentials of a source, at most one way: `access_key_id_env` +
//! `access_key_secret_env` (+ `security_token_env`); `profile`; literal
//! `access_key_id` + `access_key_secret` (discouraged: the file then holds a
//! secret); or nothing (or `credentials = "default"`) for the default chain.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::FixedOffset;
use serde::Deserialize;

use crate::api::credentials::{CredentialsProvider, StaticProvider};
use crate::api::model::{DescribeAndroidInstancesRequest, Tag, CHARGE_TYPES, STATUSES};
use crate::api::ratelimit::RateLimiter;
use crate::api::{Client, ClientConfig, Credentials};
use crate::credentials::{vars, ChainSettings, CliProfileProvider, DefaultChain};
use crate::error::ConfigError;
use crate::secret::Secret;
use crate::sync::Regions;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
}

/// One `[[source]]` table. Holds no secret unless the user wrote one in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub alias: String,
    /// `"default"`: the default chain, which is also what no credential key means.
    pub credentials: Option<String>,
    pub access_key_id_env: Option<String>,
    pub access_key_secret_env: Option<String>,
    pub security_token_env: Option<String>,
    pub profile: Option<String>,
    pub access_key_id: Option<String>,
    /// Plain text while parsed; wrapped in [`Secret`] as soon as it is used.
    pub access_key_secret: Option<String>,
    pub endpoint: Option<String>,
    #[serde(default)]
    pub regions: RegionsConfig,
    /// Requests per second for this account (default: `--rate-limit`).
    pub rate_limit: Option<f64>,
    #[serde(default)]
    pub filters: FiltersConfig,
    /// The zone this account's service reports GmtCreate and GmtModified in,
    /// e.g. `"+08:00"` (default: `--naive-time-zone`, else UTC).
    pub naive_time_zone: Option<String>,
}

/// Names only: a literal secret is never printed.
impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConfig")
            .field("alias", &self.alias)
            .field("credentials", &self.credential_kind())
            .field("endpoint", &self.endpoint)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RegionsConfig {
    /// `"all"` (or a single region id).
    One(String),
    List(Vec<String>),
}

impl Default for RegionsConfig {
    fn default() -> Self {
        RegionsConfig::One("all".into())
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersConfig {
    pub status: Option<String>,
    #[serde(default)]
    pub instance_ids: Vec<String>,
    #[serde(default)]
    pub instance_group_ids: Vec<String>,
    /// `KEY=VALUE` or `KEY`.
    #[serde(default)]
    pub tags: Vec<String>,
    pub charge_type: Option<String>,
    pub instance_name: Option<String>,
}

/// How a source gets its credentials, once validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    DefaultChain,
    EnvVars {
        id: String,
        secret: String,
        token: Option<String>,
    },
    Profile(String),
    Literal,
}

/// A source ready to crawl.
pub struct Source {
    pub alias: String,
    pub client: Client,
    pub regions: Regions,
    pub filters: DescribeAndroidInstancesRequest,
    /// The source's own zone for zoneless times, when it names one.
    pub naive_time_zone: Option<FixedOffset>,
}

/// An environment variable's name as they are written: capitals, digits and
/// underscores, or a short name in any case. Anything else in a `*_env` key
/// (a long mixed-case word, a dash) may be the secret itself.
fn looks_like_a_variable(name: &str) -> bool {
    let word = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    word && (name.len() <= 24 || !name.bytes().any(|b| b.is_ascii_lowercase()))
}

/// Where the TOML went wrong and what was wrong, without the text around it:
/// toml's own message quotes the offending line, and its type errors quote the
/// value, either of which may be an access key secret.
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let mut message = String::with_capacity(e.message().len());
    // Strings are quoted "…"; other values `…` after their type (serde's
    // "invalid type: integer `42`"), where names of keys are `…` too and stay.
    let mut quoted: Option<char> = None;
    for c in e.message().trim().chars() {
        match (c, quoted) {
            ('"', None) => {
                message.push_str("\"…\"");
                quoted = Some('"');
            }
            ('`', None)
                if ["integer ", "floating point ", "boolean ", "character "]
                    .iter()
                    .any(|kind| message.ends_with(kind)) =>
            {
                message.push_str("`…`");
                quoted = Some('`');
            }
            (c, Some(end)) if c == end => quoted = None,
            (c, None) => message.push(c),
            (_, Some(_)) => {}
        }
    }
    // One `[source]` is a table where a list belongs; two are the same table
    // twice. Either way toml's message does not say what to write.
    if text.lines().any(|l| l.trim() == "[source]") {
        message.push_str(
            "; each source is one entry of a list: write its header [[source]], not [source]",
        );
    }
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("TOML error at line {line}, column {column}: {message}")
        }
        None => format!("TOML error: {message}"),
    }
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!("cannot read config file {}: {e}", path.display()))
        })?;
        Self::parse(&text)
            .map_err(|e| ConfigError::new(format!("config file {}: {}", path.display(), e.0)))
    }

    /// Parses and checks everything that can be checked without the environment.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError::new(parse_error(text, &e)))?;
        if file.sources.is_empty() {
            return Err(ConfigError::new("no [[source]] table"));
        }
        let mut seen = BTreeSet::new();
        for s in &file.sources {
            if s.alias.trim().is_empty() {
                return Err(ConfigError::new("a source has an empty alias"));
            }
            if !seen.insert(s.alias.as_str()) {
                return Err(ConfigError::new(format!(
                    "alias {:?} is used twice",
                    s.alias
                )));
            }
            let at = |e: String| ConfigError::new(format!("source {:?}: {e}", s.alias));
            s.credential_kind().map_err(at)?;
            s.regions().map_err(at)?;
            s.filters().map_err(at)?;
            if let Some(r) = s.rate_limit {
                crate::api::ratelimit::check_rate("rate_limit", r).map_err(at)?;
            }
            s.naive_time_zone().map_err(at)?;
        }
        Ok(file)
    }
}

impl ConfigFile {
    /// The process environment as the sources see it: the `ALIBABA_CLOUD_*`
    /// variables of the default chain plus the variables the file names.
    pub fn settings_from_process_env(&self) -> ChainSettings {
        let mut settings = ChainSettings::from_process_env();
        for s in &self.sources {
            if let Ok(CredentialKind::EnvVars { id, secret, token }) = s.credential_kind() {
                for name in [Some(id), Some(secret), token].into_iter().flatten() {
                    if let Ok(value) = std::env::var(&name) {
                        settings = settings.with_var(name, value);
                    }
                }
            }
        }
        settings
    }
}

impl SourceConfig {
    pub fn naive_time_zone(&self) -> Result<Option<FixedOffset>, String> {
        self.naive_time_zone
            .as_deref()
            .map(|zone| {
                zone.trim().parse::<FixedOffset>().map_err(|_| {
                    format!("naive_time_zone {zone:?} is not a UTC offset like \"+08:00\"")
                })
            })
            .transpose()
    }

    pub fn credential_kind(&self) -> Result<CredentialKind, String> {
        let env_pair = self.access_key_id_env.is_some() || self.access_key_secret_env.is_some();
        let literal = self.access_key_id.is_some() || self.access_key_secret.is_some();
        let ways = [env_pair, self.profile.is_some(), literal]
            .iter()
            .filter(|w| **w)
            .count();
        if ways > 1 {
            return Err("give credentials one way only: access_key_*_env, profile, \
                 or access_key_id/access_key_secret"
                .into());
        }
        if self.security_token_env.is_some() && !env_pair {
            return Err(
                "security_token_env needs access_key_id_env and access_key_secret_env".into(),
            );
        }
        match self.credentials.as_deref() {
            None | Some("default") => {}
            // Not quoted back: a secret written in the wrong key would be.
            Some(_) => {
                return Err(
                    "credentials has one value, \"default\" (the default chain); this one is \
                     not shown"
                        .into(),
                )
            }
        }
        if self.credentials.is_some() && ways > 0 {
            return Err(
                "credentials = \"default\" cannot be combined with other credential keys".into(),
            );
        }
        if env_pair {
            match (&self.access_key_id_env, &self.access_key_secret_env) {
                (Some(id), Some(secret)) => Ok(CredentialKind::EnvVars {
                    id: id.clone(),
                    secret: secret.clone(),
                    token: self.security_token_env.clone(),
                }),
                _ => Err("set both access_key_id_env and access_key_secret_env".into()),
            }
        } else if let Some(p) = &self.profile {
            Ok(CredentialKind::Profile(p.clone()))
        } else if literal {
            if self.access_key_id.is_some() && self.access_key_secret.is_some() {
                Ok(CredentialKind::Literal)
            } else {
                Err("set both access_key_id and access_key_secret".into())
            }
        } else {
            Ok(CredentialKind::DefaultChain)
        }
    }

    pub fn regions(&self) -> Result<Regions, String> {
        let list = match &self.regions {
            RegionsConfig::One(r) => vec![r.clone()],
            RegionsConfig::List(l) => l.clone(),
        };
        Regions::parse(&list).map_err(|e| format!("regions: {e}"))
    }

    pub fn filters(&self) -> Result<DescribeAndroidInstancesRequest, String> {
        let f = &self.filters;
        if let Some(s) = &f.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(format!("filters.status {s:?} is not one of {STATUSES:?}"));
            }
        }
        if let Some(c) = &f.charge_type {
            if !CHARGE_TYPES.contains(&c.as_str()) {
                return Err(format!(
                    "filters.charge_type {c:?} is not one of {CHARGE_TYPES:?}"
                ));
            }
        }
        let tags = f
            .tags
            .iter()
            .map(|t| Tag::parse_filter(t).map_err(|e| format!("filters.tags {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DescribeAndroidInstancesRequest {
            status: f.status.clone(),
            android_instance_ids: f.instance_ids.clone(),
            instance_group_ids: f.instance_group_ids.clone(),
            tag: tags,
            charge_type: f.charge_type.clone(),
            android_instance_name: f.instance_name.clone(),
            ..Default::default()
        })
    }

    /// The credentials provider, reading variables from `settings` (the process
    /// environment in production). Errors name variables, never values.
    pub fn provider(
        &self,
        settings: &ChainSettings,
    ) -> Result<Arc<dyn CredentialsProvider>, ConfigError> {
        let at = |e: String| ConfigError::new(format!("source {:?}: {e}", self.alias));
        let name = format!("config/{}", self.alias);
        Ok(match self.credential_kind().map_err(at)? {
            CredentialKind::DefaultChain => Arc::new(DefaultChain::new(settings.clone())),
            CredentialKind::EnvVars { id, secret, token } => {
                let get = |key: &str, var: &str| {
                    settings.var(var).map(str::to_owned).ok_or_else(|| {
                        at(if looks_like_a_variable(var) {
                            format!("environment variable {var} ({key}) is not set")
                        } else {
                            // The secret itself, written where its variable's
                            // name belongs? Not quoted back.
                            format!(
                                "the environment variable {key} names is not set (its name is \
                                 not shown: it does not read as one, and may be the value itself, \
                                 written where its variable's name belongs)"
                            )
                        })
                    })
                };
                let mut c = Credentials::new(
                    get("access_key_id_env", &id)?,
                    Secret::new(get("access_key_secret_env", &secret)?),
                );
                if let Some(t) = token {
                    c = c.with_security_token(Secret::new(get("security_token_env", &t)?));
                }
                Arc::new(StaticProvider::new(c, name))
            }
            CredentialKind::Profile(p) => {
                let s = settings.clone().with_var(vars::PROFILE, p);
                Arc::new(CliProfileProvider::from_settings(&s).map_err(|e| at(e.to_string()))?)
            }
            CredentialKind::Literal => {
                tracing::warn!(
                    source = %self.alias,
                    "the config file holds an access key secret; prefer access_key_secret_env"
                );
                let id = self.access_key_id.clone().unwrap_or_default();
                let secret = Secret::new(self.access_key_secret.clone().unwrap_or_default());
                Arc::new(StaticProvider::new(Credentials::new(id, secret), name))
            }
        })
    }

    /// A client for this source: `base` (from the flags) with this source's
    /// endpoint, and a rate limiter and call statistics of its own (API quotas are
    /// per account): `rate_limit`, else `default_rate`.
    pub fn source(
        &self,
        base: &ClientConfig,
        default_rate: Option<f64>,
        settings: &ChainSettings,
    ) -> Result<Source, ConfigError> {
        let at = |e: String| ConfigError::new(format!("source {:?}: {e}", self.alias));
        let mut config = base.clone();
        if let Some(endpoint) = &self.endpoint {
            config.endpoint = endpoint.clone();
        }
        config.rate_limiter = self
            .rate_limit
            .or(default_rate)
            .map(|rate| Arc::new(RateLimiter::new(rate)));
        config.stats = Arc::default();
        let client = Client::new(self.provider(settings)?, config).map_err(|e| {
            // Named where it was set: this source's key, or the flag it inherits.
            at(e.naming(if self.endpoint.is_some() {
                "endpoint"
            } else {
                "--endpoint"
            }))
        })?;
        Ok(Source {
            alias: self.alias.clone(),
            client,
            regions: self.regions().map_err(at)?,
            filters: self.filters().map_err(at)?,
            naive_time_zone: self.naive_time_zone().map_err(at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[source]]
alias = "prod"
access_key_id_env = "PROD_ID"
access_key_secret_env = "PROD_SECRET"

[[source]]
alias = "intl"
profile = "intl"
endpoint = "https://eds-aic.ap-southeast-1.aliyuncs.com"
regions = ["ap-southeast-1"]
rate_limit = 5
filters = { status = "RUNNING", tags = ["env=prod", "team"] }
naive_time_zone = "+08:00"

[[source]]
alias = "ack"
credentials = "default"
"#;

    /// A mistake on the line of a secret says where, without the line: toml's
    /// own message quoted it, and the CLI prints the error (a cron job's log).
    #[test]
    fn a_parse_error_never_quotes_the_file() {
        let secret = "ChaosSecretXYZ987";
        for (line, expected) in [
            (format!("access_key_secret = \"{secret}"), "line 4"),
            (format!("access_key_secret = 12345{secret}"), "line 4"),
            (
                format!("access_key_secrett = \"{secret}\""),
                "unknown field",
            ),
            (
                format!("access_key_secret = [\"{secret}\"]"),
                "invalid type",
            ),
            (
                format!("access_key_secret = \"{secret}\"\nrate_limit = \"{secret}\""),
                "line 5",
            ),
            // A secret of digits alone, unquoted, is a number of the wrong type.
            (
                "access_key_secret = 8675309111222".to_owned(),
                "integer `…`",
            ),
            (
                "access_key_secret = 8675309.111222".to_owned(),
                "floating point `…`",
            ),
        ] {
            let text = format!(
                "[[source]]\nalias = \"x\"\naccess_key_id = \"id\"\n{line}\nregions = [\"cn-hangzhou\"]\n"
            );
            let err = ConfigFile::parse(&text).unwrap_err().0;
            assert!(!err.contains(secret), "{err}");
            assert!(!err.contains("12345"), "{err}");
            assert!(!err.contains("8675309"), "{err}");
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn a_region_that_cannot_be_one_is_refused() {
        for (regions, why) in [
            ("[\"cn-hangzhou\", \" \"]", "it is empty"),
            ("\"cn\\u0000x\"", "control characters"),
            (
                &format!("[\"{}\"]", "x".repeat(101)),
                "longer than any region id",
            ),
        ] {
            let text = format!("[[source]]\nalias = \"x\"\nregions = {regions}\n");
            let err = ConfigFile::parse(&text).unwrap_err().0;
            assert!(err.contains(why), "{regions}: {err}");
        }
    }

    #[test]
    fn a_source_written_as_a_table_says_to_write_a_list() {
        let one = "[source]\nalias = \"x\"\nregions = [\"cn-hangzhou\"]\n";
        for text in [one.to_owned(), format!("{one}{one}")] {
            let err = ConfigFile::parse(&text).unwrap_err().0;
            assert!(err.contains("write its header [[source]]"), "{err}");
        }
    }

    #[test]
    fn parses_every_way_of_giving_credentials() {
        let f = ConfigFile::parse(EXAMPLE).unwrap();
        let kinds: Vec<_> = f
            .sources
            .iter()
            .map(|s| s.credential_kind().unwrap())
            .collect();
        assert_eq!(
            kinds,
            vec![
                CredentialKind::EnvVars {
                    id: "PROD_ID".into(),
                    secret: "PROD_SECRET".into(),
                    token: None
                },
                CredentialKind::Profile("intl".into()),
                CredentialKind::DefaultChain,
            ]
        );
        assert_eq!(f.sources[0].regions().unwrap(), Regions::All);
        assert_eq!(
            f.sources[1].regions().unwrap(),
            Regions::Only(vec!["ap-southeast-1".into()])
        );
        let filters = f.sources[1].filters().unwrap();
        assert_eq!(filters.status.as_deref(), Some("RUNNING"));
        assert_eq!(filters.tag.len(), 2);
        assert!(filters.is_filtered());
        assert!(!f.sources[0].filters().unwrap().is_filtered());
        assert_eq!(
            f.sources[1].naive_time_zone().unwrap(),
            FixedOffset::east_opt(8 * 3600)
        );
        assert_eq!(f.sources[0].naive_time_zone().unwrap(), None);
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + readme[start..].find("```").unwrap();
        let f = ConfigFile::parse(&readme[start..end]).unwrap();
        let intl = f.sources.iter().find(|s| s.alias == "intl").unwrap();
        assert_eq!(
            intl.naive_time_zone().unwrap(),
            FixedOffset::east_opt(8 * 3600)
        );
    }

    #[test]
    fn rejects_mistakes_with_a_named_source() {
        for (text, needle) in [
            ("", "no [[source]]"),
            ("[[source]]\nalias = \"a\"\n[[source]]\nalias = \"a\"", "used twice"),
            (
                "[[source]]\nalias = \"a\"\nprofile = \"p\"\naccess_key_id_env = \"X\"\naccess_key_secret_env = \"Y\"",
                "one way only",
            ),
            ("[[source]]\nalias = \"a\"\naccess_key_id_env = \"X\"", "set both"),
            ("[[source]]\nalias = \"a\"\nregions = [\"all\", \"cn-shanghai\"]", "cannot be combined"),
            ("[[source]]\nalias = \"a\"\nfilters = { status = \"BOGUS\" }", "filters.status"),
            ("[[source]]\nalias = \"a\"\nsecret = \"x\"", "unknown field"),
            ("[[source]]\nalias = \"a\"\nnaive_time_zone = \"CST\"", "naive_time_zone \"CST\""),
        ] {
            let e = ConfigFile::parse(text).unwrap_err().0;
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_bad_endpoint_is_named_as_the_files_key() {
        let f = ConfigFile::parse(
            "[[source]]\nalias = \"a\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"\n\
             endpoint = \"https://eds-aic.cn-shanghai.aliyuncs.com/v1\"",
        )
        .unwrap();
        let Err(err) = f.sources[0].source(
            &ClientConfig::default(),
            None,
            &ChainSettings::from_vars::<&str, &str>([]),
        ) else {
            panic!("a bad endpoint was taken");
        };
        let err = err.0;
        assert!(
            err.starts_with("source \"a\": endpoint \"https://") && err.contains("path"),
            "{err}"
        );
        assert!(!err.contains("--endpoint"), "{err}");
        // A source without the key takes the flag's endpoint, and names the flag.
        let f = ConfigFile::parse(
            "[[source]]\nalias = \"b\"\naccess_key_id = \"id\"\naccess_key_secret = \"s\"",
        )
        .unwrap();
        let base = ClientConfig {
            endpoint: "https://x.example/v1".into(),
            ..ClientConfig::default()
        };
        let Err(err) =
            f.sources[0].source(&base, None, &ChainSettings::from_vars::<&str, &str>([]))
        else {
            panic!("a bad endpoint was taken");
        };
        assert!(
            err.0
                .starts_with("source \"b\": --endpoint \"https://x.example/v1\""),
            "{}",
            err.0
        );
    }

    #[test]
    fn a_secret_written_where_a_name_belongs_is_not_quoted_back() {
        let err = ConfigFile::parse(
            "[[source]]\nalias = \"a\"\ncredentials = \"SEKRIT-AAA111\"\nregions = [\"cn-hangzhou\"]\n",
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("\"default\"") && !err.contains("SEKRIT"),
            "{err}"
        );
        let f = ConfigFile::parse(
            "[[source]]\nalias = \"a\"\naccess_key_id_env = \"ID\"\naccess_key_secret_env = \"Sekrit9aaa111bbbCCC222ddd333\"\nregions = [\"cn-hangzhou\"]\n",
        )
        .unwrap();
        let settings = ChainSettings::from_vars([("ID", "LTAIabc")]);
        let err = f.sources[0].provider(&settings).unwrap_err().0;
        assert!(
            err.contains("access_key_secret_env") && !err.contains("Sekrit9"),
            "{err}"
        );
    }

    #[test]
    fn env_credentials_name_the_missing_variable_and_never_print_values() {
        let f = ConfigFile::parse(EXAMPLE).unwrap();
        let settings = ChainSettings::from_vars([("PROD_ID", "LTAIabc")]);
        let err = f.sources[0].provider(&settings).unwrap_err().0;
        assert!(
            err.contains("PROD_SECRET") && err.contains("\"prod\""),
            "{err}"
        );
        let settings = settings.with_var("PROD_SECRET", "very-secret");
        let source = f.sources[0]
            .source(&ClientConfig::default(), None, &settings)
            .unwrap();
        assert_eq!(source.alias, "prod");
        let literal = ConfigFile::parse(
            "[[source]]\nalias = \"l\"\naccess_key_id = \"id\"\naccess_key_secret = \"very-secret\"",
        )
        .unwrap();
        assert!(!format!("{:?}", literal.sources[0]).contains("very-secret"));
    }
}
