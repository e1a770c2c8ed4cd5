//! The binary as an operator runs it: each configuration mistake ends in one clear
//! line on stderr, no backtrace, and its documented exit code; no secret ever shows
//! up in its output, even at the most verbose log level.

use std::path::PathBuf;
use std::process::Stdio;

use ecp_inventory::api::Credentials;
use ecp_inventory::simulator::{SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};
use tokio::process::Command;

use crate::helpers::{start_sim, test_db, TestDb};

/// An empty home directory, so the credentials chain finds no aliyun CLI profile.
fn empty_home() -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// The binary with a clean environment: no credentials unless the test adds them,
/// no metadata service or CLI profile probing, JSON logs (so the messages `main`
/// prints stand apart from log lines), backtraces on if anything would print one.
pub fn ecp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecp-inventory"));
    cmd.env_clear()
        .env("HOME", empty_home())
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
        .env("ECP_LOG_FORMAT", "json")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// `ecp()` with the simulator's key pair.
pub fn ecp_with_keys() -> Command {
    let mut cmd = ecp();
    cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET);
    cmd
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Lines of stderr that are not JSON log records: what `main` said.
    pub fn messages(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('{'))
            .collect()
    }

    /// Exactly one line, `error: ...` containing `needle`, and the exit code.
    #[track_caller]
    pub fn assert_one_error(&self, code: i32, needle: &str) {
        let messages = self.messages();
        assert_eq!(self.code, code, "exit code; stderr:\n{}", self.stderr);
        assert_eq!(messages.len(), 1, "one line; stderr:\n{}", self.stderr);
        assert!(messages[0].starts_with("error: "), "{}", messages[0]);
        assert!(
            messages[0].contains(needle),
            "{:?} not in {}",
            needle,
            messages[0]
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{}",
            self.stderr
        );
    }
}

pub async fn run(cmd: &mut Command) -> Ran {
    let out = cmd.output().await.expect("run the binary");
    Ran {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A loopback port nobody listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn missing_credentials_exit_2_naming_the_variables() {
    let ran = run(ecp().args([
        "sync",
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
    ]))
    .await;
    ran.assert_one_error(2, "ALIBABA_CLOUD_ACCESS_KEY_ID");
    assert!(
        ran.stderr.contains("no usable credentials"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn a_missing_or_malformed_database_url_exits_2() {
    let ran = run(ecp_with_keys().arg("sync")).await;
    ran.assert_one_error(2, "DATABASE_URL");
    let ran = run(ecp_with_keys().args(["sync", "--database-url", "mysql:/x y"])).await;
    ran.assert_one_error(2, "not a valid PostgreSQL URL");
}

#[tokio::test]
async fn an_unreachable_database_is_said_to_refuse_the_connection() {
    let url = format!("postgres://ecp@127.0.0.1:{}/ecp", closed_port());
    let ran = run(ecp_with_keys().args(["sync", "--database-url", &url])).await;
    ran.assert_one_error(1, "cannot connect to PostgreSQL at ecp@127.0.0.1");
    assert!(ran.stderr.contains("refused"), "{}", ran.stderr);
}

/// TLS the server does not offer is the URL's mistake, not the run's.
#[tokio::test]
async fn tls_required_of_a_server_without_it_exits_2() {
    let db = test_db().await;
    let url = format!("{}?sslmode=require", db.url);
    let ran = run(ecp_with_keys().args(["sync", "--database-url", &url])).await;
    ran.assert_one_error(2, "TLS");
}

#[tokio::test]
async fn a_database_that_does_not_exist_exits_2() {
    let db = test_db().await;
    let url = db.url.replace(&db.name, "no_such_database");
    let ran = run(ecp_with_keys().args(["sync", "--database-url", &url])).await;
    ran.assert_one_error(2, "no_such_database");
    assert!(ran.stderr.contains("cannot connect"), "{}", ran.stderr);
}

#[tokio::test]
async fn a_database_user_without_rights_exits_2_with_permission_denied() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let role = format!("ecp_noright_{}", &db.name[5..13]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw'"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let url = with_user(&db.url, &role, "pw");
    for extra in [None, Some("--no-migrate")] {
        let mut cmd = ecp_with_keys();
        cmd.args([
            "sync",
            "--endpoint",
            &running.endpoint(),
            "--database-url",
            &url,
        ]);
        cmd.args(extra);
        let ran = run(&mut cmd).await;
        ran.assert_one_error(2, "permission denied");
        if extra.is_none() {
            // The way out: migrate as the owner, sync without migrating.
            assert!(ran.stderr.contains("--no-migrate"), "{}", ran.stderr);
        } else {
            // What to grant, found before any statement needed it: no
            // server error, so no sqlx position in the job's own SQL.
            assert!(
                ran.stderr.contains("USAGE on schema ecp;"),
                "{}",
                ran.stderr
            );
            assert!(
                ran.stderr
                    .contains("SELECT, INSERT, UPDATE on ecp.instances;"),
                "{}",
                ran.stderr
            );
            assert!(!ran.stderr.contains("at line"), "{}", ran.stderr);
            // Said once (the JSON log line that repeats the error aside).
            assert_eq!(
                ran.messages().concat().matches("permission denied").count(),
                1,
                "{}",
                ran.stderr
            );
        }
    }
    assert_eq!(
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.sync_runs").await,
        0
    );

    // `migrate` as this user names the way out, without a line of the job's
    // own SQL ("at line 3655"); once it may see that the schema is current,
    // there is nothing to migrate, and it says so.
    let migrate = |url: String| async move {
        run(ecp_with_keys().args(["migrate", "--database-url", &url])).await
    };
    let ran = migrate(url.clone()).await;
    ran.assert_one_error(2, "schema's owner");
    assert!(!ran.stderr.contains("at line"), "{}", ran.stderr);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "GRANT SELECT ON public._sqlx_migrations TO {role}"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let ran = migrate(url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("already up to date"), "{}", ran.stdout);
}

/// A login role of the test database, granted `grants` (with `{role}` for its
/// name) by the owner; its URL.
async fn role_with(db: &TestDb, prefix: &str, grants: &str) -> (String, String) {
    let role = format!("{prefix}_{}", &db.name[5..13]);
    let sql =
        format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'; ") + &grants.replace("{role}", &role);
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&db.pool)
        .await
        .unwrap();
    let url = with_user(&db.url, &role, "pw");
    (role, url)
}

/// Runs `sql` as the test database's owner.
async fn as_owner(db: &TestDb, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&db.pool)
        .await
        .unwrap();
}

/// `sync` of cn-shanghai from `endpoint` into `url`.
async fn sync_shanghai(endpoint: &str, url: &str) -> Ran {
    run(ecp_with_keys()
        .args(["sync", "--endpoint", endpoint])
        .args(["--database-url", url, "--region", "cn-shanghai"]))
    .await
}

/// A misspelt `--source` moves the region's instances to it from its second
/// run on (as a renamed alias would): said in the log, naming the scope they
/// came from, where the summary only counted them as updated.
#[tokio::test]
async fn instances_that_move_from_another_scope_are_said_to() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 60,
        ..Default::default()
    })
    .await;
    let endpoint = running.endpoint();
    let ran = sync_shanghai(&endpoint, &db.url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let misspelt = || async {
        run(ecp_with_keys()
            .args(["sync", "--endpoint", &endpoint, "--source", "defualt"])
            .args(["--database-url", &db.url, "--region", "cn-shanghai"]))
        .await
    };
    // The first run of the new alias leaves them where they are (two sources
    // naming one account?); the second moves them.
    let first = misspelt().await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stderr.contains("move here"), "{}", first.stderr);
    let second = misspelt().await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let line = second
        .stderr
        .lines()
        .find(|l| l.contains("instances move here from another scope"))
        .unwrap_or_else(|| panic!("no warning of the move: {}", second.stderr));
    assert!(line.contains("default/cn-shanghai"), "{line}");
}

