//! A first crawl written straight into the tables (store/direct.rs) comes to
//! what staging it comes to: the same rows in every table, whether the load went
//! through or met instances already stored and switched to staging.

use ecp_inventory::store::{ApplyCounts, ApplyOptions, Store};
use serde_json::{json, Map, Value};
use sqlx::PgPool;

use crate::helpers::{at, norm, sync, test_db, INVENTORY_TABLES, PAGE};

/// Instance `i` of a fleet whose records hold what the COPY text, the tag rows
/// and the disk rows must carry through: escapes, NULs, NULL values, keys and
/// values past the tag index's limit, disks that are no disk objects.
fn odd_record(i: usize) -> Map<String, Value> {
    let mut r = crate::helpers::record(i);
    match i % 6 {
        0 => {
            r.insert("AndroidInstanceName".into(), json!("a\tb\\c\nd\re\u{0}f"));
        }
        1 => {
            r.insert(
                "Tags".into(),
                json!([
                    {"Key": "k\u{0}ey", "Value": "v\u{0}al"},
                    {"Key": "empty", "Value": null},
                    {"Key": "é 中", "Value": "✓\t\\"},
                ]),
            );
        }
        2 => {
            r.insert(
                "Disks".into(),
                json!([{"DiskType": "SYSTEM"}, "not a disk", {"DiskSize": 64}, null]),
            );
        }
        3 => {
            r.insert(
                "BizTags".into(),
                json!([{"Key": "notes", "Value": "x".repeat(2100)}]),
            );
        }
        4 => {
            r.insert("Tags".into(), json!("not a list"));
            r.insert("Disks".into(), Value::Null);
        }
        _ => {}
    }
    r
}

fn odd_fleet(ids: std::ops::Range<usize>) -> Vec<Map<String, Value>> {
    ids.map(odd_record).collect()
}

/// Every row of the tables a sync writes, as text, in a set order. Change rows
/// without their identity (assigned in the order they were written), and fleet
/// counts summed per key and quarter hour (a direct load files them batch by
/// batch).
async fn every_row(p: &PgPool) -> Vec<(&'static str, Vec<String>)> {
    let tables = [
        (
            "instances",
            "SELECT to_jsonb(t)::text FROM ecp.instances t ORDER BY instance_id",
        ),
        (
            "instance_versions",
            "SELECT to_jsonb(t)::text FROM ecp.instance_versions t ORDER BY instance_id, version",
        ),
        (
            "instance_changes",
            "SELECT (to_jsonb(t) - 'change_id')::text FROM ecp.instance_changes t ORDER BY 1",
        ),
        (
            "instance_disks",
            "SELECT to_jsonb(t)::text FROM ecp.instance_disks t ORDER BY instance_id, disk_index",
        ),
        (
            "instance_tags",
            "SELECT to_jsonb(t)::text FROM ecp.instance_tags t ORDER BY instance_id, kind, tag_key",
        ),
        (
            "fleet_count_changes",
            "SELECT jsonb_build_array(at, source, region_id, status, sum(delta))::text \
             FROM ecp.fleet_count_changes GROUP BY at, source, region_id, status \
             HAVING sum(delta) <> 0 ORDER BY 1",
        ),
        (
            "sync_run_scopes",
            "SELECT (to_jsonb(t) - 'started_at' - 'finished_at')::text FROM ecp.sync_run_scopes t \
             ORDER BY run_id, source, biz_region_id",
        ),
    ];
    let mut out = Vec::new();
    for (table, sql) in tables {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(p).await.unwrap();
        assert!(!rows.is_empty(), "{table} has rows to compare");
        out.push((table, rows));
    }
    out
}

async fn assert_same_rows(loaded: &PgPool, staged: &PgPool) {
    for ((table, a), (_, b)) in every_row(loaded)
        .await
        .into_iter()
        .zip(every_row(staged).await)
    {
        assert_eq!(a.len(), b.len(), "{table}: as many rows");
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a, b, "{table}: loaded directly, then staged");
        }
    }
}

/// Counts as a staged apply reports them: nothing loaded directly.
fn as_staged(counts: &[ApplyCounts]) -> Vec<ApplyCounts> {
    counts
        .iter()
        .map(|c| ApplyCounts { loaded: 0, ..*c })
        .collect()
}

#[tokio::test]
async fn a_first_sync_written_straight_into_the_tables_equals_one_staged() {
    let (direct, staged) = (test_db().await, test_db().await);
    // About 2.5 MB of records: some forty of the tests' batches.
    let records = odd_fleet(0..1000);
    let mut changed = records.clone();
    for r in changed.iter_mut().step_by(10) {
        r.insert("AndroidInstanceStatus".into(), json!("STOPPED"));
        r.insert("Tags".into(), json!([{"Key": "env", "Value": "test"}]));
    }
    let opts = ApplyOptions::default();
    let runs = |store: Store| {
        let (records, changed, opts) = (&records, &changed, &opts);
        async move {
            vec![
                sync(&store, "cn-shanghai", records, at(1), opts)
                    .await
                    .unwrap(),
                // The next run stages (the scope holds instances): it must find
                // what the staged first run left.
                sync(&store, "cn-shanghai", changed, at(2), opts)
                    .await
                    .unwrap(),
            ]
        }
    };
    let loaded = runs(direct.store()).await;
    let reference = runs(staged.staging_store()).await;

    assert_eq!(loaded[0].loaded, 1000, "written while the crawl ran");
    assert_eq!((loaded[1].loaded, loaded[1].updated), (0, 100));
    assert_eq!(as_staged(&loaded), reference);
    assert_same_rows(&direct.pool, &staged.pool).await;
}

