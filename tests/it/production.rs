//! Production fit, end to end through the binary: several accounts from a config
//! file in one run, `--output json`, metrics to a textfile and a fake Pushgateway,
//! retention (`prune`) that keeps as-of answers inside the horizon, and the
//! analysts' read-only role.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, Uri};
use ecp_inventory::simulator::{
    RunningSimulator, Simulator, SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET,
};
use ecp_inventory::store::ApplyOptions;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::helpers::{at, count, fleet, start_sim, sync, test_db};

const BIN: &str = env!("CARGO_BIN_EXE_ecp-inventory");

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ecp-prod-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary with a clean credentials environment plus `env`.
async fn ecp(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ALIBABA_CLOUD_") || k.starts_with("ECP_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
        .env("ECP_LOG_FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// A fake Pushgateway on loopback that records every request.
async fn fake_pushgateway() -> (String, Received) {
    async fn record(
        State(r): State<Received>,
        method: Method,
        uri: Uri,
        body: String,
    ) -> &'static str {
        r.lock()
            .unwrap()
            .push((method.to_string(), uri.path().to_owned(), body));
        ""
    }
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .fallback(record)
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// The value of one sample line `name{labels} value` in an exposition text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_config_file_crawls_several_accounts_in_one_run_and_exports_metrics() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 300,
        regions: vec!["cn-shanghai".into(), "cn-hangzhou".into()],
        ..Default::default()
    })
    .await;
    // Another account: another fleet (instance ids are unique across accounts).
    let (_sim2, running2) = start_sim(SimulatorConfig {
        instances: 100,
        seed: 2,
        regions: vec!["cn-hangzhou".into()],
        ..Default::default()
    })
    .await;
    let endpoint2 = running2.endpoint();
    let (push_url, pushed) = fake_pushgateway().await;
    let dir = TempDir::new();
    let config = dir.0.join("sources.toml");
    let endpoint = running.endpoint();
    std::fs::write(
        &config,
        format!(
            r#"
[[source]]
alias = "alpha"
access_key_id_env = "ALPHA_ID"
access_key_secret_env = "ALPHA_SECRET"
endpoint = "{endpoint}"
regions = "all"

[[source]]
alias = "beta"
access_key_id_env = "ALPHA_ID"
access_key_secret_env = "ALPHA_SECRET"
endpoint = "{endpoint2}"
regions = ["cn-hangzhou"]
filters = {{ status = "RUNNING" }}
naive_time_zone = "+08:00"

[[source]]
alias = "broken"
access_key_id_env = "ALPHA_ID"
access_key_secret_env = "WRONG_SECRET"
endpoint = "{endpoint}"
"#
        ),
    )
    .unwrap();
    let metrics_file = dir.0.join("ecp.prom");
    let (code, stdout, stderr) = ecp(
        &[
            "sync",
            "--config",
            config.to_str().unwrap(),
            "--output",
            "json",
            "--metrics-file",
            metrics_file.to_str().unwrap(),
            "--pushgateway-url",
            &push_url,
            "--max-attempts",
            "1",
        ],
        &[
            ("DATABASE_URL", &db.url),
            ("ALPHA_ID", DEFAULT_ACCESS_KEY_ID),
            ("ALPHA_SECRET", DEFAULT_ACCESS_KEY_SECRET),
            ("WRONG_SECRET", "not-the-secret"),
        ],
    )
    .await;
    // One source failed: the others were applied, and the exit code says the
    // configuration is wrong (its credentials).
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(!stderr.contains("not-the-secret"), "a secret was logged");
    assert!(
        !stderr.contains(DEFAULT_ACCESS_KEY_SECRET),
        "a secret was logged"
    );

    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object on stdout");
    assert_eq!(report["status"], "failed");
    let scopes = report["scopes"].as_array().unwrap();
    let done: BTreeSet<String> = scopes
        .iter()
        .filter(|s| s["complete"] == json!(true) && s["error"].is_null())
        .map(|s| {
            format!(
                "{}/{}",
                s["source"].as_str().unwrap(),
                s["biz_region_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        done,
        ["alpha/cn-hangzhou", "alpha/cn-shanghai", "beta/cn-hangzhou"]
            .map(String::from)
            .into()
    );
    // The service's count comes with each crawled scope; the simulator's is exact.
    for s in scopes.iter().filter(|s| s["complete"] == json!(true)) {
        assert_eq!(s["total_count"], s["instances"], "{s}");
    }
    let broken: Vec<&Value> = scopes.iter().filter(|s| s["source"] == "broken").collect();
    assert_eq!(broken.len(), 1);
    assert!(broken[0]["error"]
        .as_str()
        .unwrap()
        .contains("DescribeRegions"));

    // One run row for the invocation, its scopes under it.
    let pool = &db.pool;
    assert_eq!(count(pool, "SELECT count(*) FROM ecp.sync_runs").await, 1);
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM ecp.sync_run_scopes WHERE applied"
        )
        .await,
        3
    );
    let alpha = count(
        pool,
        "SELECT count(*) FROM ecp.current_instances WHERE source = 'alpha'",
    )
    .await;
    assert_eq!(alpha, 300);
    let beta_not_running = count(
        pool,
        "SELECT count(*) FROM ecp.current_instances WHERE source = 'beta' AND status <> 'RUNNING'",
    )
    .await;
    assert_eq!(beta_not_running, 0);
    // GmtCreate carries no zone: beta's service reports +08:00, alpha's UTC.
    for (source, zone) in [("alpha", "00:00"), ("beta", "+08:00")] {
        let (read, misread): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE created_at IS DISTINCT FROM \
                    (raw ->> 'GmtCreate')::timestamp AT TIME ZONE $2::interval) \
             FROM ecp.instances WHERE source = $1 AND raw ? 'GmtCreate'",
        )
        .bind(source)
        .bind(zone)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(read > 0 && misread == 0, "{source}: {misread} of {read}");
    }

    // The textfile and the Pushgateway got the same metrics.
    let text = std::fs::read_to_string(&metrics_file).unwrap();
    assert_eq!(sample(&text, "ecp_inventory_last_run_success"), Some(0.0));
    assert_eq!(
        sample(&text, "ecp_inventory_last_run_id"),
        Some(report["run_id"].as_f64().unwrap())
    );
    assert_eq!(
        sample(&text, "ecp_inventory_runs_total{status=\"failed\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "ecp_inventory_scope_success{source=\"broken\",biz_region_id=\"*\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "ecp_inventory_scope_success{source=\"alpha\",biz_region_id=\"cn-shanghai\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "ecp_inventory_scope_deletions_withheld{source=\"alpha\",biz_region_id=\"cn-shanghai\"}"
        ),
        Some(0.0)
    );
    let pages = report["scopes"][0]["pages"].as_f64().unwrap();
    assert!(pages >= 1.0);
    let created_alpha: f64 = ["cn-shanghai", "cn-hangzhou"]
        .iter()
        .map(|r| {
            sample(
                &text,
                &format!("ecp_inventory_changes{{source=\"alpha\",biz_region_id=\"{r}\",kind=\"created\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(created_alpha, 300.0);
    let by_status: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT source, biz_region_id, status, count(*) FROM ecp.current_instances GROUP BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (source, region, status, n) in by_status {
        let series = format!(
            "ecp_inventory_instances{{source=\"{source}\",biz_region_id=\"{region}\",status=\"{status}\"}}"
        );
        assert_eq!(sample(&text, &series), Some(n as f64), "{series}");
    }
    for name in [
        "ecp_inventory_last_run_duration_seconds",
        "ecp_inventory_last_run_timestamp_seconds",
        "ecp_inventory_last_run_api_requests",
        "ecp_inventory_last_run_api_retries",
        "ecp_inventory_last_run_api_throttled",
    ] {
        assert!(sample(&text, name).is_some(), "{name} missing");
        assert!(text.contains(&format!("# TYPE {name} gauge")));
    }
    let pushed = pushed.lock().unwrap().clone();
    assert_eq!(pushed.len(), 1);
    let (method, path, body) = &pushed[0];
    assert_eq!(method, "PUT");
    assert_eq!(path, "/metrics/job/ecp_inventory");
    assert_eq!(body, &text);
}

/// A simulator whose account has one region, cn-shanghai.
async fn shanghai_only(instances: usize) -> (Simulator, RunningSimulator) {
    start_sim(SimulatorConfig {
        instances,
        regions: vec!["cn-shanghai".into()],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_config_file_naming_a_region_the_account_lacks_is_a_configuration_error() {
    let db = test_db().await;
    let (_sim, running) = shanghai_only(40).await;
    let dir = TempDir::new();
    let config = dir.0.join("sources.toml");
    let endpoint = running.endpoint();
    std::fs::write(
        &config,
        format!(
            "[[source]]\nalias = \"typo\"\naccess_key_id_env = \"ID\"\n\
             access_key_secret_env = \"SECRET\"\nendpoint = \"{endpoint}\"\n\
             regions = [\"cn-shanghai\", \"cn-shangai\"]\n"
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = ecp(
        &["sync", "--config", config.to_str().unwrap()],
        &[
            ("DATABASE_URL", &db.url),
            ("ID", DEFAULT_ACCESS_KEY_ID),
            ("SECRET", DEFAULT_ACCESS_KEY_SECRET),
        ],
    )
    .await;
    // Not an empty success: exit 2, the typo named beside the regions there are.
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("unknown region cn-shangai") && stderr.contains("are cn-shanghai"),
        "{stderr}"
    );
    assert!(stdout.contains("run 1 failed"), "{stdout}");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.sync_run_scopes").await,
        0,
        "no region of the source was crawled"
    );
}

#[tokio::test]
async fn one_account_from_flags_and_environment_prints_a_json_summary() {
    let db = test_db().await;
    let (_sim, running) = shanghai_only(120).await;
    let (code, stdout, stderr) = ecp(
        &[
            "sync",
            "--endpoint",
            &running.endpoint(),
            "--output",
            "json",
        ],
        &[
            ("DATABASE_URL", &db.url),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET),
            // Nobody listens there: the failure is logged, without the password.
            ("ECP_PUSHGATEWAY_URL", "http://pusher:PushPw99@127.0.0.1:9"),
        ],
    )
    .await;
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stderr.contains("could not push the metrics"), "{stderr}");
    assert!(!stderr.contains("PushPw99"), "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["totals"]["created"], 120);
    assert_eq!(report["scopes"][0]["source"], "default");
    // Logs are JSON lines on stderr, with the run and scope spans on them.
    let applied: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "scope applied")
        .collect();
    assert_eq!(applied.len(), 1, "one 'scope applied' line: {stderr}");
    let applied = &applied[0];
    // Each count its own field, as log tools read them.
    assert_eq!(applied["fields"]["created"], 120);
    assert_eq!(applied["span"]["scope"], "default/cn-shanghai");
    assert_eq!(applied["spans"][0]["run_id"], report["run_id"]);

    // Flags that belong in the file are refused next to --config (exit code 2).
    let (code, _, stderr) = ecp(
        &[
            "sync",
            "--config",
            "/nonexistent.toml",
            "--region",
            "cn-shanghai",
        ],
        &[("DATABASE_URL", &db.url)],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");

    // Nor does --help show it from the environment.
    let (code, help, _) = ecp(
        &["sync", "--help"],
        &[("ECP_PUSHGATEWAY_URL", "http://pusher:PushPw99@127.0.0.1:9")],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        help.contains("ECP_PUSHGATEWAY_URL") && !help.contains("PushPw99"),
        "{help}"
    );
}

/// Names and versions of the fleet at `ts`, hashed: equal iff the same rows.
async fn as_of(pool: &PgPool, ts: chrono::DateTime<chrono::Utc>) -> (i64, String) {
    sqlx::query_as(
        // previous_version is the chain link that prune clears on the first version
        // it keeps, and chain_pruned records that; every other column must be
        // exactly as before.
        "SELECT count(*), COALESCE(md5(string_agg((to_jsonb(v) - 'previous_version' - 'chain_pruned')::text, '|' ORDER BY instance_id)), '') \
         FROM ecp.instances_as_of($1) v",
    )
    .bind(ts)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn prune_keeps_every_as_of_answer_inside_the_horizon() {
    let db = test_db().await;
    let store = db.store();
    let opts = ApplyOptions::default();
    let mut records = fleet(40);
    sync(&store, "cn-shanghai", &records, at(0), &opts)
        .await
        .unwrap();
    for r in records.iter_mut().take(10) {
        r.insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    }
    sync(&store, "cn-shanghai", &records, at(10), &opts)
        .await
        .unwrap();
    for r in records.iter_mut().take(5) {
        r.insert("AndroidInstanceStatus".into(), json!("RUNNING"));
    }
    records.truncate(35);
    sync(&store, "cn-shanghai", &records, at(20), &opts)
        .await
        .unwrap();

    let horizon = at(12);
    let probes = [at(12), at(15), at(20), at(30)];
    let mut before = Vec::new();
    for ts in probes {
        before.push(as_of(&db.pool, ts).await);
    }
    let versions_before = count(&db.pool, "SELECT count(*) FROM ecp.instance_versions").await;

    let dry = store.prune(horizon, true).await.unwrap();
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_versions").await,
        versions_before,
        "a dry run removes nothing"
    );
    let done = store.prune(horizon, false).await.unwrap();
    assert_eq!(dry, done);
    // The first versions of the 10 instances changed at hour 10 ended before the
    // horizon; the 40 creations were observed at hour 0 and the 10 updates at 10.
    assert_eq!(done.versions, 10);
    assert_eq!(done.changes, 50);

    for (ts, expected) in probes.iter().zip(&before) {
        assert_eq!(&as_of(&db.pool, *ts).await, expected, "as of {ts}");
    }
    // The versions that lost their predecessor say so, and name none.
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_versions \
             WHERE chain_pruned AND previous_version IS NULL AND version = 2"
        )
        .await,
        10
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_changes WHERE observed_at < '2025-01-01T12:00:00Z'"
        )
        .await,
        0
    );
    assert!(count(&db.pool, "SELECT count(*) FROM ecp.instance_changes").await > 0);
    // Before the horizon the answer is gone, as intended.
    assert_ne!(as_of(&db.pool, at(5)).await.0, 40);

    // A later sync still works on the pruned history.
    records[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    let c = sync(&store, "cn-shanghai", &records, at(30), &opts)
        .await
        .unwrap();
    assert_eq!(c.updated, 1);

    // The command line: a dry run by age, as JSON.
    let (code, stdout, stderr) = ecp(
        &[
            "prune",
            "--older-than",
            "400d",
            "--dry-run",
            "--output",
            "json",
        ],
        &[("DATABASE_URL", &db.url)],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["dry_run"], true);
    assert!(out["versions"].is_u64());
}

/// Runs `sql` (statements separated by semicolons) as the test's superuser.
async fn exec(pool: &PgPool, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_readonly_role_can_select_and_cannot_write() {
    let db = test_db().await;
    let store = db.store();
    sync(
        &store,
        "cn-shanghai",
        &fleet(5),
        at(0),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    // The schema belongs to the role the job migrates with, not to the
    // superuser who runs the script.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let migrator = format!("migrator_{suffix}");
    exec(
        &db.pool,
        format!("CREATE ROLE {migrator} NOLOGIN; ALTER SCHEMA ecp OWNER TO {migrator}"),
    )
    .await;
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/readonly_role.sql"
    ))
    .unwrap();
    exec(&db.pool, script.clone()).await;
    // Idempotent.
    exec(&db.pool, script).await;

    // A view a later migration adds, created by the migrating role.
    exec(
        &db.pool,
        format!("SET ROLE {migrator}; CREATE VIEW ecp.added_later AS SELECT 1 AS x; RESET ROLE"),
    )
    .await;
    let login = format!("analyst_{suffix}");
    exec(
        &db.pool,
        format!("CREATE ROLE {login} LOGIN PASSWORD 'analyst-pw' IN ROLE ecp_readonly"),
    )
    .await;

    let options: PgConnectOptions = db.url.parse().unwrap();
    let mut conn = options
        .username(&login)
        .password("analyst-pw")
        .connect()
        .await
        .expect("the analyst logs in");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.current_instances")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.instances_as_of(now())")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.change_feed")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 5);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.added_later")
        .fetch_one(&mut conn)
        .await
        .expect("what the migrating role adds later is readable");
    assert_eq!(n, 1);
    for write in [
        "INSERT INTO ecp.sync_runs (tool_version) VALUES ('x')",
        "UPDATE ecp.instances SET instance_name = 'x'",
        "DELETE FROM ecp.instance_changes",
        "CREATE TABLE ecp.mine (x int)",
    ] {
        let err = sqlx::query(sqlx::AssertSqlSafe(write))
            .execute(&mut conn)
            .await
            .expect_err(write);
        assert!(
            err.to_string().contains("permission denied"),
            "{write}: {err}"
        );
    }
    conn.close().await.unwrap();
    exec(
        &db.pool,
        format!(
            "DROP ROLE {login}; REASSIGN OWNED BY {migrator} TO CURRENT_USER; \
             DROP OWNED BY {migrator}; DROP ROLE {migrator}"
        ),
    )
    .await;
}

/// A local cluster a test started, stopped however the test ends.
struct Stopped(ecp_inventory::pg_local::LocalPostgres);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.stop();
    }
}

/// Run as root, the local PostgreSQL runs as the postgres user, who may not
/// enter a directory only root may (root's home is mode 700): a cluster asked
/// for under one is kept where the server can reach it, and starts. The demo,
/// the README's first command, failed there with "initdb failed: could not
/// change directory".
#[tokio::test]
async fn a_local_cluster_asked_for_where_its_server_cannot_enter_still_starts() {
    use ecp_inventory::pg_local::LocalPostgres;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    let root_only = TempDir::new();
    std::fs::set_permissions(&root_only.0, std::fs::Permissions::from_mode(0o700)).unwrap();
    let asked = root_only.0.join("demo").join("postgres");
    let cluster_dir = asked.clone();
    let pg = tokio::task::spawn_blocking(move || {
        LocalPostgres::start(&cluster_dir, &[("fsync", "off")])
    })
    .await
    .unwrap()
    .expect("a local PostgreSQL under a directory only its owner may enter");
    let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let stand_in = pg.data_dir().parent().unwrap().to_owned();
    // Stopped, then its directory removed (as the asked-for one is, with the
    // test's), however the test ends.
    struct Cleaned(LocalPostgres, Option<std::path::PathBuf>);
    impl Drop for Cleaned {
        fn drop(&mut self) {
            let _ = self.0.stop();
            if let Some(dir) = &self.1 {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let pg = Cleaned(pg, as_root.then(|| stand_in.clone()));
    if as_root {
        assert!(
            !stand_in.starts_with(&root_only.0),
            "kept at {}",
            stand_in.display()
        );
    }
    let mut conn = sqlx::PgConnection::connect(&pg.0.url("postgres"))
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    conn.close().await.unwrap();
    drop(pg);
}

/// Managed PostgreSQL services often accept TLS connections only. A server that
/// refuses any other (pg_hba `hostnossl ... reject`) still takes the job's
/// writes when the URL says `sslmode=require`, and refuses them otherwise, so
/// the success really went over TLS.
#[tokio::test]
async fn a_database_that_requires_tls_is_reached_with_sslmode_require() {
    use ecp_inventory::pg_local::LocalPostgres;

    let dir = TempDir::new();
    // A certificate and key made for this test only (tests/data/tls); the
    // server wants its key readable by its owner alone.
    let (cert, key) = (dir.0.join("server.crt"), dir.0.join("server.key"));
    std::fs::write(&cert, include_str!("../data/tls/server.crt")).unwrap();
    std::fs::write(&key, include_str!("../data/tls/server.key")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cert_setting = cert.to_str().unwrap().to_owned();
    let key_setting = key.to_str().unwrap().to_owned();
    let cluster_dir = dir.0.clone();
    let pg = tokio::task::spawn_blocking(move || {
        LocalPostgres::start(
            &cluster_dir,
            &[
                ("ssl", "on"),
                ("ssl_cert_file", &cert_setting),
                ("ssl_key_file", &key_setting),
                ("fsync", "off"),
            ],
        )
    })
    .await
    .unwrap()
    .expect("a local PostgreSQL with TLS");
    // Stopped however the test ends (its directory goes with `dir`).
    let pg = Stopped(pg);
    let pg = &pg.0;
    std::fs::write(
        pg.data_dir().join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let plain = format!("{}?sslmode=disable", pg.url("postgres"));
    let mut admin = sqlx::PgConnection::connect(&plain).await.unwrap();
    sqlx::raw_sql("SELECT pg_reload_conf()")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    // The postmaster reloads in its own time: until it refuses a plain session.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sqlx::PgConnection::connect(&plain).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_hba.conf was not reloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let (sim, running) = start_sim(SimulatorConfig {
        instances: 40,
        ..Default::default()
    })
    .await;
    let sync_with = |sslmode: String| {
        let url = format!("{}?sslmode={sslmode}", pg.url("postgres"));
        let endpoint = running.endpoint();
        async move {
            ecp(
                &["sync", "--endpoint", &endpoint, "--database-url", &url],
                &[
                    ("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID),
                    ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET),
                ],
            )
            .await
        }
    };
    let (code, _, stderr) = sync_with("disable".into()).await;
    assert_ne!(code, 0, "the server refuses connections without TLS");
    assert!(stderr.contains("no encryption"), "{stderr}");
    let (code, stdout, stderr) = sync_with("require".into()).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("40 created"), "{stdout}");
    // The certificate checked against the CA file that signed it.
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, include_str!("../data/tls/ca.crt")).unwrap();
    let verified = format!("verify-full&sslrootcert={}", ca.display());
    let (code, stdout, stderr) = sync_with(verified).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("40 unchanged"), "{stdout}");
    // A CA that did not sign it: refused.
    let other_ca = dir.0.join("other-ca.pem");
    std::fs::write(&other_ca, include_str!("../data/tls/other-ca.crt")).unwrap();
    let (code, _, stderr) =
        sync_with(format!("verify-full&sslrootcert={}", other_ca.display())).await;
    assert_ne!(code, 0, "a certificate no given CA signed is refused");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");

    let mut conn = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(pg.port())
        .username("postgres")
        .database("postgres")
        .ssl_mode(sqlx::postgres::PgSslMode::Require)
        .connect()
        .await
        .unwrap();
    let (instances, tls): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ecp.current_instances), \
                (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((instances, tls), (40, true));
    conn.close().await.unwrap();
    drop(sim);
    running.shutdown().await;
}

/// Starts the command, sends it SIGTERM once it has connected to `silent` (which
/// never answers), and waits for it to end.
async fn sigterm_once_connected(
    mut cmd: tokio::process::Command,
    silent: &tokio::net::TcpListener,
) -> std::process::Output {
    let child = cmd.spawn().unwrap();
    let (_held, _) = tokio::time::timeout(std::time::Duration::from_secs(20), silent.accept())
        .await
        .expect("the command to connect")
        .unwrap();
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait_with_output().await.unwrap()
}

/// With a config file the run is recorded before the sources' regions are
/// listed: a signal during the listing ends it as failed at once, naming it.
#[tokio::test]
async fn sigterm_while_a_source_lists_its_regions_records_the_run_failed() {
    let db = test_db().await;
    // Takes the request and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let dir = TempDir::new();
    let config = dir.0.join("sources.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nalias = \"slow\"\naccess_key_id_env = \"ID\"\n\
             access_key_secret_env = \"SECRET\"\nendpoint = \"{endpoint}\"\n"
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["sync", "--config", config.to_str().unwrap()])
        .env("DATABASE_URL", &db.url)
        .env("ID", DEFAULT_ACCESS_KEY_ID)
        .env("SECRET", DEFAULT_ACCESS_KEY_SECRET)
        .env("ECP_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = sigterm_once_connected(cmd, &silent).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM ecp.sync_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert!(
        error
            .unwrap_or_default()
            .contains("interrupted by SIGTERM while listing"),
        "{stderr}"
    );
}

/// A signal while the job is still connecting to the database (or migrating)
/// ends it with exit 1 and says nothing was written; it used to kill the
/// process by the signal's default, exit 143, without a word.
#[tokio::test]
async fn sigterm_while_connecting_to_the_database_exits_1_and_says_so() {
    // Takes the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("postgres://u:p@{}/db", silent.local_addr().unwrap());
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["sync", "--region", "cn-shanghai", "--database-url", &url])
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = sigterm_once_connected(cmd, &silent).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGTERM before the run started; no run was recorded"),
        "{stderr}"
    );
}