/// What the README grants a sync's user once the schema's owner migrated.
const WRITER_GRANTS: &str = "GRANT USAGE ON SCHEMA ecp TO {role}; \
     GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ecp TO {role}; \
     GRANT SELECT ON public._sqlx_migrations TO {role}; ";

/// A user with the rights a sync needs on a migrated schema, and no more, syncs
/// without --no-migrate: the current schema is not migrated again (the migrator
/// would first try to create its ledger table, which this user may not).
#[tokio::test]
async fn a_least_privileged_writer_syncs_a_current_schema() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let (role, url) = role_with(&db, "ecp_writer", WRITER_GRANTS).await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        crate::helpers::count(
            &db.pool,
            "SELECT count(*) FROM ecp.sync_runs WHERE status = 'succeeded'"
        )
        .await,
        1
    );
    as_owner(&db, format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

/// `--volatile-fields ''` is the empty list: a change of `SessionStatus`, `Rate`
/// or `GmtModified` alone is history like any other (it was refused as a column
/// named "").
#[tokio::test]
async fn an_empty_volatile_list_makes_every_change_history() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 20,
        ..Default::default()
    })
    .await;
    let sync = || async {
        run(ecp_with_keys()
            .args(["sync", "--endpoint", &running.endpoint()])
            .args(["--database-url", &db.url, "--volatile-fields", ""]))
        .await
    };
    let first = sync().await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let churned = sim.churn(&ecp_inventory::simulator::ChurnSpec {
        seed: 7,
        volatile: 5,
        ..Default::default()
    });
    assert_eq!(churned.volatile.len(), 5);
    let second = sync().await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    let changed = crate::helpers::count(
        &db.pool,
        "SELECT count(DISTINCT instance_id) FROM ecp.instance_changes \
         WHERE change_kind = 'updated' \
           AND field IN ('session_status', 'rate', 'modified_at')",
    )
    .await;
    assert_eq!(changed, 5);
}

