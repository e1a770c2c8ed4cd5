//! The README's first steps, run as a new user would: the binary's `simulate`
//! in one process, `crawl` and `sync` in others.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::helpers::{count, test_db};

const BIN: &str = env!("CARGO_BIN_EXE_ecp-inventory");

/// `ecp-inventory simulate` on a free port; killed when dropped.
struct SimProcess {
    child: Child,
    endpoint: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn simulate(instances: usize) -> SimProcess {
    simulate_with(&["--instances", &instances.to_string()])
}

fn simulate_with(args: &[&str]) -> SimProcess {
    let mut child = Command::new(BIN)
        .args(["simulate", "--listen", "127.0.0.1:0", "--seed", "7"])
        .args(args)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
        .to_owned();
    SimProcess { child, endpoint }
}

/// The tool as a user runs it: the simulator's key pair in the environment, and
/// nothing of this machine's own credentials or profiles.
fn tool(args: &[&str]) -> Command {
    let home = std::env::temp_dir().join("ecp-readme-home");
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testAccessKeyId")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testAccessKeySecret")
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("HOME", home)
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env_remove("DATABASE_URL");
    cmd
}

/// `crawl` of `region` from `endpoint`, which must succeed: its stdout and stderr.
fn crawled(endpoint: &str, region: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["crawl", "--endpoint", endpoint, "--region", region];
    args.extend_from_slice(extra);
    let out = tool(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// `sync --output json` against `endpoint` into `db_url`, which must succeed; its
/// report.
async fn sync_json(endpoint: &str, db_url: &str) -> serde_json::Value {
    let mut cmd = tool(&[
        "sync",
        "--endpoint",
        endpoint,
        "--output",
        "json",
        "--log-format",
        "json",
    ]);
    cmd.env("DATABASE_URL", db_url);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--output json")
}

#[test]
fn simulate_then_crawl_prints_every_instance_of_the_region_once() {
    let sim = simulate(3000);
    let (stdout, _) = crawled(&sim.endpoint, "cn-shanghai", &["--page-size", "40"]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert!(
        lines.len() > 100,
        "a sixth of 3000, roughly: {}",
        lines.len()
    );
    assert!(lines.iter().all(|i| i["RegionId"] == "cn-shanghai"));
    let ids: std::collections::HashSet<&str> = lines
        .iter()
        .map(|i| i["AndroidInstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), lines.len(), "each instance once");
}

#[test]
fn crawl_of_a_region_the_account_does_not_have_is_refused() {
    let sim = simulate(100);
    let out = tool(&[
        "crawl",
        "--endpoint",
        &sim.endpoint,
        "--region",
        "cn-shangai",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown region cn-shangai") && stderr.contains("cn-shanghai"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn sync_against_the_simulator_process_fills_the_database() {
    let db = test_db().await;
    let sim = simulate(1200);
    let report = sync_json(&sim.endpoint, &db.url).await;
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["totals"]["created"], 1200);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        1200
    );
}

#[tokio::test]
async fn a_fleet_file_is_served_as_written_and_synced() {
    // The reference's captured page, then an instance of another region written
    // by hand, with a value of the wrong type and a field the API does not have.
    let dir = std::env::temp_dir().join(format!("ecp-fleet-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fleet.json");
    let page = include_str!("../data/describe_android_instances_page.json");
    let by_hand = r#"{"AndroidInstanceId":"acp-byhand0000000001","RegionId":"cn-beijing","AndroidInstanceStatus":"STOPPED","Cpu":"four","Memory":8192,"SomethingNew":{"a":1},"Zeta":1.10,"Big":123456789012345678901234567890}"#;
    std::fs::write(&file, format!("{page}\n{by_hand}\n")).unwrap();

    let db = test_db().await;
    let sim = simulate_with(&["--fleet-file", file.to_str().unwrap()]);
    let report = sync_json(&sim.endpoint, &db.url).await;
    let regions: Vec<&str> = report["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["biz_region_id"].as_str().unwrap())
        .collect();
    assert_eq!(regions, ["cn-beijing", "cn-shanghai"], "the file's regions");
    assert_eq!(report["totals"]["created"], 2);

    let (cpu, status, raw): (Option<i32>, Option<String>, serde_json::Value) = sqlx::query_as(
        "SELECT cpu_cores, status, raw FROM ecp.instances WHERE instance_id = 'acp-byhand0000000001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((cpu, status.as_deref()), (None, Some("STOPPED")));
    assert_eq!(raw["Cpu"], "four");
    assert_eq!(raw["SomethingNew"]["a"], 1);
    // Numbers as written, end to end (the simulator used to serve them rounded
    // through f64: 1.1, 1.2345678901234568e29).
    let (zeta, big): (String, String) = sqlx::query_as(
        "SELECT raw ->> 'Zeta', raw ->> 'Big' FROM ecp.instances \
         WHERE instance_id = 'acp-byhand0000000001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (zeta.as_str(), big.as_str()),
        ("1.10", "123456789012345678901234567890")
    );
    let cpu: Option<i32> = sqlx::query_scalar(
        "SELECT cpu_cores FROM ecp.instances WHERE instance_id = 'acp-8at8h6ejkadjh0001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(cpu, Some(4));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fleet_file_that_is_not_one_is_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("ecp-bad-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fleet.json");
    std::fs::write(&file, "[1, 2]").unwrap();
    let out = tool(&[
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--fleet-file",
        file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--fleet-file") && stderr.contains("fleet.json"),
        "{stderr}"
    );
    assert!(stderr.contains("element 0"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crawl_prints_each_record_as_the_service_wrote_it_on_one_line() {
    // A record across several lines, with numbers that a float would change.
    let dir = std::env::temp_dir().join(format!("ecp-crawl-exact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fleet.json");
    let spread = "{\n  \"AndroidInstanceId\": \"acp-exact00000000001\",\n  \"RegionId\": \"cn-beijing\",\r\n  \"Rate\": 123456789012345678901234567890,\n  \"Zeta\": 2.4e2, \"Neg\": -0, \"Name\": \"a\\nb\"\n}";
    std::fs::write(&file, format!("{spread}\n")).unwrap();
    let sim = simulate_with(&["--fleet-file", file.to_str().unwrap()]);
    let (stdout, _) = crawled(&sim.endpoint, "cn-beijing", &[]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one record, one line: {stdout:?}");
    for exact in [
        "123456789012345678901234567890",
        "2.4e2",
        "-0,",
        r#""a\nb""#,
    ] {
        assert!(lines[0].contains(exact), "{exact} not in {}", lines[0]);
    }
    let record: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(record["AndroidInstanceId"], "acp-exact00000000001");
    assert_eq!(record["Name"], "a\nb");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crawl_warns_of_a_listing_clearly_short_of_the_service_count() {
    let sim = simulate_with(&["--instances", "600", "--last-page-early", "2"]);
    let (stdout, stderr) = crawled(
        &sim.endpoint,
        "cn-shanghai",
        &["--page-size", "20", "--log-format", "json"],
    );
    assert_eq!(stdout.lines().count(), 40);
    let warning = stderr
        .lines()
        .find(|l| l.contains("clearly fewer instances"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(warning.contains("\"level\":\"WARN\""), "{warning}");
}

#[test]
fn missing_credentials_are_one_clear_line_and_exit_code_2() {
    let out = tool(&["crawl", "--endpoint", "http://127.0.0.1:9"])
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        "{stderr}"
    );
}

/// `ecp-inventory demo` as the README's first command runs it: nothing set, so it
/// starts its own PostgreSQL under the data directory, syncs twice around a churn,
/// says what changed and how to look further, and leaves the cluster running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_nothing_set_runs_the_whole_job_on_its_own_postgres() {
    use ecp_inventory::pg_local::LocalPostgres;
    let home = std::env::temp_dir().join(format!("ecp-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let mut demo = crate::cli::ecp();
    // Set for `sync`, naming another database: the demo must not touch it.
    let production = "postgres://ecp_writer:Pr0dPassw0rd@127.0.0.1:9/ecp";
    demo.env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", production)
        .args(["demo", "--instances", "300", "--data-dir"])
        .arg(&home);
    let ran = crate::cli::run(&mut demo).await;

    // Stop the cluster it left running before judging, so a failure leaves no
    // server behind.
    let cluster = home.join("postgres");
    let url = LocalPostgres::start(&cluster, &[]).map(|pg| {
        let url = pg.url("ecp_demo");
        (pg, url)
    });
    let runs = match &url {
        Ok((_, url)) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM ecp.sync_runs WHERE status = 'succeeded'",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap()
        }
        Err(_) => 0,
    };
    if let Ok((pg, _)) = &url {
        pg.stop().unwrap();
    }
    let _ = std::fs::remove_dir_all(&home);

    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    for said in [
        "Starting a local PostgreSQL under",
        "1. First sync",
        "3. Second sync",
        "What changed between run 1 and run 2",
        "psql 'postgres://",
        "The local PostgreSQL keeps running",
    ] {
        assert!(ran.stdout.contains(said), "{said:?} in:\n{}", ran.stdout);
    }
    assert_eq!(runs, 2, "two successful runs in the demo's database");
    assert!(!ran.stdout.contains("Pr0dPassw0rd"), "{}", ran.stdout);
}

/// With --database-url the demo uses that database and starts no server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_database_url_uses_that_database() {
    let db = test_db().await;
    let mut demo = crate::cli::ecp();
    demo.args(["demo", "--instances", "300", "--database-url", &db.url]);
    let ran = crate::cli::run(&mut demo).await;
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        !ran.stdout.contains("Starting a local PostgreSQL"),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("keeps running"), "{}", ran.stdout);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.sync_runs WHERE status = 'succeeded'"
        )
        .await,
        2
    );
    assert!(count(&db.pool, "SELECT count(*) FROM ecp.instance_changes").await > 300);

    // Now the database holds an inventory: a second demo would mix simulated
    // instances into it, and is refused, with nothing written.
    let instances = count(&db.pool, "SELECT count(*) FROM ecp.instances").await;
    let ran = crate::cli::run(&mut demo).await;
    ran.assert_one_error(2, "already holds");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instances").await,
        instances
    );
}
