//! The simulator over real loopback sockets: authentication, every filter,
//! pagination, determinism, churn, faults and the admin endpoints. Requests are
//! signed by a small client built on the crate's own signing module.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use ecp_inventory::api::sign::{rfc3986, sign_v1, sign_v3_with, V3Algorithm, V3Input};
use ecp_inventory::api::Credentials;
use ecp_inventory::simulator::{
    ChurnSpec, Clock, Faults, RunningSimulator, Simulator, SimulatorConfig,
};

pub const KEY_ID: &str = "testAccessKeyId";
pub const SECRET: &str = "testAccessKeySecret";

/// A minimal signed client: enough of the real one to exercise the server.
pub struct Client {
    pub endpoint: String,
    pub host: String,
    pub key_id: String,
    pub secret: String,
    pub security_token: Option<String>,
    http: reqwest::Client,
}

/// How to send one request.
#[derive(Clone, Debug)]
pub struct Call {
    pub action: String,
    pub params: Vec<(String, String)>,
    pub method: &'static str,
    /// Parameters in an urlencoded body instead of the query string.
    pub form: bool,
    /// Encode the query with `%20` (RFC 3986) rather than `+` (form style).
    pub rfc3986_query: bool,
    pub date: Option<DateTime<Utc>>,
    pub nonce: Option<String>,
    pub tamper: bool,
    pub version: String,
    pub algorithm: V3Algorithm,
    /// More headers: (name, value, signed).
    pub headers: Vec<(String, String, bool)>,
    /// V1 common parameters to replace (`Some`) or leave out (`None`).
    pub v1_common: Vec<(&'static str, Option<&'static str>)>,
}

impl Call {
    pub fn new(action: &str, params: &[(&str, &str)]) -> Call {
        Call {
            action: action.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            method: "POST",
            form: false,
            rfc3986_query: false,
            date: None,
            nonce: None,
            tamper: false,
            version: "2023-09-30".to_owned(),
            algorithm: V3Algorithm::default(),
            headers: Vec::new(),
            v1_common: Vec::new(),
        }
    }