/// `sync --no-migrate` on a database the job never migrated says so, and how to.
#[tokio::test]
async fn no_migrate_on_an_unmigrated_database_exits_2_saying_what_to_run() {
    let db = crate::helpers::test_db_migrated_to(Some(0)).await;
    let cases = [
        (Some("--no-migrate"), None),
        (None, Some("true")),
        (None, Some("yes")),
        (None, Some("1")),
    ];
    for (flag, env) in cases {
        let mut cmd = ecp_with_keys();
        cmd.args(["sync", "--endpoint", "http://127.0.0.1:9"])
            .args(["--database-url", &db.url, "--region", "cn-shanghai"])
            .args(flag);
        if let Some(value) = env {
            cmd.env("ECP_NO_MIGRATE", value);
        }
        let ran = run(&mut cmd).await;
        ran.assert_one_error(2, "migrations up to 0");
        assert!(
            ran.stderr.contains("ecp-inventory migrate"),
            "{}",
            ran.stderr
        );
        // Perhaps the wrong database altogether.
        assert!(ran.stderr.contains("the right database?"), "{}", ran.stderr);
    }

    // A schema a newer version migrated is refused too, and said to be newer.
    let db = test_db().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', true, '\\x00', 0)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Whatever the command: an image rolled back must not migrate, sync or
    // prune a schema it does not know.
    let commands: [&[&str]; 4] = [
        &[
            "sync",
            "--no-migrate",
            "--endpoint",
            "http://127.0.0.1:9",
            "--region",
            "cn-shanghai",
        ],
        &[
            "sync",
            "--endpoint",
            "http://127.0.0.1:9",
            "--region",
            "cn-shanghai",
        ],
        &["migrate"],
        &["prune", "--older-than", "1d"],
    ];
    for args in commands {
        let ran = run(ecp_with_keys().args(args).args(["--database-url", &db.url])).await;
        ran.assert_one_error(2, "newer than this version");
    }

    // A migration applied from another file (a development build's): said so by
    // every command, where `migrate` gave sqlx's bare complaint and
    // `--no-migrate` called the schema "(up to 37) not the one needed (up to 37)".
    let db = test_db().await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 5")
        .execute(&db.pool)
        .await
        .unwrap();
    for args in commands {
        let ran = run(ecp_with_keys().args(args).args(["--database-url", &db.url])).await;
        ran.assert_one_error(
            2,
            "migration 5 was applied to this database from another file",
        );
    }

    // And a prune where no sync ever migrated says what to run.
    let db = crate::helpers::test_db_migrated_to(Some(0)).await;
    let ran = run(ecp_with_keys()
        .args(["prune", "--older-than", "1d"])
        .args(["--database-url", &db.url]))
    .await;
    ran.assert_one_error(2, "migrations up to 0");
    assert!(
        ran.stderr.contains("ecp-inventory migrate"),
        "{}",
        ran.stderr
    );
}

/// A reader that closes the pipe early (`| head -1`, `| true`) meets a command
/// whose work is done: it neither panics (exit 101) nor fails a committed run.
#[tokio::test]
async fn a_reader_gone_before_the_summary_does_not_fail_a_finished_command() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 300,
        ..Default::default()
    })
    .await;
    let endpoint = running.endpoint();
    let commands: [&[&str]; 4] = [
        &["sync", "--endpoint", &endpoint, "--region", "cn-hangzhou"],
        &[
            "sync",
            "--endpoint",
            &endpoint,
            "--region",
            "cn-hangzhou",
            "--output",
            "json",
        ],
        &["migrate"],
        &["prune", "--older-than", "1d"],
    ];
    for args in commands {
        let mut child = ecp_with_keys()
            .args(args)
            .args(["--database-url", &db.url])
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // crawl prints as it goes: a reader gone stops it, quietly (it said
    // "error: Broken pipe" and exited 1).
    let mut child = ecp_with_keys()
        .args(["crawl", "--endpoint", &endpoint, "--region", "cn-hangzhou"])
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "crawl: {stderr}");
    assert!(!stderr.contains("error"), "crawl: {stderr}");
    let runs = crate::helpers::count(
        &db.pool,
        "SELECT count(*) FROM ecp.sync_runs WHERE status = 'succeeded'",
    )
    .await;
    assert_eq!(runs, 2);
}

/// `url` with its user and password replaced.
pub fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn a_wrong_secret_exits_2_without_retrying_or_printing_it() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let wrong = "wrong-secret-d3adb33f";
    let ran = run(ecp()
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", wrong)
        .args(["sync", "--endpoint", &running.endpoint()])
        .args(["--database-url", &db.url]))
    .await;
    ran.assert_one_error(2, "SignatureDoesNotMatch");
    assert!(!ran.stderr.contains(wrong) && !ran.stdout.contains(wrong));
    assert_eq!(sim.stats().requests, 1, "an auth error is never retried");
}

#[tokio::test]
async fn crawl_with_a_wrong_secret_exits_2_as_sync_does() {
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    // No --region: the listing's first page is the first request.
    let ran = run(ecp()
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "wrong-secret")
        .args(["crawl", "--endpoint", &running.endpoint()]))
    .await;
    ran.assert_one_error(2, "SignatureDoesNotMatch");
    assert!(ran.stdout.is_empty(), "{}", ran.stdout);
    assert_eq!(sim.stats().requests, 1, "an auth error is never retried");
}

