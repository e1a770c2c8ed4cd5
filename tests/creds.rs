//! The credentials chain against real sockets: a fake STS answering
//! AssumeRoleWithOIDC, a fake ECS metadata service and a fake credentials URI, all
//! on loopback, plus aliyun CLI configs in temporary directories. No test touches
//! the process environment; each describes its own with `ChainSettings`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::Router;
use chrono::{TimeDelta, Utc};

use ecp_inventory::api::model::DescribeRegionsRequest;
use ecp_inventory::api::retry::RetryPolicy;
use ecp_inventory::api::sign::sign_v1;
use ecp_inventory::api::{ApiError, Client, ClientConfig};
use ecp_inventory::credentials::{
    vars, ChainSettings, CliProfileProvider, CredentialsProvider, DefaultChain, EcsRamRoleProvider,
    EnvProvider, OidcConfig, OidcProvider, ProfileFileProvider, UriProvider,
};

const ROLE_ARN: &str = "acs:ram::1234567890:role/ecp-inventory";
const PROVIDER_ARN: &str = "acs:ram::1234567890:oidc-provider/ack-rrsa-c1";
const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.oidc-token-body.sig";
const IMDS_TOKEN: &str = "imds-session-token-value";
const IMDS_ROLE: &str = "EcpInventoryRole";

// ---------------------------------------------------------------- helpers

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ecp-creds-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn json(
    status: StatusCode,
    body: String,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (status, [("content-type", "application/json")], body)
}

