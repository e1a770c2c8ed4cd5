//! The API's error answers: the codes and HTTP statuses of the reference (§8.4)
//! and the body every POP gateway sends, `{RequestId, HostId, Code, Message,
//! Recommend}` (§8.1).

use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Sent as `x-acs-retry-after` (milliseconds), which the SDKs honour.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    pub fn incomplete_signature(why: &str) -> Self {
        Self::new(
            400,
            "IncompleteSignature",
            format!("The request signature does not conform to Aliyun standards: {why}"),
        )
    }

    pub fn signature_mismatch(string_to_sign: &str) -> Self {
        Self::new(
            400,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
        )
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(
            400,
            "MissingParameter",
            format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameter", message)
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    }

    /// `Throttling.User` (400) without a retry hint; with one, `Throttling` (429)
    /// and the `x-acs-retry-after` header, as capture 07d shows.
    pub fn throttled(retry_after_ms: Option<u64>) -> Self {
        match retry_after_ms {
            None => Self::new(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            ),
            Some(ms) => ApiError {
                retry_after_ms: Some(ms),
                ..Self::new(
                    429,
                    "Throttling",
                    "Request was denied due to request throttling.",
                )
            },
        }
    }

    pub fn body(&self, request_id: &str, host_id: &str) -> String {
        json!({
            "RequestId": request_id,
            "HostId": host_id,
            "Code": self.code,
            "Message": self.message,
            "Recommend": format!(
                "https://api.aliyun.com/troubleshoot?q={}&product=eds-aic&requestId={request_id}",
                self.code
            ),
        })
        .to_string()
    }
}
