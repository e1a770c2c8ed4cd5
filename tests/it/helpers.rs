//! Test support: a real Postgres for every test, a fresh migrated database per
//! test, and generators of API records.
//!
//! Where the server comes from, first match wins:
//! 1. `TEST_DATABASE_URL` (a server whose user may create databases);
//! 2. testcontainers' Postgres, when a Docker daemon answers;
//! 3. a throwaway cluster from `pg_local`, one per test process, removed by a
//!    watchdog when the process exits.
//!
//! Pools are created per test: each `#[tokio::test]` has its own runtime, and a
//! pool must not outlive the runtime that made it.

use std::sync::mpsc::Sender;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Duration, TimeZone, Utc};
use ecp_inventory::api::{Client, ClientConfig, Credentials};
use ecp_inventory::normalize::{normalize, NormalizeOptions, Normalized};
use ecp_inventory::pg_local::LocalPostgres;
use ecp_inventory::simulator::{
    RunningSimulator, Simulator, SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET,
};
use ecp_inventory::store::{self, Store, StoreConfig};
use serde_json::{json, Map, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};

#[allow(dead_code)] // url and name are for tests that need a second connection or psql
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    pub name: String,
}

/// The tests' batches: small, so that fleets of a few hundred instances are
/// sent in several, as a production fleet is.
pub const TEST_BATCH_BYTES: usize = 64 << 10;

impl TestDb {
    pub fn store(&self) -> Store {
        let config = StoreConfig {
            batch_bytes: TEST_BATCH_BYTES,
            ..StoreConfig::default()
        };
        Store::new(self.pool.clone(), config).unwrap()
    }

    /// A store that stages every crawl, a first one too: what a direct load
    /// must come to.
    pub fn staging_store(&self) -> Store {
        let config = StoreConfig {
            direct_first_load: false,
            batch_bytes: TEST_BATCH_BYTES,
            ..StoreConfig::default()
        };
        Store::new(self.pool.clone(), config).unwrap()
    }
}

/// A test's database is dropped when the test is done with it, so that a run of
/// the suite needs the disk of a few databases at a time, not of ninety.
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dropper) = dropper() {
            let _ = dropper.lock().unwrap().send(self.name.clone());
        }
    }
}

/// A thread with a runtime of its own that drops the databases of finished
/// tests: a test's runtime may already be shutting down when its `TestDb` drops.
fn dropper() -> Option<&'static Mutex<Sender<String>>> {
    static DROPPER: OnceLock<Mutex<Sender<String>>> = OnceLock::new();
    let server = SERVER.get()?;
    Some(DROPPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let admin_url = server.url("postgres");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for name in rx {
                // Best effort: a database left behind goes with the cluster.
                let _ = rt.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await?;
                    admin.close().await
                });
            }
        });
        Mutex::new(tx)
    }))
}

/// The server base URL (without database) shared by the tests of this process.
enum Server {
    Url(String),
    // Kept alive for the process; testcontainers removes it on drop/exit.
    #[allow(dead_code)]
    Container(String, Box<dyn std::any::Any + Send + Sync>),
    Local(LocalPostgres),
}

impl Server {
    fn url(&self, db: &str) -> String {
        match self {
            Server::Url(base) | Server::Container(base, _) => {
                let mut u = base.clone();
                // Replace the path (database) of the URL.
                let scheme_end = u.find("://").map_or(0, |i| i + 3);
                if let Some(slash) = u[scheme_end..].find('/') {
                    let start = scheme_end + slash;
                    let end = u[start..].find('?').map_or(u.len(), |q| start + q);
                    u.replace_range(start..end, &format!("/{db}"));
                } else {
                    u.push('/');
                    u.push_str(db);
                }
                u
            }
            Server::Local(pg) => pg.url(db),
        }
    }
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn docker_available() -> bool {
    if std::env::var_os("DOCKER_HOST").is_some() {
        return true;
    }
    let sock = std::path::Path::new("/var/run/docker.sock");
    sock.exists() && std::os::unix::net::UnixStream::connect(sock).is_ok()
}

fn start_container() -> Server {
    // Started on a separate thread with its own runtime, which is then kept for the
    // life of the process, so the container does not belong to one test's runtime.
    std::thread::spawn(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(async {
            use testcontainers::runners::AsyncRunner;
            use testcontainers::ImageExt;
            // The module's default image is PostgreSQL 11, older than the
            // migrations support (generated columns, among others): the
            // version docker-compose.yml runs instead.
            let node = testcontainers_modules::postgres::Postgres::default()
                .with_tag("15-alpine")
                .start()
                .await
                .expect("start the Postgres container");
            let port = node.get_host_port_ipv4(5432).await.unwrap();
            let host = node.get_host().await.unwrap();
            let url = format!("postgres://postgres:postgres@{host}:{port}/postgres");
            Server::Container(url, Box::new(node))
        });
        std::mem::forget(rt);
        server
    })
    .join()
    .unwrap()
}

