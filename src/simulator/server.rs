//! The HTTP face: `GET`/`POST /` speaks the API (parameters from the query string
//! and an urlencoded body, routed by `x-acs-action` or `Action`), and unsigned
//! admin endpoints under `/_sim/` let a test or the demo drive a running simulator
//! (churn, faults, clock, edits) and read it back (fleet, stats).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

use super::auth::{verify_signature, Incoming};
use super::error::ApiError;
use super::faults::{PageFault, HTML_502};
use super::filter::Query;
use super::token::Token;
use super::{ChurnSpec, Clock, Faults, Simulator};
use crate::api::model::{ACTION_DESCRIBE_ANDROID_INSTANCES, ACTION_DESCRIBE_REGIONS, API_VERSION};

const JSON: &str = "application/json;charset=utf-8";

/// The host id errors report when the request named no host.
const DEFAULT_HOST_ID: &str = "eds-aic.cn-shanghai.aliyuncs.com";

pub fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/", get(api).post(api))
        .route("/_sim/stats", get(admin_stats))
        .route("/_sim/faults", get(admin_faults).post(admin_set_faults))
        .route("/_sim/churn", axum::routing::post(admin_churn))
        .route("/_sim/clock", axum::routing::post(admin_clock))
        .route("/_sim/edit", axum::routing::post(admin_edit))
        .route("/_sim/fleet", get(admin_fleet))
        .fallback(unknown_path)
        .method_not_allowed_fallback(unsupported_method)
        .with_state(sim)
}

/// A path the API does not have: the gateway's JSON error body, as for any other
/// refusal, rather than an empty page a client cannot parse.
async fn unknown_path(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let e = ApiError::new(
        404,
        "InvalidAction.NotFound",
        format!(
            "Specified api is not found, please check your url and method: {method} {}.",
            uri.path()
        ),
    );
    refuse(e, &headers)
}

/// A method the API does not take (it takes GET and POST).
async fn unsupported_method(method: Method, headers: HeaderMap) -> Response {
    let e = ApiError::new(
        405,
        "UnsupportedHTTPMethod",
        format!("This http method is not supported here: {method}."),
    );
    refuse(e, &headers)
}

fn refuse(e: ApiError, headers: &HeaderMap) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    respond(Reply::Error(e), &request_id, &host_id(headers))
}

/// The host id errors report: the host the request named.
fn host_id(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(DEFAULT_HOST_ID)
        .to_owned()
}

/// An answer before it becomes an HTTP response.
enum Reply {
    Json(String),
    Error(ApiError),
    /// Faults that are not API answers at all.
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
        label: &'static str,
    },
}

fn decode_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

async fn api(
    State(sim): State<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let host_id = host_id(&headers);
    let query = decode_pairs(uri.query().unwrap_or("").as_bytes());
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // Media types are case-insensitive (RFC 9110).
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        decode_pairs(&body)
    } else {
        Vec::new()
    };
    let incoming = Incoming {
        method: method.as_str(),
        path: uri.path(),
        query: &query,
        form: &form,
        headers: &headers,
        body: &body,
    };
    let (action, reply) = handle(&sim, &incoming, &request_id).await;
    let (status, label) = match &reply {
        Reply::Json(_) => (200, "ok".to_owned()),
        Reply::Error(e) => (e.status, e.code.to_owned()),
        Reply::Raw { status, label, .. } => (*status, (*label).to_owned()),
    };
    tracing::debug!(%request_id, %method, action = %action, status, outcome = %label, "simulator request");
    {
        let mut stats = sim.inner.stats.lock().expect("stats");
        stats.requests += 1;
        if status == 200 {
            *stats.ok.entry(action).or_default() += 1;
        } else {
            *stats.errors.entry(label).or_default() += 1;
        }
    }
    respond(reply, &request_id, &host_id)
}

fn respond(reply: Reply, request_id: &str, host_id: &str) -> Response {
    let (status, content_type, body, retry_after) = match reply {
        Reply::Json(body) => (200, JSON, body, None),
        Reply::Error(e) => (
            e.status,
            JSON,
            e.body(request_id, host_id),
            e.retry_after_ms,
        ),
        Reply::Raw {
            status,
            content_type,
            body,
            ..
        } => (status, content_type, body, None),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        h.insert("x-acs-request-id", id);
    }
    if let Some(ms) = retry_after {
        h.insert("x-acs-retry-after", HeaderValue::from(ms));
        // The same wait where the Go SDK looks for it (the quota's TimeLeft).
        let quota = format!("Limit:1,Remain:0,TimeLeft:{ms}");
        h.insert(
            "x-ratelimit-user-api",
            HeaderValue::try_from(quota).expect("ASCII digits and letters"),
        );
    }
    response
}