    pub fn instances(params: &[(&str, &str)]) -> Call {
        Call::new("DescribeAndroidInstances", params)
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn code(&self) -> String {
        self.json()["Code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn content_type(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn encode(pairs: &[(String, String)], rfc: bool) -> String {
    if rfc {
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", rfc3986(k), rfc3986(v)))
            .collect::<Vec<_>>()
            .join("&")
    } else {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }
}

impl Client {
    pub fn new(running: &RunningSimulator) -> Client {
        Client {
            endpoint: running.endpoint(),
            host: running.addr.to_string(),
            key_id: KEY_ID.to_owned(),
            secret: SECRET.to_owned(),
            security_token: None,
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, call: &Call) -> Reply {
        let date = call
            .date
            .unwrap_or_else(Utc::now)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let nonce = call.nonce.clone().unwrap_or_else(nonce);
        let (query, body) = if call.form {
            (Vec::new(), encode(&call.params, false))
        } else {
            (call.params.clone(), String::new())
        };
        let mut headers = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-acs-action".to_owned(), call.action.clone()),
            ("x-acs-version".to_owned(), call.version.clone()),
            ("x-acs-date".to_owned(), date),
            ("x-acs-signature-nonce".to_owned(), nonce),
            (
                "x-acs-content-sha256".to_owned(),
                call.algorithm.hash_hex(body.as_bytes()),
            ),
        ];
        if call.form {
            headers.push((
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ));
        }
        if let Some(token) = &self.security_token {
            headers.push(("x-acs-security-token".to_owned(), token.clone()));
        }
        // An extra header named like one above replaces it (signed or not).
        headers.retain(|(k, _)| !call.headers.iter().any(|(name, _, _)| name == k));
        headers.extend(
            call.headers
                .iter()
                .filter(|(_, _, signed)| *signed)
                .map(|(k, v, _)| (k.clone(), v.clone())),
        );
        let hashed = call.algorithm.hash_hex(body.as_bytes());
        let signature = sign_v3_with(
            call.algorithm,
            &V3Input {
                method: call.method,
                path: "/",
                query: &query,
                headers: &headers,
                hashed_payload: &hashed,
            },
            &self.secret,
        );
        let mut authorization = signature.authorization(&self.key_id);
        if call.tamper {
            let last = authorization.pop().unwrap();
            authorization.push(if last == '0' { '1' } else { '0' });
        }
        let url = if query.is_empty() {
            format!("{}/", self.endpoint)
        } else {
            format!("{}/?{}", self.endpoint, encode(&query, call.rfc3986_query))
        };
        let mut request = self
            .http
            .request(call.method.parse().unwrap(), url)
            .header("authorization", authorization)
            .body(body);
        let unsigned = call.headers.iter().filter(|(_, _, signed)| !*signed);
        let headers = headers.iter().map(|(k, v)| (k, v));
        for (k, v) in headers.chain(unsigned.map(|(k, v, _)| (k, v))) {
            request = request.header(k.as_str(), v.as_str());
        }
        reply(request).await
    }

    /// The legacy HMAC-SHA1 form: everything in the query string.
    pub async fn send_v1(&self, call: &Call) -> Reply {
        let mut params = call.params.clone();
        params.extend(
            [
                ("Action", call.action.as_str()),
                ("Version", call.version.as_str()),
                ("Format", "json"),
                ("AccessKeyId", self.key_id.as_str()),
                ("SignatureMethod", "HMAC-SHA1"),
                ("SignatureVersion", "1.0"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        for (name, value) in &call.v1_common {
            params.retain(|(k, _)| k != name);
            if let Some(value) = value {
                params.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        params.push((
            "SignatureNonce".into(),
            call.nonce.clone().unwrap_or_else(nonce),
        ));
        let date = call.date.unwrap_or_else(Utc::now);
        params.push((
            "Timestamp".into(),
            date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ));
        if let Some(token) = &self.security_token {
            params.push(("SecurityToken".into(), token.clone()));
        }
        let signature = sign_v1(call.method, &params, &self.secret);
        params.push(("Signature".into(), signature.signature));
        let url = format!("{}/?{}", self.endpoint, encode(&params, call.rfc3986_query));
        reply(self.http.request(call.method.parse().unwrap(), url)).await
    }

    /// Every page of a listing: (instances, pages, TotalCount of the first page).
    pub async fn crawl(
        &self,
        params: &[(&str, &str)],
        page_size: usize,
    ) -> (Vec<Value>, usize, u64) {
        let size = page_size.to_string();
        let mut all = Vec::new();
        let (mut token, mut pages, mut total) = (String::new(), 0, None);
        loop {
            let mut call = Call::instances(params);
            call.params.push(("MaxResults".into(), size.clone()));
            if !token.is_empty() {
                call.params.push(("NextToken".into(), token.clone()));
            }
            let reply = self.send(&call).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let mut page = reply.json();
            pages += 1;
            total.get_or_insert(page["TotalCount"].as_u64().unwrap());
            let Value::Array(items) = page["InstanceModel"].take() else {
                panic!("InstanceModel is not an array: {page}");
            };
            assert!(items.len() <= page_size);
            all.extend(items);
            token = page["NextToken"].as_str().unwrap().to_owned();
            if token.is_empty() {
                return (all, pages, total.unwrap());
            }
            assert!(pages <= 20_000, "runaway crawl");
        }
    }
}

/// Just the ids of a page: parsing a whole 10 000-instance crawl into `Value`s
/// dominates a debug-build test run otherwise.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdPage {
    total_count: u64,
    next_token: String,
    instance_model: Vec<IdOnly>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdOnly {
    android_instance_id: String,
}

impl Client {
    /// Like [`Client::crawl`], keeping only the ids.
    pub async fn crawl_ids(
        &self,
        params: &[(&str, &str)],
        page_size: usize,
    ) -> (Vec<String>, usize, u64) {
        let (mut all, mut token, mut pages, mut total) = (Vec::new(), String::new(), 0, None);
        loop {
            let mut call = Call::instances(params);
            call.params
                .push(("MaxResults".into(), page_size.to_string()));
            if !token.is_empty() {
                call.params.push(("NextToken".into(), token.clone()));
            }
            let reply = self.send(&call).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page: IdPage = serde_json::from_str(&reply.body).unwrap();
            pages += 1;
            total.get_or_insert(page.total_count);
            assert!(page.instance_model.len() <= page_size);
            all.extend(
                page.instance_model
                    .into_iter()
                    .map(|i| i.android_instance_id),
            );
            if page.next_token.is_empty() {
                return (all, pages, total.unwrap());
            }
            token = page.next_token;
        }
    }
}

pub async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body read");
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn start(config: SimulatorConfig) -> (Simulator, RunningSimulator, Client) {
    let sim = Simulator::new(config);
    let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = Client::new(&running);
    (sim, running, client)
}

pub fn sized(instances: usize) -> SimulatorConfig {
    SimulatorConfig {
        instances,
        seed: 11,
        ..SimulatorConfig::default()
    }
}

fn ids(instances: &[Value]) -> Vec<String> {
    instances
        .iter()
        .map(|i| i["AndroidInstanceId"].as_str().unwrap().to_owned())
        .collect()
}

// ----- authentication -----

#[tokio::test]
async fn a_valid_request_is_answered_and_each_answer_has_a_fresh_request_id() {
    let (_sim, _running, client) = start(sized(50)).await;
    let a = client.send(&Call::instances(&[])).await;
    let b = client.send(&Call::instances(&[])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.content_type().starts_with("application/json"));
    let (ra, rb) = (a.json()["RequestId"].clone(), b.json()["RequestId"].clone());
    assert_ne!(ra, rb);
    let ra = ra.as_str().unwrap();
    assert_eq!(ra, ra.to_uppercase());
    assert!(uuid::Uuid::parse_str(ra).is_ok());
    assert_eq!(a.json()["TotalCount"], 50);
}

/// ACS3-HMAC-SM3, which the SDKs offer (`signature_algorithm`), is verified as
/// the gateway does: the body's SM3 digest in `x-acs-content-sha256`, the rest
/// framed as with SHA-256. It was refused as a malformed header.
#[tokio::test]
async fn the_sm3_form_of_the_v3_signature_is_accepted_and_checked() {
    let (_sim, _running, client) = start(sized(10)).await;
    for form in [false, true] {
        let mut call = Call::instances(&[("MaxResults", "5")]);
        call.algorithm = V3Algorithm::HmacSm3;
        call.form = form;
        let r = client.send(&call).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["InstanceModel"].as_array().unwrap().len(), 5);
        call.tamper = true;
        let r = client.send(&call).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "SignatureDoesNotMatch")
        );
    }
}

#[tokio::test]
async fn signature_key_date_and_nonce_are_checked() {
    let (_sim, _running, client) = start(sized(10)).await;

    let mut tampered = Call::instances(&[]);
    tampered.tamper = true;
    let r = client.send(&tampered).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "SignatureDoesNotMatch"),
        "{}",
        r.body
    );
    let body = r.json();
    for key in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 5);

    let stranger = Client {
        key_id: "nobodyKnowsMe".into(),
        ..Client::new(&_running)
    };
    let r = stranger.send(&Call::instances(&[])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "InvalidAccessKeyId.NotFound")
    );

    let wrong_secret = Client {
        secret: "not-the-secret".into(),
        ..Client::new(&_running)
    };
    let r = wrong_secret.send(&Call::instances(&[])).await;
    assert_eq!(r.code(), "SignatureDoesNotMatch");

    for minutes in [-20, 20] {
        let mut stale = Call::instances(&[]);
        stale.date = Some(Utc::now() + Duration::minutes(minutes));
        let r = client.send(&stale).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "InvalidTimeStamp.Expired"),
            "{minutes}"
        );
    }
    let mut skewed = Call::instances(&[]);
    skewed.date = Some(Utc::now() - Duration::minutes(10));
    assert_eq!(
        client.send(&skewed).await.status,
        200,
        "10 minutes is inside the window"
    );

    let mut once = Call::instances(&[]);
    once.nonce = Some("the-same-nonce".into());
    assert_eq!(client.send(&once).await.status, 200);
    let r = client.send(&once).await;
    assert_eq!((r.status, r.code().as_str()), (400, "SignatureNonceUsed"));
}

