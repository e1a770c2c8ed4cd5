//! The HTTP client: builds an RPC call the way the official SDK does (parameters in
//! the query string, empty body, V3 signature over host and every `x-acs-*`
//! header), sends it, classifies the answer, and retries what is worth retrying.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::credentials::{Credentials, CredentialsProvider};
use super::error::{is_throttling_code, ApiError, ErrorBody};
use super::model::{
    holds_char, kind_of, mend_record, DescribeAndroidInstancesRequest, DescribeRegionsRequest,
    DescribeRegionsResponse, Mended, RawInstance, ACTION_DESCRIBE_ANDROID_INSTANCES,
    ACTION_DESCRIBE_REGIONS, API_VERSION,
};
use super::ratelimit::RateLimiter;
use super::retry::{CallStats, RetryPolicy};
use super::sign::{sign_v3, V3Input, EMPTY_SHA256};

/// The China site's control-plane endpoint; the international site's is
/// `https://eds-aic.ap-southeast-1.aliyuncs.com`.
pub const DEFAULT_ENDPOINT: &str = "https://eds-aic.cn-shanghai.aliyuncs.com";

/// One page is at most 100 instances of ~2 KiB each; a body far beyond that is not
/// an answer we can trust, and reading it whole would defeat the memory bound.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

pub const USER_AGENT: &str = concat!("ecp-inventory/", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub endpoint: String,
    /// Time allowed for one attempt, connect to last byte.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Shared by every client of a run, so that concurrent crawls together stay
    /// under the account's quota (throttling is counted per account).
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Counters of requests, retries and throttled answers, shared like the limiter.
    pub stats: Arc<CallStats>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            rate_limiter: None,
            stats: Arc::default(),
        }
    }
}

/// One page of `DescribeAndroidInstances`, with each instance kept as the raw JSON
/// object the service sent, so no field is lost before the typed schema knows it.
#[derive(Clone, Debug)]
pub struct InstancePage {
    pub request_id: Option<String>,
    pub total_count: Option<i64>,
    /// `None` or empty: this was the last page.
    pub next_token: Option<String>,
    pub instances: Vec<RawInstance>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    /// The `host` header as signed: host, plus `:port` when not the scheme's default.
    host: String,
    credentials: Arc<dyn CredentialsProvider>,
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials.name())
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built: always a configuration mistake. Displayed
/// as the flag's; [`ClientBuildError::naming`] names a config file's key instead.
#[derive(Debug)]
pub enum ClientBuildError {
    BadUrl(String, String),
    BadScheme(String),
    NotAtRoot(String),
    Http(String),
}

impl std::fmt::Display for ClientBuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.naming("--endpoint"))
    }
}

impl std::error::Error for ClientBuildError {}

impl ClientBuildError {
    /// The message, with the endpoint named as `setting` (the flag, or the key
    /// of the config file that set it).
    pub fn naming(&self, setting: &str) -> String {
        // `127.0.0.1:8790` is no URL, `localhost:8790` one of scheme "localhost".
        let scheme_hint = |url: &str| {
            if url.contains("://") {
                String::new()
            } else {
                format!(" (with its scheme: https://{url}, or http:// for a simulator)")
            }
        };
        match self {
            ClientBuildError::BadUrl(url, why) => {
                format!(
                    "{setting} {url:?} is not a valid URL: {why}{}",
                    scheme_hint(url)
                )
            }
            ClientBuildError::BadScheme(url) => {
                format!(
                    "{setting} {url:?} must use http or https{}",
                    scheme_hint(url)
                )
            }
            ClientBuildError::NotAtRoot(url) => format!(
                "{setting} {url:?} has a path, query or fragment, which the API does not take: \
                 it is served at the host's root; give the scheme, host and port only (such as \
                 https://eds-aic.cn-shanghai.aliyuncs.com)"
            ),
            ClientBuildError::Http(why) => format!("could not set up the HTTP client: {why}"),
        }
    }
}