/// Routing, then auth, then faults, then the action. Returns the action name for
/// logs and counters.
async fn handle(sim: &Simulator, incoming: &Incoming<'_>, request_id: &str) -> (String, Reply) {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in incoming.query.iter().chain(incoming.form) {
        params.insert(k.clone(), v.clone());
    }
    let v3 = incoming.headers.contains_key(header::AUTHORIZATION);
    let header_value = |name: &str| {
        incoming
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let pick = |header_name: &str, param: &str| {
        let (h, p) = (header_value(header_name), params.get(param).cloned());
        if v3 {
            h.or(p)
        } else {
            p.or(h)
        }
    };
    let Some(action) = pick("x-acs-action", "Action") else {
        return (
            String::new(),
            Reply::Error(ApiError::missing_parameter("Action")),
        );
    };
    if action != ACTION_DESCRIBE_ANDROID_INSTANCES && action != ACTION_DESCRIBE_REGIONS {
        let e = ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api is not found, please check your url and method: {action:?}."),
        );
        return (action, Reply::Error(e));
    }
    let version = pick("x-acs-version", "Version").unwrap_or_default();
    if version != API_VERSION {
        let e = ApiError::new(400, "InvalidVersion", format!("Specified parameter Version is not valid: {version:?} (this product serves {API_VERSION})."));
        return (action, Reply::Error(e));
    }
    let checked = verify_signature(incoming, &sim.inner.credentials)
        .and_then(|signed| sim.inner.nonces.check_fresh(&signed, sim.now()));
    if let Err(e) = checked {
        return (action, Reply::Error(e));
    }
    let (faults, drawn) = {
        let mut guard = sim.inner.faults.lock().expect("faults");
        let (faults, rng) = &mut *guard;
        let drawn = faults.draw(rng);
        (faults.clone(), drawn)
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if let Some(e) = drawn {
        return (action, Reply::Error(e));
    }
    let reply = if action == ACTION_DESCRIBE_REGIONS {
        describe_regions(sim, &params, request_id)
    } else {
        let (sim, request_id) = (sim.clone(), request_id.to_owned());
        // A filtered count over a large fleet is CPU work: keep it off the reactor.
        tokio::task::spawn_blocking(move || describe_instances(&sim, &params, &request_id, &faults))
            .await
            .unwrap_or_else(|_| Reply::Error(ApiError::internal()))
    };
    (action, reply)
}

fn describe_regions(sim: &Simulator, params: &BTreeMap<String, String>, request_id: &str) -> Reply {
    let chinese = params
        .get("AcceptLanguage")
        .is_some_and(|l| l == "cn" || l == "zh");
    let models: Vec<Value> = sim
        .inner
        .regions
        .iter()
        .map(|r| {
            let name = if chinese {
                chinese_name(r)
            } else {
                super::generate::region_name(r)
            };
            json!({"RegionId": r, "RegionName": name})
        })
        .collect();
    Reply::Json(json!({"RequestId": request_id, "RegionModels": models}).to_string())
}

fn chinese_name(region: &str) -> String {
    match region {
        "cn-hangzhou" => "华东1（杭州）",
        "cn-shanghai" => "华东2（上海）",
        "cn-shenzhen" => "华南1（深圳）",
        "cn-beijing" => "华北2（北京）",
        "cn-hongkong" => "中国香港",
        "ap-southeast-1" => "新加坡",
        other => other,
    }
    .to_owned()
}

fn describe_instances(
    sim: &Simulator,
    params: &BTreeMap<String, String>,
    request_id: &str,
    faults: &Faults,
) -> Reply {
    let query = match Query::parse(params) {
        Ok(q) => q,
        Err(bad) => return Reply::Error(ApiError::invalid_parameter(bad.0)),
    };
    let fingerprint = query.fingerprint();
    let secret = sim.inner.seed;
    let (page_no, from) = match &query.next_token {
        None => (1, None),
        Some(raw) => match Token::decode(raw, secret).filter(|t| t.fingerprint == fingerprint) {
            Some(t) => (t.page, Some(t.cursor)),
            None => {
                return Reply::Error(ApiError::invalid_parameter(
                    "The specified parameter NextToken is not valid (not issued for this request's filters and order).",
                ))
            }
        },
    };
    match faults.page_fault(page_no) {
        PageFault::Fail => return Reply::Error(ApiError::internal()),
        PageFault::Html502 => {
            return Reply::Raw {
                status: 502,
                content_type: "text/html",
                body: HTML_502.to_owned(),
                label: "Html502",
            }
        }
        PageFault::MalformedJson | PageFault::None => {}
    }
    let fleet = sim.fleet_ref();
    let total = fleet.count(&query.filter, fingerprint);
    let mut page = fleet.page(&query.filter, query.sort, from, query.max_results);
    let token = |cursor| {
        Token {
            page: page_no + 1,
            cursor,
            fingerprint,
        }
        .encode(secret)
    };
    let mut next = page.next.map(token);
    if faults.empty_page == Some(page_no) && !page.indices.is_empty() {
        next = Some(token(fleet.cursor_of(page.indices[0], query.sort)));
        page.indices.clear();
    } else if faults.duplicate_page == Some(page_no) && page.next.is_some() {
        let last = *page.indices.last().expect("a full page before a next one");
        next = Some(token(fleet.cursor_of(last, query.sort)));
    }
    if faults.stuck_at(page_no) {
        next = query.next_token.clone();
    }
    if faults.last_page_early == Some(page_no) {
        next = None;
    }
    let mut out = Vec::with_capacity(64 + page.indices.len() * 2048);
    out.extend_from_slice(b"{\"RequestId\":");
    serde_json::to_writer(&mut out, request_id).expect("in memory");
    out.extend_from_slice(format!(",\"TotalCount\":{total},\"NextToken\":").as_bytes());
    serde_json::to_writer(&mut out, next.as_deref().unwrap_or("")).expect("in memory");
    out.extend_from_slice(b",\"InstanceModel\":[");
    for (n, index) in page.indices.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        fleet.write_json(*index, &mut out);
    }
    out.extend_from_slice(b"]}");
    drop(fleet);
    {
        let mut stats = sim.inner.stats.lock().expect("stats");
        stats.pages += 1;
        stats.instances_served += page.indices.len() as u64;
    }
    let body = String::from_utf8(out).expect("serde_json writes UTF-8");
    if faults.page_fault(page_no) == PageFault::MalformedJson {
        // Cut mid-document, on a char boundary: a truncated, unparsable body.
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        return Reply::Raw {
            status: 200,
            content_type: JSON,
            body: body[..cut].to_owned(),
            label: "MalformedJson",
        };
    }
    Reply::Json(body)
}