#[tokio::test]
async fn the_simulator_clock_decides_freshness() {
    let (sim, _running, client) = start(sized(5)).await;
    let past = "2024-03-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
    let mut call = Call::instances(&[]);
    call.date = Some(past);
    assert_eq!(client.send(&call).await.code(), "InvalidTimeStamp.Expired");
    sim.set_clock(Clock::Fixed(past + Duration::minutes(3)));
    assert_eq!(client.send(&call).await.status, 200);
}

#[tokio::test]
async fn malformed_or_missing_authorization_is_an_incomplete_signature() {
    let (_sim, running, client) = start(sized(5)).await;
    let base = || {
        reqwest::Client::new()
            .post(format!("{}/", running.endpoint()))
            .header("x-acs-action", "DescribeAndroidInstances")
            .header("x-acs-version", "2023-09-30")
    };
    let r = reply(base()).await;
    assert_eq!((r.status, r.code().as_str()), (400, "IncompleteSignature"));
    let r = reply(base().header("authorization", "ACS3-HMAC-SHA256 Credential=x")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "IncompleteSignature"));
    let r = reply(base().header(
        "authorization",
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=host;x-acs-action,Signature=00",
    ))
    .await;
    assert_eq!(r.code(), "IncompleteSignature");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("x-acs-version"));
    drop(client);
}

#[tokio::test]
async fn get_post_form_rfc3986_and_v1_variants_are_accepted() {
    let (_sim, _running, client) = start(sized(300)).await;
    let params = [
        ("BizRegionId", "cn-hangzhou"),
        ("Tag.1.Key", "team name"),
        ("Tag.1.Value", "a b*c~/é+&="),
    ];
    let expected_total = |r: &Reply| r.json()["TotalCount"].clone();
    let post = client.send(&Call::instances(&params)).await;
    assert_eq!(post.status, 200, "{}", post.body);
    let mut variants = Vec::new();
    let mut get = Call::instances(&params);
    get.method = "GET";
    variants.push(get.clone());
    get.rfc3986_query = true;
    variants.push(get);
    let mut form = Call::instances(&params);
    form.form = true;
    variants.push(form.clone());
    // Media types are case-insensitive: the body is read whatever the case.
    form.headers = vec![(
        "content-type".into(),
        "Application/X-WWW-Form-Urlencoded".into(),
        true,
    )];
    variants.push(form);
    for call in &variants {
        let r = client.send(call).await;
        assert_eq!(r.status, 200, "{call:?}: {}", r.body);
        assert_eq!(expected_total(&r), expected_total(&post));
    }
    let region_only = client
        .send(&Call::instances(&[("BizRegionId", "cn-hangzhou")]))
        .await;
    let mut v1 = Call::instances(&[("BizRegionId", "cn-hangzhou")]);
    for method in ["POST", "GET"] {
        v1.method = method;
        let r = client.send_v1(&v1).await;
        assert_eq!(r.status, 200, "V1 {method}: {}", r.body);
        assert_eq!(expected_total(&r), expected_total(&region_only));
    }
    v1.rfc3986_query = true;
    assert_eq!(client.send_v1(&v1).await.status, 200);
    let mut v1_reused = v1.clone();
    v1_reused.nonce = Some("v1-nonce".into());
    assert_eq!(client.send_v1(&v1_reused).await.status, 200);
    assert_eq!(
        client.send_v1(&v1_reused).await.code(),
        "SignatureNonceUsed"
    );
    let liar = Client {
        secret: "wrong".into(),
        ..Client::new(&_running)
    };
    assert_eq!(liar.send_v1(&v1).await.code(), "SignatureDoesNotMatch");
}

/// A simulator that also takes the STS key `STS.tmpKey` (token `tok==`): the
/// default client, and one holding that key, without its token.
async fn start_with_sts() -> (RunningSimulator, Client, Client) {
    let mut config = sized(5);
    config
        .credentials
        .push(Credentials::new("STS.tmpKey", "tmpSecret").with_security_token("tok=="));
    let (_sim, running, client) = start(config).await;
    let sts = Client {
        key_id: "STS.tmpKey".into(),
        secret: "tmpSecret".into(),
        security_token: None,
        ..Client::new(&running)
    };
    (running, client, sts)
}

#[tokio::test]
async fn sts_keys_need_their_security_token() {
    let (_running, _client, mut sts) = start_with_sts().await;
    sts.security_token = Some("tok==".into());
    assert_eq!(sts.send(&Call::instances(&[])).await.status, 200);
    assert_eq!(sts.send_v1(&Call::instances(&[])).await.status, 200);
    sts.security_token = Some("other".into());
    assert_eq!(
        sts.send(&Call::instances(&[])).await.code(),
        "InvalidSecurityToken.MismatchWithAccessKey"
    );
    sts.security_token = None;
    assert_eq!(
        sts.send(&Call::instances(&[])).await.code(),
        "MissingSecurityToken"
    );
}

