//! Request signatures, as pure functions: ACS3-HMAC-SHA256 (V3, what the SDKs send
//! by default; the simulator also takes ACS3-HMAC-SM3, which the SDKs offer) and
//! HMAC-SHA1 (V1, the legacy RPC form). The clock and the nonce are
//! inputs, so every intermediate string can be checked against the official SDK's
//! vectors, and the simulator verifies with the very same code.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use sm3::Sm3;

pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// The V3 signature algorithms: the same framing with another hash and MAC.
/// The client signs with HMAC-SHA256; the simulator verifies either, as the
/// gateway does. (With SM3 the SDKs still name the body's digest
/// `x-acs-content-sha256`, though it is the SM3 one.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum V3Algorithm {
    #[default]
    HmacSha256,
    HmacSm3,
}

impl V3Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            V3Algorithm::HmacSha256 => V3_ALGORITHM,
            V3Algorithm::HmacSm3 => "ACS3-HMAC-SM3",
        }
    }

    /// The hex digest of `data` with the algorithm's hash.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            V3Algorithm::HmacSha256 => sha256_hex(data),
            V3Algorithm::HmacSm3 => hex::encode(Sm3::digest(data)),
        }
    }

    fn mac_hex(self, key: &[u8], data: &[u8]) -> String {
        fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> String {
            let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
            mac.update(data);
            hex::encode(mac.finalize().into_bytes())
        }
        match self {
            V3Algorithm::HmacSha256 => mac::<Hmac<Sha256>>(key, data),
            V3Algorithm::HmacSm3 => mac::<Hmac<Sm3>>(key, data),
        }
    }
}

/// SHA-256 of the empty body, the `x-acs-content-sha256` of every bodiless request.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986: everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded, upper-case.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn rfc3986(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What goes into a V3 signature. `headers` are exactly the headers to sign, with
/// lower-case names (duplicates allowed: their values are sorted and joined by `,`).
#[derive(Clone, Debug)]
pub struct V3Input<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Decoded query parameters, in any order.
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    /// `x-acs-content-sha256`, the hex SHA-256 of the body.
    pub hashed_payload: &'a str,
}

/// Every intermediate of a V3 signature, so that tests can compare each one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Signature {
    pub algorithm: V3Algorithm,
    pub canonical_query: String,
    pub canonical_headers: String,
    pub signed_headers: String,
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

impl V3Signature {
    pub fn authorization(&self, access_key_id: &str) -> String {
        format!(
            "{} Credential={access_key_id},SignedHeaders={},Signature={}",
            self.algorithm.name(),
            self.signed_headers,
            self.signature
        )
    }
}

/// Sorted by key (byte order), `key=rfc3986(value)`, joined by `&`. Keys are left as
/// they are, as the SDK does (parameter names never need escaping).
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), rfc3986(v)))
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// Returns (canonical headers, signed headers).
pub fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut by_name: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (name, value) in headers {
        by_name
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut canonical = String::new();
    for (name, values) in &mut by_name {
        values.sort_unstable();
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
        canonical.push('\n');
    }
    let signed: Vec<&str> = by_name.keys().map(String::as_str).collect();
    (canonical, signed.join(";"))
}

pub fn sign_v3(input: &V3Input<'_>, access_key_secret: &str) -> V3Signature {
    sign_v3_with(V3Algorithm::HmacSha256, input, access_key_secret)
}

/// [`sign_v3`] with another algorithm of the V3 family.
pub fn sign_v3_with(
    algorithm: V3Algorithm,
    input: &V3Input<'_>,
    access_key_secret: &str,
) -> V3Signature {
    let canonical_query = canonical_query(input.query);
    let (canonical_headers, signed_headers) = canonical_headers(input.headers);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.path,
        canonical_query,
        canonical_headers,
        signed_headers,
        input.hashed_payload
    );
    let string_to_sign = format!(
        "{}\n{}",
        algorithm.name(),
        algorithm.hash_hex(canonical_request.as_bytes())
    );
    let signature = algorithm.mac_hex(access_key_secret.as_bytes(), string_to_sign.as_bytes());
    V3Signature {
        algorithm,
        canonical_query,
        canonical_headers,
        signed_headers,
        canonical_request,
        string_to_sign,
        signature,
    }
}