// ----- admin -----

fn admin_json(status: StatusCode, value: impl serde::Serialize) -> Response {
    let mut response = Response::new(Body::from(
        serde_json::to_string(&value).unwrap_or_default(),
    ));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    admin_json(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}))
}

async fn admin_stats(State(sim): State<Simulator>) -> Response {
    admin_json(StatusCode::OK, sim.stats())
}

async fn admin_faults(State(sim): State<Simulator>) -> Response {
    admin_json(StatusCode::OK, sim.faults())
}

async fn admin_set_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => match faults.check(str::to_owned) {
            Ok(()) => {
                sim.set_faults(faults.clone());
                admin_json(StatusCode::OK, faults)
            }
            Err(e) => bad_request(e),
        },
        Err(e) => bad_request(e),
    }
}

async fn admin_churn(State(sim): State<Simulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<ChurnSpec>(&body) {
        Ok(spec) => admin_json(StatusCode::OK, sim.churn(&spec)),
        Err(e) => bad_request(e),
    }
}

async fn admin_clock(State(sim): State<Simulator>, body: Bytes) -> Response {
    match serde_json::from_slice::<Clock>(&body) {
        Ok(clock) => {
            sim.set_clock(clock);
            admin_json(StatusCode::OK, json!({"now": sim.now()}))
        }
        Err(e) => bad_request(e),
    }
}

/// `{"AndroidInstanceId": "...", "Set": {field: value}, "Remove": [field]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    #[serde(rename = "AndroidInstanceId")]
    id: String,
    #[serde(rename = "Set", default)]
    set: Map<String, Value>,
    #[serde(rename = "Remove", default)]
    remove: Vec<String>,
}

async fn admin_edit(State(sim): State<Simulator>, body: Bytes) -> Response {
    let edit = match serde_json::from_slice::<Edit>(&body) {
        Ok(e) => e,
        Err(e) => return bad_request(e),
    };
    let found = sim.edit_instance(&edit.id, |json| {
        for field in &edit.remove {
            json.remove(field);
        }
        json.extend(edit.set.clone());
    });
    if found {
        admin_json(StatusCode::OK, json!({"edited": edit.id}))
    } else {
        admin_json(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no instance {}", edit.id)}),
        )
    }
}

/// The whole current fleet as JSON lines, oldest first, streamed in chunks so a
/// million instances never sit in memory at once.
async fn admin_fleet(State(sim): State<Simulator>) -> Response {
    const CHUNK: u64 = 1000;
    let stream = futures_util::stream::unfold(0u64, move |from| {
        let sim = sim.clone();
        async move {
            let fleet = sim.fleet_ref();
            if from >= fleet.total_slots() {
                return None;
            }
            let to = (from + CHUNK).min(fleet.total_slots());
            let mut out = Vec::new();
            for index in (from..to).filter(|i| fleet.is_live(*i)) {
                let start = out.len();
                fleet.write_json(index, &mut out);
                // A fleet file's record is served as written, maybe across
                // lines; here it must be one line. A JSON string cannot hold a
                // raw line break, so every one is whitespace between tokens.
                for byte in &mut out[start..] {
                    if matches!(byte, b'\n' | b'\r') {
                        *byte = b' ';
                    }
                }
                out.push(b'\n');
            }
            Some((Ok::<Bytes, std::convert::Infallible>(Bytes::from(out)), to))
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
