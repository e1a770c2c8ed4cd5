//! Every analyst query under sql/ runs as-is against a database filled by two
//! syncs (with changes, a deletion and tags) and returns rows.

use ecp_inventory::store::ApplyOptions;
use serde_json::{json, Value};

use crate::helpers::{at, fleet, sync, test_db};

#[tokio::test]
async fn every_sql_file_runs_and_returns_rows() {
    let db = test_db().await;
    let store = db.store();
    let now = chrono::Utc::now();
    let mut records = fleet(200);
    sync(
        &store,
        "cn-shanghai",
        &records,
        now - chrono::Duration::hours(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    records[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    records[1].insert("Tags".into(), json!([{"Key": "env", "Value": "test"}]));
    let soon = (now + chrono::Duration::days(10))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    records[2].insert("GmtExpired".into(), json!(soon));
    records.truncate(190);
    sync(
        &store,
        "cn-shanghai",
        &records,
        now - chrono::Duration::hours(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rows = sqlx::query(sqlx::AssertSqlSafe(text))
            .fetch_all(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!rows.is_empty(), "{} returned no rows", file.display());
    }
}

#[tokio::test]
async fn tag_coverage_counts_only_the_instances_that_exist() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(200);
    let opts = ApplyOptions::default();
    let now = chrono::Utc::now();
    sync(
        &store,
        "cn-shanghai",
        &records,
        now - chrono::Duration::hours(2),
        &opts,
    )
    .await
    .unwrap();
    sync(
        &store,
        "cn-shanghai",
        &records[..150],
        now - chrono::Duration::hours(1),
        &opts,
    )
    .await
    .unwrap();

    let text = include_str!("../../sql/tag_coverage.sql");
    let query = format!(
        "SELECT kind, tag_key, instances, distinct_values, percent_of_fleet::text FROM ({}) q",
        text.trim_end().trim_end_matches(';')
    );
    let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let env = rows
        .iter()
        .find(|r| r.0 == "user" && r.1 == "env")
        .expect("the env tag");
    assert_eq!((env.2, env.3, env.4.as_str()), (150, 1, "100.0"));
    let team = rows.iter().find(|r| r.1 == "team").expect("the team tag");
    assert_eq!((team.2, team.3), (150, 3));
}

/// The day's changes come as one row per kind and field, however many
/// instances they touched, and add up to every change of the day.
#[tokio::test]
async fn changes_last_24_hours_counts_each_kind_and_field() {
    let db = test_db().await;
    let store = db.store();
    // Two days ago, 50 creations elsewhere, which are not part of the day; then
    // 100 creations, and a crawl that finds 3 of them stopped and 4 gone.
    let elsewhere = fleet(150).split_off(100);
    let created = fleet(100);
    let mut changed = created[..96].to_vec();
    for r in &mut changed[..3] {
        r.insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    }
    let now = chrono::Utc::now();
    for (region, records, hours_ago) in [
        ("cn-beijing", &elsewhere, 48),
        ("cn-shanghai", &created, 2),
        ("cn-shanghai", &changed, 1),
    ] {
        let at = now - chrono::Duration::hours(hours_ago);
        sync(&store, region, records, at, &ApplyOptions::default())
            .await
            .unwrap();
    }

    let text = include_str!("../../sql/changes_last_24_hours.sql");
    let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT change_kind, field, changes FROM ({}) q",
        text.trim_end().trim_end_matches(';')
    )))
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("created".to_owned(), None, 100),
            ("deleted".to_owned(), None, 4),
            ("updated".to_owned(), Some("status".to_owned()), 3),
        ]
    );
}

/// Instance, field, old value, new value and number of changes of a run_diff row.
type DiffRow = (String, Option<String>, Option<Value>, Option<Value>, i64);

/// `ecp.run_diff` folds the changes of the runs after `from_run` up to
/// `to_run` into one net change per instance and field, leaves out a field
/// that changed and changed back, and refuses a range given backwards (it used
/// to return no row, which reads as "nothing changed").
#[tokio::test]
async fn run_diff_nets_out_changes_and_refuses_a_reversed_range() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(3);
    let mut runs = Vec::new();
    for hour in 0..3 {
        match hour {
            1 => {
                records[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
                records[1].insert("AndroidInstanceName".into(), json!("renamed-once"));
            }
            2 => {
                records[0].insert("AndroidInstanceStatus".into(), json!("RUNNING"));
                records[1].insert("AndroidInstanceName".into(), json!("renamed-twice"));
            }
            _ => {}
        }
        sync(
            &store,
            "cn-shanghai",
            &records,
            at(hour),
            &ApplyOptions::default(),
        )
        .await
        .unwrap();
        let run: i64 = sqlx::query_scalar("SELECT max(run_id) FROM ecp.sync_runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        runs.push(run);
    }

    let diff: Vec<DiffRow> = sqlx::query_as(
        "SELECT instance_id, field, old_value, new_value, changes FROM ecp.run_diff($1, $2)",
    )
    .bind(runs[0])
    .bind(runs[2])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        diff,
        [(
            "acp-000001".to_owned(),
            Some("instance_name".to_owned()),
            Some(json!("phone-000001")),
            Some(json!("renamed-twice")),
            2
        )]
    );

    // Refused as an invalid parameter, with the message the test expects.
    let refused = |from: i64, to: i64, expected: String| {
        let pool = db.pool.clone();
        async move {
            let err = sqlx::query("SELECT * FROM ecp.run_diff($1, $2)")
                .bind(from)
                .bind(to)
                .fetch_all(&pool)
                .await
                .unwrap_err();
            let db_err = err.as_database_error().expect("a database error");
            assert_eq!(db_err.code().as_deref(), Some("22023"), "{err}");
            assert!(db_err.message().contains(&expected), "{err}");
        }
    };
    refused(
        runs[2],
        runs[0],
        format!("from_run {} is after to_run {}", runs[2], runs[0]),
    )
    .await;
    // A run that does not exist yet is no range in which nothing changed.
    let past = runs[2] + 5;
    refused(
        runs[2],
        past,
        format!("to_run {past} is past the last run ({})", runs[2]),
    )
    .await;
    // From the very first run on: 0 is fine.
    let all: Vec<DiffRow> = sqlx::query_as(
        "SELECT instance_id, field, old_value, new_value, changes FROM ecp.run_diff(0, $1)",
    )
    .bind(runs[2])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!all.is_empty());
}