/// The inserts a database counts, rolled back ones included.
async fn instances_inserted(p: &PgPool) -> i64 {
    // Sessions report their counters when they end or go idle.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    sqlx::query_scalar(
        "SELECT n_tup_ins FROM pg_stat_user_tables \
         WHERE schemaname = 'ecp' AND relname = 'instances'",
    )
    .fetch_one(p)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_first_sync_that_meets_stored_instances_stages_what_it_loaded() {
    let (direct, staged) = (test_db().await, test_db().await);
    let opts = ApplyOptions::default();
    let mass = ApplyOptions {
        allow_mass_delete: true,
        ..ApplyOptions::default()
    };
    // Another scope holds the last hundred of what cn-shanghai lists, on its
    // last pages: the batches before are loaded when the first of those meets
    // them.
    let shanghai = odd_fleet(0..1000);
    let beijing = odd_fleet(900..1000);
    // Instance 1003, listed again at the end, changed: the later listing wins.
    let mut hangzhou = odd_fleet(1000..2000);
    let mut relisted = hangzhou[3].clone();
    relisted.insert("AndroidInstanceName".into(), json!("renamed-while-crawled"));
    hangzhou.push(relisted);
    // Instances deleted from their scope and listed again: restored, at once.
    let hongkong = odd_fleet(2000..2100);
    let runs = |store: Store| {
        let (shanghai, beijing, hangzhou, hongkong) = (&shanghai, &beijing, &hangzhou, &hongkong);
        let (opts, mass) = (&opts, &mass);
        async move {
            vec![
                sync(&store, "cn-beijing", beijing, at(1), opts)
                    .await
                    .unwrap(),
                sync(&store, "cn-shanghai", shanghai, at(2), opts)
                    .await
                    .unwrap(),
                sync(&store, "cn-hangzhou", hangzhou, at(3), opts)
                    .await
                    .unwrap(),
                sync(&store, "cn-hongkong", hongkong, at(4), opts)
                    .await
                    .unwrap(),
                sync(&store, "cn-hongkong", &[], at(5), mass).await.unwrap(),
                sync(&store, "cn-hongkong", hongkong, at(6), opts)
                    .await
                    .unwrap(),
            ]
        }
    };
    let loaded = runs(direct.store()).await;
    let reference = runs(staged.staging_store()).await;

    let loaded_counts: Vec<u64> = loaded.iter().map(|c| c.loaded).collect();
    assert_eq!(loaded_counts, [100, 0, 0, 100, 0, 0]);
    assert_eq!(as_staged(&loaded), reference);
    assert_eq!(
        (
            reference[1].created,
            reference[2].seen,
            reference[5].restored
        ),
        (900, 1000, 100)
    );
    assert_same_rows(&direct.pool, &staged.pool).await;
    // The two scopes that switched to staging had loaded batches first, and
    // rolled them back: more inserts were counted than rows were kept.
    let (by_loading, by_staging) = (
        instances_inserted(&direct.pool).await,
        instances_inserted(&staged.pool).await,
    );
    assert!(
        by_loading > by_staging,
        "{by_loading} inserts against {by_staging}"
    );
}

#[tokio::test]
async fn a_first_crawl_that_fails_after_loading_batches_leaves_nothing() {
    let db = test_db().await;
    let store = db.store();
    let records = norm(&odd_fleet(0..1000));
    let run = store.start_run("test").await.unwrap();
    let scope = || ecp_inventory::store::Scope::new("default", "cn-shanghai");
    let wait = std::time::Duration::from_secs(5);
    let mut given_up = run.begin_scope(scope(), wait).await.unwrap();
    for page in records.chunks(PAGE) {
        given_up.push_page(at(1), page).await.unwrap();
    }
    given_up.give_up("page 11: throttled").await.unwrap();
    // A crawl dropped without a word (its process lost its way).
    let mut dropped = run.begin_scope(scope(), wait).await.unwrap();
    for page in records.chunks(PAGE) {
        dropped.push_page(at(1), page).await.unwrap();
    }
    drop(dropped);
    // Its session ended with it: the scope's lock is free.
    drop(run.begin_scope(scope(), wait).await.unwrap());
    run.finish(ecp_inventory::store::RunOutcome::Failed(
        "crawl failed".into(),
    ))
    .await
    .unwrap();

    let p = &db.pool;
    for table in INVENTORY_TABLES.into_iter().chain(["fleet_count_changes"]) {
        let sql = format!("SELECT count(*) FROM ecp.{table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let line: (bool, bool, Option<String>) =
        sqlx::query_as("SELECT complete, applied, error FROM ecp.sync_run_scopes")
            .fetch_one(p)
            .await
            .unwrap();
    assert_eq!(line, (false, false, Some("page 11: throttled".into())));
    // Batches were written before the failure, and rolled back.
    assert!(instances_inserted(p).await >= 1000);
}