/// Exactly what the privilege check asks for, and nothing more, is enough for a
/// sync through every kind of change (the recheck by id of the deleted ones
/// included).
#[tokio::test]
async fn the_privileges_the_check_asks_for_are_enough_for_every_kind_of_change() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 60,
        regions: vec!["cn-shanghai".into()],
        ..Default::default()
    })
    .await;
    let grants = "GRANT USAGE ON SCHEMA ecp TO {role}; \
         GRANT SELECT, INSERT, UPDATE ON ecp.instances, ecp.instance_versions, \
             ecp.sync_runs TO {role}; \
         GRANT INSERT ON ecp.instance_changes, ecp.fleet_count_changes TO {role}; \
         GRANT SELECT, INSERT, DELETE ON ecp.instance_disks, ecp.instance_tags TO {role}; \
         GRANT SELECT, INSERT ON ecp.sync_run_scopes TO {role}; \
         GRANT SELECT ON public._sqlx_migrations TO {role}";
    let (role, url) = role_with(&db, "ecp_exact", grants).await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    sim.churn(&ecp_inventory::simulator::ChurnSpec {
        seed: 3,
        create: 5,
        delete: 5,
        status: 5,
        rename: 5,
        retag: 10,
        resize_disk: 5,
        volatile: 5,
    });
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Every kind of write happened: new, changed and deleted instances, tags
    // and disks rewritten.
    let kinds = crate::helpers::count(
        &db.pool,
        "SELECT count(DISTINCT change_kind) FROM ecp.instance_changes WHERE run_id = 2",
    )
    .await;
    assert_eq!(kinds, 3, "created, updated and deleted in run 2");
    let fields = crate::helpers::count(
        &db.pool,
        "SELECT count(*) FROM ecp.instance_changes WHERE run_id = 2 \
         AND (field = 'disks' OR field LIKE 'tags.%')",
    )
    .await;
    assert!(fields > 0, "tag and disk changes in run 2");
    as_owner(&db, format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

/// A privilege missing on one table is found before the run, not by the first
/// apply that needs it (removing a tag needs DELETE on instance_tags).
#[tokio::test]
async fn a_writer_missing_one_privilege_exits_2_naming_it_before_any_run() {
    let db = test_db().await;
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let grants = format!("{WRITER_GRANTS} REVOKE DELETE ON ecp.instance_tags FROM {{role}}");
    let (role, url) = role_with(&db, "ecp_partial", &grants).await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    ran.assert_one_error(2, "DELETE on ecp.instance_tags");
    // Nothing else: the identity columns' sequences need no grant.
    assert!(!ran.stderr.contains("INSERT on"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("sequence"), "{}", ran.stderr);
    assert_eq!(
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.sync_runs").await,
        0
    );
    // The staging tables need TEMP, which PUBLIC has unless it is revoked.
    let database = &db.name;
    as_owner(
        &db,
        format!(
            "GRANT DELETE ON ecp.instance_tags TO {role}; \
             REVOKE TEMP ON DATABASE \"{database}\" FROM PUBLIC"
        ),
    )
    .await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    ran.assert_one_error(2, &format!("TEMP on database {database}"));
    // The history triggers call a function as the job's user.
    as_owner(
        &db,
        format!(
            "GRANT TEMP ON DATABASE \"{database}\" TO {role}; \
             REVOKE EXECUTE ON FUNCTION ecp.quarter_hour_ceil(timestamptz) FROM PUBLIC"
        ),
    )
    .await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    ran.assert_one_error(2, "EXECUTE on function ecp.quarter_hour_ceil");
    // And with it, the sync goes through.
    as_owner(
        &db,
        format!("GRANT EXECUTE ON FUNCTION ecp.quarter_hour_ceil(timestamptz) TO {role}"),
    )
    .await;
    let ran = sync_shanghai(&running.endpoint(), &url).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    as_owner(&db, format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

#[tokio::test]
async fn an_unknown_region_exits_2_listing_the_valid_ones() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let ran = run(ecp_with_keys()
        .args(["sync", "--endpoint", &running.endpoint()])
        .args(["--database-url", &db.url])
        .args(["--region", "cn-shanghai", "--region", "cn-nowhere-9"]))
    .await;
    ran.assert_one_error(2, "unknown region cn-nowhere-9");
    for region in sim.regions() {
        assert!(ran.stderr.contains(&region), "{region}: {}", ran.stderr);
    }
    let runs = crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.sync_runs").await;
    assert_eq!(runs, 0, "rejected before any run started");
}

#[tokio::test]
async fn an_unreachable_endpoint_exits_1_naming_it() {
    let db = test_db().await;
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let ran = run(ecp_with_keys()
        .args(["sync", "--endpoint", &endpoint, "--database-url", &db.url])
        .args(["--max-attempts", "2", "--max-retry-secs", "2"]))
    .await;
    ran.assert_one_error(1, &endpoint);
    assert!(ran.stderr.contains("could not reach"), "{}", ran.stderr);
    // A run that failed, with its summary line, and its row saying why.
    assert!(ran.stdout.contains("failed"), "{}", ran.stdout);
    let (status, error) = crate::helpers::last_run(&db.pool).await;
    assert_eq!(status, "failed");
    assert!(error.contains(&endpoint), "{error}");
}

/// A database that takes no writes (a read replica, or read-only by default) is
/// the URL's mistake: exit 2, saying so.
#[tokio::test]
async fn a_read_only_database_is_said_to_be_one() {
    let db = test_db().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {} SET default_transaction_read_only = on",
        db.name
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 5,
        ..Default::default()
    })
    .await;
    let ran = run(ecp_with_keys().env("DATABASE_URL", &db.url).args([
        "sync",
        "--endpoint",
        &running.endpoint(),
    ]))
    .await;
    ran.assert_one_error(2, "point DATABASE_URL at the primary");
}

/// With JSON logs the reason a command failed is a JSON line too (at error
/// level, with the exit code), besides the one `error:` line for people.
#[tokio::test]
async fn a_failure_is_a_json_log_line_too() {
    let ran =
        run(ecp_with_keys().args(["--log-format", "json", "sync", "--max-delete-share", "3"]))
            .await;
    ran.assert_one_error(2, "--max-delete-share");
    let last: serde_json::Value = ran
        .stderr
        .lines()
        .rfind(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a JSON line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["exit_code"], 2, "{last}");
    assert!(
        last["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("--max-delete-share"),
        "{last}"
    );
    // stdout, read as JSON, still gets one object, saying why.
    let ran = run(ecp_with_keys().args([
        "sync",
        "--output",
        "json",
        "--database-url",
        "postgres://u:Pw9secret@127.0.0.1:1/db",
    ]))
    .await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let out: serde_json::Value = serde_json::from_str(ran.stdout.trim()).expect(&ran.stdout);
    assert_eq!(out["status"], "failed", "{out}");
    assert_eq!(out["run_id"], serde_json::Value::Null, "{out}");
    assert_eq!(out["exit_code"], 1, "{out}");
    let error = out["error"].as_str().unwrap();
    assert!(error.contains("cannot connect to PostgreSQL"), "{error}");
    assert!(!ran.stdout.contains("Pw9secret"), "{}", ran.stdout);
    // Text logs say it once, in the `error:` line.
    let ran =
        run(ecp_with_keys().args(["--log-format", "text", "sync", "--max-delete-share", "3"]))
            .await;
    assert_eq!(
        ran.stderr.matches("--max-delete-share").count(),
        1,
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn bad_flags_exit_2() {
    let ran = run(ecp_with_keys().args(["sync", "--max-delete-share", "3"])).await;
    ran.assert_one_error(2, "--max-delete-share");
    // clap's own usage errors exit 2 as well.
    let ran = run(ecp_with_keys().args(["sync", "--no-such-flag"])).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    // A misspelt level would silence every log line: refused.
    let ran = run(ecp_with_keys().args(["--log-level", "warning", "sync"])).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("is not a log level"), "{}", ran.stderr);
    // Values that would only fail later, or store rows under an empty alias.
    let ran = run(ecp_with_keys().args(["sync", "--source", ""])).await;
    ran.assert_one_error(2, "--source is empty");
    let ran = run(ecp_with_keys().args(["sync", "--region", ""])).await;
    ran.assert_one_error(2, "cannot be a region: it is empty");
    let long = "cn-".repeat(40);
    let ran = run(ecp_with_keys().args(["sync", "--region", &long])).await;
    ran.assert_one_error(2, "cannot be a region: it is longer than any region id");
    let ran = run(ecp_with_keys().args(["sync", "--max-delete-share", "-0.1"])).await;
    ran.assert_one_error(2, "--max-delete-share");
    let ran = run(ecp_with_keys().args(["sync", "--max-pages", "0"])).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("at least 1"), "{}", ran.stderr);
    // Checked before anything is connected to (nothing listens on port 1).
    let nowhere = ["--database-url", "postgres://u:p@127.0.0.1:1/db"];
    let ran = run(ecp_with_keys()
        .args(["sync", "--volatile-fields", "rate,no_such_column"])
        .args(nowhere))
    .await;
    ran.assert_one_error(2, "--volatile-fields");
    let ran = run(ecp_with_keys()
        .args(["sync", "--concurrency", "100000"])
        .args(nowhere))
    .await;
    ran.assert_one_error(2, "--concurrency must be between 1 and 64");
    let ran = run(ecp_with_keys()
        .args(["sync", "--metrics-file", "/nonexistent-dir/ecp.prom"])
        .args(nowhere))
    .await;
    ran.assert_one_error(2, "the directory /nonexistent-dir does not exist");
    // A Pushgateway URL that does not parse is refused without being repeated.
    let ran = run(ecp_with_keys().args(["sync", "--pushgateway-url", "http//u:Hidden123@x"])).await;
    ran.assert_one_error(2, "--pushgateway-url");
    assert!(!ran.stderr.contains("Hidden123"), "{}", ran.stderr);
    // The simulator's flags are flags like any other.
    let ran = run(ecp().args([
        "simulate",
        "--throttle-rate",
        "0.6",
        "--error-500-rate",
        "0.6",
    ]))
    .await;
    ran.assert_one_error(2, "add up to more than 1");
}

/// A run that fails before it has a report still leaves metrics saying so.
#[tokio::test]
async fn a_run_failing_at_the_start_writes_failure_metrics() {
    let dir = std::env::temp_dir().join(format!("ecp-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ecp.prom");
    let before = "# TYPE ecp_inventory_last_run_success gauge\n\
                  ecp_inventory_last_run_success 1\n\
                  # TYPE ecp_inventory_instances gauge\n\
                  ecp_inventory_instances{source=\"a\"} 7\n";
    std::fs::write(&path, before).unwrap();
    let url = format!("postgres://ecp@127.0.0.1:{}/ecp", closed_port());
    let ran = run(ecp_with_keys()
        .args(["sync", "--database-url", &url])
        .args(["--metrics-file", path.to_str().unwrap()]))
    .await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\necp_inventory_last_run_success 0\n"),
        "{text}"
    );
    // The fleet's last known gauges stay.
    assert!(
        text.contains("ecp_inventory_instances{source=\"a\"} 7\n"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `migrate` says what it did.
#[tokio::test]
async fn migrate_says_how_many_migrations_it_applied() {
    let db = crate::helpers::test_db_migrated_to(Some(0)).await;
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    let ran = run(ecp().args(["migrate", "--database-url", &db.url])).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stdout
            .contains(&format!("applied {shipped} migrations")),
        "{}",
        ran.stdout
    );
    let ran = run(ecp().args(["migrate", "--database-url", &db.url])).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("already up to date"), "{}", ran.stdout);
}

#[tokio::test]
async fn text_logs_into_a_pipe_are_plain_and_carry_no_server_notices() {
    // The migrator's ledger is there, nothing applied: the migrator's first
    // statement makes PostgreSQL say "already exists, skipping", not worth a line.
    let db = crate::helpers::test_db_migrated_to(Some(0)).await;
    let ran = run(ecp().args(["--log-format", "text", "migrate", "--database-url", &db.url])).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(!ran.stderr.contains("already exists"), "{}", ran.stderr);
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 10,
        ..Default::default()
    })
    .await;
    let ran = run(ecp_with_keys()
        .args([
            "--log-format",
            "text",
            "sync",
            "--endpoint",
            &running.endpoint(),
        ])
        .args(["--database-url", &db.url, "--region", "cn-shanghai"]))
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("run finished"), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains('\u{1b}'),
        "colour codes: {:?}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_at_trace_level() {
    let db = test_db().await;
    let secret = "S3cr3t-AccessKeySecret-5f1e";
    let token = "STS-token-CAIS-7a9b0c1d2e3f";
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 40,
        credentials: vec![Credentials::new("STS.testKeyId", secret).with_security_token(token)],
        ..Default::default()
    })
    .await;
    // The local test server trusts loopback, so any password gets in; a server
    // given through TEST_DATABASE_URL has its own, which is then the one to hide.
    let password = match db.url.split_once("://").unwrap().1.rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            userinfo.split_once(':').unwrap().1.to_owned()
        }
        _ => "Pg-Passw0rd-9c8d".to_owned(),
    };
    let user = db.url.split_once("://").unwrap().1;
    let user = user.split(['@', ':']).next().unwrap().to_owned();
    let url = with_user(&db.url, &user, &password);
    for format in ["json", "text"] {
        let ran = run(ecp()
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.testKeyId")
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
            .env("ALIBABA_CLOUD_SECURITY_TOKEN", token)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "trace")
            .args(["--log-level", "trace", "--log-format", format])
            .args(["sync", "--endpoint", &running.endpoint()])
            .args(["--page-size", "10", "--rate-limit", "1000"]))
        .await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(ran.stderr.lines().count() > 50, "trace logs were written");
        for (what, value) in [
            ("access key secret", secret),
            ("security token", token),
            ("database password", password.as_str()),
        ] {
            assert!(
                !ran.stderr.contains(value) && !ran.stdout.contains(value),
                "the {what} appears in the {format} output"
            );
        }
    }
}