fn session_json(n: usize, expires_in: TimeDelta, code: Option<&str>) -> String {
    let expiration = (Utc::now() + expires_in).format("%Y-%m-%dT%H:%M:%SZ");
    let code = code
        .map(|c| format!(r#""Code":"{c}","#))
        .unwrap_or_default();
    format!(
        r#"{{{code}"AccessKeyId":"STS.id-{n}","AccessKeySecret":"secret-value-{n}","SecurityToken":"token-value-{n}","Expiration":"{expiration}"}}"#
    )
}

// ---------------------------------------------------------------- fake STS

/// Answers AssumeRoleWithOIDC and AssumeRole; records every query and counts calls.
#[derive(Default)]
struct FakeSts {
    calls: AtomicUsize,
    queries: Mutex<Vec<HashMap<String, String>>>,
    /// How long the credentials it hands out live.
    lifetime: Mutex<TimeDelta>,
    /// When set, answers with this error code instead.
    error: Mutex<Option<&'static str>>,
    /// While above zero, answers 503 ServiceUnavailable (and counts down).
    unavailable: AtomicUsize,
}

async fn sts_handler(
    State(sts): State<Arc<FakeSts>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let n = sts.calls.fetch_add(1, Ordering::SeqCst) + 1;
    sts.queries.lock().unwrap().push(q);
    let down = sts
        .unavailable
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    if down {
        let body = format!(
            r#"{{"RequestId":"req-{n}","Code":"ServiceUnavailable","Message":"The request has failed due to a temporary failure of the server."}}"#
        );
        return json(StatusCode::SERVICE_UNAVAILABLE, body);
    }
    if let Some(code) = *sts.error.lock().unwrap() {
        let body = format!(
            r#"{{"RequestId":"req-{n}","HostId":"sts.aliyuncs.com","Code":"{code}","Message":"The OIDC token is invalid."}}"#
        );
        return json(StatusCode::BAD_REQUEST, body);
    }
    let lifetime = *sts.lifetime.lock().unwrap();
    let body = format!(
        r#"{{"RequestId":"req-{n}","AssumedRoleUser":{{"Arn":"{ROLE_ARN}/s","AssumedRoleId":"1:s"}},"Credentials":{}}}"#,
        session_json(n, lifetime, None)
    );
    json(StatusCode::OK, body)
}

async fn fake_sts(lifetime: TimeDelta) -> (Arc<FakeSts>, String) {
    let sts = Arc::new(FakeSts::default());
    *sts.lifetime.lock().unwrap() = lifetime;
    let app = Router::new()
        .route("/", get(sts_handler))
        .with_state(sts.clone());
    (sts.clone(), serve(app).await)
}

fn oidc_provider(endpoint: &str, token_file: &Path) -> OidcProvider {
    let mut config =
        OidcConfig::new(ROLE_ARN, PROVIDER_ARN, token_file).with_sts_endpoint(endpoint);
    config.role_session_name = "test-session".into();
    OidcProvider::new(config).unwrap()
}

#[tokio::test]
async fn oidc_sends_the_sdk_query_and_returns_sts_credentials() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let dir = TempDir::new();
    let token_file = dir.write("token", &format!("{OIDC_TOKEN}\n"));
    let provider = oidc_provider(&endpoint, &token_file);

    let c = provider.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(c.access_key_secret.expose(), "secret-value-1");
    assert_eq!(c.security_token.unwrap().expose(), "token-value-1");
    let q = sts.queries.lock().unwrap()[0].clone();
    assert_eq!(q["Action"], "AssumeRoleWithOIDC");
    assert_eq!(q["Format"], "JSON");
    assert_eq!(q["Version"], "2015-04-01");
    assert_eq!(q["DurationSeconds"], "3600");
    assert_eq!(q["RoleArn"], ROLE_ARN);
    assert_eq!(q["OIDCProviderArn"], PROVIDER_ARN);
    assert_eq!(q["OIDCToken"], OIDC_TOKEN);
    assert_eq!(q["RoleSessionName"], "test-session");
    let ts = chrono::NaiveDateTime::parse_from_str(&q["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").unwrap();
    assert!((Utc::now().naive_utc() - ts).num_seconds().abs() < 60);
    assert_eq!(provider.name(), "oidc_role_arn");
}

#[tokio::test]
async fn oidc_caches_long_lived_credentials() {
    let (sts, endpoint) = fake_sts(TimeDelta::minutes(60)).await;
    let dir = TempDir::new();
    let provider = oidc_provider(&endpoint, &dir.write("token", OIDC_TOKEN));

    let first = provider.credentials().await.unwrap();
    let second = provider.credentials().await.unwrap();

    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
    assert_eq!(first, second);
}

#[tokio::test]
async fn oidc_refreshes_within_fifteen_minutes_of_expiry_rereading_the_token() {
    let (sts, endpoint) = fake_sts(TimeDelta::minutes(10)).await;
    let dir = TempDir::new();
    let token_file = dir.write("token", OIDC_TOKEN);
    let provider = oidc_provider(&endpoint, &token_file);

    let first = provider.credentials().await.unwrap();
    std::fs::write(&token_file, "rotated-token").unwrap();
    let second = provider.credentials().await.unwrap();

    assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    assert_eq!(first.access_key_id, "STS.id-1");
    assert_eq!(second.access_key_id, "STS.id-2");
    assert_eq!(sts.queries.lock().unwrap()[1]["OIDCToken"], "rotated-token");

    // Long-lived ones from now on: no third call.
    *sts.lifetime.lock().unwrap() = TimeDelta::hours(1);
    provider.credentials().await.unwrap();
    provider.credentials().await.unwrap();
    assert_eq!(sts.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn oidc_sts_error_names_the_code_but_not_the_token() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    *sts.error.lock().unwrap() = Some("AuthenticationFail.OIDCToken.Invalid");
    let dir = TempDir::new();
    let provider = oidc_provider(&endpoint, &dir.write("token", OIDC_TOKEN));

    let e = provider.credentials().await.unwrap_err();

    assert!(e.0.contains("AuthenticationFail.OIDCToken.Invalid"), "{e}");
    assert!(
        e.0.contains("AssumeRoleWithOIDC") && e.0.contains(ROLE_ARN),
        "{e}"
    );
    assert!(!e.0.contains(OIDC_TOKEN), "{e}");
    assert!(
        !e.is_transient(),
        "STS refused the token: asking again cannot help"
    );
}

#[tokio::test]
async fn an_sts_that_fails_on_its_side_may_pass_and_the_next_call_asks_again() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    sts.unavailable.store(1, Ordering::SeqCst);
    let dir = TempDir::new();
    let provider = oidc_provider(&endpoint, &dir.write("token", OIDC_TOKEN));

    let e = provider.credentials().await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(
        e.0.contains("503") && e.0.contains("ServiceUnavailable"),
        "{e}"
    );
    assert!(!e.0.contains(OIDC_TOKEN), "{e}");

    let c = provider.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "STS.id-2");
}

#[tokio::test]
async fn an_sts_endpoint_that_redirects_is_an_error_and_never_followed() {
    let (sts, elsewhere) = fake_sts(TimeDelta::hours(1)).await;
    let location = format!("{elsewhere}/");
    let redirecting = serve(Router::new().route(
        "/",
        get(move || async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]) }),
    ))
    .await;
    let dir = TempDir::new();
    let provider = oidc_provider(&redirecting, &dir.write("token", OIDC_TOKEN));

    let e = provider.credentials().await.unwrap_err();

    assert!(e.0.contains("307"), "{e}");
    assert!(!e.0.contains(OIDC_TOKEN), "{e}");
    assert_eq!(
        sts.calls.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn oidc_missing_token_file_and_unreachable_sts_are_clear_errors() {
    let dir = TempDir::new();
    let provider = oidc_provider("http://127.0.0.1:9", &dir.path().join("absent"));
    let e = provider.credentials().await.unwrap_err();
    assert!(e.0.contains("cannot read the OIDC token file"), "{e}");
    assert!(
        !e.is_transient(),
        "a missing token file is the setup's to fix"
    );

    let provider = oidc_provider("http://127.0.0.1:9", &dir.write("token", OIDC_TOKEN));
    let e = provider.credentials().await.unwrap_err();
    assert!(e.0.contains("could not connect"), "{e}");
    assert!(!e.0.contains(OIDC_TOKEN), "{e}");
    assert!(e.is_transient(), "STS out of reach may come back: {e}");
}

#[tokio::test]
async fn oidc_endpoint_comes_from_the_sts_endpoint_variable() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let dir = TempDir::new();
    let settings = ChainSettings::from_vars([
        (vars::ROLE_ARN, ROLE_ARN),
        (vars::OIDC_PROVIDER_ARN, PROVIDER_ARN),
        (vars::STS_ENDPOINT, endpoint.as_str()),
    ])
    .with_var(
        vars::OIDC_TOKEN_FILE,
        dir.write("token", OIDC_TOKEN).to_str().unwrap(),
    );

    let provider = OidcProvider::from_settings(&settings).unwrap().unwrap();
    provider.credentials().await.unwrap();

    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
    let session = &sts.queries.lock().unwrap()[0]["RoleSessionName"];
    assert!(session.starts_with("ecp-inventory-"), "{session}");
}

// ---------------------------------------------------------------- fake IMDS

/// The ECS metadata service. With `v2_enabled` false the token PUT is refused, as
/// on an instance whose metadata service predates IMDSv2.
#[derive(Default)]
struct FakeImds {
    v2_enabled: bool,
    token_puts: AtomicUsize,
    listings: AtomicUsize,
    credential_gets: AtomicUsize,
    /// The token header each GET carried (None: none).
    tokens_seen: Mutex<Vec<Option<String>>>,
    /// How long the credentials it hands out live, when not six hours.
    lifetime: Mutex<Option<TimeDelta>>,
    /// The token PUT takes the connection and answers only after this long.
    put_delay: Mutex<Option<std::time::Duration>>,
}