impl Client {
    /// `credentials` is a provider, or plain [`super::Credentials`] (`.into()`).
    pub fn new(
        credentials: impl Into<Arc<dyn CredentialsProvider>>,
        config: ClientConfig,
    ) -> Result<Self, ClientBuildError> {
        let credentials = credentials.into();
        let endpoint = reqwest::Url::parse(&config.endpoint)
            .map_err(|e| ClientBuildError::BadUrl(config.endpoint.clone(), e.to_string()))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ClientBuildError::BadScheme(config.endpoint.clone()));
        }
        let Some(host_name) = endpoint.host_str() else {
            return Err(ClientBuildError::BadUrl(
                config.endpoint.clone(),
                "it has no host".into(),
            ));
        };
        // RPC-style calls go to the host's root, with the query the signature
        // covers: a path or query of the flag's would be dropped without a word.
        if endpoint.path() != "/" || endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(ClientBuildError::NotAtRoot(config.endpoint.clone()));
        }
        let host = match endpoint.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            // A signed request carries the access key id and any STS token in its
            // headers: it goes to the configured endpoint and nowhere else. A
            // redirect is reported (see `attempt`), never followed.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClientBuildError::Http(e.to_string()))?;
        Ok(Client {
            http,
            endpoint,
            host,
            credentials,
            config,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Requests, retries and throttled answers so far (shared with clones).
    pub fn stats(&self) -> &CallStats {
        &self.config.stats
    }

    pub async fn describe_android_instances(
        &self,
        request: &DescribeAndroidInstancesRequest,
    ) -> Result<InstancePage, ApiError> {
        let action = ACTION_DESCRIBE_ANDROID_INSTANCES;
        let (mut page, header_id) = self
            .call(action, &request.to_params(), |status, body| {
                parse_instance_page(action, status, body)
            })
            .await?;
        page.request_id = page.request_id.or(header_id);
        Ok(page)
    }

    pub async fn describe_regions(
        &self,
        request: &DescribeRegionsRequest,
    ) -> Result<DescribeRegionsResponse, ApiError> {
        let action = ACTION_DESCRIBE_REGIONS;
        let parse = |status, body: &[u8]| {
            let answer: DescribeRegionsResponse =
                serde_json::from_slice(body).map_err(|e| bad_response(action, status, body, e))?;
            if answer.region_models.is_empty() {
                disguised_error(action, status, body).map_or(Ok(answer), Err)
            } else {
                Ok(answer)
            }
        };
        let (answer, _) = self.call(action, &request.to_params(), parse).await?;
        Ok(answer)
    }

    /// Sends the call until its answer reads (`parse`), it fails for good, or the
    /// retry budget is spent. Every attempt is signed afresh: a new nonce and date
    /// each time. An answer that reads as an error is retried like any other.
    /// Returns what `parse` made of the answer and the gateway's RequestId header.
    async fn call<T>(
        &self,
        action: &str,
        params: &[(String, String)],
        parse: impl Fn(u16, &[u8]) -> Result<T, ApiError>,
    ) -> Result<(T, Option<String>), ApiError> {
        let policy = &self.config.retry;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.config.rate_limiter {
                limiter.acquire().await;
            }
            self.config.stats.record_request();
            let result = match self.signing_credentials(action).await {
                Ok(credentials) => self
                    .attempt(action, params, &credentials)
                    .await
                    .and_then(|(status, body, header_id)| match parse(status, &body) {
                        Ok(answer) => Ok((answer, header_id)),
                        Err(e) => Err(e.with_request_id(header_id)),
                    })
                    // An endpoint (or a proxy before it) may quote the request
                    // back in its error, the security token header included.
                    .map_err(|e| e.redacted(&credentials.secrets())),
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            if error.is_throttling() {
                self.config.stats.record_throttled();
            }
            if !error.is_retryable() {
                return Err(error);
            }
            let gave_up = |why: String, last: ApiError| ApiError::GaveUp {
                attempts: attempt,
                why,
                last: Box::new(last),
            };
            if attempt >= policy.max_attempts {
                let why = format!("the most allowed (--max-attempts {})", policy.max_attempts);
                return Err(gave_up(why, error));
            }
            let delay = policy.delay(attempt, error.retry_after(), &mut rand::rng());
            if started.elapsed() + delay > policy.max_elapsed {
                let asked = error
                    .retry_after()
                    .map(|w| format!("the service asked to wait {:.1} s; ", w.as_secs_f64()))
                    .unwrap_or_default();
                let why = format!(
                    "{asked}the next attempt would come {:.1} s after the first, past the \
                     retry budget (--max-retry-secs {})",
                    (started.elapsed() + delay).as_secs_f64(),
                    policy.max_elapsed.as_secs_f64()
                );
                return Err(gave_up(why, error));
            }
            // A wait a person would notice is said at info: a quiet minute of
            // throttling otherwise looks like a hung job.
            if delay >= Duration::from_secs(5) {
                tracing::info!(
                    action,
                    attempt,
                    wait_secs = delay.as_secs_f64(),
                    throttled = error.is_throttling(),
                    error = %error,
                    "waiting before the next attempt"
                );
            } else {
                tracing::debug!(
                    action,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    throttled = error.is_throttling(),
                    error = %error,
                    "retrying"
                );
            }
            self.config.stats.record_retry();
            tokio::time::sleep(delay).await;
        }
    }

    /// The credentials to sign an attempt with, as the provider has them now.
    async fn signing_credentials(&self, action: &str) -> Result<Credentials, ApiError> {
        let error = |detail: String, transient: bool| ApiError::Credentials {
            action: action.to_owned(),
            provider: self.credentials.name().to_owned(),
            transient,
            detail,
        };
        let credentials = self.credentials.credentials().await.map_err(|e| {
            let transient = e.is_transient();
            error(e.0, transient)
        })?;
        // The service refuses an STS key without its token (MissingSecurityToken),
        // a refusal that names no variable: said here, before anything is sent.
        if credentials.access_key_id.starts_with("STS.") && credentials.security_token.is_none() {
            return Err(error(
                "the AccessKey id is a temporary STS one (it starts \"STS.\"), which the \
                 service takes only with its security token, and none came with it: set \
                 ALIBABA_CLOUD_SECURITY_TOKEN (in a config file, the source's \
                 security_token_env)"
                    .to_owned(),
                false,
            ));
        }
        Ok(credentials)
    }

    async fn attempt(
        &self,
        action: &str,
        params: &[(String, String)],
        credentials: &Credentials,
    ) -> Result<(u16, Vec<u8>, Option<String>), ApiError> {
        let headers = self.signed_headers(action, params, credentials)?;
        let mut url = self.endpoint.clone();
        url.set_path("/");
        // Form encoding on the wire, as the Python SDK does (space as `+`); the
        // signature covers the decoded values, so any encoding verifies.
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        url.set_query((!query.is_empty()).then_some(query.as_str()));

        let response = self
            .http
            .post(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| self.transport_error(action, e))?;
        let status = response.status().as_u16();
        // The gateway's RequestId also comes as a header: it names the request when
        // the body is not JSON (a proxy's page, a redirect, a truncated or oversized answer).
        let header_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if response.status().is_redirection() {
            let location = header_text(response.headers(), "location").unwrap_or("nowhere");
            return Err(ApiError::BadResponse {
                action: action.to_owned(),
                status,
                request_id: header_id,
                detail: format!(
                    "the endpoint redirects to {location}; a signed request is not sent \
                     on: set the endpoint to the API's own address"
                ),
                retry_after: None,
            });
        }
        // Read only from error answers: the wait asked for, the quota's refill
        // time, and whether the body is XML.
        let error_headers = (status >= 400).then(|| {
            let h = response.headers();
            let retry_after = header_text(h, "x-acs-retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis);
            let content_type = header_text(h, "content-type").map(str::to_owned);
            // A gateway or proxy in front of the API says it the standard way.
            let standard = matches!(status, 429 | 503)
                .then(|| header_text(h, "retry-after"))
                .flatten()
                .and_then(|v| standard_retry_after(v, Utc::now()));
            let waits = Waits {
                retry_after,
                time_left: rate_limit_time_left(h),
                standard,
            };
            (waits, content_type)
        });
        // No encoding is asked for (no Accept-Encoding), and none is read: a body
        // sent compressed anyway would otherwise be reported as bytes that are
        // not JSON.
        if let Some(encoding) = header_text(response.headers(), "content-encoding")
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
        {
            return Err(ApiError::BadResponse {
                action: action.to_owned(),
                status,
                request_id: header_id,
                detail: format!(
                    "the body came with Content-Encoding {encoding}, which this client did not \
                     ask for and does not read (a proxy in between that compresses answers?)"
                ),
                retry_after: error_headers.and_then(|(w, _)| w.standard),
            });
        }
        let mut body = read_limited(response).await.map_err(|e| match e {
            ReadError::TooLarge => ApiError::BadResponse {
                action: action.to_owned(),
                status,
                request_id: header_id.clone(),
                detail: format!("response larger than {MAX_RESPONSE_BYTES} bytes"),
                retry_after: error_headers.as_ref().and_then(|(w, _)| w.standard),
            },
            ReadError::Http(e) => self.transport_error(action, e),
        })?;
        // A byte-order mark is no part of JSON, and serde refuses it; some
        // gateways put one before what they pass on.
        if body.starts_with(UTF8_BOM) {
            body.drain(..UTF8_BOM.len());
        }
        if let Some((waits, content_type)) = error_headers {
            let mut error = service_error(action, status, content_type.as_deref(), &body);
            match &mut error {
                ApiError::Service {
                    code,
                    retry_after: wait,
                    x_acs_retry_after,
                    ..
                } => {
                    // The wait the service asks for; a throttling code without one
                    // may still say when its quota refills, as the Go SDK reads it.
                    *x_acs_retry_after = waits.retry_after.is_some();
                    *wait = waits
                        .retry_after
                        .or(waits.time_left.filter(|_| is_throttling_code(code)))
                        .or(waits.standard);
                }
                ApiError::BadResponse {
                    retry_after: wait, ..
                } => *wait = waits.standard,
                _ => {}
            }
            return Err(error.with_request_id(header_id));
        }
        Ok((status, body, header_id))
    }

    fn signed_headers(
        &self,
        action: &str,
        params: &[(String, String)],
        credentials: &super::Credentials,
    ) -> Result<HeaderMap, ApiError> {
        let nonce = format!("{:032x}", rand::rng().random::<u128>());
        let date = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-acs-action".into(), action.to_owned()),
            ("x-acs-version".into(), API_VERSION.to_owned()),
            ("x-acs-date".into(), date),
            ("x-acs-signature-nonce".into(), nonce),
            ("x-acs-content-sha256".into(), EMPTY_SHA256.to_owned()),
            (
                "x-acs-credentials-provider".into(),
                self.credentials.name().to_owned(),
            ),
        ];
        if let Some(token) = &credentials.security_token {
            signed.push((
                "x-acs-accesskey-id".into(),
                credentials.access_key_id.clone(),
            ));
            signed.push(("x-acs-security-token".into(), token.expose().to_owned()));
        }
        let signature = sign_v3(
            &V3Input {
                method: "POST",
                path: "/",
                query: params,
                headers: &signed,
                hashed_payload: EMPTY_SHA256,
            },
            credentials.access_key_secret.expose(),
        );
        // Only a credential can make a header value invalid (a control character,
        // say a newline pasted into a secret): an error naming which, never the value.
        let invalid = |what: &str| ApiError::Credentials {
            action: action.to_owned(),
            provider: self.credentials.name().to_owned(),
            detail: format!(
                "the {what} contains a character that cannot be sent in an HTTP header \
                 (a newline or another control character?)"
            ),
            transient: false,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in signed {
            if name == "host" {
                continue; // reqwest sets it from the URL, to the same value
            }
            let mut value = HeaderValue::from_str(&value).map_err(|_| match name.as_str() {
                "x-acs-security-token" => invalid("security token"),
                "x-acs-accesskey-id" => invalid("AccessKeyId"),
                _ => invalid(&name),
            })?;
            if name == "x-acs-security-token" {
                value.set_sensitive(true);
            }
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                value,
            );
        }
        headers.insert("accept", HeaderValue::from_static("application/json"));
        // The body is empty, and the SDKs say so (§5.1): some proxies refuse a POST
        // that announces no length (411).
        headers.insert(
            reqwest::header::CONTENT_LENGTH,
            HeaderValue::from_static("0"),
        );
        let mut auth = HeaderValue::from_str(&signature.authorization(&credentials.access_key_id))
            .map_err(|_| invalid("AccessKeyId"))?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        Ok(headers)
    }

    fn transport_error(&self, action: &str, e: reqwest::Error) -> ApiError {
        let endpoint = self.endpoint.as_str().trim_end_matches('/').to_owned();
        if e.is_timeout() {
            return ApiError::Timeout {
                action: action.to_owned(),
                endpoint,
                timeout: self.config.timeout,
            };
        }
        let refused = e.is_connect();
        // The error's own text repeats the URL; its source chain says what failed.
        let mut detail = String::new();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        if detail.is_empty() {
            detail = e.without_url().to_string();
        }
        // rustls reading a plain HTTP answer as TLS: "received corrupt message
        // of type InvalidContentType", which does not say what is wrong.
        if self.endpoint.scheme() == "https" && detail.contains("InvalidContentType") {
            detail.push_str(
                " (the server answered in plain HTTP, not TLS: if it serves http, write \
                 the endpoint with http://)",
            );
        }
        if refused {
            let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
            // A host NO_PROXY names does not take the proxy: no hint then.
            let no_proxy = env("NO_PROXY").or_else(|| env("no_proxy"));
            let host = self.endpoint.host_str().unwrap_or("");
            let bypass = no_proxy.is_some_and(|list| bypasses_proxy(host, &list.to_string_lossy()));
            if let Some(variable) = proxy_variable(self.endpoint.scheme(), env).filter(|_| !bypass)
            {
                // The name only: a proxy URL may carry a password.
                detail.push_str(&format!(
                    " (requests go through the proxy set in {variable}: check it, or \
                     name the endpoint's host in NO_PROXY)"
                ));
            }
        }
        ApiError::Transport {
            action: action.to_owned(),
            endpoint,
            detail,
        }
    }
}

/// The environment variable that sends requests of `scheme` through a proxy,
/// as reqwest reads them, if one is set.
fn proxy_variable(
    scheme: &str,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<&'static str> {
    let names: &[&'static str] = match scheme {
        "https" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        _ => &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
    };
    names.iter().copied().find(|name| env(name).is_some())
}

/// Whether a NO_PROXY list names `host`: `*`, the host itself, or a domain it
/// is in (`example.com` and `.example.com` both cover `api.example.com`), as
/// reqwest reads it (IP ranges aside, which are taken as naming the host).
fn bypasses_proxy(host: &str, list: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            let domain = entry.trim_start_matches('.');
            entry == "*"
                || entry.contains('/')
                || host == domain
                || host.ends_with(&format!(".{domain}"))
        })
}

