//! What STS and the metadata services send back, and turning it into
//! [`Credentials`] with an expiry. The raw shapes hold secrets as plain strings, so
//! they deliberately have no `Debug`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{Credentials, CredentialsError};
use crate::secret::Secret;

/// STS rejects shorter sessions.
pub(crate) const MIN_DURATION_SECONDS: u32 = 900;
/// What the SDKs ask for; with the 15-minute refresh margin that is one STS call
/// per 45 minutes.
pub(crate) const DEFAULT_DURATION_SECONDS: u32 = 3600;
/// The SDKs' timeouts for STS.
const STS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const STS_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The HTTP client of an STS-backed provider, once its settings are checked:
/// `what` names the session in errors ("OIDC", "role").
pub(crate) fn sts_client(
    what: &str,
    endpoint: &str,
    duration_seconds: u32,
) -> Result<reqwest::Client, CredentialsError> {
    if duration_seconds < MIN_DURATION_SECONDS {
        return Err(CredentialsError::new(format!(
            "{what} session duration {duration_seconds} s is below the STS minimum of \
             {MIN_DURATION_SECONDS} s"
        )));
    }
    reqwest::Url::parse(endpoint).map_err(|e| {
        CredentialsError::new(format!("STS endpoint {endpoint:?} is not a URL: {e}"))
    })?;
    reqwest::Client::builder()
        .connect_timeout(STS_CONNECT_TIMEOUT)
        .timeout(STS_REQUEST_TIMEOUT)
        .user_agent(super::USER_AGENT)
        // Secrets travel in this exchange: never to another address.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| CredentialsError::new(format!("cannot build the HTTP client for STS: {e}")))
}

/// A configuration file's text, or an error naming the file and what is wrong.
pub(crate) fn read_config_file(path: &std::path::Path) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {e}")
        };
        CredentialsError::new(format!("{} {what}", path.display()))
    })
}

/// Longest excerpt of an unexpected error body quoted in an error message.
const MAX_BODY_EXCERPT: usize = 200;

/// `Credentials` in an STS response, and the whole body of an ECS metadata or
/// credentials-URI response.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SessionCredentials {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    access_key_secret: String,
    #[serde(default)]
    security_token: String,
    #[serde(default)]
    expiration: String,
}

impl SessionCredentials {
    /// Checks that every part is there; `source` names where they came from.
    pub(crate) fn into_expiring(
        self,
        source: &str,
    ) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        let missing: Vec<&str> = [
            ("AccessKeyId", self.access_key_id.is_empty()),
            ("AccessKeySecret", self.access_key_secret.is_empty()),
            ("SecurityToken", self.security_token.is_empty()),
            ("Expiration", self.expiration.is_empty()),
        ]
        .into_iter()
        .filter_map(|(field, empty)| empty.then_some(field))
        .collect();
        if !missing.is_empty() {
            return Err(CredentialsError::new(format!(
                "{source} returned credentials without {}",
                missing.join(", ")
            )));
        }
        let expiration = parse_expiration(&self.expiration).ok_or_else(|| {
            CredentialsError::new(format!(
                "{source} returned an unreadable Expiration {:?}",
                self.expiration
            ))
        })?;
        let credentials = Credentials::new(self.access_key_id, Secret::new(self.access_key_secret))
            .with_security_token(Secret::new(self.security_token));
        Ok((credentials, expiration))
    }
}

/// `{"Code": "Success", ...credentials}` from ECS metadata and credentials URIs.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MetadataCredentials {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(flatten)]
    pub(crate) credentials: SessionCredentials,
}