#[tokio::test]
async fn every_present_x_acs_header_and_a_body_type_must_be_signed() {
    let (_running, client, sts) = start_with_sts().await;
    let header = |name: &str, value: &str, signed: bool| (name.into(), value.into(), signed);
    // Refused as an incomplete signature whose message names `needle`.
    let refused = |r: Reply, needle: &str| {
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "IncompleteSignature"),
            "{needle}: {}",
            r.body
        );
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    };

    // Signed, any x-acs-* header is fine; unsigned, it is refused.
    let mut call = Call::instances(&[]);
    call.headers = vec![header("x-acs-credentials-provider", "static_ak", true)];
    assert_eq!(client.send(&call).await.status, 200);
    call.headers = vec![header("x-acs-credentials-provider", "static_ak", false)];
    refused(
        client.send(&call).await,
        "x-acs-credentials-provider is present",
    );

    // A form body whose content-type is not signed.
    let mut form = Call::instances(&[("MaxResults", "5")]);
    form.form = true;
    assert_eq!(client.send(&form).await.status, 200);
    form.headers = vec![header(
        "content-type",
        "application/x-www-form-urlencoded",
        false,
    )];
    refused(client.send(&form).await, "content-type is present");

    // An STS token outside the signature, and an accesskey-id header naming
    // another key than the Credential.
    let mut call = Call::instances(&[]);
    call.headers = vec![
        header("x-acs-accesskey-id", "STS.tmpKey", true),
        header("x-acs-security-token", "tok==", true),
    ];
    assert_eq!(sts.send(&call).await.status, 200);
    call.headers[1].2 = false;
    refused(sts.send(&call).await, "x-acs-security-token is present");
    call.headers = vec![
        header("x-acs-accesskey-id", "STS.other", true),
        header("x-acs-security-token", "tok==", true),
    ];
    refused(sts.send(&call).await, "is not the Credential");
}

#[tokio::test]
async fn v1_needs_its_common_parameters() {
    let (_sim, _running, client) = start(sized(5)).await;
    let mut call = Call::instances(&[]);
    assert_eq!(client.send_v1(&call).await.status, 200);
    call.v1_common = vec![("Format", Some("JSON"))];
    assert_eq!(client.send_v1(&call).await.status, 200);
    for (name, value, code) in [
        ("SignatureVersion", None, "MissingParameter"),
        ("Format", None, "MissingParameter"),
        ("SignatureVersion", Some("2.0"), "InvalidParameter"),
        ("Format", Some("XML"), "InvalidParameter"),
    ] {
        call.v1_common = vec![(name, value)];
        let r = client.send_v1(&call).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, code),
            "{name}={value:?}: {}",
            r.body
        );
        assert!(r.body.contains(name), "{}", r.body);
    }
}

#[tokio::test]
async fn other_paths_and_methods_get_a_json_error() {
    let (_sim, running, _client) = start(sized(5)).await;
    let http = reqwest::Client::new();
    let r = reply(http.post(format!("{}/foo", running.endpoint()))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "InvalidAction.NotFound")
    );
    assert!(r.content_type().starts_with("application/json"));
    let r = reply(http.put(format!("{}/", running.endpoint()))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (405, "UnsupportedHTTPMethod")
    );
    let body = r.json();
    for key in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
}

#[tokio::test]
async fn unknown_actions_and_versions_are_refused() {
    let (_sim, _running, client) = start(sized(5)).await;
    let r = client.send(&Call::new("DescribeEverything", &[])).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "InvalidAction.NotFound")
    );
    let mut old = Call::instances(&[]);
    old.version = "2022-01-01".into();
    let r = client.send(&old).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidVersion");
}

// ----- DescribeRegions -----