enum ReadError {
    TooLarge,
    Http(reqwest::Error),
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_RESPONSE_BYTES)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short, printable excerpt of a body, for error messages.
fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > MAX {
        format!("{flat}…")
    } else {
        flat
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `TimeLeft:<ms>` of `x-ratelimit-user-api` and `x-ratelimit-user` (e.g.
/// `Limit:100,Remain:0,TimeLeft:850,Reset:1700000000`): when the quotas refill.
/// Both must have, so the longer wait, as the SDKs take it.
fn rate_limit_time_left(headers: &HeaderMap) -> Option<Duration> {
    ["x-ratelimit-user-api", "x-ratelimit-user"]
        .into_iter()
        .filter_map(|name| header_text(headers, name))
        .filter_map(|value| {
            value.split(',').find_map(|field| {
                let (key, ms) = field.split_once(':')?;
                (key.trim().eq_ignore_ascii_case("TimeLeft"))
                    .then(|| ms.trim().parse::<u64>().ok())
                    .flatten()
            })
        })
        .max()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// The waits an error answer may ask for, from its headers.
struct Waits {
    /// `x-acs-retry-after`, the service's own.
    retry_after: Option<Duration>,
    /// When the rate-limit quotas refill.
    time_left: Option<Duration>,
    /// A standard `Retry-After` on a 429 or 503.
    standard: Option<Duration>,
}

/// A standard `Retry-After` value (RFC 9110): seconds, or an HTTP date, taken
/// relative to `now`. A date already past, or a value that is neither, asks for
/// no particular wait.
fn standard_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&Utc) - now).to_std().ok()?
        }
    };
    (!wait.is_zero()).then_some(wait)
}