impl FakeImds {
    fn see(&self, headers: &HeaderMap) -> Result<(), StatusCode> {
        let token = headers
            .get("x-aliyun-ecs-metadata-token")
            .map(|v| v.to_str().unwrap().to_owned());
        let ok = match &token {
            Some(t) => t == IMDS_TOKEN,
            None => !self.v2_enabled,
        };
        self.tokens_seen.lock().unwrap().push(token);
        if ok {
            Ok(())
        } else {
            Err(StatusCode::UNAUTHORIZED)
        }
    }
}

async fn fake_imds(v2_enabled: bool) -> (Arc<FakeImds>, String) {
    let (imds, app) = imds_app(v2_enabled);
    (imds, serve(app).await)
}

fn imds_app(v2_enabled: bool) -> (Arc<FakeImds>, Router) {
    let imds = Arc::new(FakeImds {
        v2_enabled,
        ..FakeImds::default()
    });
    let app = Router::new()
        .route(
            "/latest/api/token",
            put(
                |State(s): State<Arc<FakeImds>>, headers: HeaderMap| async move {
                    s.token_puts.fetch_add(1, Ordering::SeqCst);
                    let delay = *s.put_delay.lock().unwrap();
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    let ttl = headers.get("x-aliyun-ecs-metadata-token-ttl-seconds");
                    if !s.v2_enabled || ttl.is_none_or(|v| v != "21600") {
                        return (StatusCode::FORBIDDEN, String::new());
                    }
                    (StatusCode::OK, IMDS_TOKEN.to_owned())
                },
            ),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/",
            get(
                |State(s): State<Arc<FakeImds>>, headers: HeaderMap| async move {
                    s.listings.fetch_add(1, Ordering::SeqCst);
                    s.see(&headers).map(|()| format!("{IMDS_ROLE}\n"))
                },
            ),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(
                |State(s): State<Arc<FakeImds>>,
                 axum::extract::Path(role): axum::extract::Path<String>,
                 headers: HeaderMap| async move {
                    let n = s.credential_gets.fetch_add(1, Ordering::SeqCst) + 1;
                    s.see(&headers)?;
                    if role != IMDS_ROLE {
                        return Err(StatusCode::NOT_FOUND);
                    }
                    let lifetime = s.lifetime.lock().unwrap().unwrap_or(TimeDelta::hours(6));
                    Ok(json(
                        StatusCode::OK,
                        session_json(n, lifetime, Some("Success")),
                    ))
                },
            ),
        )
        .with_state(imds.clone());
    (imds, app)
}

#[tokio::test]
async fn imds_out_of_reach_is_no_ecs_before_it_answered_and_an_outage_after() {
    let e = EcsRamRoleProvider::new("http://127.0.0.1:9")
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "never answered: not on ECS: {e}");

    // Credentials that need a refresh at once, from a service that then goes away.
    let (imds, app) = imds_app(true);
    *imds.lifetime.lock().unwrap() = Some(TimeDelta::seconds(30));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    let provider = EcsRamRoleProvider::new(&endpoint).unwrap();
    provider.credentials().await.unwrap();
    stop.send(()).unwrap();
    server.await.unwrap();

    let e = provider.credentials().await.unwrap_err();
    assert!(e.0.contains("unreachable"), "{e}");
    assert!(e.is_transient(), "answered before: an outage: {e}");
}

#[tokio::test]
async fn imds_v2_token_then_role_listing_then_credentials() {
    let (imds, endpoint) = fake_imds(true).await;
    let provider = EcsRamRoleProvider::new(&endpoint).unwrap();

    let c = provider.credentials().await.unwrap();
    let again = provider.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(c.access_key_secret.expose(), "secret-value-1");
    assert_eq!(c.security_token.as_ref().unwrap().expose(), "token-value-1");
    assert_eq!(again, c, "six-hour credentials are cached");
    assert_eq!(imds.token_puts.load(Ordering::SeqCst), 1);
    assert_eq!(imds.listings.load(Ordering::SeqCst), 1);
    assert_eq!(imds.credential_gets.load(Ordering::SeqCst), 1);
    let seen = imds.tokens_seen.lock().unwrap().clone();
    assert_eq!(seen, vec![Some(IMDS_TOKEN.to_owned()); 2]);
    assert_eq!(provider.name(), "ecs_ram_role");
}

