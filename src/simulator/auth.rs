//! Request authentication, as the gateway does it: ACS3-HMAC-SHA256 or ACS3-HMAC-SM3 (V3) from the
//! `Authorization` header, or HMAC-SHA1 (V1) from the `Signature` parameter. The
//! signature is recomputed with the client's own signing module ([`crate::api::sign`]),
//! from what arrived on the wire. Checks run in the order a gateway can make them:
//! shape of the request, key, security token, signature, then freshness (date
//! window and nonce), so a replayed request is told apart from a forged one.

use axum::http::HeaderMap;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

use super::error::ApiError;
use crate::api::credentials::Credentials;
use crate::api::sign::{
    equal_constant_time, parse_v3_authorization, sign_v1, sign_v3_with, V3Input,
};

/// §6.4: dates further than this from the server clock are refused.
pub const DATE_WINDOW_MINUTES: i64 = 15;

/// Nonces are remembered a little longer than the date window: a request reusing
/// an older nonce fails the date check anyway.
const NONCE_MEMORY_MINUTES: i64 = DATE_WINDOW_MINUTES + 5;

/// Headers a V3 request must sign (a policy: the real gateway requires the common
/// headers to be signed).
pub const REQUIRED_SIGNED_HEADERS: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// What arrived, as auth needs it.
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The decoded query string, in wire order.
    pub query: &'a [(String, String)],
    /// The decoded form body (empty unless the body is urlencoded).
    pub form: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// A request whose signature checked out, before the freshness checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub date: String,
    pub nonce: String,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn param<'a>(incoming: &'a Incoming<'_>, name: &str) -> Option<&'a str> {
    incoming
        .query
        .iter()
        .chain(incoming.form)
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A header's text as its sender signed it: UTF-8 when its bytes are (Go sends
/// them so), else ISO-8859-1, as Python's http.client encodes a header with a
/// character past ASCII (a user agent with an accent, say).
fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Checks the signature with whichever scheme the request uses (pure).
pub fn verify_signature(
    incoming: &Incoming<'_>,
    credentials: &[Credentials],
) -> Result<Signed, ApiError> {
    if let Some(authorization) = incoming.headers.get("authorization") {
        let authorization = authorization
            .to_str()
            .map_err(|_| ApiError::incomplete_signature("the Authorization header is not text"))?;
        verify_v3(incoming, authorization, credentials)
    } else if param(incoming, "Signature").is_some() {
        verify_v1(incoming, credentials)
    } else {
        Err(ApiError::incomplete_signature(
            "the request carries neither an Authorization header (ACS3-HMAC-SHA256 or -SM3) nor a Signature parameter (HMAC-SHA1)",
        ))
    }
}

fn find_key<'c>(credentials: &'c [Credentials], id: &str) -> Result<&'c Credentials, ApiError> {
    credentials
        .iter()
        .find(|c| c.access_key_id == id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        })
}

/// STS keys (`STS.` prefix) must come with their security token.
fn check_token(credentials: &Credentials, sent: Option<&str>) -> Result<(), ApiError> {
    if !credentials.access_key_id.starts_with("STS.") {
        return Ok(());
    }
    let expected = credentials.security_token.as_ref().map(|t| t.expose());
    match (sent, expected) {
        (None, _) => Err(ApiError::new(
            400,
            "MissingSecurityToken",
            "The security token is missing for an STS access key.",
        )),
        (Some(sent), Some(expected)) if equal_constant_time(sent, expected) => Ok(()),
        _ => Err(ApiError::new(
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "The security token does not match the access key.",
        )),
    }
}