/// The error body: the API's JSON, or the `<Error>` XML some gateways send
/// (the SDKs read it when the content type says XML, §8.1). The wait, if any,
/// is filled in by the caller.
fn service_error(action: &str, status: u16, content_type: Option<&str>, body: &[u8]) -> ApiError {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok().or_else(|| {
        let xml = content_type.is_some_and(|t| t.to_ascii_lowercase().contains("xml"))
            || body.trim_ascii_start().starts_with(b"<?xml")
            || body.trim_ascii_start().starts_with(b"<Error>");
        xml.then(|| xml_error_body(body)).flatten()
    });
    match parsed {
        Some(ErrorBody {
            code: Some(code),
            message,
            request_id,
            ..
        }) => ApiError::Service {
            action: action.to_owned(),
            status,
            code,
            // One line in logs and the ledger: a gateway's string to sign, which
            // a signature mismatch quotes, spans several.
            message: message.unwrap_or_default().replace('\n', "\\n"),
            request_id,
            retry_after: None,
            x_acs_retry_after: false,
        },
        _ => ApiError::BadResponse {
            action: action.to_owned(),
            status,
            request_id: None,
            detail: format!("error answer is not the API's JSON: {}", excerpt(body)),
            retry_after: None,
        },
    }
}

/// `<Error><Code>…</Code><Message>…</Message><RequestId>…</RequestId></Error>`,
/// read by element name (the gateway's XML has no attributes or nesting there).
fn xml_error_body(body: &[u8]) -> Option<ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    let element = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        let value = xml_unescape(text[start..end].trim());
        (!value.is_empty()).then_some(value)
    };
    text.contains("<Error>").then(|| ErrorBody {
        request_id: element("RequestId"),
        code: element("Code"),
        message: element("Message"),
        host_id: element("HostId"),
        recommend: element("Recommend"),
    })
}

/// The five predefined entities and a CDATA section; character references
/// (`&#…;`) are left as they are, which an error message can bear.
fn xml_unescape(text: &str) -> String {
    if let Some(cdata) = text
        .strip_prefix("<![CDATA[")
        .and_then(|t| t.strip_suffix("]]>"))
    {
        return cdata.to_owned();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn bad_response(action: &str, status: u16, body: &[u8], e: impl std::fmt::Display) -> ApiError {
    let request_id = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.request_id);
    ApiError::BadResponse {
        action: action.to_owned(),
        status,
        request_id,
        detail: format!("{e}; body starts {:?}", excerpt(body)),
        retry_after: None,
    }
}

/// The keys by which an answer says it failed, whatever its HTTP status: a `Code`
/// (of any type: gateways and proxies send `503` as well as `"InternalError"`), an
/// `ErrorCode`, or `Success: false`. No successful answer of this API has any of
/// them at the top, so one that does is the error it says it is, even with an
/// empty `InstanceModel` beside it: read as a page, it would be an empty last
/// page, a crawl cut short that looks complete, and its region's instances would
/// be marked deleted.
#[derive(Default, serde::Deserialize)]
struct ErrorMarks {
    #[serde(rename = "Code", alias = "code", default)]
    code: Option<Value>,
    #[serde(rename = "ErrorCode", alias = "errorCode", default)]
    error_code: Option<Value>,
    #[serde(rename = "Success", alias = "success", default)]
    success: Option<Value>,
    #[serde(rename = "Message", alias = "message", default)]
    message: Option<Value>,
    #[serde(rename = "ErrorMessage", alias = "errorMessage", default)]
    error_message: Option<Value>,
}

impl ErrorMarks {
    /// The error the answer reports, if it reports one. A `Code` that some APIs
    /// send with their successful answers (`200`, `"Success"`, `"OK"`) is not one.
    fn error(self, action: &str, status: u16, request_id: Option<String>) -> Option<ApiError> {
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let code = [self.code, self.error_code]
            .into_iter()
            .flatten()
            .filter(|v| !v.is_null())
            .map(text)
            .find(|c| !c.trim().is_empty());
        let failed = matches!(&self.success, Some(Value::Bool(false)))
            || matches!(&self.success, Some(Value::String(s)) if s.eq_ignore_ascii_case("false"));
        let code = match code {
            Some(c)
                if !failed
                    && ["200", "success", "ok"]
                        .iter()
                        .any(|ok| c.eq_ignore_ascii_case(ok)) =>
            {
                return None
            }
            Some(c) => c,
            None if failed => "Success=false".to_owned(),
            None => return None,
        };
        let message = [self.message, self.error_message]
            .into_iter()
            .flatten()
            .filter(|v| !v.is_null())
            .map(text)
            .next()
            .unwrap_or_default();
        Some(ApiError::Service {
            action: action.to_owned(),
            status,
            code,
            message: message.replace('\n', "\\n"),
            request_id,
            retry_after: None,
            x_acs_retry_after: false,
        })
    }
}

/// A successful answer that is an error body in disguise (see [`ErrorMarks`]).
fn disguised_error(action: &str, status: u16, body: &[u8]) -> Option<ApiError> {
    let marks: ErrorMarks = serde_json::from_slice(body).ok()?;
    let request_id = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.request_id);
    marks.error(action, status, request_id)
}

/// Reads a page leniently: unknown keys are kept, a missing `InstanceModel` is an
/// empty page (as the official SDK reads it), a body that says it failed is that
/// error (see [`ErrorMarks`]), but a body that is not a JSON object, or an
/// `InstanceModel` that is not a list, is a bad response (never silently an empty
/// page). A record of the list that cannot be read is kept for normalize to skip
/// (see [`RawInstance::unreadable`]).
///
/// Each record is first taken as raw JSON text (no copy), then parsed once into
/// its fields; the text itself is kept for `raw`.
fn parse_instance_page(action: &str, status: u16, body: &[u8]) -> Result<InstancePage, ApiError> {
    match read_page(action, status, body) {
        // Bytes that are not UTF-8 (a name cut inside a character by some
        // service) fail the parse of the whole body, and the region with it on
        // every run. Read again with U+FFFD in their place, the fields that held
        // them reported as mended; only after a failed parse, so it costs the
        // common page nothing.
        Err(_) if std::str::from_utf8(body).is_err() => {
            let mended = String::from_utf8_lossy(body);
            let mut page = read_page(action, status, mended.as_bytes())?;
            // A cursor with bytes replaced would ask for a page the service
            // never gave out.
            if page
                .next_token
                .as_deref()
                .is_some_and(|t| t.contains(REPLACEMENT))
            {
                return Err(bad_response(
                    action,
                    status,
                    body,
                    "NextToken holds bytes that are not UTF-8",
                ));
            }
            for record in &mut page.instances {
                mark_replaced_bytes(record);
            }
            Ok(page)
        }
        read => read,
    }
}