#[tokio::test]
async fn imds_role_name_from_the_variable_skips_the_listing() {
    let (imds, endpoint) = fake_imds(true).await;
    let settings =
        ChainSettings::from_vars([(vars::ECS_METADATA, IMDS_ROLE)]).with_imds_endpoint(&endpoint);

    EcsRamRoleProvider::from_settings(&settings)
        .unwrap()
        .credentials()
        .await
        .unwrap();

    assert_eq!(imds.listings.load(Ordering::SeqCst), 0);
    assert_eq!(imds.credential_gets.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn imds_falls_back_to_v1_when_the_token_put_fails() {
    let (imds, endpoint) = fake_imds(false).await;
    let provider = EcsRamRoleProvider::new(&endpoint).unwrap();

    let c = provider.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(imds.token_puts.load(Ordering::SeqCst), 1);
    assert_eq!(*imds.tokens_seen.lock().unwrap(), vec![None, None]);
}

#[tokio::test]
async fn imds_falls_back_to_v1_when_the_token_put_is_not_answered_in_time() {
    // The service takes the connection, then holds the PUT past the read timeout.
    let (imds, endpoint) = fake_imds(false).await;
    *imds.put_delay.lock().unwrap() = Some(std::time::Duration::from_secs(3));
    let provider = EcsRamRoleProvider::new(&endpoint).unwrap();

    let c = provider.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(*imds.tokens_seen.lock().unwrap(), vec![None, None]);
}

#[tokio::test]
async fn a_profile_naming_the_ecs_role_is_refused_when_metadata_is_disabled() {
    let (_imds, endpoint) = fake_imds(true).await;
    let home = TempDir::new();
    home.write(
        ".alibabacloud/credentials.ini",
        "[ecs]\ntype = ecs_ram_role\nrole_name = some-role\n",
    );
    // isolated() sets ALIBABA_CLOUD_ECS_METADATA_DISABLED=true.
    let settings = isolated(&home)
        .with_var(vars::PROFILE, "ecs")
        .with_imds_endpoint(&endpoint);

    let e = ProfileFileProvider::from_settings(&settings).unwrap_err();

    assert!(e.0.contains(vars::ECS_METADATA_DISABLED), "{e}");
}

#[tokio::test]
async fn a_token_put_not_answered_on_a_v2_only_service_is_named_in_the_refusal() {
    // IMDSv2 required, and the PUT held past the read timeout: the GET without a
    // token is refused, and the error says why there was no token.
    let (imds, endpoint) = fake_imds(true).await;
    *imds.put_delay.lock().unwrap() = Some(std::time::Duration::from_secs(3));

    let e = EcsRamRoleProvider::new(&endpoint)
        .unwrap()
        .credentials()
        .await
        .unwrap_err();

    assert!(
        e.0.contains("asked without a token") && e.0.contains("timed out"),
        "{e}"
    );
}

#[tokio::test]
async fn a_token_put_timing_out_after_the_service_answered_is_an_outage_with_v1_refused() {
    // Credentials that need a refresh at once, then a PUT held past the timeout.
    let (imds, endpoint) = fake_imds(true).await;
    *imds.lifetime.lock().unwrap() = Some(TimeDelta::seconds(30));
    let provider = EcsRamRoleProvider::new(&endpoint)
        .unwrap()
        .with_imdsv1_disabled(true);
    provider.credentials().await.unwrap();
    *imds.put_delay.lock().unwrap() = Some(std::time::Duration::from_secs(3));

    let e = provider.credentials().await.unwrap_err();

    assert!(e.0.contains(vars::IMDSV1_DISABLED), "{e}");
    assert!(e.is_transient(), "answered before: a moment's trouble: {e}");
}

#[tokio::test]
async fn imds_v1_fallback_can_be_disabled() {
    let (imds, endpoint) = fake_imds(false).await;
    let settings = ChainSettings::from_vars([(vars::IMDSV1_DISABLED, "true")])
        .with_var(vars::ECS_METADATA_ENDPOINT, &endpoint);

    let e = EcsRamRoleProvider::from_settings(&settings)
        .unwrap()
        .credentials()
        .await
        .unwrap_err();

    assert!(e.0.contains(vars::IMDSV1_DISABLED), "{e}");
    assert_eq!(imds.listings.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn imds_unknown_role_and_unreachable_service_are_clear_errors() {
    let (_imds, endpoint) = fake_imds(true).await;
    let e = EcsRamRoleProvider::new(&endpoint)
        .unwrap()
        .with_role_name("NoSuchRole")
        .credentials()
        .await
        .unwrap_err();
    assert!(e.0.contains("NoSuchRole") && e.0.contains("404"), "{e}");

    let e = EcsRamRoleProvider::new("http://127.0.0.1:9")
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert!(e.0.contains("unreachable"), "{e}");
    assert!(!e.0.contains(IMDS_TOKEN));
}

#[tokio::test]
async fn credentials_uri_returns_metadata_shaped_credentials() {
    let app = Router::new().route(
        "/creds",
        get(|| async {
            json(
                StatusCode::OK,
                session_json(7, TimeDelta::hours(1), Some("Success")),
            )
        }),
    );
    let base = serve(app).await;

    let provider = UriProvider::new(format!("{base}/creds")).unwrap();
    let c = provider.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-7");
    assert_eq!(provider.name(), "credentials_uri");
}

#[tokio::test]
async fn a_credentials_uri_is_named_without_its_query() {
    // A sidecar that quotes the request back in its refusal.
    let app = Router::new().route(
        "/creds",
        get(|uri: axum::http::Uri| async move {
            (StatusCode::UNAUTHORIZED, format!("unauthorized: {uri}"))
        }),
    );
    let base = serve(app).await;
    let with_user = base.replacen("http://", "http://user:URI-PASSWORD@", 1);
    let provider = UriProvider::new(format!("{with_user}/creds?auth=URI-TOKEN")).unwrap();

    let e = provider.credentials().await.unwrap_err();

    assert!(e.0.contains(&format!("{base}/creds")), "{e}");
    assert!(e.0.contains("unauthorized: /creds?***"), "{e}");
    let debug = format!("{provider:?}");
    for text in [&e.0, &debug] {
        assert!(
            !text.contains("URI-TOKEN") && !text.contains("URI-PASSWORD"),
            "{text}"
        );
    }
    assert!(e.0.contains("not shown"), "{e}");
}

// ---------------------------------------------------------------- CLI profile

const CLI_CONFIG: &str = r#"{
  "current": "dev",
  "profiles": [
    {"name": "dev", "mode": "AK", "access_key_id": "LTAIdev",
     "access_key_secret": "cli-dev-secret", "region_id": "cn-hangzhou"},
    {"name": "sts", "mode": "StsToken", "access_key_id": "STS.cli",
     "access_key_secret": "cli-sts-secret", "sts_token": "cli-sts-token"},
    {"name": "sso", "mode": "CloudSSO"}
  ],
  "meta_path": ""
}"#;

#[tokio::test]
async fn cli_profile_current_is_an_access_key() {
    let home = TempDir::new();
    home.write(".aliyun/config.json", CLI_CONFIG);
    let settings = ChainSettings::default().with_home_dir(home.path());

    let provider = CliProfileProvider::from_settings(&settings).unwrap();
    let c = provider.credentials().await.unwrap();

    assert_eq!(provider.name(), "cli_profile/static_ak");
    assert_eq!(provider.profile(), "dev");
    assert_eq!(c.access_key_id, "LTAIdev");
    assert_eq!(c.access_key_secret.expose(), "cli-dev-secret");
    assert!(c.security_token.is_none());
}

#[tokio::test]
async fn cli_profile_variable_selects_an_sts_token_profile() {
    let home = TempDir::new();
    home.write(".aliyun/config.json", CLI_CONFIG);
    let settings = ChainSettings::from_vars([(vars::PROFILE, "sts")]).with_home_dir(home.path());

    let provider = CliProfileProvider::from_settings(&settings).unwrap();
    let c = provider.credentials().await.unwrap();

    assert_eq!(provider.name(), "cli_profile/static_sts");
    assert_eq!(c.access_key_id, "STS.cli");
    assert_eq!(c.security_token.unwrap().expose(), "cli-sts-token");
}

#[test]
fn cli_profile_unknown_unsupported_missing_and_disabled() {
    let dir = TempDir::new();
    let path = dir.write("config.json", CLI_CONFIG);

    let e = CliProfileProvider::from_file(&path, Some("prod")).unwrap_err();
    assert!(
        e.0.contains("\"prod\"") && e.0.contains("dev, sts, sso"),
        "{e}"
    );

    let e = CliProfileProvider::from_file(&path, Some("sso")).unwrap_err();
    assert!(
        e.0.contains("mode CloudSSO") && e.0.contains("not supported"),
        "{e}"
    );

    let e = CliProfileProvider::from_file(&dir.path().join("nope.json"), None).unwrap_err();
    assert!(e.0.contains("does not exist"), "{e}");

    let bad = dir.write(
        "bad.json",
        r#"{"profiles": [{"access_key_secret": "cli-dev-secret""#,
    );
    let e = CliProfileProvider::from_file(&bad, None).unwrap_err();
    assert!(!e.0.contains("cli-dev-secret"), "{e}");

    let settings = ChainSettings::from_vars([(vars::CLI_PROFILE_DISABLED, "true")])
        .with_cli_config_path(&path);
    let e = CliProfileProvider::from_settings(&settings).unwrap_err();
    assert!(e.0.contains(vars::CLI_PROFILE_DISABLED), "{e}");
}

#[tokio::test]
async fn cli_profile_oidc_mode_uses_sts() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let dir = TempDir::new();
    let token = dir.write("token", OIDC_TOKEN);
    let config = format!(
        r#"{{"current":"rrsa","profiles":[{{"name":"rrsa","mode":"OIDC",
        "ram_role_arn":"{ROLE_ARN}","oidc_provider_arn":"{PROVIDER_ARN}",
        "oidc_token_file":"{}","role_session_name":"from-cli"}}]}}"#,
        token.display()
    );
    let settings = ChainSettings::default()
        .with_cli_config_path(dir.write("config.json", &config))
        .with_sts_endpoint(&endpoint);

    let provider = CliProfileProvider::from_settings(&settings).unwrap();
    let c = provider.credentials().await.unwrap();

    assert_eq!(provider.name(), "cli_profile/oidc_role_arn");
    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(
        sts.queries.lock().unwrap()[0]["RoleSessionName"],
        "from-cli"
    );
}

