//! What can go wrong with one API call, typed so that callers decide by kind:
//! retry (throttled, server, transport), stop and fix configuration (auth,
//! parameter), or stop and report the service's bad answer.

use std::time::Duration;

/// The error body every RPC API of Alibaba Cloud returns (§8.1 of the reference).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ErrorBody {
    #[serde(alias = "requestId")]
    #[serde(rename = "RequestId", default)]
    pub request_id: Option<String>,
    #[serde(alias = "code")]
    #[serde(rename = "Code", default)]
    pub code: Option<String>,
    #[serde(alias = "message")]
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
    #[serde(rename = "HostId", default)]
    pub host_id: Option<String>,
    #[serde(rename = "Recommend", default)]
    pub recommend: Option<String>,
}

/// What to check for an answer that only the setup can fix.
fn service_hint(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "; check the AccessKey secret where the credentials came from (ALIBABA_CLOUD_ACCESS_KEY_SECRET, \
             a profile, or the source's credentials: the log line \"using credentials\" names it)"
        }
        "InvalidAccessKeyId.NotFound" | "InvalidAccessKeyId" => {
            "; check the AccessKey id where the credentials came from (ALIBABA_CLOUD_ACCESS_KEY_ID, \
             a profile, or the source's credentials: the log line \"using credentials\" names it)"
        }
        "InvalidTimeStamp.Expired" => "; check this machine's clock (NTP): it is more than 15 minutes off",
        // Each request, each attempt too, is signed with a new random nonce.
        "SignatureNonceUsed" => {
            "; this job signs every request with a new nonce, so something between it and the \
             service (a proxy that retries?) sent one request twice"
        }
        "Forbidden.RAM" | "NoPermission" => {
            "; the RAM user or role lacks a permission: grant it eds-aic:DescribeAndroidInstances \
             and eds-aic:DescribeRegions"
        }
        _ => "",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The service answered with an error body.
    #[error("{action} failed: HTTP {status}, {code}: {message} (RequestId {request_id}){hint}", request_id = .request_id.as_deref().unwrap_or("none"), hint = service_hint(.code))]
    Service {
        action: String,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        /// The wait the answer asked for: `x-acs-retry-after` (milliseconds);
        /// else, for a throttling code, the quota's refill time; else, on a 429
        /// or 503, a standard `Retry-After`.
        retry_after: Option<Duration>,
        /// The wait came from `x-acs-retry-after`, which makes any error answer a
        /// throttling one (the SDK's rule); a 503's standard `Retry-After` does not.
        x_acs_retry_after: bool,
    },
    /// The request did not complete: connection refused, reset, DNS, TLS.
    #[error("{action}: could not reach {endpoint}: {detail}")]
    Transport {
        action: String,
        endpoint: String,
        detail: String,
    },
    #[error("{action}: no answer from {endpoint} within {timeout:?}")]
    Timeout {
        action: String,
        endpoint: String,
        timeout: Duration,
    },
    /// The credentials provider could not produce credentials (STS or the metadata
    /// service failed, a token file is missing).
    #[error("{action}: no credentials from provider {provider}: {detail}")]
    Credentials {
        action: String,
        provider: String,
        detail: String,
        /// The provider's service was unreachable or failed on its side
        /// ([`crate::api::credentials::CredentialsError::is_transient`]): retried
        /// like any request, and not taken for a configuration mistake.
        transient: bool,
    },
    /// An answer that is not what the API sends: HTML from a proxy, malformed or
    /// truncated JSON, a body of the wrong shape, or one too large to accept.
    #[error("{action}: bad response (HTTP {status}, RequestId {request_id}): {detail}", request_id = .request_id.as_deref().unwrap_or("none"))]
    BadResponse {
        action: String,
        status: u16,
        request_id: Option<String>,
        detail: String,
        /// From a standard `Retry-After` header on a 429 or 503 (a gateway's or
        /// a proxy's answer), when it came with one.
        retry_after: Option<Duration>,
    },
    /// A retryable error, retried for as long as the policy allows: the last
    /// answer, and why there was no further attempt.
    #[error("{last}; gave up after {attempts} attempt(s): {why}")]
    GaveUp {
        attempts: u32,
        why: String,
        last: Box<ApiError>,
    },
}