/// The run counter counts runs that have ended: one still `running` (another
/// process's, or one killed that the next run will mark abandoned) is not a
/// series that could later fall.
#[tokio::test]
async fn the_run_counter_leaves_out_runs_still_running() {
    let db = test_db().await;
    sqlx::query(
        "INSERT INTO ecp.sync_runs (status, tool_version) \
         VALUES ('running', 't'), ('failed', 't'), ('abandoned', 't'), ('abandoned', 't')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let facts = ecp_inventory::metrics::FleetFacts::query(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        facts.runs,
        [("abandoned".to_owned(), 2), ("failed".to_owned(), 1)]
    );
}

/// Whether the process's TCP socket of `conn` has TCP_NODELAY, found by the
/// ports the server sees; None over a Unix socket, or when the server sees other
/// ports than this side has (a container's mapped port, a proxy).
#[cfg(target_os = "linux")]
async fn nodelay_of(conn: &mut sqlx::PgConnection) -> Option<bool> {
    use std::os::fd::BorrowedFd;
    let (local, peer): (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    let (local, peer) = (local? as u16, peer? as u16);
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Some(fd) = entry
            .unwrap()
            .file_name()
            .to_str()
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        // SAFETY: only socket options are read; a descriptor closed meanwhile
        // fails the calls.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&fd);
        let (Ok(ours), Ok(theirs)) = (socket.local_addr(), socket.peer_addr()) else {
            continue;
        };
        let ports = ours.as_socket().zip(theirs.as_socket());
        if ports.is_some_and(|(o, t)| o.port() == local && t.port() == peer) {
            return Some(socket.tcp_nodelay().unwrap());
        }
    }
    None
}