/// Checks an AssumeRole query as the SDKs send it: the fixed parameters, the
/// source's AccessKeyId, and a V1 signature made with the source's secret.
fn assert_signed_assume_role(q: &HashMap<String, String>, access_key_id: &str, secret: &str) {
    for (key, want) in [
        ("Action", "AssumeRole"),
        ("Format", "JSON"),
        ("Version", "2015-04-01"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("AccessKeyId", access_key_id),
    ] {
        assert_eq!(q.get(key).map(String::as_str), Some(want), "{key} in {q:?}");
    }
    assert!(q.contains_key("Timestamp") && q.contains_key("SignatureNonce"));
    let params: Vec<(String, String)> = q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(q["Signature"], sign_v1("GET", &params, secret).signature);
    assert!(
        q.values().all(|v| !v.contains(secret)),
        "the secret is never sent"
    );
}

#[tokio::test]
async fn cli_profile_ram_role_arn_modes_assume_the_role_with_a_signed_call() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let dir = TempDir::new();
    let config = format!(
        r#"{{"current":"role","profiles":[
        {{"name":"role","mode":"RamRoleArn","access_key_id":"LTAIbase",
          "access_key_secret":"base-secret","ram_role_arn":"{ROLE_ARN}",
          "ram_session_name":"from-cli","expired_seconds":900,"external_id":"ext-1"}},
        {{"name":"chained","mode":"ChainableRamRoleArn","source_profile":"role",
          "ram_role_arn":"{ROLE_ARN}-2"}},
        {{"name":"loop","mode":"ChainableRamRoleArn","source_profile":"loop",
          "ram_role_arn":"{ROLE_ARN}"}}]}}"#
    );
    let path = dir.write("config.json", &config);
    let settings = ChainSettings::default()
        .with_cli_config_path(&path)
        .with_sts_endpoint(&endpoint);

    let provider = CliProfileProvider::from_settings(&settings).unwrap();
    let c = provider.credentials().await.unwrap();

    assert_eq!(provider.name(), "cli_profile/ram_role_arn/static_ak");
    assert_eq!(c.access_key_id, "STS.id-1");
    assert_eq!(c.security_token.unwrap().expose(), "token-value-1");
    let q = sts.queries.lock().unwrap()[0].clone();
    assert_signed_assume_role(&q, "LTAIbase", "base-secret");
    assert_eq!(q["RoleArn"], ROLE_ARN);
    assert_eq!(q["RoleSessionName"], "from-cli");
    assert_eq!(q["DurationSeconds"], "900");
    assert_eq!(q["ExternalId"], "ext-1");
    assert!(!q.contains_key("SecurityToken"));

    // A chained profile assumes its role with the source profile's STS session.
    let chained = CliProfileProvider::from_settings(
        &settings
            .clone()
            .with_var(vars::PROFILE, "chained")
            .with_var(vars::ROLE_SESSION_NAME, "from-env"),
    )
    .unwrap();
    let c = chained.credentials().await.unwrap();
    assert_eq!(
        chained.name(),
        "cli_profile/ram_role_arn/ram_role_arn/static_ak"
    );
    assert_eq!(c.access_key_id, "STS.id-3");
    let q = sts.queries.lock().unwrap()[2].clone();
    assert_signed_assume_role(&q, "STS.id-2", "secret-value-2");
    assert_eq!(q["SecurityToken"], "token-value-2");
    assert_eq!(q["RoleArn"], format!("{ROLE_ARN}-2"));
    // A profile without a session name takes ALIBABA_CLOUD_ROLE_SESSION_NAME; one
    // with its own keeps it.
    assert_eq!(q["RoleSessionName"], "from-env");
    assert_eq!(
        sts.queries.lock().unwrap()[1]["RoleSessionName"],
        "from-cli"
    );
    assert_eq!(q["DurationSeconds"], "3600");

    let e =
        CliProfileProvider::from_settings(&settings.with_var(vars::PROFILE, "loop")).unwrap_err();
    assert!(e.0.contains("a loop?"), "{e}");
}