/// Whether an error code means "slow down and try again": every `Throttling*`
/// code (`Throttling`, `Throttling.User`, `Throttling.Api`, and any the gateway
/// adds, as Terraform treats them), plus `Rejected.Throttling`.
pub fn is_throttling_code(code: &str) -> bool {
    code.starts_with("Throttling") || code == "Rejected.Throttling"
}

/// A request the service refuses as malformed: the same request fails again.
fn is_parameter_code(code: &str) -> bool {
    code.starts_with("InvalidParameter") || code.starts_with("MissingParameter")
}

impl ApiError {
    /// Throttled by code, by HTTP 429, or by an `x-acs-retry-after` wait: the
    /// Python SDK classifies any error answer that carries one as a
    /// `ThrottlingException`, whatever its code (§8.2 of the reference).
    pub fn is_throttling(&self) -> bool {
        match self {
            ApiError::Service {
                status,
                code,
                x_acs_retry_after,
                ..
            } => is_throttling_code(code) || *status == 429 || *x_acs_retry_after,
            ApiError::BadResponse { status, .. } => *status == 429,
            ApiError::GaveUp { last, .. } => last.is_throttling(),
            _ => false,
        }
    }

    /// Throttling, 5xx, transport errors and timeouts are retried; a bad answer with
    /// a 5xx or 429 status (a proxy's page) too. Signature, credential and parameter
    /// errors never are: repeating them cannot help and may lock the key.
    pub fn is_retryable(&self) -> bool {
        match self {
            // Whatever wait the answer asks for.
            ApiError::Service { code, .. } if self.is_auth() || is_parameter_code(code) => false,
            ApiError::Service { status, code, .. } => {
                self.is_throttling()
                    || *status >= 500
                    || code == "ServiceUnavailable"
                    || code == "InternalError"
                    // An HTTP status as the code, in a body sent with 200.
                    || code.parse::<u16>().is_ok_and(|c| (500..600).contains(&c))
            }
            ApiError::Transport { .. } | ApiError::Timeout { .. } => true,
            ApiError::Credentials { transient, .. } => *transient,
            ApiError::BadResponse { status, .. } => *status >= 500 || self.is_throttling(),
            ApiError::GaveUp { .. } => false,
        }
    }

    /// Errors that mean the credentials or the clock are wrong, not the data.
    pub fn is_auth(&self) -> bool {
        match self {
            ApiError::Service { code, status, .. } => {
                *status == 401
                    || *status == 403
                    || code.starts_with("InvalidAccessKeyId")
                    || code.starts_with("Signature")
                    || code == "IncompleteSignature"
                    || code.starts_with("InvalidTimeStamp")
                    || code.starts_with("InvalidSecurityToken")
                    || code.starts_with("Forbidden")
                    || code == "NoPermission"
            }
            ApiError::Credentials { transient, .. } => !transient,
            ApiError::GaveUp { last, .. } => last.is_auth(),
            _ => false,
        }
    }

    /// The error with every occurrence of `secrets` in the text the answer
    /// carried (its message, a bad answer's excerpt) replaced with `***`, as
    /// written and percent-encoded: an endpoint or a proxy that quotes the
    /// request back may quote the security token.
    pub fn redacted(mut self, secrets: &[&str]) -> Self {
        let clean = |text: &mut String| *text = crate::secret::redact(text, secrets);
        match &mut self {
            ApiError::Service { code, message, .. } => {
                clean(code);
                clean(message);
            }
            ApiError::BadResponse { detail, .. } => clean(detail),
            _ => {}
        }
        self
    }

    /// The service's own answer: the last one of a call given up on.
    pub fn last(&self) -> &ApiError {
        match self {
            ApiError::GaveUp { last, .. } => last,
            e => e,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Service { request_id, .. } | ApiError::BadResponse { request_id, .. } => {
                request_id.as_deref()
            }
            ApiError::GaveUp { last, .. } => last.request_id(),
            _ => None,
        }
    }

    /// Fills in the RequestId (from the `x-acs-request-id` header) where the body
    /// did not say it.
    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        if let ApiError::Service { request_id, .. } | ApiError::BadResponse { request_id, .. } =
            &mut self
        {
            if request_id.is_none() {
                *request_id = id;
            }
        }
        self
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Service { retry_after, .. } | ApiError::BadResponse { retry_after, .. } => {
                *retry_after
            }
            ApiError::GaveUp { last, .. } => last.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> ApiError {
        ApiError::Service {
            action: "DescribeAndroidInstances".into(),
            status,
            code: code.into(),
            message: "m".into(),
            request_id: Some("R".into()),
            retry_after: None,
            x_acs_retry_after: false,
        }
    }