/// sqlx 0.9.0 leaves Nagle's algorithm on: the tail of every COPY batch then
/// waits for the server's delayed acknowledgement (1.1-1.3 s of a 100k first
/// sync). The job's pool turns it off on each connection it opens.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_jobs_database_connections_send_without_delay() {
    let db = test_db().await;
    let mut plain = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let Some(plain_nodelay) = nodelay_of(&mut plain).await else {
        // The local cluster the tests start (and CI) is reached over TCP on
        // loopback, where the ports match.
        eprintln!("the test server's connections cannot be told apart from here: nothing to check");
        return;
    };
    assert!(
        !plain_nodelay,
        "sqlx sets TCP_NODELAY itself now: src/cli/nodelay.rs can go"
    );
    let pool = ecp_inventory::cli::connect(&db.url, 2).await.unwrap();
    let mut first = pool.acquire().await.unwrap();
    let mut second = pool.acquire().await.unwrap();
    assert_eq!(nodelay_of(&mut first).await, Some(true));
    assert_eq!(nodelay_of(&mut second).await, Some(true));
}

/// The job's sessions run without JIT: after a first sync, the server spent
/// 230 ms compiling the end-of-run query for scopes nobody crawls, misled by
/// a ledger never analyzed. A URL that sets `jit` itself keeps its choice.
#[tokio::test]
async fn the_jobs_database_sessions_do_not_compile_queries() {
    /// The setting, and who set it: `session` for a SET, where the server's
    /// own default (on or off) says `default` or `configuration file`.
    async fn jit_of(pool: &PgPool) -> (String, String) {
        sqlx::query_as("SELECT setting, source FROM pg_settings WHERE name = 'jit'")
            .fetch_one(pool)
            .await
            .unwrap()
    }
    let db = test_db().await;
    let pool = ecp_inventory::cli::connect(&db.url, 2).await.unwrap();
    assert_eq!(jit_of(&pool).await, ("off".into(), "session".into()));
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let own = format!("{}{separator}options=-c%20jit%3Don", db.url);
    let pool = ecp_inventory::cli::connect(&own, 2).await.unwrap();
    assert_eq!(jit_of(&pool).await, ("on".into(), "client".into()));
}
