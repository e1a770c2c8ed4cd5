//! Reliability: retries and the shared rate limit, evidence before deletion, scope
//! locks, crashes and lost connections (the real binary, killed for real), bad
//! answers from the API, and a long run under faults.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecp_inventory::api::model::DescribeAndroidInstancesRequest;
use ecp_inventory::api::ratelimit::RateLimiter;
use ecp_inventory::api::retry::RetryPolicy;
use ecp_inventory::api::{ApiError, Client, ClientConfig, Credentials};
use ecp_inventory::simulator::{
    ChurnSpec, Faults, RunningSimulator, Simulator, SimulatorConfig, DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
};
use ecp_inventory::sync::{self, Regions, RunReport, SyncSettings};
use serde_json::Value;
use sqlx::PgPool;
use tokio::process::Child;

use crate::cli::{ecp_with_keys, run, Ran};
use crate::crawl::collect;
use crate::helpers::{count, start_sim, test_db, TestDb};

const REGION: &str = "cn-shanghai";

fn one_region(instances: usize) -> SimulatorConfig {
    SimulatorConfig {
        instances,
        regions: vec![REGION.into()],
        ..Default::default()
    }
}

fn client(running: &RunningSimulator, timeout: Duration, attempts: u32) -> Client {
    Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint: running.endpoint(),
            timeout,
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(20),
                max_retry_after: Duration::from_millis(20),
                max_elapsed: Duration::from_secs(30),
            },
            ..Default::default()
        },
    )
    .unwrap()
}

fn quick(running: &RunningSimulator, attempts: u32) -> Client {
    client(running, Duration::from_secs(10), attempts)
}

fn settings(page_size: u32) -> SyncSettings {
    let mut s = SyncSettings {
        regions: Regions::Only(vec![REGION.into()]),
        lock_wait: Duration::from_secs(2),
        ..Default::default()
    };
    s.crawl.page_size = page_size;
    s
}

/// Polls `check` every 10 ms until it holds, for at most `secs` seconds.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Everything an analyst can see, as counts and the ids of the current fleet.
async fn visible(pool: &PgPool) -> (Vec<i64>, Vec<String>) {
    let mut counts = Vec::new();
    for sql in [
        "SELECT count(*) FROM ecp.instances",
        "SELECT count(*) FROM ecp.instances WHERE deleted_at IS NOT NULL",
        "SELECT count(*) FROM ecp.instance_versions",
        "SELECT count(*) FROM ecp.instance_changes",
        "SELECT count(*) FROM ecp.instance_disks",
        "SELECT count(*) FROM ecp.instance_tags",
        "SELECT count(*) FROM ecp.sync_run_scopes WHERE applied",
    ] {
        counts.push(count(pool, sql).await);
    }
    let ids = current_ids(pool).await;
    (counts, ids)
}