fn verify_v3(
    incoming: &Incoming<'_>,
    authorization: &str,
    credentials: &[Credentials],
) -> Result<Signed, ApiError> {
    let auth = parse_v3_authorization(authorization)
        .ok_or_else(|| ApiError::incomplete_signature("malformed Authorization header"))?;
    let signed: Vec<String> = auth
        .signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for required in REQUIRED_SIGNED_HEADERS {
        if !signed.iter().any(|h| h == required) {
            return Err(ApiError::incomplete_signature(&format!(
                "SignedHeaders must include {required}"
            )));
        }
    }
    // The docs: every common header that is present must be signed. A request
    // could otherwise carry a security token, or a body type, that its
    // signature does not cover.
    let has_body = !incoming.body.is_empty();
    for name in incoming.headers.keys().map(|n| n.as_str()) {
        let must_sign = name.starts_with("x-acs-") || (name == "content-type" && has_body);
        if must_sign && !signed.iter().any(|h| h == name) {
            return Err(ApiError::incomplete_signature(&format!(
                "header {name} is present but not in SignedHeaders: sign every x-acs-* header, and content-type when a body is sent"
            )));
        }
    }
    if let Some(id) = header(incoming.headers, "x-acs-accesskey-id") {
        if id != auth.access_key_id {
            return Err(ApiError::incomplete_signature(&format!(
                "x-acs-accesskey-id {id:?} is not the Credential of the Authorization header ({:?})",
                auth.access_key_id
            )));
        }
    }
    let mut to_sign = Vec::new();
    for name in &signed {
        let mut found = false;
        for value in incoming.headers.get_all(name.as_str()) {
            to_sign.push((name.clone(), header_text(value.as_bytes())));
            found = true;
        }
        if !found {
            return Err(ApiError::incomplete_signature(&format!(
                "signed header {name} is not in the request"
            )));
        }
    }
    let hashed_payload = header(incoming.headers, "x-acs-content-sha256").unwrap_or_default();
    if !equal_constant_time(hashed_payload, &auth.algorithm.hash_hex(incoming.body)) {
        return Err(ApiError::new(
            400,
            "SignatureDoesNotMatch",
            "The x-acs-content-sha256 header does not match the digest of the request body.",
        ));
    }
    let key = find_key(credentials, &auth.access_key_id)?;
    check_token(key, header(incoming.headers, "x-acs-security-token"))?;
    let expected = sign_v3_with(
        auth.algorithm,
        &V3Input {
            method: incoming.method,
            path: incoming.path,
            query: incoming.query,
            headers: &to_sign,
            hashed_payload,
        },
        key.access_key_secret.expose(),
    );
    if !equal_constant_time(&auth.signature, &expected.signature) {
        return Err(ApiError::signature_mismatch(&expected.string_to_sign));
    }
    Ok(Signed {
        access_key_id: key.access_key_id.clone(),
        date: header(incoming.headers, "x-acs-date")
            .unwrap_or_default()
            .to_owned(),
        nonce: header(incoming.headers, "x-acs-signature-nonce")
            .unwrap_or_default()
            .to_owned(),
    })
}

fn verify_v1(incoming: &Incoming<'_>, credentials: &[Credentials]) -> Result<Signed, ApiError> {
    let need = |name: &str| param(incoming, name).ok_or_else(|| ApiError::missing_parameter(name));
    let key_id = need("AccessKeyId")?;
    let method = need("SignatureMethod")?;
    let nonce = need("SignatureNonce")?;
    let timestamp = need("Timestamp")?;
    let signature = need("Signature")?;
    let version = need("SignatureVersion")?;
    let format = need("Format")?;
    if method != "HMAC-SHA1" {
        return Err(ApiError::invalid_parameter(format!(
            "The specified parameter SignatureMethod is not valid: {method:?} (HMAC-SHA1)."
        )));
    }
    if version != "1.0" {
        return Err(ApiError::invalid_parameter(format!(
            "The specified parameter SignatureVersion is not valid: {version:?} (1.0)."
        )));
    }
    // The gateway answers XML when asked; this simulator speaks JSON only, and
    // says so rather than answer in a format the client did not ask for.
    if !format.eq_ignore_ascii_case("json") {
        return Err(ApiError::invalid_parameter(format!(
            "The specified parameter Format is not valid: {format:?} (this simulator answers JSON only: Format=JSON)."
        )));
    }
    let key = find_key(credentials, key_id)?;
    check_token(key, param(incoming, "SecurityToken"))?;
    let params: Vec<(String, String)> = incoming
        .query
        .iter()
        .chain(incoming.form)
        .cloned()
        .collect();
    let expected = sign_v1(incoming.method, &params, key.access_key_secret.expose());
    if !equal_constant_time(signature, &expected.signature) {
        return Err(ApiError::signature_mismatch(&expected.string_to_sign));
    }
    Ok(Signed {
        access_key_id: key.access_key_id.clone(),
        date: timestamp.to_owned(),
        nonce: nonce.to_owned(),
    })
}