/// A parsed `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub algorithm: V3Algorithm,
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// `None` when the header is not a well-formed V3 authorization.
pub fn parse_v3_authorization(header: &str) -> Option<V3Authorization> {
    let (name, rest) = header.split_once(' ')?;
    let algorithm = [V3Algorithm::HmacSha256, V3Algorithm::HmacSm3]
        .into_iter()
        .find(|a| a.name() == name)?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return None,
        }
    }
    let (credential, signed, signature) = (credential?, signed?, signature?);
    if credential.is_empty() || signed.is_empty() || signature.is_empty() {
        return None;
    }
    Some(V3Authorization {
        algorithm,
        access_key_id: credential.to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
    })
}

/// Every intermediate of a V1 (HMAC-SHA1) signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V1Signature {
    pub canonicalized_query: String,
    pub string_to_sign: String,
    pub signature: String,
}

/// `params` are all request parameters (query and form body) except `Signature`.
pub fn sign_v1(method: &str, params: &[(String, String)], access_key_secret: &str) -> V1Signature {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    pairs.sort();
    let canonicalized_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let string_to_sign = format!(
        "{method}&{}&{}",
        rfc3986("/"),
        rfc3986(&canonicalized_query)
    );
    let key = format!("{access_key_secret}&");
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(string_to_sign.as_bytes());
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    V1Signature {
        canonicalized_query,
        string_to_sign,
        signature,
    }
}