#[tokio::test]
async fn regions_are_the_fleets_business_regions() {
    let (_sim, _running, client) = start(sized(5)).await;
    let r = client
        .send(&Call::new("DescribeRegions", &[("AcceptLanguage", "en")]))
        .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert!(body["RequestId"].is_string());
    let regions: Vec<(String, String)> = body["RegionModels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["RegionId"].as_str().unwrap().into(),
                m["RegionName"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(regions.len(), 6);
    assert!(regions.contains(&("cn-shanghai".into(), "China (Shanghai)".into())));
    assert!(regions.contains(&("ap-southeast-1".into(), "Singapore".into())));
}

// ----- filters -----

/// What the test expects a filter to select, written independently of the server.
fn expect(fleet: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut kept: Vec<String> = fleet
        .iter()
        .filter(|i| keep(i))
        .map(|i| i["AndroidInstanceId"].as_str().unwrap().to_owned())
        .collect();
    kept.reverse(); // newest first
    kept
}

fn has_tag(i: &Value, key: &str, value: Option<&str>) -> bool {
    i["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Key"] == key && value.is_none_or(|v| t["Value"] == v))
}

#[tokio::test]
async fn every_filter_selects_exactly_the_matching_instances() {
    let (sim, _running, client) = start(sized(3000)).await;
    let fleet = sim.fleet();
    let s = |i: usize, f: &str| fleet[i][f].as_str().unwrap().to_owned();
    let with = |f: &str| {
        fleet
            .iter()
            .position(|i| !i[f].as_str().unwrap().is_empty())
            .unwrap()
    };
    let (a, b) = (17, 2222);
    let ip = s(a, "NetworkInterfaceIp");
    let group = s(a, "AndroidInstanceGroupId");
    let group_b = s(b, "AndroidInstanceGroupId");
    let group_name = s(a, "AndroidInstanceGroupName");
    let name = s(a, "AndroidInstanceName");
    let kp = s(with("KeyPairId"), "KeyPairId");
    let qos = s(with("QosRuleId"), "QosRuleId");
    let user = s(with("AuthorizedUserId"), "AuthorizedUserId");
    let office = s(a, "OfficeSiteId");
    let office_b = s(b, "OfficeSiteId");
    let policy = fleet[a]["AppManagePolicy"]["AppManagePolicyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id_a, id_b) = (s(a, "AndroidInstanceId"), s(b, "AndroidInstanceId"));
    let eq = |f: &'static str, v: String| move |i: &Value| i[f] == v.as_str();

    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Vec<(&str, String)>, Keep)> = vec![
        (
            vec![
                ("AndroidInstanceIds.1", id_a.clone()),
                ("AndroidInstanceIds.2", id_b.clone()),
            ],
            {
                let (x, y) = (id_a.clone(), id_b.clone());
                Box::new(move |i| {
                    i["AndroidInstanceId"] == x.as_str() || i["AndroidInstanceId"] == y.as_str()
                })
            },
        ),
        (
            vec![("AndroidInstanceName", name.clone())],
            Box::new(eq("AndroidInstanceName", name.clone())),
        ),
        (vec![("AppManagePolicyId", policy.clone())], {
            let p = policy.clone();
            Box::new(move |i| i["AppManagePolicy"]["AppManagePolicyId"] == p.as_str())
        }),
        (
            vec![("AuthorizedUserId", user.clone())],
            Box::new(eq("AuthorizedUserId", user.clone())),
        ),
        (
            vec![("BizRegionId", "cn-shenzhen".into())],
            Box::new(eq("RegionId", "cn-shenzhen".into())),
        ),
        (
            vec![("ChargeType", "PostPaid".into())],
            Box::new(eq("ChargeType", "PostPaid".into())),
        ),
        (
            vec![("InstanceGroupId", group.clone())],
            Box::new(eq("AndroidInstanceGroupId", group.clone())),
        ),
        (
            vec![
                ("InstanceGroupIds.1", group.clone()),
                ("InstanceGroupIds.2", group_b.clone()),
            ],
            {
                let (x, y) = (group.clone(), group_b.clone());
                Box::new(move |i| {
                    i["AndroidInstanceGroupId"] == x.as_str()
                        || i["AndroidInstanceGroupId"] == y.as_str()
                })
            },
        ),
        (
            vec![("InstanceGroupName", group_name.clone())],
            Box::new(eq("AndroidInstanceGroupName", group_name.clone())),
        ),
        (
            vec![("KeyPairId", kp.clone())],
            Box::new(eq("KeyPairId", kp.clone())),
        ),
        (
            vec![
                ("OfficeSiteIds.1", office.clone()),
                ("OfficeSiteIds.2", office_b.clone()),
            ],
            {
                let (x, y) = (office.clone(), office_b.clone());
                Box::new(move |i| {
                    i["OfficeSiteId"] == x.as_str() || i["OfficeSiteId"] == y.as_str()
                })
            },
        ),
        (
            vec![("PrivateIpAddress", ip.clone())],
            Box::new(eq("NetworkInterfaceIp", ip.clone())),
        ),
        (
            vec![("QosRuleIds.1", qos.clone())],
            Box::new(eq("QosRuleId", qos.clone())),
        ),
        (
            vec![("Status", "STOPPED".into())],
            Box::new(eq("AndroidInstanceStatus", "STOPPED".into())),
        ),
        (
            vec![("Tag.1.Key", "env".into()), ("Tag.1.Value", "prod".into())],
            Box::new(|i| has_tag(i, "env", Some("prod"))),
        ),
        (
            vec![("Tag.1.Key", "owner".into())],
            Box::new(|i| has_tag(i, "owner", None)),
        ),
        (
            vec![
                ("Tag.1.Key", "env".into()),
                ("Tag.1.Value", "prod".into()),
                ("Tag.2.Key", "team".into()),
                ("Tag.2.Value", "qa".into()),
            ],
            Box::new(|i| has_tag(i, "env", Some("prod")) && has_tag(i, "team", Some("qa"))),
        ),
        (
            vec![
                ("BizRegionId", "cn-beijing".into()),
                ("Status", "RUNNING".into()),
                ("ChargeType", "PrePaid".into()),
            ],
            Box::new(|i| {
                i["RegionId"] == "cn-beijing"
                    && i["AndroidInstanceStatus"] == "RUNNING"
                    && i["ChargeType"] == "PrePaid"
            }),
        ),
        // accepted, select nothing away
        (
            vec![
                ("InstanceVersion", "basic".into()),
                ("SaleMode", "Instance".into()),
                ("NodeId", "n-1".into()),
                ("NodeName", "m".into()),
            ],
            Box::new(|_| true),
        ),
    ];
    for (params, keep) in cases {
        let wanted = expect(&fleet, keep);
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, _, total) = client.crawl(&borrowed, 100).await;
        assert!(
            !wanted.is_empty(),
            "{params:?} selects nothing: a useless case"
        );
        assert_eq!(ids(&got), wanted, "{params:?}");
        assert_eq!(total, wanted.len() as u64, "{params:?} TotalCount");
    }
    let (none, pages, total) = client
        .crawl(&[("Status", "RUNNING"), ("BizRegionId", "us-west-1")], 100)
        .await;
    assert_eq!((none.len(), pages, total), (0, 1, 0));
}

#[tokio::test]
async fn bad_page_sizes_sorts_and_tokens_are_invalid_parameters() {
    let (_sim, _running, client) = start(sized(30)).await;
    for bad in ["0", "101", "abc", "-5"] {
        let r = client.send(&Call::instances(&[("MaxResults", bad)])).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "InvalidParameter"),
            "{bad}"
        );
        assert!(r.json()["Message"].as_str().unwrap().contains("MaxResults"));
    }
    for (k, v) in [("SortKey", "Name"), ("SortType", "UP")] {
        let r = client.send(&Call::instances(&[(k, v)])).await;
        assert_eq!(r.code(), "InvalidParameter", "{k}={v}");
    }
    for token in ["tok-page-2", "AAAA", "+/+/"] {
        let r = client.send(&Call::instances(&[("NextToken", token)])).await;
        assert_eq!(r.code(), "InvalidParameter", "{token}");
        assert!(r.json()["Message"].as_str().unwrap().contains("NextToken"));
    }
    // a real token, but for other filters
    let first = client
        .send(&Call::instances(&[("MaxResults", "5")]))
        .await
        .json();
    let token = first["NextToken"].as_str().unwrap();
    let r = client
        .send(&Call::instances(&[
            ("NextToken", token),
            ("Status", "RUNNING"),
        ]))
        .await;
    assert_eq!(r.code(), "InvalidParameter");
    let ok = client
        .send(&Call::instances(&[
            ("NextToken", token),
            ("MaxResults", "7"),
        ]))
        .await;
    assert_eq!(ok.status, 200, "page size may change between pages");
}