fn start_local() -> Server {
    let dir = std::env::temp_dir().join(format!("ecp-test-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Durability is worth nothing here, and WAL is disk: keep as little as the
    // server allows (a 10k-instance test would otherwise grow it by a gigabyte).
    let settings = [
        ("fsync", "off"),
        ("full_page_writes", "off"),
        ("wal_level", "minimal"),
        ("max_wal_senders", "0"),
        ("max_wal_size", "128MB"),
        ("max_connections", "200"),
        ("log_checkpoints", "off"),
    ];
    let pg = LocalPostgres::start(&dir, &settings)
        .expect("start a local Postgres (set TEST_DATABASE_URL to use another server)");
    // Stop and remove the cluster once this test process has exited, however it
    // exits: a detached shell polls our pid. The server's log is kept in the
    // target directory, for a failed run to be read afterwards.
    let pg_ctl = pg.bin_dir().join("pg_ctl");
    let kept_log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-server.log");
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         runuser -u postgres -- {pg_ctl} stop -m immediate -D {data} >/dev/null 2>&1 || \
         {pg_ctl} stop -m immediate -D {data} >/dev/null 2>&1; \
         cp {data}/server.log {kept_log} 2>/dev/null; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = pg_ctl.display(),
        data = pg.data_dir().display(),
        kept_log = kept_log.display(),
        dir = dir.display(),
    );
    // setsid -f forks the shell into its own session and returns at once, so the
    // watchdog outlives us and is not killed with our process group.
    std::process::Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("spawn the cluster watchdog");
    Server::Local(pg)
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            Server::Url(url)
        } else if docker_available() {
            start_container()
        } else {
            start_local()
        }
    })
}

/// A fresh, migrated database on the shared server.
pub async fn test_db() -> TestDb {
    test_db_migrated_to(None).await
}

/// A fresh database with the migrations up to `version` only (all with `None`),
/// for tests of what a migration does to data written before it.
pub async fn test_db_migrated_to(version: Option<i64>) -> TestDb {
    let server = tokio::task::spawn_blocking(server).await.unwrap();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server.url("postgres"))
        .await
        .expect("connect to the test server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = server.url(&name);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .unwrap();
    match version {
        None => store::migrate(&pool).await.unwrap(),
        Some(v) => {
            store::MIGRATOR.run_to(v, &pool).await.unwrap();
            // This build's apply names the scope of every change row (0035): a
            // schema from before it gets those columns as 0035 adds them, so
            // that history can be written on it to test a later migration with.
            if (8..35).contains(&v) {
                sqlx::raw_sql(
                    "ALTER TABLE ecp.instance_changes \
                     ADD COLUMN IF NOT EXISTS source text, \
                     ADD COLUMN IF NOT EXISTS biz_region_id text",
                )
                .execute(&pool)
                .await
                .unwrap();
            }
        }
    }
    TestDb { pool, url, name }
}

/// A fixed clock for runs: run `n` observes at `t0 + n hours`.
pub fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
}

/// An API record for instance number `i` with every field filled.
pub fn record(i: usize) -> Map<String, Value> {
    let v = json!({
        "AndroidInstanceGroupId": format!("ag-{:04}", i % 10),
        "AndroidInstanceGroupName": format!("group-{}", i % 10),
        "AndroidInstanceId": format!("acp-{i:06}"),
        "AndroidInstanceName": format!("phone-{i:06}"),
        "AndroidInstanceStatus": "RUNNING",
        "AppInstanceGroupId": "aig-1",
        "AppInstanceId": format!("ai-{i}"),
        "AppManagePolicy": {"AppManagePolicyId": "amp-1", "AppManagePolicyName": "policy-1"},
        "AuthorizedUserId": "user-1",
        "BandwidthPackageId": "np-1",
        "BandwidthPackageType": "cbwp_ecd",
        "BindUserId": "user-1",
        "BizImageType": "",
        "BizTags": [{"Key": "releaseFlag", "Value": "on"}],
        "Channel": "CLOUDPHONE",
        "ChargeType": if i % 2 == 0 { "PrePaid" } else { "PostPaid" },
        "Cpu": "4",
        "Disks": [{"DiskType": "SYSTEM", "DiskSize": 32}, {"DiskType": "DATA", "DiskSize": 64}],
        "DisplayConfig": {"Dpi": 240, "Fps": 30, "LockResolution": "off",
                          "ResolutionHeight": 1280, "ResolutionWidth": 720},
        "DownBandwidthLimit": 30,
        "ErrorCode": "",
        "GmtCreate": "2024-05-06 10:42:10",
        "GmtExpired": format!("2025-01-{:02}T02:03:33Z", 1 + i % 28),
        "GmtModified": "2024-05-06 10:42:10",
    });
    // Two halves: one json! of 53 fields exceeds the macro recursion limit.
    let rest = json!({
        "ImageId": "imgc-1",
        "ImageVersion": "3.5.3.867",
        "InstanceType": "acp.basic.small",
        "InternetStatus": "AVAILABLE",
        "KeyPairId": "kp-1",
        "Memory": 4096,
        "NetworkInterfaceIp": format!("10.0.{}.{}", i / 250, i % 250 + 1),
        "NetworkInterfaceIpv6Address": "",
        "NetworkType": "network_pro_ecd",
        "OfficeSiteId": "cn-shanghai+dir-1",
        "PackageId": "",
        "PersistentAppInstanceId": format!("p-{i}"),
        "PhoneDataInfo": {"PhoneDataId": format!("pd-{i}"), "PhoneDataVolume": 20},
        "PolicyGroupId": "pg-1",
        "PublicIpAddress": "",
        "PublicIpv6Address": "",
        "QosRuleId": "qos-1",
        "Rate": 100,
        "RegionId": "cn-shanghai",
        "RenderingType": "local",
        "ServerStatus": "RUNNING",
        "ServerType": "cpm.gx7.10xlarge",
        "SessionStatus": "connect",
        "StreamMode": 1,
        "SystemVersion": "Android 11",
        "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": format!("t{}", i % 3)}],
        "UpBandwidthLimit": 5,
        "VSwitchId": "vsw-1",
        "ZoneId": "cn-shanghai-l"
    });
    match (v, rest) {
        (Value::Object(mut m), Value::Object(r)) => {
            m.extend(r);
            m
        }
        _ => unreachable!(),
    }
}