fn read_page(action: &str, status: u16, body: &[u8]) -> Result<InstancePage, ApiError> {
    /// The envelope. Unknown top-level keys are ignored; the scalars stay loose
    /// `Value`s so that a wrong type is reported by name rather than as a parse
    /// error.
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "RequestId", default)]
        request_id: Option<Value>,
        #[serde(rename = "TotalCount", default)]
        total_count: Option<Value>,
        #[serde(rename = "NextToken", default)]
        next_token: Option<Value>,
        #[serde(rename = "InstanceModel", default, borrow)]
        instance_model: Option<&'a RawValue>,
        /// Read in the same pass, from the keys no field above takes.
        #[serde(flatten)]
        marks: ErrorMarks,
    }

    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // The gateway's XML error, sent with 200, is the error it names (and
        // retried as such), like a JSON one.
        if let e @ ApiError::Service { .. } = service_error(action, status, None, body) {
            return Err(e);
        }
        return Err(bad_response(
            action,
            status,
            body,
            "the body is not a JSON object",
        ));
    }
    let top: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| bad_response(action, status, body, e))?;
    let names_a_page = top.request_id.is_some()
        || top.total_count.is_some()
        || top.next_token.is_some()
        || top.instance_model.is_some();
    let request_id = match top.request_id {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let bad = |detail: String| ApiError::BadResponse {
        action: action.to_owned(),
        status,
        request_id: request_id.clone(),
        detail,
        retry_after: None,
    };
    if let Some(error) = top.marks.error(action, status, request_id.clone()) {
        return Err(error);
    }
    // Every answer of the service names its request; a JSON object with none of
    // a page's fields (`{}` from a proxy or a gateway in trouble) is no page, and
    // read as one it would end the crawl as a last, empty page.
    if !names_a_page {
        return Err(bad(
            "the body has none of a page's fields (RequestId, TotalCount, NextToken, \
             InstanceModel): not an answer of the service"
                .into(),
        ));
    }
    let total_count = match top.total_count {
        None | Some(Value::Null) => None,
        // `20.0` is a count as well: some gateways re-encode numbers as floats.
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..9.0e15).contains(f))
                .map(|f| f as i64)
        }),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(other) => return Err(bad(format!("TotalCount is {other}, not a number"))),
    };
    let next_token = match top.next_token {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => return Err(bad(format!("NextToken is {other}, not a string"))),
    };
    let items: Vec<&RawValue> = match top.instance_model {
        None => Vec::new(),
        Some(list) if kind_of(list) == "a list" => {
            serde_json::from_str(list.get()).map_err(|e| bad(format!("InstanceModel: {e}")))?
        }
        Some(other) => {
            return Err(bad(format!(
                "InstanceModel is {}, not a list",
                kind_of(other)
            )))
        }
    };
    let mut instances = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        // A record that cannot be read (`null` from a service that lost one, or
        // nested past serde's limit) is still some instance: kept as sent, it
        // is skipped by normalize like a record without an id, which withholds
        // the scope's deletions, instead of failing the region on every run.
        let unreadable = |reason: String| RawInstance {
            fields: Map::new(),
            text: item.to_owned(),
            mended: Vec::new(),
            unreadable: Some(format!("InstanceModel[{i}]: {reason}")),
        };
        let kind = kind_of(item);
        if kind != "an object" {
            instances.push(unreadable(format!("{kind}, not an object")));
            continue;
        }
        let record = match serde_json::from_str::<Map<String, Value>>(item.get()) {
            Ok(fields) => RawInstance {
                fields,
                text: item.to_owned(),
                mended: Vec::new(),
                unreadable: None,
            },
            // A string cut in the middle of a character outside the BMP (an
            // emoji in a name truncated by some service) leaves half of its
            // UTF-16 pair; a number may be past what a float holds. One such
            // field must not fail the region on every run: it is mended, and
            // normalize reports it.
            Err(e) => mend_record(item.get()).unwrap_or_else(|| unreadable(e.to_string())),
        };
        instances.push(record);
    }
    Ok(InstancePage {
        request_id,
        total_count,
        next_token,
        instances,
    })
}

/// Marks the fields of a record read from a body that was not UTF-8 which hold
/// the replacement character (a field that held U+FFFD as sent is marked too:
/// the bytes replaced cannot be told from it).
fn mark_replaced_bytes(record: &mut RawInstance) {
    if !record.text.get().contains(REPLACEMENT) {
        return;
    }
    for (key, value) in &record.fields {
        if key.contains(REPLACEMENT) || holds_char(value, REPLACEMENT) {
            record.mended.push((key.clone(), Mended::NotUtf8));
        }
    }
    // An id with bytes replaced names no instance the service knows (and two
    // that differ in those bytes would become one): the record is skipped, as
    // one without a usable id, which withholds the scope's deletions.
    if record
        .instance_id()
        .is_some_and(|id| id.contains(REPLACEMENT))
    {
        record.unreadable = Some("its AndroidInstanceId holds bytes that are not UTF-8".to_owned());
    }
}