// ----- pagination -----

/// Page size 1 over all 10 000 instances is 10 000 round trips (half a minute
/// in a debug build), so that size crawls one region over HTTP; the fleet module's
/// unit tests walk the whole fleet one instance at a time in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_100_37_and_1_cover_the_fleet_exactly_once() {
    let (sim, _running, client) = start(sized(10_000)).await;
    let fleet = sim.fleet();
    let mut expected = ids(&fleet);
    expected.reverse();
    let region = expect(&fleet, |i| i["RegionId"] == "cn-hongkong");
    let (a, b, c) = tokio::join!(
        client.crawl_ids(&[], 100),
        client.crawl_ids(&[], 37),
        client.crawl_ids(&[("BizRegionId", "cn-hongkong")], 1)
    );
    for ((got, pages, total), size) in [(a, 100), (b, 37)] {
        assert_eq!(total, 10_000);
        assert_eq!(pages, 10_000usize.div_ceil(size), "page size {size}");
        assert_eq!(got, expected, "page size {size}");
    }
    let (got, pages, total) = c;
    assert_eq!((pages, total), (region.len(), region.len() as u64));
    assert_eq!(got, region);
}

#[tokio::test]
async fn tokens_need_url_encoding_and_sorts_are_honoured() {
    let (sim, _running, client) = start(sized(120)).await;
    let first = client
        .send(&Call::instances(&[("MaxResults", "10")]))
        .await
        .json();
    let token = first["NextToken"].as_str().unwrap();
    assert!(
        token.contains('+') && token.contains('/') && token.ends_with('='),
        "{token}"
    );

    let (asc, _, _) = client
        .crawl(&[("SortKey", "CreationTime"), ("SortType", "ASC")], 25)
        .await;
    assert_eq!(ids(&asc), ids(&sim.fleet()));

    let (by_expiry, _, _) = client
        .crawl(&[("SortKey", "ExpiredTime"), ("SortType", "ASC")], 25)
        .await;
    let expiry = |i: &Value| i["GmtExpired"].as_str().unwrap().to_owned();
    let dated: Vec<String> = by_expiry
        .iter()
        .map(expiry)
        .filter(|e| !e.is_empty())
        .collect();
    let mut sorted = dated.clone();
    sorted.sort();
    assert_eq!(dated, sorted);
    assert_eq!(by_expiry.len(), 120);
    // pay-as-you-go instances (no expiry) come after the dated ones
    let first_undated = by_expiry.iter().position(|i| expiry(i).is_empty()).unwrap();
    assert!(by_expiry[first_undated..]
        .iter()
        .all(|i| expiry(i).is_empty()));

    let (desc, _, _) = client.crawl(&[("SortKey", "ExpiredTime")], 25).await;
    let mut reversed = ids(&by_expiry);
    reversed.reverse();
    assert_eq!(ids(&desc), reversed);
}

// ----- determinism and churn -----