/// A fleet of `n` API records.
pub fn fleet(n: usize) -> Vec<Map<String, Value>> {
    (0..n).map(record).collect()
}

pub fn norm(records: &[Map<String, Value>]) -> Vec<Normalized> {
    records
        .iter()
        .map(|r| normalize(r.clone().into(), &NormalizeOptions::default()).unwrap())
        .collect()
}

/// The number of instances per page the API returns at most.
pub const PAGE: usize = 100;

/// One complete crawl of `region` in its own run, applied with `opts`.
pub async fn sync(
    store: &Store,
    region: &str,
    records: &[Map<String, Value>],
    observed_at: DateTime<Utc>,
    opts: &store::ApplyOptions,
) -> Result<store::ApplyCounts, store::StoreError> {
    sync_normalized(store, region, &norm(records), observed_at, opts).await
}

/// [`sync`] of records already normalized.
pub async fn sync_normalized(
    store: &Store,
    region: &str,
    normalized: &[Normalized],
    observed_at: DateTime<Utc>,
    opts: &store::ApplyOptions,
) -> Result<store::ApplyCounts, store::StoreError> {
    let run = store.start_run("test").await?;
    let mut scope = run
        .begin_scope(
            store::Scope::new("default", region),
            std::time::Duration::from_secs(5),
        )
        .await?;
    for page in normalized.chunks(PAGE) {
        scope.push_page(observed_at, page).await?;
    }
    if normalized.is_empty() {
        scope.push_page(observed_at, &[]).await?;
    }
    let result = scope.apply(opts).await;
    let outcome = match &result {
        Ok(_) => store::RunOutcome::Succeeded,
        Err(e) => store::RunOutcome::Failed(e.to_string()),
    };
    run.finish(outcome).await?;
    result
}

/// Holds an exclusive lock on `table` (`ecp.instances`, say) until the
/// transaction returned ends: an apply that reaches its first write there waits.
pub async fn hold_table_lock(
    db: &TestDb,
    table: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "LOCK TABLE {table} IN EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

/// The status and error of the latest run.
pub async fn last_run(pool: &PgPool) -> (String, String) {
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM ecp.sync_runs ORDER BY run_id DESC LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    (status, error.unwrap_or_default())
}

/// The tables a sync writes an instance's state and history into.
pub const INVENTORY_TABLES: [&str; 5] = [
    "instances",
    "instance_versions",
    "instance_changes",
    "instance_disks",
    "instance_tags",
];

pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A simulator serving on a free loopback port.
pub async fn start_sim(config: SimulatorConfig) -> (Simulator, RunningSimulator) {
    let sim = Simulator::new(config);
    let running = sim
        .start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulator binds a loopback port");
    (sim, running)
}

/// A client with the simulator's default key pair and no rate limit.
pub fn sim_client(running: &RunningSimulator) -> Client {
    Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint: running.endpoint(),
            ..Default::default()
        },
    )
    .expect("a valid endpoint")
}

/// A client that retries fast, for tests that inject faults.
pub fn quick_retry_client(running: &RunningSimulator, attempts: u32) -> Client {
    Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint: running.endpoint(),
            retry: ecp_inventory::api::retry::RetryPolicy {
                max_attempts: attempts,
                base_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(20),
                max_retry_after: std::time::Duration::from_millis(20),
                max_elapsed: std::time::Duration::from_secs(30),
            },
            ..Default::default()
        },
    )
    .unwrap()
}