/// `x-acs-date` / `Timestamp`: UTC `YYYY-MM-DDTHH:MM:SSZ`, no fraction, no
/// other offset (§5.2), as every SDK writes it.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    if s.len() != "2026-11-26T11:57:15Z".len() {
        return None;
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ")
        .map(|t| t.and_utc())
        .ok()
}

/// Remembers nonces for the freshness checks.
#[derive(Default)]
pub struct NonceBook {
    seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl NonceBook {
    /// The date window, then the nonce; records the nonce only when both pass.
    pub fn check_fresh(&self, signed: &Signed, now: DateTime<Utc>) -> Result<(), ApiError> {
        let date = parse_date(&signed.date).ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidTimeStamp.Format",
                format!(
                    "Specified time stamp or date value is not well formatted: {:?}.",
                    signed.date
                ),
            )
        })?;
        if (now - date).abs() > Duration::minutes(DATE_WINDOW_MINUTES) {
            return Err(ApiError::new(
                400,
                "InvalidTimeStamp.Expired",
                format!(
                    "Specified time stamp or date value is expired: {} (server time {}).",
                    signed.date,
                    now.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            ));
        }
        if signed.nonce.is_empty() {
            return Err(ApiError::missing_parameter("SignatureNonce"));
        }
        let mut seen = self.seen.lock().expect("nonce book");
        if seen.contains_key(&signed.nonce) {
            return Err(ApiError::new(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        // Forget old nonces now and then, so a long-running simulator stays small.
        if seen.len() >= 100_000 {
            let horizon = now - Duration::minutes(NONCE_MEMORY_MINUTES);
            seen.retain(|_, at| *at >= horizon);
        }
        seen.insert(signed.nonce.clone(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_utf8_or_else_latin1() {
        assert_eq!(header_text(b"plain"), "plain");
        assert_eq!(
            header_text("caf\u{e9} \u{4e2d}".as_bytes()),
            "caf\u{e9} \u{4e2d}"
        );
        // Python's http.client sends a header past ASCII as ISO-8859-1.
        assert_eq!(header_text(b"inventory caf\xe9"), "inventory caf\u{e9}");
    }

    #[test]
    fn dates_parse_in_the_wire_format() {
        let d = parse_date("2026-11-26T11:57:15Z").unwrap();
        assert_eq!(d.to_rfc3339(), "2026-11-26T11:57:15+00:00");
        for other in [
            "26/11/2026",
            "2026-11-26T11:57:15.000Z",
            "2026-11-26T11:57:15+00:00",
            "2026-11-26 11:57:15Z",
            "2026-11-26T1:57:15Z",
        ] {
            assert!(parse_date(other).is_none(), "{other}");
        }
    }

    fn signed(date: &str, nonce: &str) -> Signed {
        Signed {
            access_key_id: "k".into(),
            date: date.into(),
            nonce: nonce.into(),
        }
    }

    #[test]
    fn freshness_window_and_nonce_reuse() {
        let book = NonceBook::default();
        let now = parse_date("2026-11-26T12:00:00Z").unwrap();
        assert!(book
            .check_fresh(&signed("2026-11-26T12:14:59Z", "a"), now)
            .is_ok());
        let late = book
            .check_fresh(&signed("2026-11-26T12:15:01Z", "b"), now)
            .unwrap_err();
        assert_eq!(late.code, "InvalidTimeStamp.Expired");
        let early = book
            .check_fresh(&signed("2026-11-26T11:40:00Z", "c"), now)
            .unwrap_err();
        assert_eq!(early.code, "InvalidTimeStamp.Expired");
        // a refused request does not burn its nonce
        assert!(book
            .check_fresh(&signed("2026-11-26T12:00:00Z", "b"), now)
            .is_ok());
        let again = book
            .check_fresh(&signed("2026-11-26T12:00:00Z", "a"), now)
            .unwrap_err();
        assert_eq!(again.code, "SignatureNonceUsed");
    }
}