/// An STS key without its token is said before anything is sent, naming the
/// variable, as the setup's mistake (exit 2): the service's MissingSecurityToken
/// failed the run (exit 1) naming none.
#[tokio::test]
async fn an_sts_key_without_its_token_names_the_variable() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 5,
        credentials: vec![
            Credentials::new("STS.testKeyId", "sts-secret").with_security_token("tok")
        ],
        ..Default::default()
    })
    .await;
    let ran = run(ecp()
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.testKeyId")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sts-secret")
        .env("DATABASE_URL", &db.url)
        .args(["sync", "--endpoint", &running.endpoint()]))
    .await;
    ran.assert_one_error(2, "set ALIBABA_CLOUD_SECURITY_TOKEN");
    assert_eq!(sim.stats().requests, 0, "nothing was sent");
}

/// The control calls `simulate --help` shows, with its example bodies, are the
/// ones a running simulator takes.
#[tokio::test]
async fn the_simulator_control_calls_in_its_help_work_as_shown() {
    let ran = run(ecp().args(["simulate", "--help"])).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let help = ran.stdout;
    // The example body after a call's path: from its `{` to the matching `}`,
    // over line breaks.
    let body_after = |path: &str| -> String {
        let from = help
            .find(path)
            .unwrap_or_else(|| panic!("{path} in {help}"));
        let open = from + help[from..].find('{').unwrap();
        let close = open + help[open..].find('}').unwrap();
        help[open..=close]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 50,
        ..Default::default()
    })
    .await;
    let http = reqwest::Client::new();
    for path in ["/_sim/churn", "/_sim/faults"] {
        let body = body_after(path);
        let answer = http
            .post(format!("{}{path}", running.endpoint()))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            200,
            "{path} {body}: {:?}",
            answer.text().await
        );
    }
    for path in ["/_sim/stats", "/_sim/fleet"] {
        assert!(help.contains(&format!("GET  {path}")), "{help}");
        let answer = http
            .get(format!("{}{path}", running.endpoint()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
    }
}

/// The benchmark end to end, small, run where an operator's key is set: its
/// three phases and the COPY baseline, and with one run of history (the phases
/// are the first three), every view and every query under sql/ timed.
#[tokio::test]
async fn a_small_benchmark_runs_its_phases_and_times_every_query() {
    let db = test_db().await;
    let json =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{}.json", &db.name));
    let ran = run(ecp()
        .args([
            "bench",
            "--sizes",
            "300",
            "--history-runs",
            "1",
            "--latency-ms",
            "0",
        ])
        .args(["--copy-runs", "1", "--database-url", &db.url])
        .args(["--json", json.to_str().unwrap()])
        // An operator's own key in the environment is none of the bench's
        // simulator's business (it took it for the only key to accept).
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIoperator")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "operator-secret"))
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["first", "no-change", "churn", "copy"], "{report}");
    // Each phase's line counts its own run's requests: the first sync and the
    // no-change one list the same fleet (the second said twice as many).
    let requests = |phase: &str| -> String {
        let line = ran
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("bench: {phase}: ")))
            .unwrap_or_else(|| panic!("no {phase} line: {}", ran.stderr));
        let (before, _) = line.split_once(" requests").unwrap();
        before.rsplit(' ').next().unwrap().to_owned()
    };
    assert_eq!(requests("first"), requests("no-change"), "{}", ran.stderr);
    let timed: Vec<&str> = report["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["query"].as_str().unwrap())
        .collect();
    for file in std::fs::read_dir("sql").unwrap().flatten() {
        let name = format!("sql/{}", file.file_name().to_string_lossy());
        assert!(
            timed.contains(&name.as_str()),
            "{name} not timed: {timed:?}"
        );
    }
    assert!(
        timed.iter().any(|q| q.starts_with("instances_as_of")),
        "{timed:?}"
    );
}