const CREDENTIALS_INI: &str = "\
# written by hand
[default]
type = access_key
access_key_id = LTAIini
access_key_secret = ini-secret

[role]
type = ram_role_arn
access_key_id = LTAIini
access_key_secret = ini-secret
role_arn = acs:ram::1234567890:role/ecp-inventory
role_session_name = from-ini

[old]
type = rsa_key_pair
";

#[tokio::test]
async fn credentials_file_sections_by_type() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let home = TempDir::new();
    home.write(".alibabacloud/credentials.ini", CREDENTIALS_INI);

    // Nothing before it in the chain: the file's [default] section.
    let chain = DefaultChain::new(isolated(&home));
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "LTAIini");
    assert_eq!(c.access_key_secret.expose(), "ini-secret");
    assert_eq!(chain.name(), "default/profile/static_ak");

    // ALIBABA_CLOUD_PROFILE picks the section; ram_role_arn goes through STS.
    let settings = isolated(&home)
        .with_var(vars::PROFILE, "role")
        .with_sts_endpoint(&endpoint);
    let provider = ProfileFileProvider::from_settings(&settings).unwrap();
    let c = provider.credentials().await.unwrap();
    assert_eq!(provider.name(), "profile/ram_role_arn/static_ak");
    assert_eq!(c.access_key_id, "STS.id-1");
    let q = sts.queries.lock().unwrap()[0].clone();
    assert_signed_assume_role(&q, "LTAIini", "ini-secret");
    assert_eq!(q["RoleSessionName"], "from-ini");

    let e = ProfileFileProvider::from_settings(&isolated(&home).with_var(vars::PROFILE, "old"))
        .unwrap_err();
    assert!(
        e.0.contains("rsa_key_pair") && e.0.contains("not supported"),
        "{e}"
    );
    let e = ProfileFileProvider::from_settings(&isolated(&home).with_var(vars::PROFILE, "prod"))
        .unwrap_err();
    assert!(
        e.0.contains("no section [prod]") && e.0.contains("default, old, role"),
        "{e}"
    );

    // A file named by ALIBABA_CLOUD_CREDENTIALS_FILE replaces the default one.
    let other = home.write(
        "elsewhere.ini",
        "[default]\ntype = access_key\naccess_key_id = LTAIother\naccess_key_secret = s\n",
    );
    let settings = isolated(&home).with_var(vars::CREDENTIALS_FILE, other.to_str().unwrap());
    let c = ProfileFileProvider::from_settings(&settings)
        .unwrap()
        .credentials()
        .await
        .unwrap();
    assert_eq!(c.access_key_id, "LTAIother");
    let settings = isolated(&home).with_var(vars::CREDENTIALS_FILE, "/nonexistent/credentials.ini");
    let e = ProfileFileProvider::from_settings(&settings).unwrap_err();
    assert!(
        e.0.contains("/nonexistent/credentials.ini does not exist"),
        "{e}"
    );
}

// ---------------------------------------------------------------- the chain

/// Settings that never reach the real metadata service or the real home directory.
fn isolated(home: &TempDir) -> ChainSettings {
    ChainSettings::from_vars([(vars::ECS_METADATA_DISABLED, "true")]).with_home_dir(home.path())
}

#[tokio::test]
async fn chain_prefers_env_over_cli_profile() {
    let home = TempDir::new();
    home.write(".aliyun/config.json", CLI_CONFIG);
    let chain = DefaultChain::new(
        isolated(&home)
            .with_var(vars::ACCESS_KEY_ID, "LTAIenv")
            .with_var(vars::ACCESS_KEY_SECRET, "env-secret"),
    );
    assert_eq!(chain.name(), "default");

    let c = chain.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "LTAIenv");
    assert_eq!(chain.name(), "default/env");
}