impl MetadataCredentials {
    pub(crate) fn parse(
        body: &[u8],
        source: &str,
    ) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
        // The serde error could quote the body, which holds secrets: say only where.
        let parsed: MetadataCredentials = serde_json::from_slice(body).map_err(|e| {
            CredentialsError::new(format!(
                "{source} returned a body that is not credentials JSON (at line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if parsed.code != "Success" {
            return Err(CredentialsError::new(format!(
                "{source} answered Code {:?} instead of \"Success\"",
                parsed.code
            )));
        }
        parsed.credentials.into_expiring(source)
    }
}

/// The `Credentials` of an STS answer (`AssumeRole`, `AssumeRoleWithOIDC`).
pub(crate) fn sts_credentials(
    body: &[u8],
    source: &str,
) -> Result<(Credentials, DateTime<Utc>), CredentialsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct AssumeRoleResponse {
        credentials: Option<SessionCredentials>,
    }
    // Not `{e}`: serde can quote values, and this body holds secrets.
    let parsed: AssumeRoleResponse = serde_json::from_slice(body).map_err(|e| {
        CredentialsError::new(format!(
            "response is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    parsed
        .credentials
        .ok_or_else(|| CredentialsError::new(missing_credentials(body)))?
        .into_expiring(source)
}

/// A 2xx answer without `Credentials`: an error body (its code and message), or
/// else only the names of its keys, never its values (it may be credentials
/// under another name).
fn missing_credentials(body: &[u8]) -> String {
    if let Ok(ApiErrorBody { code: Some(_), .. }) = serde_json::from_slice(body) {
        return describe_error_body(200, body);
    }
    let keys = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    format!("HTTP 200 without Credentials (keys: {keys})")
}

/// The common error body of Alibaba Cloud RPC APIs, STS included.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ApiErrorBody {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) request_id: Option<String>,
}

/// `YYYY-MM-DDTHH:MM:SSZ` as the services send it; RFC 3339 offsets and a missing
/// `Z` (read as UTC) are accepted too.
pub(crate) fn parse_expiration(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// Where a service's text starts to quote the request back, secrets and all:
/// STS's SignatureDoesNotMatch gives its string to sign, which holds every
/// parameter, the caller's security token among them; a proxy's error page may
/// echo the URL.
const ECHO_MARKERS: [&str; 3] = ["string to sign", "stringtosign", "signature="];

/// The parameters that carry a secret, lowercase, each followed in an echo by
/// one of [`ECHOED_EQUALS`].
const SECRET_PARAMS: [&str; 3] = ["securitytoken", "accesskeysecret", "oidctoken"];
/// `=` as written, percent-encoded once or twice, or JSON-escaped; or the end of
/// a JSON key (`"AccessKeySecret":"…"`: credentials handed back in an error).
const ECHOED_EQUALS: [&str; 6] = ["=", "%3d", "%253d", "\\u003d", "\":", "\" :"];

/// `text` up to the first place it quotes the request back (see
/// [`ECHO_MARKERS`] and [`SECRET_PARAMS`]), saying that the rest was left out.
fn without_echo(text: &str) -> std::borrow::Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let params = SECRET_PARAMS
        .iter()
        .flat_map(|p| ECHOED_EQUALS.iter().map(move |eq| format!("{p}{eq}")));
    let markers = ECHO_MARKERS.iter().map(|m| (*m).to_owned()).chain(params);
    match markers.filter_map(|m| lower.find(&m)).min() {
        // ASCII lowercasing keeps byte offsets, so `at` is a boundary of `text`.
        Some(at) => format!(
            "{} [the rest is left out: it quotes the request, secrets included]",
            text[..at].trim_end()
        )
        .into(),
        None => text.into(),
    }
}

/// Describes a non-2xx answer: the API error code and message when the body is the
/// usual error JSON, else a short excerpt; either cut where it starts quoting the
/// request back (see [`without_echo`]).
pub(crate) fn describe_error_body(status: u16, body: &[u8]) -> String {
    if let Ok(err) = serde_json::from_slice::<ApiErrorBody>(body) {
        if let Some(code) = err.code {
            let mut out = format!("HTTP {status}, Code {code}");
            if let Some(message) = err.message.filter(|m| !m.is_empty()) {
                out.push_str(&format!(": {}", without_echo(&message)));
            }
            if let Some(id) = err.request_id {
                out.push_str(&format!(" (RequestId {id})"));
            }
            return out;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("HTTP {status}");
    }
    let excerpt: String = text.chars().take(MAX_BODY_EXCERPT).collect();
    let more = if excerpt.len() < text.len() {
        "…"
    } else {
        ""
    };
    format!("HTTP {status}: {}{more}", without_echo(&excerpt))
}

/// Sends `request` and returns the body of a 2xx answer. Any other outcome is a
/// one-line description (see [`describe_transport_error`] and
/// [`describe_error_body`]) for the caller to wrap with what it was doing. No
/// answer, a throttled or a failed one (HTTP 5xx) is transient: the service may
/// answer the next request, and the configuration is not known to be wrong.
pub(crate) async fn fetch_body(
    request: reqwest::RequestBuilder,
) -> Result<Vec<u8>, CredentialsError> {
    let unanswered = |e: reqwest::Error| {
        let lasting = e.is_builder() || e.is_redirect();
        let detail = describe_transport_error(e);
        if lasting {
            CredentialsError::new(detail)
        } else {
            CredentialsError::transient(detail)
        }
    };
    let response = request.send().await.map_err(unanswered)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unanswered)?;
    if !status.is_success() {
        let detail = describe_error_body(status.as_u16(), &body);
        return Err(if may_pass(status.as_u16(), &body) {
            CredentialsError::transient(detail)
        } else {
            CredentialsError::new(detail)
        });
    }
    Ok(body.to_vec())
}

/// A refusal that may pass: the service failed (5xx) or throttled the caller.
fn may_pass(status: u16, body: &[u8]) -> bool {
    if status >= 500 || status == 429 {
        return true;
    }
    serde_json::from_slice::<ApiErrorBody>(body)
        .ok()
        .and_then(|err| err.code)
        .is_some_and(|code| {
            code.starts_with("Throttling")
                || code == "ServiceUnavailable"
                || code == "InternalError"
        })
}

/// Transport errors without the URL's query string, which for STS holds the OIDC
/// token.
pub(crate) fn describe_transport_error(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut out = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_that_quotes_the_request_back_is_cut_before_the_quote() {
        // STS's answer to a bad signature, with the caller's token in it.
        let body = br#"{"RequestId":"R","Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3DSTS.x%26SecurityToken%3DTOKEN-SECRET%26Version"}"#;
        let text = describe_error_body(400, body);
        assert!(!text.contains("TOKEN-SECRET"), "{text}");
        assert!(
            text.contains("SignatureDoesNotMatch: Specified signature is not matched"),
            "{text}"
        );
        assert!(text.contains("left out"), "{text}");
        // A page echoing the URL.
        let page = b"<html>400 Bad Request: /?Action=AssumeRole&SecurityToken=TOKEN-SECRET</html>";
        let text = describe_error_body(400, page);
        assert!(!text.contains("TOKEN-SECRET"), "{text}");
        // Encoded twice, as a string to sign quoted in a URL would be.
        let twice = b"denied: GET&%2F&SecurityToken%253DTOKEN-SECRET";
        assert!(!describe_error_body(403, twice).contains("TOKEN-SECRET"));
        // A message that only names the token keeps all of it.
        let expired = br#"{"Code":"InvalidSecurityToken.Expired","Message":"Specified SecurityToken is expired."}"#;
        assert!(describe_error_body(400, expired).ends_with("Specified SecurityToken is expired."));
        // Credentials handed back in a refusal (a metadata service's 403 page).
        for body in [
            &br#"{"AccessKeyId":"id","AccessKeySecret":"SEKRIT-AAA111","SecurityToken":"T"}"#[..],
            br#"{"Denied": true, "SecurityToken" : "SEKRIT-AAA111"}"#,
        ] {
            let text = describe_error_body(403, body);
            assert!(!text.contains("SEKRIT"), "{text}");
            assert!(text.contains("left out"), "{text}");
        }
    }

    #[test]
    fn an_answer_without_credentials_names_its_keys_not_their_values() {
        let body = br#"{"credentials":{"AccessKeySecret":"LEAKED"},"RequestId":"R"}"#;
        let err = sts_credentials(body, "STS AssumeRole").unwrap_err();
        assert!(!err.0.contains("LEAKED"), "{err}");
        assert!(err.0.contains("keys: RequestId, credentials"), "{err}");
    }

    #[test]
    fn expiration_formats() {
        let want = "2030-01-02T03:04:05Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(parse_expiration("2030-01-02T03:04:05Z"), Some(want));
        assert_eq!(parse_expiration("2030-01-02T03:04:05"), Some(want));
        assert_eq!(parse_expiration("2030-01-02T11:04:05+08:00"), Some(want));
        assert_eq!(parse_expiration("tomorrow"), None);
    }

    #[test]
    fn metadata_body_must_say_success_and_be_complete() {
        let ok = br#"{"Code":"Success","AccessKeyId":"STS.a","AccessKeySecret":"s3cr3t",
            "SecurityToken":"t0k3n","Expiration":"2030-01-02T03:04:05Z"}"#;
        let (c, _) = MetadataCredentials::parse(ok, "x").unwrap();
        assert_eq!(c.access_key_id, "STS.a");
        assert_eq!(c.security_token.unwrap().expose(), "t0k3n");

        let failed = br#"{"Code":"Failed"}"#;
        let e = MetadataCredentials::parse(failed, "x").unwrap_err();
        assert!(e.0.contains("Failed"), "{e}");

        let partial = br#"{"Code":"Success","AccessKeyId":"a","AccessKeySecret":"s3cr3t"}"#;
        let e = MetadataCredentials::parse(partial, "x").unwrap_err();
        assert!(e.0.contains("SecurityToken, Expiration"), "{e}");
        assert!(!e.0.contains("s3cr3t"));

        let broken = br#"{"Code":"Success","AccessKeySecret":"s3cr3t""#;
        let e = MetadataCredentials::parse(broken, "x").unwrap_err();
        assert!(!e.0.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn failures_of_the_service_may_pass_and_refusals_do_not() {
        let code = |c: &str| format!(r#"{{"RequestId":"r","Code":"{c}","Message":"m"}}"#);
        assert!(may_pass(503, b""));
        assert!(may_pass(500, code("InternalError").as_bytes()));
        assert!(may_pass(429, b"slow down"));
        assert!(may_pass(400, code("Throttling.User").as_bytes()));
        assert!(!may_pass(
            400,
            code("AuthenticationFail.OIDCToken.Expired").as_bytes()
        ));
        assert!(!may_pass(403, code("NoPermission").as_bytes()));
        assert!(!may_pass(404, b"not found"));
    }

    #[test]
    fn error_bodies_name_the_code() {
        let body = br#"{"RequestId":"r1","Code":"AuthenticationFail.OIDCToken.Expired","Message":"expired"}"#;
        assert_eq!(
            describe_error_body(400, body),
            "HTTP 400, Code AuthenticationFail.OIDCToken.Expired: expired (RequestId r1)"
        );
        assert_eq!(
            describe_error_body(404, b"not found"),
            "HTTP 404: not found"
        );
        assert_eq!(describe_error_body(500, b""), "HTTP 500");
    }
}