/// What bytes that are not UTF-8 are read as.
const REPLACEMENT: char = '\u{FFFD}';

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::mend_escapes;

    #[test]
    fn half_a_surrogate_pair_is_replaced_and_a_whole_one_kept() {
        let text = r#"{"a":"x\ud83d","b":"\ud83d\ude00","c":"\\ud800","d":"\udc00y\"\u00e9"}"#;
        let mended = mend_escapes(text).unwrap();
        assert_eq!(
            mended,
            r#"{"a":"x\uFFFD","b":"\ud83d\ude00","c":"\\ud800","d":"\uFFFDy\"\u00e9"}"#
        );
        assert!(serde_json::from_str::<Value>(&mended).is_ok());
        assert_eq!(mend_escapes(r#"{"b":"\ud83d\ude00"}"#), None);
        // Four hex digits or no escape at all: a sign is not a digit.
        assert_eq!(mend_escapes(r#"{"b":"\u+000"}"#), None);
        assert_eq!(
            mend_escapes(r#"{"t":"\ud83d"#),
            Some(r#"{"t":"\uFFFD"#.into())
        );
    }

    #[test]
    fn a_record_with_half_a_surrogate_pair_is_read_not_refused() {
        let body = br#"{"RequestId":"R","InstanceModel":[{"AndroidInstanceId":"acp-1","AndroidInstanceName":"phone \ud83d"}]}"#;
        let page = parse_instance_page("A", 200, body).unwrap();
        let record = &page.instances[0];
        assert_eq!(record.fields["AndroidInstanceName"], "phone \u{FFFD}");
        assert!(
            record.text.get().contains(r"phone \uFFFD"),
            "{}",
            record.text.get()
        );
        assert_eq!(
            record.mended,
            [("AndroidInstanceName".to_owned(), Mended::HalfSurrogate)]
        );
    }

    #[test]
    fn a_record_with_a_number_past_a_float_is_read_with_the_number_as_text() {
        let big = "9".repeat(310);
        let body = format!(
            r#"{{"RequestId":"R","InstanceModel":[{{"AndroidInstanceId":"acp-1","Memory":1e400,"X":{{"Y":[-2.5E+999,"1e400 \"q\"",3]}},"Name":"n\ud83d","Z":{big},"Dup":1e999,"Dup":7}}]}}"#
        );
        let page = parse_instance_page("A", 200, body.as_bytes()).unwrap();
        let record = &page.instances[0];
        assert_eq!(record.fields["Memory"], "1e400");
        assert_eq!(
            record.fields["X"],
            serde_json::json!({"Y": ["-2.5E+999", "1e400 \"q\"", 3]})
        );
        assert_eq!(record.fields["Z"], big.as_str());
        // The last of a repeated key, as serde reads it: nothing to mend there.
        assert_eq!(record.fields["Dup"], 7);
        assert_eq!(record.fields["Name"], "n\u{FFFD}");
        // raw keeps the numbers as sent (jsonb holds them), the half pair mended.
        let text = record.text.get();
        assert!(text.contains(r#""Memory":1e400,"#), "{text}");
        assert!(text.contains(&format!(r#""Z":{big},"#)), "{text}");
        assert!(text.contains(r#""Name":"n\uFFFD""#), "{text}");
        let mut mended = record.mended.clone();
        mended.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            mended,
            [
                ("Memory".to_owned(), Mended::HugeNumber),
                ("Name".to_owned(), Mended::HalfSurrogate),
                ("X".to_owned(), Mended::HugeNumber),
                ("Z".to_owned(), Mended::HugeNumber),
            ]
        );
        // At the very edge of the range: read as serde rounds it, mended if it
        // refuses it.
        let edge = "1.7976931348623159e308";
        let body = format!(
            r#"{{"RequestId":"R","InstanceModel":[{{"AndroidInstanceId":"acp-1","Edge":{edge}}}]}}"#
        );
        let page = parse_instance_page("A", 200, body.as_bytes()).unwrap();
        assert_eq!(
            page.instances[0].mended.is_empty(),
            serde_json::from_str::<f64>(edge).is_ok()
        );
        // JSON that is not JSON (a number with a leading zero) is still a bad answer.
        let body = br#"{"RequestId":"R","InstanceModel":[{"AndroidInstanceId":"acp-1","M":1e400,"N":01}]}"#;
        let err = parse_instance_page("A", 200, body).unwrap_err();
        assert!(matches!(err, ApiError::BadResponse { .. }), "{err}");
    }

    #[test]
    fn an_object_with_none_of_a_pages_fields_is_no_page() {
        for body in [
            &b"{}"[..],
            br#"{"Data":{"Items":[]}}"#,
            br#"{"InstanceModel":null}"#,
        ] {
            let err = parse_instance_page("A", 200, body).unwrap_err();
            assert!(
                err.to_string().contains("none of a page's fields"),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        // One of them is enough: an empty last page, as the reference reads it.
        for body in [
            &br#"{"RequestId":"R"}"#[..],
            br#"{"InstanceModel":[]}"#,
            br#"{"TotalCount":0}"#,
        ] {
            let page = parse_instance_page("A", 200, body).unwrap();
            assert!(page.instances.is_empty() && page.next_token.is_none());
        }
    }

    #[test]
    fn a_page_keeps_unknown_fields_and_reads_a_missing_token_as_the_end() {
        let body = br#"{"RequestId":"R1","TotalCount":1,"InstanceModel":[{"AndroidInstanceId":"acp-1","NewField":{"x":1}}]}"#;
        let page = parse_instance_page("A", 200, body).unwrap();
        assert_eq!(page.request_id.as_deref(), Some("R1"));
        assert_eq!(page.next_token, None);
        assert_eq!(page.instances[0].fields["NewField"]["x"], 1);
        assert_eq!(
            page.instances[0].text.get(),
            r#"{"AndroidInstanceId":"acp-1","NewField":{"x":1}}"#,
            "the record's text is kept exactly"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_replaced_and_their_fields_reported() {
        use crate::normalize::{normalize, NormalizeOptions};
        let body = b"{\"RequestId\":\"R\",\"InstanceModel\":[\
            {\"AndroidInstanceId\":\"acp-1\",\"AndroidInstanceName\":\"phone-\xe901\",\"Extra\":{\"a\":[\"\xff\"]}},\
            {\"AndroidInstanceId\":\"acp-2\",\"AndroidInstanceName\":\"ok\"}]}";
        let page = parse_instance_page("A", 200, body).unwrap();
        assert_eq!(page.request_id.as_deref(), Some("R"));
        let mut records = page.instances.into_iter();
        let first = records.next().unwrap();
        assert_eq!(
            first.mended,
            [
                ("AndroidInstanceName".to_owned(), Mended::NotUtf8),
                ("Extra".to_owned(), Mended::NotUtf8)
            ]
        );
        let n = normalize(first, &NormalizeOptions::default()).unwrap();
        assert_eq!(n.row.instance_name.as_deref(), Some("phone-\u{FFFD}01"));
        assert!(n.raw.get().contains("phone-\u{FFFD}01"), "{}", n.raw.get());
        let fields: Vec<&str> = n.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["AndroidInstanceName", "Extra"]);
        let second = records.next().unwrap();
        assert!(
            second.mended.is_empty(),
            "a record read as sent is not marked"
        );
        // In an id, they leave no id to store the record under; in the cursor,
        // no page to ask for.
        let body = b"{\"RequestId\":\"R\",\"NextToken\":\"t2\",\"InstanceModel\":[{\"AndroidInstanceId\":\"acp-\xe9\"}]}";
        let page = parse_instance_page("A", 200, body).unwrap();
        let err = normalize(
            page.instances.into_iter().next().unwrap(),
            &NormalizeOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("AndroidInstanceId holds bytes that are not UTF-8"),
            "{err}"
        );
        let body = b"{\"RequestId\":\"R\",\"NextToken\":\"t\xe9\",\"InstanceModel\":[]}";
        let err = parse_instance_page("A", 200, body).unwrap_err();
        assert!(err.to_string().contains("NextToken holds bytes"), "{err}");
        // Bytes that are not UTF-8 in a body that is no JSON stay a bad answer.
        let err = parse_instance_page("A", 200, b"{\"RequestId\":\"R\xe9\",").unwrap_err();
        assert!(matches!(err, ApiError::BadResponse { .. }), "{err}");
    }

    /// serde reads a record nested 127 levels deep (itself included) and no
    /// deeper: one past it is skipped as unreadable, not a failed page.
    #[test]
    fn a_record_nested_past_serdes_limit_is_kept_for_normalize_to_skip() {
        use crate::normalize::{normalize, NormalizeOptions};
        let page = |levels: usize| {
            let arrays = levels - 1;
            format!(
                r#"{{"RequestId":"R","InstanceModel":[{{"AndroidInstanceId":"acp-0"}},{{"AndroidInstanceId":"acp-1","X":{}1{}}}]}}"#,
                "[".repeat(arrays),
                "]".repeat(arrays)
            )
        };
        let read = |levels: usize| {
            let page = parse_instance_page("A", 200, page(levels).as_bytes()).unwrap();
            assert_eq!(page.instances.len(), 2);
            page.instances
                .into_iter()
                .map(|r| normalize(r, &NormalizeOptions::default()).map(|n| n.row.instance_id))
                .collect::<Vec<_>>()
        };
        let deepest = read(127);
        assert_eq!(deepest[1].as_deref().ok(), Some("acp-1"));
        for levels in [128, 5000] {
            let past = read(levels);
            assert_eq!(past[0].as_deref().ok(), Some("acp-0"));
            let err = past[1].as_ref().unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "record cannot be read: InstanceModel[1]: recursion limit exceeded"
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn a_record_that_is_no_object_is_kept_for_normalize_to_skip() {
        use crate::normalize::{normalize, NormalizeError, NormalizeOptions};
        let body = br#"{"RequestId":"R","TotalCount":4,"InstanceModel":[{"AndroidInstanceId":"acp-1"},null,"acp-2",{"AndroidInstanceId":"acp-3"}]}"#;
        let page = parse_instance_page("A", 200, body).unwrap();
        let texts: Vec<&str> = page.instances.iter().map(|r| r.text.get()).collect();
        assert_eq!(
            texts,
            [
                r#"{"AndroidInstanceId":"acp-1"}"#,
                "null",
                r#""acp-2""#,
                r#"{"AndroidInstanceId":"acp-3"}"#
            ],
            "the page's other records are read"
        );
        let outcomes: Vec<_> = page
            .instances
            .into_iter()
            .map(|r| normalize(r, &NormalizeOptions::default()).map(|n| n.row.instance_id))
            .collect();
        assert_eq!(outcomes[0].as_deref().ok(), Some("acp-1"));
        assert_eq!(outcomes[3].as_deref().ok(), Some("acp-3"));
        for (skipped, want) in [
            (&outcomes[1], "InstanceModel[1]: null, not an object"),
            (&outcomes[2], "InstanceModel[2]: a string, not an object"),
        ] {
            match skipped {
                Err(e @ NormalizeError::Unreadable(_)) => {
                    assert_eq!(e.to_string(), format!("record cannot be read: {want}"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_page_that_says_it_failed_is_an_error_not_an_empty_last_page() {
        // Bodies a gateway or proxy has been seen to send with HTTP 200: read as
        // pages, each would end the crawl "complete" and delete the region's rest.
        for (body, code, retried) in [
            (
                &br#"{"RequestId":"R3","Code":503,"Message":"Service busy"}"#[..],
                "503",
                true,
            ),
            (
                br#"{"RequestId":"R","ErrorCode":"InternalError","ErrorMessage":"x"}"#,
                "InternalError",
                true,
            ),
            (
                br#"{"RequestId":"R","success":false,"errorCode":"ServiceUnavailable"}"#,
                "ServiceUnavailable",
                true,
            ),
            (
                br#"{"RequestId":"R","Code":"InternalError","Message":"x","InstanceModel":[]}"#,
                "InternalError",
                true,
            ),
            (
                br#"{"RequestId":"R","Success":false,"InstanceModel":[]}"#,
                "Success=false",
                false,
            ),
            (
                br#"{"RequestId":"R","code":"Forbidden.RAM","message":"no"}"#,
                "Forbidden.RAM",
                false,
            ),
        ] {
            let text = String::from_utf8_lossy(body);
            let err = parse_instance_page("A", 200, body).unwrap_err();
            let ApiError::Service { code: c, .. } = &err else {
                panic!("{text}: {err:?}");
            };
            assert_eq!(c, code, "{text}");
            assert_eq!(err.is_retryable(), retried, "{text}");
            assert!(err.to_string().contains("RequestId R"), "{text}: {err}");
        }
        // A success marker some APIs send is not an error.
        for body in [
            &br#"{"RequestId":"R","Code":"200","Success":true,"InstanceModel":[{"AndroidInstanceId":"acp-1"}]}"#[..],
            br#"{"RequestId":"R","Code":200,"InstanceModel":[{"AndroidInstanceId":"acp-1"}]}"#,
            br#"{"RequestId":"R","Code":null,"ErrorCode":"","InstanceModel":[{"AndroidInstanceId":"acp-1"}]}"#,
        ] {
            let page = parse_instance_page("A", 200, body).unwrap();
            assert_eq!(page.instances.len(), 1, "{}", String::from_utf8_lossy(body));
        }
        // The gateway's XML error, sent with 200, is an error too.
        let xml = b"<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>RX</RequestId>\
            <Code>InternalError</Code><Message>busy</Message></Error>";
        let err = parse_instance_page("A", 200, xml).unwrap_err();
        assert!(
            matches!(&err, ApiError::Service { code, .. } if code == "InternalError"),
            "{err:?}"
        );
        assert!(err.is_retryable(), "{err}");
        // So is a region list.
        let err = disguised_error("DescribeRegions", 200, br#"{"RequestId":"R","Code":502}"#);
        assert!(matches!(err, Some(ApiError::Service { .. })), "{err:?}");
    }

    #[test]
    fn a_count_written_as_a_float_is_a_count() {
        for (count, read) in [
            ("20", Some(20)),
            ("20.0", Some(20)),
            ("\"20\"", Some(20)),
            ("20.5", None),
            ("-1.0", None),
        ] {
            let body = format!(r#"{{"RequestId":"R","TotalCount":{count},"InstanceModel":[]}}"#);
            let page = parse_instance_page("A", 200, body.as_bytes()).unwrap();
            assert_eq!(page.total_count, read, "{count}");
        }
    }

    #[test]
    fn wrong_shapes_are_bad_responses_that_name_the_request() {
        let err =
            parse_instance_page("A", 200, br#"{"RequestId":"R2","InstanceModel":{}}"#).unwrap_err();
        assert!(err.to_string().contains("RequestId R2"), "{err}");
        assert!(err.to_string().contains("not a list"), "{err}");
        let err = parse_instance_page("A", 200, b"<html>oops</html>").unwrap_err();
        assert!(matches!(err, ApiError::BadResponse { .. }), "{err}");
    }

    #[test]
    fn html_error_pages_are_bad_responses_and_retried_when_5xx() {
        let err = service_error(
            "A",
            502,
            Some("text/html"),
            b"<html><body>Bad Gateway</body></html>",
        );
        assert!(matches!(err, ApiError::BadResponse { .. }));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Bad Gateway"), "{err}");
    }

    #[test]
    fn a_message_over_several_lines_is_kept_on_one() {
        let body = br#"{"Code":"SignatureDoesNotMatch","Message":"server string to sign is:ACS3-HMAC-SHA256\nabc","RequestId":"R"}"#;
        let err = service_error("A", 400, Some("application/json"), body);
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("ACS3-HMAC-SHA256\\nabc"), "{text}");
    }

    #[test]
    fn xml_error_bodies_are_read_like_json_ones() {
        let body = b"<?xml version='1.0' encoding='UTF-8'?><Error>\
            <RequestId>7E3C-XML</RequestId><HostId>eds-aic.cn-shanghai.aliyuncs.com</HostId>\
            <Code>Throttling.User</Code><Message>Request was denied due to user flow \
            control &amp; &lt;limits&gt;.</Message></Error>";
        let err = service_error("A", 400, Some("text/xml;charset=utf-8"), body);
        let ApiError::Service {
            code,
            message,
            request_id,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(code, "Throttling.User");
        assert_eq!(
            message,
            "Request was denied due to user flow control & <limits>."
        );
        assert_eq!(request_id.as_deref(), Some("7E3C-XML"));
        assert!(err.is_retryable() && err.is_throttling());
        // XML without an Error element is not an error body.
        let err = service_error("A", 400, Some("text/xml"), b"<Other/>");
        assert!(matches!(err, ApiError::BadResponse { .. }), "{err:?}");
    }

    #[test]
    fn time_left_is_read_from_the_rate_limit_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_time_left(&h), None);
        h.insert(
            "x-ratelimit-user",
            HeaderValue::from_static("Limit:10,Remain:0,TimeLeft:900,Reset:1700000000"),
        );
        assert_eq!(rate_limit_time_left(&h), Some(Duration::from_millis(900)));
        h.insert(
            "x-ratelimit-user-api",
            HeaderValue::from_static("Limit:5, Remain:0, TimeLeft: 250"),
        );
        // Both quotas must refill: the longer wait.
        assert_eq!(rate_limit_time_left(&h), Some(Duration::from_millis(900)));
        h.insert(
            "x-ratelimit-user-api",
            HeaderValue::from_static("Limit:5,Remain:0,TimeLeft:1200"),
        );
        assert_eq!(rate_limit_time_left(&h), Some(Duration::from_millis(1200)));
        h.insert(
            "x-ratelimit-user-api",
            HeaderValue::from_static("TimeLeft:0"),
        );
        h.remove("x-ratelimit-user");
        assert_eq!(rate_limit_time_left(&h), None);
    }

    #[test]
    fn a_standard_retry_after_is_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let wait = |v: &str| standard_retry_after(v, now);
        assert_eq!(wait("7"), Some(Duration::from_secs(7)));
        assert_eq!(wait(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            wait("Fri, 27 Nov 2026 08:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        // Past, zero or unreadable: no wait asked for (the back-off applies).
        assert_eq!(wait("Fri, 27 Nov 2026 07:59:00 GMT"), None);
        assert_eq!(wait("0"), None);
        assert_eq!(wait("soon"), None);
        assert_eq!(wait("-5"), None);
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let client = Client::new(
            super::super::Credentials::new("AK", "very-secret-value")
                .with_security_token("tok-secret"),
            ClientConfig::default(),
        )
        .unwrap();
        let text = format!("{client:?}");
        assert!(
            !text.contains("very-secret-value") && !text.contains("tok-secret"),
            "{text}"
        );
    }

    #[test]
    fn endpoint_errors_name_the_flag() {
        let err = Client::new(
            super::super::Credentials::new("AK", "S"),
            ClientConfig {
                endpoint: "ftp://x".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--endpoint"), "{err}");
        assert!(!err.to_string().contains("with its scheme"), "{err}");
        // Host and port without a scheme, parsed as no URL or as a scheme.
        for endpoint in ["127.0.0.1:8790", "localhost:8790"] {
            let err = Client::new(
                super::super::Credentials::new("AK", "S"),
                ClientConfig {
                    endpoint: endpoint.into(),
                    ..Default::default()
                },
            )
            .unwrap_err();
            assert!(
                err.to_string().contains(&format!("https://{endpoint}")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_proxy_is_named_by_its_variable_for_the_endpoint_scheme() {
        let set = |names: &'static [&'static str]| {
            move |name: &str| names.contains(&name).then(|| "x".into())
        };
        assert_eq!(
            proxy_variable("https", set(&["https_proxy"])),
            Some("https_proxy")
        );
        assert_eq!(proxy_variable("http", set(&["HTTPS_PROXY"])), None);
        assert_eq!(
            proxy_variable("http", set(&["ALL_PROXY"])),
            Some("ALL_PROXY")
        );
        assert_eq!(proxy_variable("https", set(&[])), None);
    }

    #[test]
    fn no_proxy_names_a_host_by_itself_or_its_domain() {
        assert!(bypasses_proxy("127.0.0.1", "localhost, 127.0.0.1"));
        assert!(bypasses_proxy(
            "eds-aic.cn-shanghai.aliyuncs.com",
            ".aliyuncs.com"
        ));
        assert!(bypasses_proxy(
            "eds-aic.cn-shanghai.aliyuncs.com",
            "aliyuncs.com"
        ));
        assert!(bypasses_proxy("anything", "*"));
        assert!(bypasses_proxy("[::1]", "::1"));
        assert!(!bypasses_proxy(
            "eds-aic.cn-shanghai.aliyuncs.com",
            "localhost,127.0.0.1"
        ));
        assert!(!bypasses_proxy("notaliyuncs.com", "aliyuncs.com"));
    }

    #[test]
    fn an_endpoint_with_a_path_or_query_is_refused() {
        let build = |endpoint: &str| {
            Client::new(
                super::super::Credentials::new("AK", "S"),
                ClientConfig {
                    endpoint: endpoint.into(),
                    ..Default::default()
                },
            )
        };
        for endpoint in ["http://127.0.0.1:8790/api", "http://h/?x=1", "http://h/#f"] {
            let err = build(endpoint).unwrap_err().to_string();
            assert!(err.contains(endpoint) && err.contains("root"), "{err}");
            assert!(!err.contains("not a valid URL"), "{err}");
        }
        for endpoint in ["http://127.0.0.1:8790", "https://h/", "http://[::1]:80"] {
            assert!(build(endpoint).is_ok(), "{endpoint}");
        }
    }
}