#[tokio::test]
async fn chain_falls_back_to_cli_profile() {
    let home = TempDir::new();
    home.write(".aliyun/config.json", CLI_CONFIG);
    let chain = DefaultChain::new(isolated(&home));

    let c = chain.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "LTAIdev");
    assert_eq!(chain.name(), "default/cli_profile/static_ak");
}

#[tokio::test]
async fn chain_with_nothing_lists_every_reason_and_the_fix() {
    let home = TempDir::new();
    let chain = DefaultChain::new(isolated(&home));

    let e = chain.credentials().await.unwrap_err();

    let msg = e.0;
    for needle in [
        "env: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set",
        "oidc_role_arn: not configured",
        "cli_profile: ",
        "config.json does not exist",
        "; profile: ",
        "credentials.ini does not exist",
        "ecs_ram_role: disabled by ALIBABA_CLOUD_ECS_METADATA_DISABLED=true",
        "credentials_uri: not configured",
        "To fix: set ALIBABA_CLOUD_ACCESS_KEY_ID",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in {msg}");
    }
    // Order is the SDKs'.
    let pos = |s: &str| msg.find(s).unwrap();
    assert!(pos("env:") < pos("oidc_role_arn:"));
    assert!(pos("oidc_role_arn:") < pos("cli_profile:"));
    assert!(pos("cli_profile:") < pos("; profile:"));
    assert!(pos("; profile:") < pos("ecs_ram_role:"));
    assert!(pos("ecs_ram_role:") < pos("credentials_uri:"));
    assert_eq!(chain.name(), "default");
}

#[tokio::test]
async fn chain_chooses_rrsa_when_its_three_variables_are_set_and_keeps_it() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let home = TempDir::new();
    home.write(".aliyun/config.json", CLI_CONFIG);
    let token = home.write("token", OIDC_TOKEN);
    let chain = DefaultChain::new(
        isolated(&home)
            .with_var(vars::ROLE_ARN, ROLE_ARN)
            .with_var(vars::OIDC_PROVIDER_ARN, PROVIDER_ARN)
            .with_var(vars::OIDC_TOKEN_FILE, token.to_str().unwrap())
            .with_sts_endpoint(&endpoint),
    );

    let first = chain.credentials().await.unwrap();
    let second = chain.credentials().await.unwrap();

    assert_eq!(chain.name(), "default/oidc_role_arn");
    assert_eq!(first.access_key_id, "STS.id-1");
    assert_eq!(second, first);
    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chain_with_a_failing_rrsa_moves_on_and_reports_it() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    *sts.error.lock().unwrap() = Some("AuthenticationFail.OIDCToken.Expired");
    let home = TempDir::new();
    let token = home.write("token", OIDC_TOKEN);
    let chain = DefaultChain::new(
        isolated(&home)
            .with_var(vars::ROLE_ARN, ROLE_ARN)
            .with_var(vars::OIDC_PROVIDER_ARN, PROVIDER_ARN)
            .with_var(vars::OIDC_TOKEN_FILE, token.to_str().unwrap())
            .with_sts_endpoint(&endpoint),
    );

    let e = chain.credentials().await.unwrap_err();

    assert!(e.0.contains("oidc_role_arn: STS AssumeRoleWithOIDC"), "{e}");
    assert!(e.0.contains("AuthenticationFail.OIDCToken.Expired"), "{e}");
    assert!(!e.0.contains(OIDC_TOKEN));
    assert!(!e.is_transient() && e.0.contains("To fix"), "{e}");
}

fn rrsa_chain(home: &TempDir, sts_endpoint: &str) -> DefaultChain {
    let token = home.write("token", OIDC_TOKEN);
    DefaultChain::new(
        isolated(home)
            .with_var(vars::ROLE_ARN, ROLE_ARN)
            .with_var(vars::OIDC_PROVIDER_ARN, PROVIDER_ARN)
            .with_var(vars::OIDC_TOKEN_FILE, token.to_str().unwrap())
            .with_sts_endpoint(sts_endpoint),
    )
}

#[tokio::test]
async fn chain_whose_rrsa_sts_is_down_says_it_may_pass_and_resolves_again() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    sts.unavailable.store(1, Ordering::SeqCst);
    let home = TempDir::new();
    let chain = rrsa_chain(&home, &endpoint);

    let e = chain.credentials().await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(
        e.0.contains("oidc_role_arn") && e.0.contains("may pass"),
        "{e}"
    );
    assert!(
        !e.0.contains("To fix"),
        "no setup advice for an outage: {e}"
    );

    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "STS.id-2");
    assert_eq!(chain.name(), "default/oidc_role_arn");
}

/// Answers DescribeRegions with one region, whatever the request.
async fn fake_regions_api() -> String {
    serve(Router::new().route(
        "/",
        axum::routing::any(|| async {
            json(
                StatusCode::OK,
                r#"{"RequestId":"R1","RegionModels":[{"RegionId":"cn-shanghai"}]}"#.to_owned(),
            )
        }),
    ))
    .await
}