#[tokio::test]
async fn the_same_seed_gives_the_same_fleet() {
    let (a, b, c) = (
        Simulator::new(sized(500)),
        Simulator::new(sized(500)),
        Simulator::new(SimulatorConfig {
            seed: 12,
            ..sized(500)
        }),
    );
    assert_eq!(a.fleet(), b.fleet());
    assert_ne!(a.fleet(), c.fleet());
    let fleet = a.fleet();
    let distinct: BTreeSet<&str> = fleet
        .iter()
        .map(|i| i["AndroidInstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 500);
    let statuses: BTreeSet<&str> = fleet
        .iter()
        .map(|i| i["AndroidInstanceStatus"].as_str().unwrap())
        .collect();
    assert!(statuses.contains("RUNNING") && statuses.contains("STOPPED"));
}

fn by_id(fleet: &[Value]) -> BTreeMap<String, Value> {
    fleet
        .iter()
        .map(|i| {
            (
                i["AndroidInstanceId"].as_str().unwrap().to_owned(),
                i.clone(),
            )
        })
        .collect()
}

fn changed_fields(before: &Value, after: &Value) -> BTreeSet<String> {
    let (b, a) = (before.as_object().unwrap(), after.as_object().unwrap());
    b.keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

#[tokio::test]
async fn churn_reports_exactly_what_changed() {
    let (sim, running, client) = start(sized(2000)).await;
    let before = by_id(&sim.fleet());
    let spec = ChurnSpec {
        seed: 4,
        create: 5,
        delete: 6,
        status: 7,
        rename: 8,
        retag: 9,
        resize_disk: 10,
        volatile: 11,
    };
    let report = sim.churn(&spec);
    let (crawled, _, total) = client.crawl(&[], 100).await;
    let after = by_id(&crawled);
    assert_eq!(after, by_id(&sim.fleet()), "a crawl sees the churned fleet");
    assert_eq!(total, 2000 - 6 + 5);

    let set = |v: &Vec<String>| v.iter().cloned().collect::<BTreeSet<String>>();
    let created: BTreeSet<String> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let deleted: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(created, set(&report.created));
    assert_eq!(deleted, set(&report.deleted));
    let mut changed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, old) in &before {
        if let Some(new) = after.get(id) {
            if old != new {
                changed.insert(id.clone(), changed_fields(old, new));
            }
        }
    }
    let kinds = [
        (&report.status_changed, "AndroidInstanceStatus"),
        (&report.renamed, "AndroidInstanceName"),
        (&report.retagged, "Tags"),
        (&report.disk_resized, "Disks"),
    ];
    let mut reported = BTreeSet::new();
    for (ids, field) in kinds {
        for id in ids {
            let fields = &changed[id];
            let want: BTreeSet<String> = [field.to_owned(), "GmtModified".to_owned()].into();
            assert!(
                fields.is_subset(&want) && fields.contains(field),
                "{id}: {fields:?} for {field}"
            );
            reported.insert(id.clone());
        }
    }
    let volatile: BTreeSet<String> = ["SessionStatus", "Rate", "GmtModified"]
        .map(String::from)
        .into();
    for id in &report.volatile {
        let fields = &changed[id];
        assert_eq!(fields.len(), 1, "{id}: {fields:?}");
        assert!(fields.is_subset(&volatile), "{id}: {fields:?}");
        reported.insert(id.clone());
    }
    assert_eq!(changed.keys().cloned().collect::<BTreeSet<_>>(), reported);
    assert_eq!(reported.len(), 7 + 8 + 9 + 10 + 11);

    // the same churn through the admin endpoint, on a twin simulator, agrees
    let twin = Simulator::new(sized(2000));
    let twin_running = twin.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let r = reply(
        reqwest::Client::new()
            .post(format!("{}/_sim/churn", twin_running.endpoint()))
            .body(serde_json::to_string(&spec).unwrap()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::to_value(&report).unwrap());
    assert_eq!(twin.fleet().len(), sim.fleet().len());
    twin_running.shutdown().await;
    running.shutdown().await;
}

#[tokio::test]
async fn edited_instances_are_served_as_is() {
    let (sim, running, client) = start(sized(20)).await;
    let ids_now = sim.instance_ids(3);
    assert!(sim.edit_instance(&ids_now[0], |j| {
        j.insert("Cpu".into(), json!("four"));
        j.insert("Memory".into(), json!("8192"));
    }));
    assert!(sim.edit_instance(&ids_now[1], |j| {
        j.remove("AndroidInstanceId");
    }));
    assert!(!sim.edit_instance("acp-doesnotexist", |_| {}));
    let r = reply(
        reqwest::Client::new()
            .post(format!("{}/_sim/edit", running.endpoint()))
            .body(json!({"AndroidInstanceId": ids_now[2], "Set": {"DisplayConfig": {"LockResolution": true}}, "Remove": ["Tags"]}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let page = client.send(&Call::instances(&[])).await.json();
    let items = page["InstanceModel"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    let four = items
        .iter()
        .find(|i| i["AndroidInstanceId"] == ids_now[0].as_str())
        .unwrap();
    assert_eq!(
        (four["Cpu"].clone(), four["Memory"].clone()),
        (json!("four"), json!("8192"))
    );
    assert_eq!(
        items
            .iter()
            .filter(|i| i.get("AndroidInstanceId").is_none())
            .count(),
        1
    );
    let third = items
        .iter()
        .find(|i| i["AndroidInstanceId"] == ids_now[2].as_str())
        .unwrap();
    assert_eq!(third["DisplayConfig"], json!({"LockResolution": true}));
    assert!(third.get("Tags").is_none());
}

// ----- faults -----

async fn set_faults(running: &RunningSimulator, faults: &Faults) {
    let r = reply(
        reqwest::Client::new()
            .post(format!("{}/_sim/faults", running.endpoint()))
            .body(serde_json::to_string(faults).unwrap()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn error_rates_answer_with_the_right_status_and_code() {
    let (sim, running, client) = start(sized(10)).await;
    let cases = [
        (
            Faults {
                throttle_rate: 1.0,
                ..Faults::default()
            },
            400,
            "Throttling.User",
            None,
        ),
        (
            Faults {
                throttle_rate: 1.0,
                retry_after_ms: Some(250),
                ..Faults::default()
            },
            429,
            "Throttling",
            Some("250"),
        ),
        (
            Faults {
                error_500_rate: 1.0,
                ..Faults::default()
            },
            500,
            "InternalError",
            None,
        ),
        (
            Faults {
                error_503_rate: 1.0,
                ..Faults::default()
            },
            503,
            "ServiceUnavailable",
            None,
        ),
    ];
    for (faults, status, code, retry_after) in cases {
        set_faults(&running, &faults).await;
        for action in ["DescribeAndroidInstances", "DescribeRegions"] {
            let r = client.send(&Call::new(action, &[])).await;
            assert_eq!((r.status, r.code().as_str()), (status, code), "{action}");
            let got = r
                .headers
                .get("x-acs-retry-after")
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, retry_after);
            let quota = r
                .headers
                .get("x-ratelimit-user-api")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                quota,
                retry_after.map(|ms| format!("Limit:1,Remain:0,TimeLeft:{ms}")),
                "{action}"
            );
        }
        // admin endpoints are never faulted
        let stats =
            reply(reqwest::Client::new().get(format!("{}/_sim/stats", running.endpoint()))).await;
        assert_eq!(stats.status, 200);
    }
    sim.set_faults(Faults::default());
    assert_eq!(client.send(&Call::instances(&[])).await.status, 200);
    let stats = sim.stats();
    assert_eq!(stats.errors["Throttling.User"], 2);
    assert_eq!(stats.errors["ServiceUnavailable"], 2);
    assert_eq!(stats.ok["DescribeAndroidInstances"], 1);
}

#[tokio::test]
async fn rates_are_deterministic_for_a_fault_seed() {
    let (sim, _running, client) = start(sized(5)).await;
    let faults = Faults {
        seed: 77,
        throttle_rate: 0.3,
        error_503_rate: 0.2,
        latency_ms: 1,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        sim.set_faults(faults.clone());
        let mut codes = Vec::new();
        for _ in 0..40 {
            codes.push(client.send(&Call::instances(&[])).await.status);
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&200) && runs[0].contains(&400) && runs[0].contains(&503));
}

/// Crawls by hand, returning each page's (status, body).
async fn raw_pages(client: &Client, size: usize, limit: usize) -> Vec<Reply> {
    let mut token = String::new();
    let mut out = Vec::new();
    for _ in 0..limit {
        let mut call = Call::instances(&[("MaxResults", &size.to_string())]);
        if !token.is_empty() {
            call.params.push(("NextToken".into(), token.clone()));
        }
        let r = client.send(&call).await;
        let next = if r.status == 200 {
            serde_json::from_str::<Value>(&r.body)
                .ok()
                .and_then(|v| v["NextToken"].as_str().map(str::to_owned))
        } else {
            None
        };
        out.push(r);
        match next {
            Some(t) if !t.is_empty() => token = t,
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn page_faults_strike_page_k() {
    let (sim, _running, client) = start(sized(50)).await;
    let all = {
        let mut v = ids(&sim.fleet());
        v.reverse();
        v
    };
    let page_ids = |r: &Reply| ids(r.json()["InstanceModel"].as_array().unwrap());

    sim.set_faults(Faults {
        empty_page: Some(2),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 20).await;
    assert_eq!(pages.len(), 6);
    assert!(page_ids(&pages[1]).is_empty());
    assert!(!pages[1].json()["NextToken"].as_str().unwrap().is_empty());
    assert_eq!(
        pages.iter().flat_map(page_ids).collect::<Vec<_>>(),
        all,
        "nothing lost"
    );

    sim.set_faults(Faults {
        duplicate_page: Some(2),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 20).await;
    assert_eq!(page_ids(&pages[1]).last(), page_ids(&pages[2]).first());
    let mut seen: Vec<String> = pages.iter().flat_map(page_ids).collect();
    assert_eq!(seen.len(), 51);
    seen.dedup();
    assert_eq!(seen, all);

    sim.set_faults(Faults {
        stuck_token_page: Some(3),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 8).await;
    assert_eq!(pages.len(), 8, "the crawl never ends by itself");
    let token = |r: &Reply| r.json()["NextToken"].as_str().unwrap().to_owned();
    assert_ne!(token(&pages[0]), token(&pages[1]));
    assert_eq!(
        token(&pages[2]),
        token(&pages[1]),
        "page 3 hands back its own token"
    );
    assert_eq!(token(&pages[7]), token(&pages[1]));

    sim.set_faults(Faults {
        malformed_json_page: Some(2),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 20).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1].status, 200);
    assert!(serde_json::from_str::<Value>(&pages[1].body).is_err());

    sim.set_faults(Faults {
        html_502_page: Some(3),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 20).await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[2].status, 502);
    assert!(pages[2].content_type().starts_with("text/html"));
    assert!(pages[2].body.contains("<html>"));

    sim.set_faults(Faults {
        fail_from_page: Some(4),
        ..Faults::default()
    });
    let pages = raw_pages(&client, 10, 20).await;
    assert_eq!(pages.len(), 4);
    assert_eq!(
        (pages[3].status, pages[3].code().as_str()),
        (500, "InternalError")
    );
    // and it keeps failing on retry
    let mut call = Call::instances(&[("MaxResults", "10")]);
    call.params.push((
        "NextToken".into(),
        pages[2].json()["NextToken"].as_str().unwrap().to_owned(),
    ));
    assert_eq!(client.send(&call).await.status, 500);
}

// ----- admin -----

/// `/_sim/fleet` is one instance per line also when a fleet file wrote its
/// records across lines (captured answers usually are pretty-printed): they
/// are served as written, so the listing joins their lines.
#[tokio::test]
async fn the_fleet_listing_is_one_line_per_instance_for_a_pretty_printed_file() {
    let page = include_str!("../data/describe_android_instances_page.json");
    assert!(
        page.trim().lines().count() > 1,
        "the capture is pretty-printed"
    );
    let records = ecp_inventory::simulator::fleet_file::parse_fleet_file(page).unwrap();
    let expected: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str(r.text.get()).unwrap())
        .collect();
    let (_sim, running) = crate::helpers::start_sim(SimulatorConfig {
        records: Some(records),
        ..Default::default()
    })
    .await;
    let fleet =
        reply(reqwest::Client::new().get(format!("{}/_sim/fleet", running.endpoint()))).await;
    assert_eq!(fleet.status, 200);
    let lines: Vec<Value> = fleet
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines, expected);
}

#[tokio::test]
async fn admin_endpoints_show_the_fleet_stats_and_faults() {
    let (sim, running, client) = start(sized(1500)).await;
    client.crawl(&[], 100).await;
    let http = reqwest::Client::new();
    let fleet = reply(http.get(format!("{}/_sim/fleet", running.endpoint()))).await;
    assert_eq!(fleet.status, 200);
    let lines: Vec<Value> = fleet
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, sim.fleet());

    let stats = reply(http.get(format!("{}/_sim/stats", running.endpoint())))
        .await
        .json();
    assert_eq!(stats["pages"], 15);
    assert_eq!(stats["instances_served"], 1500);
    assert_eq!(stats["ok"]["DescribeAndroidInstances"], 15);

    let faults = Faults {
        latency_ms: 2,
        empty_page: Some(9),
        ..Faults::default()
    };
    set_faults(&running, &faults).await;
    assert_eq!(sim.faults(), faults);
    let got = reply(http.get(format!("{}/_sim/faults", running.endpoint())))
        .await
        .json();
    assert_eq!(got, serde_json::to_value(&faults).unwrap());
    let bad = reply(
        http.post(format!("{}/_sim/faults", running.endpoint()))
            .body("{\"throttle\":1}"),
    )
    .await;
    assert_eq!(bad.status, 400);
    // A rate is a share of the traffic, as on the command line.
    let bad = reply(
        http.post(format!("{}/_sim/faults", running.endpoint()))
            .body("{\"throttle_rate\":5}"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("throttle_rate must be between 0 and 1"),
        "{}",
        bad.body
    );
    assert_eq!(sim.faults(), faults, "left as they were");

    let clock = reply(
        http.post(format!("{}/_sim/clock", running.endpoint()))
            .body(r#"{"Fixed":"2030-01-01T00:00:00Z"}"#),
    )
    .await;
    assert_eq!(clock.status, 200, "{}", clock.body);
    assert_eq!(
        client.send(&Call::instances(&[])).await.code(),
        "InvalidTimeStamp.Expired"
    );
    sim.set_clock(Clock::System);
    assert_eq!(client.send(&Call::instances(&[])).await.status, 200);
}