/// Constant-time comparison, so a verifier leaks nothing through timing.
pub fn equal_constant_time(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/data/signing-vectors.json");

    fn vector(name: &str) -> Value {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
            .clone()
    }

    fn pairs(obj: &Value) -> Vec<(String, String)> {
        obj.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect()
    }

    fn check_v3(name: &str) {
        let v = vector(name);
        let (i, o) = (&v["inputs"], &v["outputs"]);
        let body = i["body"].as_str().unwrap();
        let hashed = sha256_hex(body.as_bytes());
        assert_eq!(
            hashed,
            o["hashed_payload"].as_str().unwrap(),
            "{name}: hashed payload"
        );
        let query = pairs(&i["query"]);
        let headers = pairs(&i["headers_before_signing"]);
        let sig = sign_v3(
            &V3Input {
                method: i["method"].as_str().unwrap(),
                path: i["path"].as_str().unwrap(),
                query: &query,
                headers: &headers,
                hashed_payload: &hashed,
            },
            i["access_key_secret"].as_str().unwrap(),
        );
        let out = |k: &str| o[k].as_str().unwrap().to_owned();
        assert_eq!(
            sig.canonical_query,
            out("canonical_query_string"),
            "{name}: canonical query"
        );
        assert_eq!(
            sig.canonical_headers,
            out("canonical_headers"),
            "{name}: canonical headers"
        );
        assert_eq!(
            sig.signed_headers,
            out("signed_headers"),
            "{name}: signed headers"
        );
        assert_eq!(
            sig.canonical_request,
            out("canonical_request"),
            "{name}: canonical request"
        );
        assert_eq!(
            sha256_hex(sig.canonical_request.as_bytes()),
            out("hashed_canonical_request"),
            "{name}: hashed canonical request"
        );
        assert_eq!(
            sig.string_to_sign,
            out("string_to_sign"),
            "{name}: string to sign"
        );
        assert_eq!(sig.signature, out("signature"), "{name}: signature");
        let ak = i["access_key_id"].as_str().unwrap();
        assert_eq!(
            sig.authorization(ak),
            out("authorization"),
            "{name}: authorization"
        );
        let parsed = parse_v3_authorization(&out("authorization")).unwrap();
        assert_eq!(parsed.access_key_id, ak);
        assert_eq!(parsed.signature, sig.signature);
    }

    fn check_v1(name: &str) {
        let v = vector(name);
        let (i, o) = (&v["inputs"], &v["outputs"]);
        let params = pairs(&i["params_before_signing"]);
        let sig = sign_v1(
            i["method"].as_str().unwrap(),
            &params,
            i["access_key_secret"].as_str().unwrap(),
        );
        let out = |k: &str| o[k].as_str().unwrap().to_owned();
        assert_eq!(
            sig.canonicalized_query,
            out("canonicalized_query"),
            "{name}: canonical query"
        );
        assert_eq!(
            sig.string_to_sign,
            out("string_to_sign"),
            "{name}: string to sign"
        );
        assert_eq!(sig.signature, out("signature"), "{name}: signature");
    }

    /// ACS3-HMAC-SM3, against an authorization the official Python SDK's own
    /// code computed (alibabacloud_tea_openapi 0.4.6, `Utils.get_authorization`
    /// with `ACS3-HMAC-SM3`, on these inputs).
    #[test]
    fn v3_hmac_sm3_matches_the_sdk() {
        let body = "BizRegionId=cn-shanghai&MaxResults=10";
        let payload = V3Algorithm::HmacSm3.hash_hex(body.as_bytes());
        assert_eq!(
            payload,
            "cd864cbea09c79fc0259c90bc5540f3ed4ed528c07a25693d1e4250716032bb0"
        );
        assert_eq!(
            V3Algorithm::HmacSm3.hash_hex(b""),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
        let headers: Vec<(String, String)> = [
            ("host", "eds-aic.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "DescribeAndroidInstances"),
            ("x-acs-version", "2023-09-30"),
            ("x-acs-date", "2026-11-27T10:00:00Z"),
            ("x-acs-signature-nonce", "n-1"),
            ("x-acs-content-sha256", payload.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let query = [("AndroidInstanceIds.1".to_owned(), "acp-1 2".to_owned())];
        let sig = sign_v3_with(
            V3Algorithm::HmacSm3,
            &V3Input {
                method: "POST",
                path: "/",
                query: &query,
                headers: &headers,
                hashed_payload: &payload,
            },
            "testAccessKeySecret",
        );
        let authorization = sig.authorization("testAccessKeyId");
        assert_eq!(
            authorization,
            "ACS3-HMAC-SM3 Credential=testAccessKeyId,SignedHeaders=content-type;host;\
             x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
             Signature=cde765c855740ce8f8affebd45e53a883bb16b4c075e4bfaaf94a01c5009cee6"
        );
        let parsed = parse_v3_authorization(&authorization).unwrap();
        assert_eq!(parsed.algorithm, V3Algorithm::HmacSm3);
    }

    #[test]
    fn v3_minimal_no_params() {
        check_v3("v3_minimal_no_params");
    }

    #[test]
    fn v3_describe_android_instances_full() {
        check_v3("v3_describe_android_instances_full");
    }

    #[test]
    fn v3_sts_security_token() {
        check_v3("v3_sts_security_token");
    }

    #[test]
    fn v3_form_body() {
        check_v3("v3_form_body");
    }

    #[test]
    fn v3_describe_regions_get() {
        check_v3("v3_describe_regions_get");
    }

    #[test]
    fn v1_minimal() {
        check_v1("v1_minimal");
    }

    #[test]
    fn v1_full_with_sts() {
        check_v1("v1_full_with_sts");
    }

    #[test]
    fn every_vector_has_a_test() {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let names: Vec<&str> = all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "v3_minimal_no_params",
                "v3_describe_android_instances_full",
                "v3_sts_security_token",
                "v3_form_body",
                "v3_describe_regions_get",
                "v1_minimal",
                "v1_full_with_sts"
            ]
        );
    }

    #[test]
    fn malformed_authorizations_are_rejected() {
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=a").is_none());
        assert!(parse_v3_authorization("Bearer x").is_none());
        assert!(parse_v3_authorization(
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab"
        )
        .is_none());
    }
}