fn client_with(provider: DefaultChain, endpoint: String, attempts: u32) -> Client {
    Client::new(
        provider,
        ClientConfig {
            endpoint,
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(5),
                max_retry_after: std::time::Duration::from_secs(1),
                max_elapsed: std::time::Duration::from_secs(30),
            },
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_request_is_retried_through_an_sts_outage_and_one_that_outlasts_it_is_no_setup_error() {
    let (sts, sts_endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let api = fake_regions_api().await;
    let home = TempDir::new();

    sts.unavailable.store(2, Ordering::SeqCst);
    let client = client_with(rrsa_chain(&home, &sts_endpoint), api.clone(), 4);
    let regions = client
        .describe_regions(&DescribeRegionsRequest::default())
        .await
        .unwrap();
    assert_eq!(regions.region_models.len(), 1);
    assert_eq!(
        sts.calls.load(Ordering::SeqCst),
        3,
        "two failures, then credentials"
    );

    sts.unavailable.store(usize::MAX, Ordering::SeqCst);
    let client = client_with(rrsa_chain(&home, &sts_endpoint), api, 3);
    let e = client
        .describe_regions(&DescribeRegionsRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::GaveUp { attempts: 3, .. }), "{e}");
    assert!(
        !e.is_auth(),
        "an outage of STS is not a credentials mistake (exit 1, not 2): {e}"
    );
}

#[tokio::test]
async fn chain_reaches_ecs_metadata_unless_disabled() {
    let (imds, endpoint) = fake_imds(true).await;
    let home = TempDir::new();
    let settings = ChainSettings::default()
        .with_home_dir(home.path())
        .with_imds_endpoint(&endpoint);

    let chain = DefaultChain::new(settings.clone());
    chain.credentials().await.unwrap();
    assert_eq!(chain.name(), "default/ecs_ram_role");
    assert_eq!(imds.credential_gets.load(Ordering::SeqCst), 1);

    let chain = DefaultChain::new(settings.with_var(vars::ECS_METADATA_DISABLED, "true"));
    chain.credentials().await.unwrap_err();
    assert_eq!(
        imds.token_puts.load(Ordering::SeqCst),
        1,
        "no probe when disabled"
    );
}

#[tokio::test]
async fn chain_ends_with_the_credentials_uri() {
    let app = Router::new().route(
        "/",
        get(|| async {
            json(
                StatusCode::OK,
                session_json(3, TimeDelta::hours(1), Some("Success")),
            )
        }),
    );
    let uri = serve(app).await;
    let home = TempDir::new();
    let chain = DefaultChain::new(isolated(&home).with_var(vars::CREDENTIALS_URI, &uri));

    let c = chain.credentials().await.unwrap();

    assert_eq!(c.access_key_id, "STS.id-3");
    assert_eq!(chain.name(), "default/credentials_uri");
}

#[tokio::test]
async fn concurrent_first_calls_resolve_once() {
    let (sts, endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let home = TempDir::new();
    let token = home.write("token", OIDC_TOKEN);
    let chain = Arc::new(DefaultChain::new(
        isolated(&home)
            .with_var(vars::ROLE_ARN, ROLE_ARN)
            .with_var(vars::OIDC_PROVIDER_ARN, PROVIDER_ARN)
            .with_var(vars::OIDC_TOKEN_FILE, token.to_str().unwrap())
            .with_sts_endpoint(&endpoint),
    ));

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.credentials().await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }

    assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- secrets

/// Debug of every provider, after it has fetched and cached credentials, holds
/// none of the secret values; neither do the logs of a whole resolution.
#[tokio::test]
async fn secrets_never_show_in_debug_or_logs() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );

    let (_sts, sts_endpoint) = fake_sts(TimeDelta::hours(1)).await;
    let (_imds, imds_endpoint) = fake_imds(true).await;
    let home = TempDir::new();
    let cli = home.write(".aliyun/config.json", CLI_CONFIG);
    let token = home.write("token", OIDC_TOKEN);
    let settings = ChainSettings::from_vars([
        (vars::ROLE_ARN, ROLE_ARN),
        (vars::OIDC_PROVIDER_ARN, PROVIDER_ARN),
        (vars::ACCESS_KEY_SECRET, "env-secret"),
        (vars::SECURITY_TOKEN, "env-token"),
    ])
    .with_var(vars::OIDC_TOKEN_FILE, token.to_str().unwrap())
    .with_home_dir(home.path())
    .with_sts_endpoint(&sts_endpoint)
    .with_imds_endpoint(&imds_endpoint);

    let chain = DefaultChain::new(settings.clone());
    chain.credentials().await.unwrap();
    let oidc = OidcProvider::from_settings(&settings).unwrap().unwrap();
    oidc.credentials().await.unwrap();
    let ecs = EcsRamRoleProvider::from_settings(&settings).unwrap();
    ecs.credentials().await.unwrap();
    let env = EnvProvider::from_settings(&settings.clone().with_var(vars::ACCESS_KEY_ID, "LTAIx"));
    env.credentials().await.unwrap();
    let sts_profile = CliProfileProvider::from_file(&cli, Some("sts")).unwrap();
    sts_profile.credentials().await.unwrap();
    let ak_profile = CliProfileProvider::from_file(&cli, Some("dev")).unwrap();

    let dumps = [
        format!("{chain:?}"),
        format!("{oidc:?}"),
        format!("{ecs:?}"),
        format!("{env:?}"),
        format!("{sts_profile:?}"),
        format!("{ak_profile:?}"),
        format!("{settings:?}"),
        logs.text(),
    ];
    let secrets = [
        "secret-value-",
        "token-value-",
        OIDC_TOKEN,
        IMDS_TOKEN,
        "env-secret",
        "env-token",
        "cli-dev-secret",
        "cli-sts-secret",
        "cli-sts-token",
    ];
    for dump in &dumps {
        for secret in secrets {
            assert!(!dump.contains(secret), "{secret:?} leaked in {dump}");
        }
    }
    assert!(
        logs.text().contains("default/oidc_role_arn"),
        "{}",
        logs.text()
    );
}

#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