async fn current_ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT instance_id FROM ecp.current_instances ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn sim_ids(sim: &Simulator) -> Vec<String> {
    let mut ids: Vec<String> = sim
        .fleet()
        .iter()
        .filter_map(|i| i["AndroidInstanceId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn run_statuses(pool: &PgPool) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT status, count(*) FROM ecp.sync_runs GROUP BY status")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Sessions the binary holds open (it sets `application_name`).
async fn tool_backends(pool: &PgPool, db: &str) -> Vec<(i32, Option<String>, String)> {
    sqlx::query_as(
        "SELECT pid, wait_event_type, query FROM pg_stat_activity \
         WHERE application_name = 'ecp-inventory' AND datname = $1",
    )
    .bind(db)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn wait_backends_gone(db: &TestDb) {
    wait_for(20, "the killed run's sessions to end", || async move {
        tool_backends(&db.pool, &db.name).await.is_empty()
    })
    .await;
}

fn sync_bin(running: &RunningSimulator, db: &TestDb) -> tokio::process::Command {
    let mut cmd = ecp_with_keys();
    cmd.args(["sync", "--endpoint", &running.endpoint()])
        .args(["--database-url", &db.url])
        .args(["--region", REGION, "--page-size", "10"])
        .args(["--rate-limit", "10000"]);
    cmd
}

async fn kill(mut child: Child) {
    child.kill().await.expect("SIGKILL the sync"); // Child::kill sends SIGKILL
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "it died of the signal, not by itself");
}

// ----- 1. retries -----------------------------------------------------------

#[tokio::test]
async fn a_timeout_is_retried_and_then_the_crawl_completes() {
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 30,
        faults: Faults {
            latency_ms: 400,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let timeout = Duration::from_millis(100);
    // One attempt: a slow answer is a timeout, named as one.
    let err = collect(
        client(&running, timeout, 1),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err.api_error(), Some(ApiError::Timeout { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("no answer"), "{err}");

    // Many attempts: timeouts are retried until the service is fast again.
    let c = client(&running, timeout, 50);
    let heal = {
        let (sim, c) = (sim.clone(), c.clone());
        tokio::spawn(async move {
            // Counted by the client: the server never finishes a timed-out request.
            while c.stats().requests() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sim.set_faults(Faults::default());
        })
    };
    let pages = collect(c.clone(), DescribeAndroidInstancesRequest::default(), 10)
        .await
        .unwrap();
    heal.await.unwrap();
    assert_eq!(pages.iter().map(|p| p.instances.len()).sum::<usize>(), 30);
    assert!(
        c.stats().retries() >= 1,
        "the timed-out attempt was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_shared_by_all_concurrent_scopes() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 300,
        ..Default::default()
    })
    .await;
    let per_second = 50.0;
    let c = Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint: running.endpoint(),
            rate_limiter: Some(Arc::new(RateLimiter::new(per_second))),
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = SyncSettings {
        concurrency: 6,
        ..Default::default()
    };
    s.crawl.page_size = 10;
    let started = Instant::now();
    let report = sync::run(&db.store(), &c, &s).await.unwrap();
    let elapsed = started.elapsed();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert!(report.scopes.len() >= 3, "several scopes ran at once");
    let requests = sim.stats().requests;
    assert!(requests >= 20, "{requests}");
    // Slots of one limiter are evenly spaced, whoever asks: n requests cannot
    // have taken less than n-1 intervals. Per-scope limiters would allow
    // about 1/scopes of that.
    let floor = Duration::from_secs_f64((requests - 1) as f64 / per_second);
    assert!(
        elapsed + Duration::from_millis(5) >= floor,
        "{requests} requests in {elapsed:?}, faster than {per_second}/s"
    );
}

// ----- 2. evidence before deletion --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletion_is_refused_with_exit_4_unless_allowed() {
    let db = test_db().await;
    let (sim, running) = start_sim(one_region(40)).await;
    assert_eq!(run(&mut sync_bin(&running, &db)).await.code, 0);
    let before = visible(&db.pool).await;
    assert_eq!(before.1.len(), 40);

    let churn = sim.churn(&ChurnSpec {
        seed: 5,
        delete: 30,
        ..Default::default()
    });
    assert_eq!(churn.deleted.len(), 30);
    let ran = run(&mut sync_bin(&running, &db)).await;
    ran.assert_one_error(4, "--allow-mass-delete");
    assert!(
        ran.stderr.contains("refusing to mark 30 of the 40"),
        "{}",
        ran.stderr
    );
    assert_eq!(visible(&db.pool).await, before, "nothing applied");

    let ran = run(sync_bin(&running, &db).arg("--allow-mass-delete")).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(current_ids(&db.pool).await, sim_ids(&sim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_where_instances_existed_is_refused() {
    let db = test_db().await;
    let (_full, running) = start_sim(one_region(20)).await;
    assert_eq!(run(&mut sync_bin(&running, &db)).await.code, 0);
    let before = visible(&db.pool).await;
    // The same account, suddenly answering with nothing (a permission change, an
    // API problem): even 100% > --max-delete-share 1 is not taken as evidence.
    let (_empty, running) = start_sim(one_region(0)).await;
    let ran = run(sync_bin(&running, &db).args(["--max-delete-share", "1"])).await;
    ran.assert_one_error(4, "--allow-mass-delete");
    assert_eq!(visible(&db.pool).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_sync_never_deletes() {
    let db = test_db().await;
    let (sim, running) = start_sim(one_region(60)).await;
    let c = quick(&running, 3);
    let all = sync::run(&db.store(), &c, &settings(20)).await.unwrap();
    assert!(all.succeeded());
    let mut s = settings(20);
    s.filters.status = Some("RUNNING".into());
    let running_only = sim
        .fleet()
        .iter()
        .filter(|i| i["AndroidInstanceStatus"] == "RUNNING")
        .count();
    assert!(running_only < 60, "some instances are not RUNNING");
    let report = sync::run(&db.store(), &c, &s).await.unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.totals.deleted, 0);
    assert_eq!(current_ids(&db.pool).await.len(), 60);
}

// ----- 3. overlap -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_scope_exits_3_after_the_lock_wait() {
    let db = test_db().await;
    let (_sim, running) = start_sim(one_region(10)).await;
    // Another session holds the scope's lock, as a run still going would.
    let mut holder = db.pool.acquire().await.unwrap();
    let got: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_lock(1162039297, hashtext('default' || E'\\x1f' || $1))",
    )
    .bind(REGION)
    .fetch_one(&mut *holder)
    .await
    .unwrap();
    assert!(got);
    let ran = run(sync_bin(&running, &db).args(["--lock-wait-secs", "0.3"])).await;
    ran.assert_one_error(3, "locked by another run");
    assert!(ran.stderr.contains("--lock-wait-secs"), "{}", ran.stderr);
    // The scope named once, and the run's one scope said so.
    let scope = format!("default/{REGION}");
    let error = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    assert_eq!(
        error.matches(&format!("scope {scope}")).count(),
        1,
        "{error}"
    );
    assert!(ran.stdout.contains(": 1 scope, "), "{}", ran.stdout);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instances").await,
        0
    );

    // Released: the next run goes through.
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut *holder)
        .await
        .unwrap();
    let ran = run(&mut sync_bin(&running, &db)).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

// ----- 4. crashes and lost connections, for real ---------------------------------

/// A synced database and a fleet that has changed since, so that the next apply
/// would write: creations, deletions, updates.
async fn synced_then_churned(instances: usize) -> (TestDb, Simulator, RunningSimulator) {
    let db = test_db().await;
    let (sim, running) = start_sim(one_region(instances)).await;
    let report = sync::run(&db.store(), &quick(&running, 3), &settings(100))
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    sim.churn(&ChurnSpec {
        seed: 11,
        create: 20,
        delete: 10,
        status: 30,
        rename: 10,
        retag: 10,
        resize_disk: 5,
        volatile: 30,
    });
    (db, sim, running)
}

/// After a crash: nothing visible changed, the killed run is still 'running' (its
/// process died), the next run marks it abandoned and brings the inventory level
/// with the fleet.
async fn next_run_recovers(db: &TestDb, sim: &Simulator, running: &RunningSimulator) {
    sim.set_faults(Faults::default());
    let ran = run(&mut sync_bin(running, db)).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let statuses = run_statuses(&db.pool).await;
    assert!(!statuses.contains_key("running"), "{statuses:?}");
    assert_eq!(current_ids(&db.pool).await, sim_ids(sim));
    // Temporary tables go when their session has ended, just after the process.
    wait_backends_gone(db).await;
    let stage_tables = count(
        &db.pool,
        "SELECT count(*) FROM pg_class WHERE relname IN ('ecp_stage', 'ecp_apply')",
    )
    .await;
    assert_eq!(stage_tables, 0, "no staging left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_crawl_changes_nothing_and_the_next_run_succeeds() {
    let (db, sim, running) = synced_then_churned(400).await;
    let before = visible(&db.pool).await;
    sim.set_faults(Faults {
        latency_ms: 20,
        ..Default::default()
    });
    let pages_before = sim.stats().pages;
    let child = sync_bin(&running, &db).spawn().unwrap();
    let s = &sim;
    wait_for(20, "the crawl to be under way", || async move {
        s.stats().pages >= pages_before + 5
    })
    .await;
    kill(child).await;
    wait_backends_gone(&db).await;
    assert_eq!(visible(&db.pool).await, before, "nothing applied");
    assert_eq!(run_statuses(&db.pool).await.get("running"), Some(&1));

    next_run_recovers(&db, &sim, &running).await;
    assert_eq!(run_statuses(&db.pool).await.get("abandoned"), Some(&1));
}

/// Holds back the apply's last write (its ledger line, written in the same
/// transaction as everything else) until the test lets go, so the process can be
/// killed, or its connection cut, with every other write of the apply done but
/// not committed.
async fn block_apply_at_its_last_write(db: &TestDb) -> sqlx::Transaction<'static, sqlx::Postgres> {
    crate::helpers::hold_table_lock(db, "ecp.sync_run_scopes").await
}

async fn wait_apply_blocked(db: &TestDb) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let blocked =
            tool_backends(&db.pool, &db.name)
                .await
                .into_iter()
                .find(|(_, wait, query)| {
                    wait.as_deref() == Some("Lock") && query.contains("sync_run_scopes")
                });
        if let Some((pid, _, _)) = blocked {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the apply to reach its last write"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_apply_leaves_the_previous_state() {
    let (db, sim, running) = synced_then_churned(400).await;
    let before = visible(&db.pool).await;
    let blocker = block_apply_at_its_last_write(&db).await;
    let child = sync_bin(&running, &db).spawn().unwrap();
    wait_apply_blocked(&db).await;
    // The apply has written instances, versions and changes in its transaction.
    kill(child).await;
    blocker.rollback().await.unwrap();
    wait_backends_gone(&db).await;
    assert_eq!(visible(&db.pool).await, before, "no half-applied snapshot");
    assert_eq!(run_statuses(&db.pool).await.get("running"), Some(&1));

    next_run_recovers(&db, &sim, &running).await;
    assert_eq!(run_statuses(&db.pool).await.get("abandoned"), Some(&1));
}

/// Sends SIGTERM, as Kubernetes does to stop a pod, and waits for the process to
/// end by itself.
async fn terminate(child: Child) -> Ran {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill(1)");
    assert!(sent.success());
    let out = child.wait_with_output().await.unwrap();
    Ran {
        code: out
            .status
            .code()
            .expect("it exited, not died of the signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn piped(mut cmd: tokio::process::Command) -> Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The run's row once SIGTERM has ended it: failed, naming the signal, at once.
async fn interrupted_run(db: &TestDb, ran: &Ran) {
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("interrupted by SIGTERM"),
        "{}",
        ran.stderr
    );
    let (status, error) = crate::helpers::last_run(&db.pool).await;
    assert_eq!(status, "failed");
    assert!(error.contains("SIGTERM"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_crawl_records_the_run_failed_and_changes_nothing() {
    let (db, sim, running) = synced_then_churned(400).await;
    let before = visible(&db.pool).await;
    // Slow enough that the crawl cannot end before the signal lands.
    sim.set_faults(Faults {
        latency_ms: 200,
        ..Default::default()
    });
    let pages_before = sim.stats().pages;
    let mut cmd = sync_bin(&running, &db);
    cmd.args(["--output", "json"]);
    let child = piped(cmd);
    let s = &sim;
    wait_for(20, "the crawl to be under way", || async move {
        s.stats().pages >= pages_before + 2
    })
    .await;
    let ran = terminate(child).await;
    interrupted_run(&db, &ran).await;
    // The report still says how far the crawl got, and that none of it applied.
    let report: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect(&ran.stdout);
    let scope = &report["scopes"][0];
    assert!(scope["pages"].as_u64().unwrap() >= 1, "{report}");
    assert!(scope["instances"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(scope["complete"], false, "{report}");
    assert_eq!(scope["counts"], serde_json::Value::Null, "{report}");
    // So does the ledger.
    let (complete, applied, pages, seen, error): (bool, bool, i64, i64, Option<String>) =
        sqlx::query_as(
            "SELECT complete, applied, pages_fetched, instances_seen, error \
             FROM ecp.sync_run_scopes WHERE run_id = $1",
        )
        .bind(report["run_id"].as_i64().unwrap())
        .fetch_one(&db.pool)
        .await
        .expect("a line for the scope given up");
    assert_eq!((complete, applied), (false, false));
    assert_eq!(pages as u64, scope["pages"].as_u64().unwrap());
    assert_eq!(seen as u64, scope["instances"].as_u64().unwrap());
    assert!(error.unwrap_or_default().contains("SIGTERM"));
    wait_backends_gone(&db).await;
    assert_eq!(visible(&db.pool).await, before, "nothing applied");

    next_run_recovers(&db, &sim, &running).await;
    let statuses = run_statuses(&db.pool).await;
    assert_eq!(statuses.get("failed"), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get("abandoned"), None, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_regions_are_listed_ends_before_any_run_is_recorded() {
    let db = test_db().await;
    // An endpoint that takes the request and never answers: the listing of the
    // regions is still waiting when the signal comes.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut cmd = ecp_with_keys();
    cmd.args(["sync", "--endpoint", &endpoint])
        .args(["--database-url", &db.url]);
    let child = piped(cmd);
    let (_held, _) = tokio::time::timeout(Duration::from_secs(20), silent.accept())
        .await
        .expect("the regions to be asked for")
        .unwrap();
    let started = Instant::now();
    let ran = terminate(child).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait"
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("interrupted by SIGTERM before the run started"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.sync_runs").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_apply_rolls_it_back_and_records_the_run_failed() {
    let (db, sim, running) = synced_then_churned(400).await;
    let before = visible(&db.pool).await;
    let blocker = block_apply_at_its_last_write(&db).await;
    let child = piped(sync_bin(&running, &db));
    wait_apply_blocked(&db).await;
    // The apply has written instances, versions and changes in its transaction,
    // and waits for its ledger line.
    let ran = terminate(child).await;
    interrupted_run(&db, &ran).await;
    // From PostgreSQL 14 the server notices its client gone and ends the apply
    // while it still waits: the scope's lock is free for the next run at once.
    // Before, the apply ends only once it gets its lock.
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    if version >= 140_000 {
        wait_backends_gone(&db).await;
        blocker.rollback().await.unwrap();
    } else {
        blocker.rollback().await.unwrap();
        wait_backends_gone(&db).await;
    }
    assert_eq!(visible(&db.pool).await, before, "no half-applied snapshot");

    next_run_recovers(&db, &sim, &running).await;
    assert_eq!(run_statuses(&db.pool).await.get("failed"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_crawl_fails_clearly_and_applies_nothing() {
    // Enough instances for more than one of the binary's batches (4 MB of COPY
    // text, some 1,500 instances): the crawl sends one after the connection is
    // lost, and learns of it then.
    let (db, sim, running) = synced_then_churned(2500).await;
    let before = visible(&db.pool).await;
    sim.set_faults(Faults {
        latency_ms: 20,
        ..Default::default()
    });
    let pages_before = sim.stats().pages;
    let child = sync_bin(&running, &db).spawn().unwrap();
    let s = &sim;
    wait_for(20, "the crawl to be under way", || async move {
        s.stats().pages >= pages_before + 3
    })
    .await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'ecp-inventory' AND datname = $1",
    )
    .bind(&db.name)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!killed.is_empty() && killed.iter().all(|k| *k));
    sim.set_faults(Faults::default());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(!said.is_empty(), "{stderr}");
    assert!(said.iter().any(|l| l.contains("database")), "{said:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    wait_backends_gone(&db).await;
    assert_eq!(visible(&db.pool).await, before, "nothing partially applied");
    let (complete, applied, error) = last_scope_line(&db).await;
    assert_eq!((complete, applied), (false, false));
    assert!(!error.is_empty());

    next_run_recovers(&db, &sim, &running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_apply_rolls_it_back() {
    let (db, sim, running) = synced_then_churned(400).await;
    let before = visible(&db.pool).await;
    let blocker = block_apply_at_its_last_write(&db).await;
    let child = sync_bin(&running, &db).spawn().unwrap();
    let pid = wait_apply_blocked(&db).await;
    let ok: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(ok);
    // Let go at once: the scope's line, written on another connection, takes
    // the same lock.
    blocker.rollback().await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("error:")), "{stderr}");
    wait_backends_gone(&db).await;
    assert_eq!(visible(&db.pool).await, before, "rolled back");
    let (complete, applied, error) = last_scope_line(&db).await;
    assert_eq!((complete, applied), (true, false));
    assert!(!error.is_empty());
    next_run_recovers(&db, &sim, &running).await;
}

/// The ledger line of the latest run's only scope, written even when the
/// scope's own connection is the one that was lost: complete, applied, error.
async fn last_scope_line(db: &TestDb) -> (bool, bool, String) {
    let (complete, applied, error): (bool, bool, Option<String>) = sqlx::query_as(
        "SELECT complete, applied, error FROM ecp.sync_run_scopes \
         WHERE run_id = (SELECT max(run_id) FROM ecp.sync_runs)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("a line for the scope");
    (complete, applied, error.unwrap_or_default())
}

// ----- 5. bad answers from the API -----------------------------------------------

/// A synced scope, then one more sync with `faults` (and edits) on: the report, and
/// whether what analysts see is unchanged.
async fn sync_with_faults(
    faults: Faults,
    edit: impl FnOnce(&Simulator),
) -> (TestDb, Simulator, RunReport, bool) {
    let db = test_db().await;
    let (sim, running) = start_sim(one_region(100)).await;
    let c = quick(&running, 2);
    assert!(sync::run(&db.store(), &c, &settings(10))
        .await
        .unwrap()
        .succeeded());
    let before = visible(&db.pool).await;
    sim.churn(&ChurnSpec {
        seed: 3,
        status: 10,
        ..Default::default()
    });
    edit(&sim);
    sim.set_faults(faults);
    let report = sync::run(&db.store(), &c, &settings(10)).await.unwrap();
    let unchanged = visible(&db.pool).await == before;
    (db, sim, report, unchanged)
}

fn scope_error(report: &RunReport) -> String {
    assert!(!report.succeeded());
    report.scopes[0].error.clone().expect("the scope failed")
}

/// A RequestId the simulator issued (an upper-case UUID), not "none".
fn names_a_request_id(text: &str) -> bool {
    let Some(at) = text.find("RequestId ") else {
        return false;
    };
    let id: String = text[at + 10..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    id.len() == 36
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pages_fail_the_scope_naming_page_and_request_and_apply_nothing() {
    // The pages the service answered: a page that did not parse or came as an
    // HTML error is not one, a page whose cursor repeats an earlier one is.
    for (faults, answered) in [
        (
            Faults {
                malformed_json_page: Some(3),
                ..Default::default()
            },
            2,
        ),
        (
            Faults {
                html_502_page: Some(3),
                ..Default::default()
            },
            2,
        ),
        (
            Faults {
                stuck_token_page: Some(3),
                ..Default::default()
            },
            3,
        ),
    ] {
        let (db, _sim, report, unchanged) = sync_with_faults(faults.clone(), |_| {}).await;
        let error = scope_error(&report);
        assert!(error.starts_with("page 3"), "{faults:?}: {error}");
        assert!(names_a_request_id(&error), "{faults:?}: {error}");
        assert!(unchanged, "{faults:?}: nothing applied");
        assert_eq!(report.scopes[0].pages, answered, "{faults:?}");
        let recorded: i64 =
            sqlx::query_scalar("SELECT pages_fetched FROM ecp.sync_run_scopes WHERE run_id = $1")
                .bind(report.run_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(recorded, answered as i64, "{faults:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_an_id_is_skipped_counted_and_deletes_nothing() {
    let mut victim = String::new();
    let (db, sim, report, _) = sync_with_faults(Faults::default(), |sim| {
        victim = sim.instance_ids(50)[42].clone();
        assert!(sim.edit_instance(&victim, |j| {
            j.remove("AndroidInstanceId");
        }));
    })
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].skipped, 1);
    let skipped: i64 =
        sqlx::query_scalar("SELECT records_skipped FROM ecp.sync_run_scopes WHERE run_id = $1")
            .bind(report.run_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(skipped, 1);
    // The rest is applied (the churned statuses are there) ...
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT instance_id, status FROM ecp.current_instances")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        stored.len(),
        100,
        "the skipped instance is not marked deleted"
    );
    for i in sim.fleet() {
        let id = i["AndroidInstanceId"].as_str().unwrap_or(victim.as_str());
        if id == victim {
            continue;
        }
        let status = stored.iter().find(|(s, _)| s == id).map(|(_, st)| st);
        assert_eq!(
            status.and_then(|s| s.as_deref()),
            i["AndroidInstanceStatus"].as_str(),
            "{id}"
        );
    }
    assert_eq!(report.totals.deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_a_short_listing_lost_are_asked_for_by_id_and_kept() {
    // Page 4 of 10 says it is the last while TotalCount still counts 100: the
    // service lost the tail of the listing. The 60 it left out are still current
    // in the store, so they are asked for by id before anything is deleted: they
    // answer, and are applied like listed ones (their churned statuses too).
    let (db, sim, report, _) = sync_with_faults(
        Faults {
            last_page_early: Some(4),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    let scope = &report.scopes[0];
    assert_eq!((scope.instances, scope.total_count), (100, Some(100)));
    assert!(scope.complete && !scope.deletions_withheld, "{scope:?}");
    assert_eq!(report.totals.deleted, 0);
    assert_eq!(current_ids(&db.pool).await, sim_ids(&sim));
    let statuses: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT instance_id, status FROM ecp.current_instances")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    for i in sim.fleet() {
        let id = i["AndroidInstanceId"].as_str().unwrap();
        let stored = statuses.iter().find(|(s, _)| s == id).map(|(_, st)| st);
        assert_eq!(
            stored.and_then(|s| s.as_deref()),
            i["AndroidInstanceStatus"].as_str(),
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_listing_deletes_exactly_the_instances_that_are_gone() {
    // Three instances are deleted, and the listing of the 97 left loses its last
    // page (seven more, clearly short of the count, which withheld every
    // deletion before): of the ten the crawl did not return, the three gone are
    // marked deleted, the seven that answer when asked for by id are not.
    let gone = std::sync::Mutex::new(Vec::new());
    let (db, sim, report, _) = sync_with_faults(
        Faults {
            last_page_early: Some(9),
            ..Default::default()
        },
        |sim| {
            let churned = sim.churn(&ChurnSpec {
                seed: 11,
                delete: 3,
                ..Default::default()
            });
            *gone.lock().unwrap() = churned.deleted;
        },
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    let scope = &report.scopes[0];
    assert_eq!(scope.total_count, Some(97));
    assert!(!scope.deletions_withheld, "{scope:?}");
    assert_eq!(report.totals.deleted, 3);
    assert_eq!(current_ids(&db.pool).await, sim_ids(&sim));
    let mut deleted: Vec<String> = sqlx::query_scalar(
        "SELECT instance_id FROM ecp.instance_changes WHERE change_kind = 'deleted' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    deleted.sort();
    let mut gone = gone.into_inner().unwrap();
    gone.sort();
    assert_eq!(deleted, gone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_as_strings_and_strings_as_numbers() {
    let ids = std::sync::Mutex::new(Vec::new());
    let (db, _sim, report, _) = sync_with_faults(Faults::default(), |sim| {
        let picked = sim.instance_ids(2);
        sim.edit_instance(&picked[0], |j| {
            j.insert("Memory".into(), Value::from("8192"));
        });
        sim.edit_instance(&picked[1], |j| {
            j.insert("Cpu".into(), Value::from("four"));
        });
        *ids.lock().unwrap() = picked;
    })
    .await;
    let ids = ids.into_inner().unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert!(report.scopes[0].field_problems >= 1);
    let row = |id: String| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (Option<i32>, Option<i32>, Value)>(
                "SELECT cpu_cores, memory_mib, raw FROM ecp.current_instances WHERE instance_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (_, memory, _) = row(ids[0].clone()).await;
    assert_eq!(memory, Some(8192), "a number sent as a string is read");
    let (cpu, _, raw) = row(ids[1].clone()).await;
    assert_eq!(cpu, None, "a word where a number belongs is NULL ...");
    assert_eq!(raw["Cpu"], "four", "... and kept as sent in raw");
    assert_eq!(current_ids(&db.pool).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_instance_and_an_empty_page_leave_exactly_the_fleet() {
    for faults in [
        Faults {
            duplicate_page: Some(4),
            ..Default::default()
        },
        Faults {
            empty_page: Some(4),
            ..Default::default()
        },
    ] {
        let (db, sim, report, _) = sync_with_faults(faults.clone(), |_| {}).await;
        assert!(report.succeeded(), "{faults:?}: {}", report.summary_line());
        assert_eq!(current_ids(&db.pool).await, sim_ids(&sim), "{faults:?}");
        assert_eq!(report.totals.deleted, 0, "{faults:?}");
        let versions = count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_versions WHERE valid_to IS NULL",
        )
        .await;
        assert_eq!(versions, 100, "{faults:?}: one open version each");
    }
    let (_, _, report, _) = sync_with_faults(
        Faults {
            duplicate_page: Some(4),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    assert_eq!(report.scopes[0].duplicates, 1);
}

/// An HTTP server that answers every request with a body past the client's cap:
/// announced by Content-Length, or streamed chunked without one.
async fn huge_answer_server(chunked: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let size = 40 << 20;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-acs-request-id: HUGE-REQUEST-1\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-acs-request-id: HUGE-REQUEST-1\r\ncontent-length: {size}\r\n\r\n")
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 1 << 20];
                for _ in 0..40 {
                    let ok = if chunked {
                        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        sock.write_all(&framed).await
                    } else {
                        sock.write_all(&chunk).await
                    };
                    if ok.is_err() {
                        return; // the client gave up, as it should
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_past_the_size_cap_is_refused_and_nothing_applied() {
    for chunked in [false, true] {
        let db = test_db().await;
        let endpoint = huge_answer_server(chunked).await;
        let c = Client::new(
            Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
            ClientConfig {
                endpoint,
                retry: RetryPolicy {
                    max_attempts: 3,
                    base_delay: Duration::from_millis(1),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        let report = sync::run(&db.store(), &c, &settings(100)).await.unwrap();
        let error = scope_error(&report);
        assert!(error.starts_with("page 1"), "{error}");
        assert!(error.contains("response larger than"), "{error}");
        assert!(error.contains("RequestId HUGE-REQUEST-1"), "{error}");
        assert_eq!(
            count(&db.pool, "SELECT count(*) FROM ecp.instances").await,
            0
        );
        // A 200 that is too large is not retried: it would only be as large again.
        // (One DescribeRegions, one page.)
        assert_eq!(c.stats().requests(), 2, "chunked: {chunked}");
    }
}

// ----- 8. a long run under faults ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_instances_through_throttling_503s_and_latency() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 10_000,
        faults: Faults {
            seed: 17,
            throttle_rate: 0.2,
            error_503_rate: 0.05,
            latency_ms: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let c = quick(&running, 30);
    let s = SyncSettings::default();
    let report = sync::run(&db.store(), &c, &s).await.unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    let stats = sim.stats();
    assert!(
        stats.errors.get("Throttling.User").copied().unwrap_or(0) > 10,
        "{stats:?}"
    );
    assert!(
        stats.errors.get("ServiceUnavailable").copied().unwrap_or(0) > 2,
        "{stats:?}"
    );
    assert_eq!(report.throttled, stats.errors["Throttling.User"]);

    type Row = (String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT instance_id, status, instance_name, biz_region_id FROM ecp.current_instances ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut fleet: Vec<Value> = sim.fleet();
    fleet.sort_by(|a, b| {
        a["AndroidInstanceId"]
            .as_str()
            .cmp(&b["AndroidInstanceId"].as_str())
    });
    assert_eq!(rows.len(), 10_000);
    assert_eq!(fleet.len(), 10_000);
    for ((id, status, name, region), want) in rows.iter().zip(&fleet) {
        assert_eq!(Some(id.as_str()), want["AndroidInstanceId"].as_str());
        assert_eq!(
            status.as_deref(),
            want["AndroidInstanceStatus"].as_str(),
            "{id}"
        );
        assert_eq!(
            name.as_deref(),
            want["AndroidInstanceName"].as_str(),
            "{id}"
        );
        assert_eq!(region.as_deref(), want["RegionId"].as_str(), "{id}");
    }
    let unique: HashSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(unique.len(), 10_000);
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the comm may hold spaces, the last ')' ends it.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_benchmark_with_its_simulator_and_its_server() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-signal-{}", std::process::id()));
    let mut cmd = crate::cli::ecp();
    // PATH: the server is started through runuser when the tests run as root.
    cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["bench", "--sizes", "200000", "--history-runs", "0"])
        .args(["--latency-ms", "0", "--data-dir", dir.to_str().unwrap()]);
    let child = piped(cmd);
    let pid = child.id().unwrap();
    // Under way: its server up and its simulator started.
    let started = Instant::now();
    let simulator = loop {
        let simulators: Vec<u32> = children_of(pid)
            .into_iter()
            .filter(|c| {
                std::fs::read_to_string(format!("/proc/{c}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.contains("simulate"))
            })
            .collect();
        if let (Some(&sim), true) = (simulators.first(), dir.join("data/postmaster.pid").exists()) {
            break sim;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the benchmark never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // (A simulator left running keeps the pipes open: no end in sight.)
    let ran = tokio::time::timeout(Duration::from_secs(60), terminate(child))
        .await
        .expect("the benchmark and its simulator to end");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("interrupted by SIGTERM"),
        "{}",
        ran.stderr
    );
    assert!(
        !dir.join("data/postmaster.pid").exists(),
        "the benchmark's server still runs"
    );
    let gone = Instant::now();
    while std::path::Path::new(&format!("/proc/{simulator}")).exists() {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the simulator still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