/// `demo` and `bench` write simulated fleets into their database (bench drops and
/// recreates one): neither takes it from DATABASE_URL, which `sync` reads and
/// may name the production inventory.
#[tokio::test]
async fn demo_and_bench_take_a_database_only_from_the_flag() {
    for command in ["demo", "bench"] {
        let ran = run(ecp()
            .env("DATABASE_URL", "postgres://prod@db/ecp")
            .args([command, "--help"]))
        .await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(
            ran.stdout.contains("--database-url"),
            "{command}: {}",
            ran.stdout
        );
        assert!(
            !ran.stdout.contains("[env: DATABASE_URL"),
            "{command}: {}",
            ran.stdout
        );
    }
    let ran = run(ecp().args(["sync", "--help"])).await;
    assert!(ran.stdout.contains("[env: DATABASE_URL"), "{}", ran.stdout);
}

#[tokio::test]
async fn retire_marks_a_region_deleted_after_a_dry_run_and_refuses_a_misspelt_one() {
    let db = test_db().await;
    let store = db.store();
    let records = crate::helpers::fleet(30);
    let default = ecp_inventory::store::ApplyOptions::default();
    crate::helpers::sync(
        &store,
        "cn-beijing",
        &records,
        crate::helpers::at(1),
        &default,
    )
    .await
    .unwrap();
    let current = "SELECT count(*) FROM ecp.current_instances";
    let retire = |extra: &[&str]| {
        let mut cmd = ecp();
        cmd.args(["retire", "--database-url", &db.url]).args(extra);
        cmd
    };

    let misspelt = run(&mut retire(&[
        "--source",
        "default",
        "--region",
        "cn-bejing",
    ]))
    .await;
    misspelt.assert_one_error(2, "no scope default/cn-bejing");
    assert!(
        misspelt.stderr.contains("default/cn-beijing"),
        "{}",
        misspelt.stderr
    );
    let no_alias = run(&mut retire(&["--source", "defualt", "--region", "all"])).await;
    no_alias.assert_one_error(2, "no scope defualt/*");
    assert!(
        no_alias.stderr.contains("default/cn-beijing"),
        "{}",
        no_alias.stderr
    );

    let dry = run(&mut retire(&[
        "--source",
        "default",
        "--region",
        "all",
        "--dry-run",
    ]))
    .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains("retire: default/cn-beijing would mark deleted 30 current instances"),
        "{}",
        dry.stdout
    );
    assert_eq!(crate::helpers::count(&db.pool, current).await, 30);

    let done = run(&mut retire(&[
        "--source=default",
        "--region=cn-beijing",
        "--output=json",
    ]))
    .await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    let report: serde_json::Value = serde_json::from_str(done.stdout.trim()).unwrap();
    assert_eq!(report["scopes"][0]["instances"], 30);
    assert!(report["run_id"].as_i64().is_some(), "{report}");
    assert_eq!(crate::helpers::count(&db.pool, current).await, 0);

    let nothing = run(&mut retire(&["--source", "default", "--region", "all"])).await;
    assert_eq!(nothing.code, 0, "{}", nothing.stderr);
    assert!(
        nothing.stdout.contains("holds no current instance"),
        "{}",
        nothing.stdout
    );
}