    /// As if the answer had carried `x-acs-retry-after`.
    fn with_acs_wait(mut e: ApiError) -> ApiError {
        if let ApiError::Service {
            retry_after,
            x_acs_retry_after,
            ..
        } = &mut e
        {
            *retry_after = Some(Duration::from_millis(50));
            *x_acs_retry_after = true;
        }
        e
    }

    #[test]
    fn classification_follows_the_reference() {
        for code in ["Throttling", "Throttling.User", "Throttling.Api"] {
            assert!(service(400, code).is_retryable(), "{code}");
        }
        assert!(service(503, "ServiceUnavailable").is_retryable());
        assert!(service(500, "InternalError").is_retryable());
        assert!(service(502, "Whatever").is_retryable());
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId.NotFound",
            "IncompleteSignature",
            "InvalidTimeStamp.Expired",
            "SignatureNonceUsed",
            "InvalidParameter",
            "MissingParameter",
            "Forbidden.RAM",
        ] {
            assert!(!service(400, code).is_retryable(), "{code}");
        }
        assert!(service(404, "InvalidAccessKeyId.NotFound").is_auth());
        assert!(service(400, "SignatureDoesNotMatch")
            .to_string()
            .contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"));
        assert!(!service(400, "InvalidParameter")
            .to_string()
            .contains("check"));
        assert!(service(400, "SignatureNonceUsed")
            .to_string()
            .contains("sent one request twice"));
    }

    #[test]
    fn any_throttling_signal_is_retried() {
        // A Throttling code the list above does not name, as Terraform retries.
        assert!(service(400, "Throttling.Concurrent").is_retryable());
        assert!(service(400, "Rejected.Throttling").is_throttling());
        // HTTP 429 whatever the code, and a 429 whose body is not the API's JSON.
        assert!(service(429, "TooManyRequests").is_retryable());
        let proxy = ApiError::BadResponse {
            action: "A".into(),
            status: 429,
            request_id: None,
            detail: "<html>".into(),
            retry_after: None,
        };
        assert!(proxy.is_retryable() && proxy.is_throttling());
        // Any error answer with x-acs-retry-after is a throttling one (the SDK's
        // ThrottlingException), even with a code that is not retried otherwise.
        assert!(!service(400, "SomethingElse").is_retryable());
        let e = with_acs_wait(service(400, "SomethingElse"));
        assert!(e.is_retryable() && e.is_throttling());
        // A 503 with a standard Retry-After is waited for, but is an outage.
        let mut e = service(503, "ServiceUnavailable");
        if let ApiError::Service { retry_after, .. } = &mut e {
            *retry_after = Some(Duration::from_secs(5));
        }
        assert!(e.is_retryable() && !e.is_throttling());
        assert!(!service(400, "InvalidParameter.Throttling").is_retryable());
        // Never a credential, signature or parameter error, wait or no wait.
        for (status, code) in [
            (400, "SignatureDoesNotMatch"),
            (403, "Forbidden.RAM"),
            (400, "InvalidParameter.MaxResults"),
            (400, "MissingParameter"),
        ] {
            let e = with_acs_wait(service(status, code));
            assert!(!e.is_retryable(), "{code}");
        }
        assert!(!service(400, "InvalidParameter").is_auth());
    }

    #[test]
    fn message_names_status_code_and_request_id() {
        let text = service(400, "Throttling.User").to_string();
        assert!(text.contains("HTTP 400"), "{text}");
        assert!(text.contains("Throttling.User"), "{text}");
        assert!(text.contains("RequestId R"), "{text}");
    }

    #[test]
    fn a_permission_refusal_names_the_actions_to_grant() {
        for code in ["Forbidden.RAM", "NoPermission"] {
            let text = service(403, code).to_string();
            assert!(
                text.contains("eds-aic:DescribeAndroidInstances")
                    && text.contains("eds-aic:DescribeRegions"),
                "{text}"
            );
        }
        assert!(!service(400, "InvalidParameter").to_string().contains("RAM"));
    }
}