/// A region no run syncs any more keeps its instances current; each run says so,
/// and how to retire it. One whose crawls fail is tried, and not pointed out.
#[tokio::test]
async fn a_scope_no_run_has_tried_for_two_weeks_is_pointed_out() {
    let db = test_db().await;
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 40,
        ..Default::default()
    })
    .await;
    let sync = |regions: &[&str]| {
        let mut cmd = ecp_with_keys();
        cmd.args(["sync", "--endpoint", &running.endpoint()])
            .args(["--database-url", &db.url]);
        for r in regions {
            cmd.args(["--region", r]);
        }
        cmd
    };
    let both = run(&mut sync(&["cn-hangzhou", "cn-beijing"])).await;
    assert_eq!(both.code, 0, "{}", both.stderr);
    let hint = "retire --source default --region cn-beijing";
    assert!(!both.stderr.contains(hint), "{}", both.stderr);

    let backdate = || async {
        sqlx::query("UPDATE ecp.sync_runs SET started_at = started_at - interval '15 days'")
            .execute(&db.pool)
            .await
            .unwrap();
    };
    backdate().await;
    // Tried and failed: that run reports it, the next ones do not call it gone.
    sim.set_faults(ecp_inventory::simulator::Faults {
        fail_from_page: Some(1),
        ..Default::default()
    });
    let failing = run(&mut sync(&["cn-beijing"])).await;
    assert_eq!(failing.code, 1, "{}", failing.stderr);
    sim.set_faults(Default::default());
    let tried = run(&mut sync(&["cn-hangzhou"])).await;
    assert_eq!(tried.code, 0, "{}", tried.stderr);
    assert!(!tried.stderr.contains(hint), "{}", tried.stderr);

    backdate().await;
    let one = run(&mut sync(&["cn-hangzhou"])).await;
    assert_eq!(one.code, 0, "{}", one.stderr);
    let warnings: Vec<&str> = one
        .stderr
        .lines()
        .filter(|l| l.contains("no run has tried to sync this scope"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", one.stderr);
    assert!(warnings[0].contains(hint), "{}", warnings[0]);
    assert!(
        warnings[0].contains("default/cn-beijing"),
        "{}",
        warnings[0]
    );
}

/// `crawl` counts the distinct instances it printed, exactly, and says when a
/// listing ends clearly short of the service's own count.
#[tokio::test]
async fn crawl_counts_distinct_instances_and_says_when_the_listing_ends_short() {
    let crawl = |faults: ecp_inventory::simulator::Faults| async move {
        let (_sim, running) = start_sim(SimulatorConfig {
            instances: 1000,
            regions: vec!["cn-shanghai".into()],
            faults,
            ..Default::default()
        })
        .await;
        let ran = run(ecp_with_keys()
            .args(["crawl", "--endpoint", &running.endpoint()])
            .args(["--region", "cn-shanghai", "--log-level", "info"]))
        .await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let lines = ran.stdout.lines().count() as u64;
        let ids: std::collections::HashSet<String> = ran
            .stdout
            .lines()
            .map(|l| {
                let record: serde_json::Value = serde_json::from_str(l).unwrap();
                record["AndroidInstanceId"].as_str().unwrap().to_owned()
            })
            .collect();
        let logged = |message: &str| -> Vec<serde_json::Value> {
            ran.stderr
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|l| {
                    l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(message))
                })
                .map(|l| l["fields"].clone())
                .collect()
        };
        let complete = logged("crawl complete");
        assert_eq!(complete.len(), 1, "{}", ran.stderr);
        assert_eq!(lines, ids.len() as u64, "each instance printed once");
        (
            lines,
            complete[0]["distinct"].as_u64(),
            logged("the crawl reached"),
        )
    };
    // An instance sent again on the next page is printed once, and counted once.
    let (printed, distinct, short) = crawl(ecp_inventory::simulator::Faults {
        duplicate_page: Some(3),
        ..Default::default()
    })
    .await;
    assert_eq!((printed, distinct, short.len()), (1000, Some(1000), 0));
    // The service ends the listing after four pages while it counts 1000.
    let (printed, distinct, short) = crawl(ecp_inventory::simulator::Faults {
        last_page_early: Some(4),
        ..Default::default()
    })
    .await;
    assert_eq!((printed, distinct), (400, Some(400)));
    assert_eq!(short.len(), 1, "a warning of the listing's shortfall");
    assert_eq!(short[0]["short"].as_u64(), Some(600));
}
