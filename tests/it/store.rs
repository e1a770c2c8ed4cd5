//! The store against a real Postgres: first sync, re-sync without writes, field,
//! tag and disk changes, deletion and restoration, volatile fields, failed crawls,
//! history queries, the deletion guards, the scope lock and the run ledger.

use std::time::Duration;

use ecp_inventory::normalize::Normalized;
use ecp_inventory::store::{ApplyCounts, ApplyOptions, RunOutcome, Scope, StoreError};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{
    at, count, fleet, norm, sync, sync_normalized, test_db, test_db_migrated_to, PAGE,
};

const N: usize = 1000;

type Ts = chrono::DateTime<chrono::Utc>;
/// instance_id, field, old_value, new_value, observed_at, previously_observed_at
type ChangeRow = (String, String, Option<Value>, Option<Value>, Ts, Option<Ts>);

#[tokio::test]
async fn first_sync_creates_every_instance_with_version_changes_disks_and_tags() {
    let db = test_db().await;
    let store = db.store();

    let counts = sync(
        &store,
        "cn-shanghai",
        &fleet(N),
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        (counts.seen, counts.created, counts.unchanged),
        (N as u64, N as u64, 0)
    );
    let p = &db.pool;
    assert_eq!(
        count(p, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
    assert_eq!(
        count(
            p,
            "SELECT count(*) FROM ecp.instance_versions WHERE version = 1 AND valid_to IS NULL"
        )
        .await,
        N as i64
    );
    assert_eq!(
        count(
            p,
            "SELECT count(*) FROM ecp.instance_changes WHERE change_kind = 'created'"
        )
        .await,
        N as i64
    );
    assert_eq!(
        count(p, "SELECT count(*) FROM ecp.instance_disks").await,
        2 * N as i64
    );
    assert_eq!(
        count(p, "SELECT count(*) FROM ecp.instance_tags").await,
        3 * N as i64
    );
    let (status, created, pages): (String, i64, i64) =
        sqlx::query_as("SELECT status, created_count, pages_fetched FROM ecp.sync_runs")
            .fetch_one(p)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), created, pages),
        ("succeeded", N as i64, (N / PAGE) as i64)
    );
    let (cpu, ip, lock, raw_cpu): (Option<i32>, Option<String>, Option<bool>, Value) =
        sqlx::query_as(
            "SELECT cpu_cores, host(network_interface_ip), display_lock_resolution, raw -> 'Cpu' \
         FROM ecp.instances WHERE instance_id = 'acp-000001'",
        )
        .fetch_one(p)
        .await
        .unwrap();
    assert_eq!(
        (cpu, ip.as_deref(), lock, raw_cpu),
        (Some(4), Some("10.0.0.2"), Some(false), json!("4"))
    );
}

/// Tuple counters and row identities of the tables a sync may write.
async fn write_fingerprint(p: &PgPool) -> (Vec<(String, i64, i64, i64)>, Vec<String>) {
    // Backends report their counters when they end or go idle; give them time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = sqlx::query_as(
        "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables \
         WHERE schemaname = 'ecp' AND relname IN ('instances', 'instance_versions', \
         'instance_changes', 'instance_disks', 'instance_tags') ORDER BY relname",
    )
    .fetch_all(p)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for table in crate::helpers::INVENTORY_TABLES {
        let sql = format!("SELECT md5(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid))::text FROM ecp.{table}");
        rows.push(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(p)
                .await
                .unwrap(),
        );
    }
    (stats, rows)
}

#[tokio::test]
async fn resync_without_change_writes_no_row() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let before = write_fingerprint(&db.pool).await;

    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        (
            counts.unchanged,
            counts.created,
            counts.updated,
            counts.volatile
        ),
        (N as u64, 0, 0, 0)
    );
    assert_eq!(write_fingerprint(&db.pool).await, before);
    // last_seen_at still moves, through the run ledger.
    let seen: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT min(last_seen_at) FROM ecp.current_instances")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(seen, at(2));
}

#[tokio::test]
async fn a_status_change_makes_one_change_row_and_a_version() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    records[7].insert("AndroidInstanceStatus".into(), json!("STOPPED"));

    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!((counts.updated, counts.unchanged), (1, N as u64 - 1));
    let rows: Vec<ChangeRow> = sqlx::query_as(
        "SELECT instance_id, field, old_value, new_value, observed_at, previously_observed_at \
             FROM ecp.instance_changes WHERE change_kind = 'updated'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let (id, field, old, new, observed, previously) = &rows[0];
    assert_eq!((id.as_str(), field.as_str()), ("acp-000007", "status"));
    assert_eq!(
        (old.clone(), new.clone()),
        (Some(json!("RUNNING")), Some(json!("STOPPED")))
    );
    assert_eq!((*observed, *previously), (at(2), Some(at(1))));
    let versions: Vec<(i32, String, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT version, status, valid_to FROM ecp.instance_versions \
         WHERE instance_id = 'acp-000007' ORDER BY version",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        versions,
        vec![
            (1, "RUNNING".into(), Some(at(2))),
            (2, "STOPPED".into(), None)
        ]
    );
}

/// Three crawls: pages seen two hours ago, then two crawls that start now and
/// whose pages come two and three hours later. The change feed's bound and a
/// deleted row's last sighting come from the crawl before, which rewrote no row.
#[tokio::test]
async fn previously_observed_at_and_last_seen_at_come_from_the_crawl_before() {
    let db = test_db().await;
    let store = db.store();
    // Microseconds, as Postgres keeps them.
    let hour = |h: i64| {
        use chrono::SubsecRound;
        (chrono::Utc::now() + chrono::TimeDelta::hours(h)).trunc_subsecs(6)
    };
    let mut records = fleet(N);
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, hour(-2), &opts)
        .await
        .unwrap();
    let second_end = hour(2);
    sync(&store, "cn-shanghai", &records, second_end, &opts)
        .await
        .unwrap();
    let second_start: Ts =
        sqlx::query_scalar("SELECT started_at FROM ecp.sync_run_scopes WHERE snapshot_at = $1")
            .bind(second_end)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    records[7].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    let gone = records.remove(9);
    sync(&store, "cn-shanghai", &records, hour(3), &opts)
        .await
        .unwrap();

    // The second crawl saw instance 7 somewhere between its start and its last
    // page: only its start bounds the change from below.
    let previously: Ts = sqlx::query_scalar(
        "SELECT previously_observed_at FROM ecp.instance_changes \
         WHERE instance_id = 'acp-000007' AND change_kind = 'updated'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        previously, second_start,
        "the start of the crawl before, not its last page ({second_end})"
    );
    // The deleted instance was last returned by the second crawl.
    let last_seen: Ts =
        sqlx::query_scalar("SELECT last_seen_at FROM ecp.instances WHERE instance_id = $1")
            .bind(gone["AndroidInstanceId"].as_str().unwrap())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(last_seen, second_end);
}

/// Two scopes that list the same instances (two aliases of one account, say):
/// the instances stay where they are, run after run. A real move shows once the
/// old scope stops listing an instance: deleted there, restored in the new one.
/// A scope no longer crawled gives its instances up, one crawl later.
#[tokio::test]
async fn an_instance_two_scopes_list_stays_where_it_is() {
    let db = test_db().await;
    let store = db.store();
    let opts = ApplyOptions::default();
    let records = fleet(10);
    let (shanghai, hangzhou) = ("cn-shanghai", "cn-hangzhou");
    // Region, versions, change rows.
    let history = |id: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i64, i64)>(
                "SELECT i.biz_region_id, \
                        (SELECT count(*) FROM ecp.instance_versions v WHERE v.instance_id = i.instance_id), \
                        (SELECT count(*) FROM ecp.instance_changes c WHERE c.instance_id = i.instance_id) \
                 FROM ecp.instances i WHERE i.instance_id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let counts = |c: ApplyCounts| (c.updated, c.unchanged, c.deleted, c.restored);
    sync(&store, shanghai, &records, at(1), &opts)
        .await
        .unwrap();
    // Hangzhou's first crawl: Shanghai listed them after their last change.
    let c = sync(&store, hangzhou, &records[..2], at(2), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (0, 2, 0, 0));
    for hour in [3, 5] {
        let c = sync(&store, shanghai, &records, at(hour), &opts)
            .await
            .unwrap();
        assert_eq!(counts(c), (0, 10, 0, 0), "hour {hour}");
        let c = sync(&store, hangzhou, &records[..2], at(hour + 1), &opts)
            .await
            .unwrap();
        assert_eq!(counts(c), (0, 2, 0, 0), "hour {}", hour + 1);
    }
    assert_eq!(history("acp-000000").await, (shanghai.into(), 1, 1));
    // Hangzhou twice in a row (crawled more often than Shanghai, in runs of its
    // own): Shanghai was not crawled since Hangzhou's previous run, so the
    // instances move, once; then they stay, whichever scope is crawled.
    let c = sync(&store, hangzhou, &records[..2], at(7), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (2, 0, 0, 0));
    let c = sync(&store, shanghai, &records, at(8), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (0, 10, 0, 0));
    let c = sync(&store, hangzhou, &records[..2], at(9), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (0, 2, 0, 0));
    assert_eq!(history("acp-000000").await, (hangzhou.into(), 2, 2));

    // acp-000001 really moved: Hangzhou no longer lists it.
    let c = sync(&store, hangzhou, &records[..1], at(10), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (0, 1, 1, 0));
    let c = sync(&store, shanghai, &records, at(11), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (0, 9, 0, 1));
    // Created, moved, deleted, restored; the restoration with its region's row.
    assert_eq!(history("acp-000001").await, (shanghai.into(), 4, 5));

    // Hangzhou is no longer crawled: its last crawl is older than Shanghai's
    // previous run, so acp-000000 moves on Shanghai's next crawl.
    let c = sync(&store, shanghai, &records, at(12), &opts)
        .await
        .unwrap();
    assert_eq!(counts(c), (1, 9, 0, 0));
    assert_eq!(history("acp-000000").await, (shanghai.into(), 3, 3));
}

/// A crawl timed to the nanosecond (as a clock gives it) is evidence for every
/// instance it listed, the last page's too: the page time went to Postgres
/// rounded and the crawl's snapshot_at cut, so those instances seemed changed a
/// microsecond after the crawl, and another scope listing them took them.
#[tokio::test]
async fn a_crawl_timed_to_the_nanosecond_keeps_its_last_page() {
    let db = test_db().await;
    let store = db.store();
    let opts = ApplyOptions::default();
    let records = fleet(3);
    let when = at(1) + chrono::TimeDelta::nanoseconds(700);
    sync(&store, "cn-shanghai", &records, when, &opts)
        .await
        .unwrap();
    let c = sync(&store, "cn-hangzhou", &records, at(2), &opts)
        .await
        .unwrap();
    assert_eq!((c.updated, c.unchanged), (0, 3));
}

/// A filtered scope (a source with a status filter, say) never takes an instance
/// another scope holds: not from an unfiltered scope of the same account, crawled
/// however often, nor from another filtered one; the two would otherwise trade
/// instances on every run.
#[tokio::test]
async fn a_filtered_scope_never_takes_instances_another_scope_holds() {
    let db = test_db().await;
    let store = db.store();
    let all = ApplyOptions::default();
    let filtered = ApplyOptions {
        filtered: true,
        ..ApplyOptions::default()
    };
    let records = fleet(10);
    let (shanghai, hangzhou, beijing) = ("cn-shanghai", "cn-hangzhou", "cn-beijing");
    let versions = || {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ecp.instance_versions")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    sync(&store, shanghai, &records, at(1), &all).await.unwrap();
    for hour in [2, 4, 6] {
        // Twice for each crawl of the unfiltered scope.
        for (region, minutes) in [(hangzhou, 0), (hangzhou, 30), (beijing, 40)] {
            let when = at(hour) + chrono::TimeDelta::minutes(minutes);
            let c = sync(&store, region, &records[..2], when, &filtered)
                .await
                .unwrap();
            assert_eq!((c.updated, c.unchanged), (0, 2), "{region} at hour {hour}");
        }
        let c = sync(&store, shanghai, &records, at(hour + 1), &all)
            .await
            .unwrap();
        assert_eq!((c.updated, c.unchanged), (0, 10), "hour {}", hour + 1);
    }
    assert_eq!(versions().await, 10);

    // Two filtered scopes alone: the one that created an instance keeps it.
    let more = fleet(12).split_off(10);
    for hour in [8, 9, 10] {
        for region in [hangzhou, beijing] {
            sync(&store, region, &more, at(hour), &filtered)
                .await
                .unwrap();
        }
    }
    assert_eq!(versions().await, 12);
}

#[tokio::test]
async fn tag_changes_make_one_row_per_key() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    records[1].insert("Tags".into(), json!([{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "t1"}, {"Key": "owner", "Value": "ana"}]));
    records[2].insert(
        "Tags".into(),
        json!([{"Key": "env", "Value": "test"}, {"Key": "team", "Value": "t2"}]),
    );
    records[3].insert("Tags".into(), json!([{"Key": "env", "Value": "prod"}]));
    records[4].insert("BizTags".into(), json!([]));

    sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    let rows: Vec<(String, String, Option<Value>, Option<Value>)> = sqlx::query_as(
        "SELECT instance_id, field, old_value, new_value FROM ecp.instance_changes \
         WHERE change_kind = 'updated' ORDER BY instance_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "acp-000001".into(),
                "tags.owner".into(),
                None,
                Some(json!("ana"))
            ),
            (
                "acp-000002".into(),
                "tags.env".into(),
                Some(json!("prod")),
                Some(json!("test"))
            ),
            (
                "acp-000003".into(),
                "tags.team".into(),
                Some(json!("t0")),
                None
            ),
            (
                "acp-000004".into(),
                "biz_tags.releaseFlag".into(),
                Some(json!("on")),
                None
            ),
        ]
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_tags WHERE instance_id = 'acp-000001'"
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_tags WHERE instance_id = 'acp-000003'"
        )
        .await,
        2
    );
    let env: String = sqlx::query_scalar(
        "SELECT tags ->> 'env' FROM ecp.instances WHERE instance_id = 'acp-000002'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(env, "test");
}

#[tokio::test]
async fn a_resized_disk_makes_a_disks_row() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    records[9].insert(
        "Disks".into(),
        json!([{"DiskType": "SYSTEM", "DiskSize": 32}, {"DiskType": "DATA", "DiskSize": 128}]),
    );

    sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    let rows: Vec<(String, Value, Value)> = sqlx::query_as(
        "SELECT field, old_value, new_value FROM ecp.instance_changes WHERE change_kind = 'updated'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "disks");
    assert_eq!(rows[0].1[1]["disk_size_gb"], json!(64));
    assert_eq!(rows[0].2[1]["disk_size_gb"], json!(128));
    let size: i32 = sqlx::query_scalar(
        "SELECT disk_size_gb FROM ecp.instance_disks WHERE instance_id = 'acp-000009' AND disk_index = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(size, 128);
}

#[tokio::test]
async fn a_vanished_instance_is_deleted_and_restored_when_back() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let without: Vec<_> = records
        .iter()
        .filter(|r| r["AndroidInstanceId"] != "acp-000005")
        .cloned()
        .collect();

    let gone = sync(
        &store,
        "cn-shanghai",
        &without,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(gone.deleted, 1);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64 - 1
    );
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT deleted_at FROM ecp.instances WHERE instance_id = 'acp-000005'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(deleted_at, Some(at(2)));
    assert_eq!(count(&db.pool, "SELECT count(*) FROM ecp.instance_versions WHERE instance_id = 'acp-000005' AND is_deleted AND valid_to IS NULL").await, 1);

    let back = sync(
        &store,
        "cn-shanghai",
        &records,
        at(3),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!((back.restored, back.unchanged), (1, N as u64 - 1));
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT change_kind FROM ecp.instance_changes WHERE instance_id = 'acp-000005' ORDER BY change_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["created", "deleted", "restored"]);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
    assert_eq!(count(&db.pool, "SELECT max(version)::bigint FROM ecp.instance_versions WHERE instance_id = 'acp-000005'").await, 3);
}

/// The disk and tag rows of one instance, in a comparable form.
async fn disks_and_tags(
    p: &PgPool,
    id: &str,
) -> (Vec<(i32, String, i32)>, Vec<(String, String, String)>) {
    let disks = sqlx::query_as(
        "SELECT disk_index, disk_type, disk_size_gb FROM ecp.instance_disks \
         WHERE instance_id = $1 ORDER BY disk_index",
    )
    .bind(id)
    .fetch_all(p)
    .await
    .unwrap();
    let tags = sqlx::query_as(
        "SELECT kind, tag_key, tag_value FROM ecp.instance_tags \
         WHERE instance_id = $1 ORDER BY kind, tag_key",
    )
    .bind(id)
    .fetch_all(p)
    .await
    .unwrap();
    (disks, tags)
}

#[tokio::test]
async fn a_deleted_instance_has_no_disks_or_tags_until_it_comes_back() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, at(1), &opts)
        .await
        .unwrap();
    let before = disks_and_tags(&db.pool, "acp-000005").await;
    assert_eq!((before.0.len(), before.1.len()), (2, 3));
    let without: Vec<_> = records
        .iter()
        .filter(|r| {
            r["AndroidInstanceId"] != "acp-000005" && r["AndroidInstanceId"] != "acp-000006"
        })
        .cloned()
        .collect();

    sync(&store, "cn-shanghai", &without, at(2), &opts)
        .await
        .unwrap();

    // Only the instances that exist now have disk and tag rows; the deleted
    // one keeps its last lists on its row.
    assert_eq!(
        disks_and_tags(&db.pool, "acp-000005").await,
        (vec![], vec![])
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(DISTINCT instance_id) FROM ecp.instance_tags"
        )
        .await,
        N as i64 - 2
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(DISTINCT instance_id) FROM ecp.instance_disks"
        )
        .await,
        N as i64 - 2
    );
    let last: (Value, Value) =
        sqlx::query_as("SELECT tags, disks FROM ecp.instances WHERE instance_id = 'acp-000005'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(last.0["env"], json!("prod"));
    assert_eq!(last.1.as_array().map(Vec::len), Some(2));

    // Back unchanged: the same lists again. Back with other lists: the new ones.
    records[6].insert("Tags".into(), json!([{"Key": "env", "Value": "test"}]));
    records[6].insert(
        "Disks".into(),
        json!([{"DiskType": "SYSTEM", "DiskSize": 40}]),
    );
    let back = sync(&store, "cn-shanghai", &records, at(3), &opts)
        .await
        .unwrap();

    assert_eq!(back.restored, 2);
    assert_eq!(disks_and_tags(&db.pool, "acp-000005").await, before);
    assert_eq!(
        disks_and_tags(&db.pool, "acp-000006").await,
        (
            vec![(0, "SYSTEM".to_owned(), 40)],
            vec![
                ("biz".to_owned(), "releaseFlag".to_owned(), "on".to_owned()),
                ("user".to_owned(), "env".to_owned(), "test".to_owned()),
            ]
        )
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_tags").await,
        3 * N as i64 - 1
    );
}

#[tokio::test]
async fn migration_0024_removes_the_disks_and_tags_of_deleted_instances() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, at(1), &opts)
        .await
        .unwrap();
    sync(&store, "cn-shanghai", &records[1..], at(2), &opts)
        .await
        .unwrap();
    // The rows a deleted instance kept before 0024.
    sqlx::raw_sql(
        "INSERT INTO ecp.instance_disks VALUES ('acp-000000', 0, 'SYSTEM', 32); \
         INSERT INTO ecp.instance_tags VALUES ('acp-000000', 'user', 'env', 'prod')",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    sqlx::raw_sql(include_str!("../../migrations/0024_live_disks_tags.sql"))
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(
        disks_and_tags(&db.pool, "acp-000000").await,
        (vec![], vec![])
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_tags").await,
        3 * (N as i64 - 1)
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_disks").await,
        2 * (N as i64 - 1)
    );
}

/// Migration 0029: a version after the first must name its predecessor, so a
/// version written by hand cannot overlap the ones before it; versions whose
/// predecessor an earlier prune removed are marked, not refused.
#[tokio::test]
async fn a_version_after_the_first_must_name_its_predecessor() {
    let db = test_db_migrated_to(Some(28)).await;
    let store = db.store();
    let opts = ApplyOptions::default();
    let mut records = fleet(3);
    sync(&store, "cn-shanghai", &records, at(1), &opts)
        .await
        .unwrap();
    records[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    sync(&store, "cn-shanghai", &records, at(2), &opts)
        .await
        .unwrap();
    // A prune from before 0029: version 1 goes, and the link to it with it.
    sqlx::query(
        "DELETE FROM ecp.instance_versions WHERE instance_id = 'acp-000000' AND version = 1",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    ecp_inventory::store::migrate(&db.pool).await.unwrap();

    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_versions \
             WHERE instance_id = 'acp-000000' AND version = 2 AND chain_pruned"
        )
        .await,
        1
    );
    // A second version of acp-000001, by hand, naming no predecessor: it would
    // be valid from hour 5 while version 1 still is.
    let refused_by = |statement: &'static str| {
        let pool = db.pool.clone();
        async move {
            let err = sqlx::query(statement).execute(&pool).await.unwrap_err();
            err.as_database_error()
                .and_then(|e| e.constraint())
                .map(str::to_owned)
        }
    };
    assert_eq!(
        refused_by(
            "INSERT INTO ecp.instance_versions \
                 (instance_id, version, valid_from, run_id, source, biz_region_id) \
             SELECT instance_id, 2, valid_from + interval '4 hours', run_id, source, biz_region_id \
             FROM ecp.instance_versions WHERE instance_id = 'acp-000001'"
        )
        .await
        .as_deref(),
        Some("instance_versions_names_its_predecessor")
    );
    // Nor can a version claim that prune removed a predecessor still there.
    records[0].insert("AndroidInstanceStatus".into(), json!("RUNNING"));
    sync(&store, "cn-shanghai", &records, at(3), &opts)
        .await
        .unwrap();
    assert_eq!(
        refused_by(
            "UPDATE ecp.instance_versions SET chain_pruned = true \
             WHERE instance_id = 'acp-000000' AND version = 3"
        )
        .await
        .as_deref(),
        Some("instance_versions_pruned_predecessor_is_gone")
    );
    // Nor begin a second chain (0033): unlinked, it would overlap the first.
    for (version, from) in [(3, "valid_from + interval '4 hours'"), (9, "'2000-01-01'")] {
        let statement = format!(
            "INSERT INTO ecp.instance_versions \
                 (instance_id, version, chain_pruned, valid_from, run_id, source, biz_region_id) \
             SELECT instance_id, {version}, true, {from}, run_id, source, biz_region_id \
             FROM ecp.instance_versions WHERE instance_id = 'acp-000001'"
        );
        let err = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&db.pool)
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.constraint()),
            Some("instance_versions_one_chain_start"),
            "{err}"
        );
    }
    // The apply itself always names it.
    records[1].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    let c = sync(&store, "cn-shanghai", &records, at(4), &opts)
        .await
        .unwrap();
    assert_eq!(c.updated, 1);
}

/// A fleet that comes back written differently (keys in another order, other
/// spacing, characters escaped), saying the same, is unchanged: no row is
/// rewritten, none counts as volatile.
#[tokio::test]
async fn records_written_differently_but_saying_the_same_are_unchanged() {
    use ecp_inventory::api::model::RawInstance;
    use ecp_inventory::normalize::{normalize, NormalizeOptions};

    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let before = write_fingerprint(&db.pool).await;
    // Each record with its keys in reverse order, spaced out, its name escaped.
    let rewritten: Vec<_> = records
        .iter()
        .map(|r| {
            let members: Vec<String> = r
                .iter()
                .rev()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("AndroidInstanceName", Value::String(name)) => {
                        let escaped: String = name
                            .chars()
                            .map(|c| format!("\\u{:04x}", c as u32))
                            .collect();
                        format!("\"{k}\" : \"{escaped}\"")
                    }
                    _ => format!("\"{k}\" : {v}"),
                })
                .collect();
            let text = format!("{{ {} }}", members.join(" ,\n "));
            let record = RawInstance {
                fields: serde_json::from_str(&text).unwrap(),
                text: serde_json::value::RawValue::from_string(text).unwrap(),
                mended: Vec::new(),
                unreadable: None,
            };
            assert_eq!(&record.fields, r, "the same values");
            normalize(record, &NormalizeOptions::default()).unwrap()
        })
        .collect();

    let counts = sync_normalized(
        &store,
        "cn-shanghai",
        &rewritten,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (counts.unchanged, counts.volatile, counts.updated),
        (N as u64, 0, 0),
        "{counts:?}"
    );
    assert_eq!(write_fingerprint(&db.pool).await, before, "no row written");
}

/// A number that comes back written otherwise (4096, then 4096.0) is equal as
/// jsonb, which still keeps each as written: raw takes the new writing, as a
/// volatile change.
#[tokio::test]
async fn a_number_written_anew_reaches_raw() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(3);
    records[0].insert("Memory".into(), json!(4096));
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, at(1), &opts)
        .await
        .unwrap();
    records[0].insert("Memory".into(), json!(4096.0));
    let counts = sync(&store, "cn-shanghai", &records, at(2), &opts)
        .await
        .unwrap();
    assert_eq!((counts.volatile, counts.updated), (1, 0), "{counts:?}");
    let memory: String = sqlx::query_scalar(
        "SELECT raw->>'Memory' FROM ecp.instances WHERE instance_id = 'acp-000000'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(memory, "4096.0");
}

#[tokio::test]
async fn volatile_only_changes_update_the_row_without_history() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    for r in records.iter_mut().take(10) {
        r.insert("SessionStatus".into(), json!("disconnect"));
        r.insert("Rate".into(), json!(42));
        r.insert("GmtModified".into(), json!("2025-01-01 01:30:00"));
    }

    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    assert_eq!(
        (counts.volatile, counts.updated, counts.unchanged),
        (10, 0, N as u64)
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instances WHERE session_status = 'disconnect' AND rate = 42"
        )
        .await,
        10
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_versions").await,
        N as i64
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_changes WHERE change_kind <> 'created'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_crawl_that_fails_midway_changes_nothing() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let mut changed = records.clone();
    for r in &mut changed {
        r.insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    }
    let before = write_fingerprint(&db.pool).await;

    let run = store.start_run("test").await.unwrap();
    let mut scope = run
        .begin_scope(Scope::new("default", "cn-shanghai"), Duration::from_secs(5))
        .await
        .unwrap();
    for page in norm(&changed[..500]).chunks(PAGE) {
        scope.push_page(at(2), page).await.unwrap();
    }
    scope.give_up("page 6: throttled").await.unwrap();
    // A crawl abandoned without even giving up (the process lost its way).
    let mut other = run
        .begin_scope(Scope::new("default", "cn-shanghai"), Duration::from_secs(5))
        .await
        .unwrap();
    other
        .push_page(at(2), &norm(&changed[..100]))
        .await
        .unwrap();
    drop(other);
    run.finish(RunOutcome::Failed("crawl failed".into()))
        .await
        .unwrap();

    assert_eq!(write_fingerprint(&db.pool).await, before);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instances WHERE status = 'STOPPED'"
        )
        .await,
        0
    );
    let (complete, applied, error): (bool, bool, Option<String>) =
        sqlx::query_as("SELECT complete, applied, error FROM ecp.sync_run_scopes WHERE run_id = 2")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (complete, applied, error.as_deref()),
        (false, false, Some("page 6: throttled"))
    );
    let status: String = sqlx::query_scalar("SELECT status FROM ecp.sync_runs WHERE run_id = 2")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");
}

/// instances_as_of's test on valid_from must never become an index condition:
/// nearly every version qualifies, and when the moment is unknown at planning
/// time the planner guessed a third and read the versions through
/// instance_versions_valid_idx, 1.5-2.25 times as slow as a scan (migration
/// 0028). With sequential scans priced out, every usable index path shows.
#[tokio::test]
async fn instances_as_of_never_looks_up_valid_from_in_an_index() {
    let db = test_db().await;
    let store = db.store();
    sync(
        &store,
        "cn-shanghai",
        &fleet(N),
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::raw_sql("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT count(*) FROM ecp.instances_as_of($1)")
            .bind(at(2))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    sqlx::raw_sql("RESET enable_seqscan")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("instance_versions"), "{plan}");
    assert!(
        !plan
            .lines()
            .any(|l| l.contains("Index Cond") && l.contains("valid_from")),
        "{plan}"
    );
}

#[tokio::test]
async fn instances_as_of_between_two_runs_returns_the_earlier_state() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    records[3].insert("AndroidInstanceName".into(), json!("renamed"));
    records.truncate(N - 1);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(3),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    let name: String = sqlx::query_scalar(
        "SELECT instance_name FROM ecp.instances_as_of($1) WHERE instance_id = 'acp-000003'",
    )
    .bind(at(2))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(name, "phone-000003");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.instances_as_of($1)")
        .bind(at(2))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, N as i64);
    let later: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.instances_as_of($1)")
        .bind(at(4))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(later, N as i64 - 1);
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM ecp.instances_as_of($1)")
        .bind(at(0))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, 0);
}

#[tokio::test]
async fn a_filtered_crawl_never_deletes() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let filtered = ApplyOptions {
        filtered: true,
        ..ApplyOptions::default()
    };

    let counts = sync(&store, "cn-shanghai", &records[..10], at(2), &filtered)
        .await
        .unwrap();

    assert_eq!((counts.deleted, counts.unchanged), (0, 10));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
}

#[tokio::test]
async fn mass_deletion_is_refused_unless_allowed() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let mut shrunk = records[..400].to_vec();
    shrunk[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));

    let refused = sync(
        &store,
        "cn-shanghai",
        &shrunk,
        at(2),
        &ApplyOptions::default(),
    )
    .await;
    let empty = sync(
        &store,
        "cn-shanghai",
        &[],
        at(2),
        &ApplyOptions {
            max_delete_share: 1.0,
            ..Default::default()
        },
    )
    .await;

    match refused {
        Err(
            e @ StoreError::RefusedDeletion {
                would_delete: 600,
                current: 1000,
                ..
            },
        ) => {
            assert!(e.to_string().contains("--allow-mass-delete"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(matches!(
        empty,
        Err(StoreError::RefusedDeletion {
            would_delete: 1000,
            ..
        })
    ));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instance_changes WHERE change_kind <> 'created'"
        )
        .await,
        0
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM ecp.sync_run_scopes WHERE complete AND NOT applied AND error LIKE '%allow-mass-delete%'").await, 2);

    let allowed = ApplyOptions {
        allow_mass_delete: true,
        ..Default::default()
    };
    let counts = sync(&store, "cn-shanghai", &shrunk, at(3), &allowed)
        .await
        .unwrap();
    assert_eq!((counts.deleted, counts.updated), (600, 1));
}

#[tokio::test]
async fn a_retired_scope_has_its_instances_deleted_in_a_run_of_its_own() {
    let db = test_db().await;
    let store = db.store();
    let records = fleet(N);
    let (shanghai, beijing) = records.split_at(600);
    let default = ApplyOptions::default();
    sync(&store, "cn-shanghai", shanghai, at(1), &default)
        .await
        .unwrap();
    sync(&store, "cn-beijing", beijing, at(1), &default)
        .await
        .unwrap();
    let wait = Duration::from_secs(5);

    // A misspelt region is refused, naming the scopes there are; no run is made.
    let misspelt = store
        .retire("test", &[Scope::new("default", "cn-beijng")], wait)
        .await;
    match misspelt {
        Err(StoreError::UnknownScope { known, .. }) => {
            assert_eq!(known, ["default/cn-beijing", "default/cn-shanghai"])
        }
        other => panic!("{other:?}"),
    }
    let plan = store
        .retirement_plan(&[Scope::new("default", "cn-beijing")])
        .await
        .unwrap();
    assert_eq!((plan[0].instances, plan[0].last_crawl), (400, Some(at(1))));
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.sync_runs WHERE command = 'retire'"
        )
        .await,
        0
    );

    let (run_id, retired) = store
        .retire("test", &[Scope::new("default", "cn-beijing")], wait)
        .await
        .unwrap();

    assert_eq!(retired[0].instances, 400);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.current_instances WHERE biz_region_id = 'cn-shanghai'"
        )
        .await,
        600
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        600
    );
    let ledger: (String, String, i64, i64) = sqlx::query_as(
        "SELECT command, status, deleted_count, pages_fetched FROM ecp.sync_runs WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(ledger, ("retire".into(), "succeeded".into(), 400, 0));
    let deleted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ecp.instance_changes c JOIN ecp.instance_versions v \
           ON v.instance_id = c.instance_id AND v.run_id = c.run_id \
         WHERE c.run_id = $1 AND c.change_kind = 'deleted' AND v.is_deleted \
           AND v.valid_to IS NULL AND v.biz_region_id = 'cn-beijing'",
    )
    .bind(run_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(deleted, 400);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM ecp.instance_tags t JOIN ecp.instances i USING (instance_id) WHERE i.biz_region_id = 'cn-beijing'").await, 0);
    assert_eq!(count(&db.pool, "SELECT count(*) FROM ecp.instance_versions WHERE biz_region_id = 'cn-shanghai' AND version > 1").await, 0);

    // Nothing left to retire; and a sync that lists them again brings them back.
    let (_, again) = store
        .retire("test", &[Scope::new("default", "cn-beijing")], wait)
        .await
        .unwrap();
    assert_eq!(again[0].instances, 0);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let back = sync(&store, "cn-beijing", beijing, later, &default)
        .await
        .unwrap();
    assert_eq!(back.restored, 400);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        N as i64
    );
    assert_eq!(
        store.scopes_holding("default").await.unwrap(),
        [
            Scope::new("default", "cn-beijing"),
            Scope::new("default", "cn-shanghai")
        ]
    );
}

#[tokio::test]
async fn a_scope_locked_by_another_run_is_busy() {
    let db = test_db().await;
    let store = db.store();
    let first = store.start_run("test").await.unwrap();
    let second = store.start_run("test").await.unwrap();
    let scope = Scope::new("default", "cn-shanghai");
    let held = first
        .begin_scope(scope.clone(), Duration::from_secs(1))
        .await
        .unwrap();

    let busy = second
        .begin_scope(scope.clone(), Duration::from_millis(300))
        .await;
    let other_scope = second
        .begin_scope(Scope::new("default", "ap-southeast-1"), Duration::ZERO)
        .await;

    assert!(
        matches!(busy, Err(StoreError::LockBusy { .. })),
        "{:?}",
        busy.err()
    );
    assert!(other_scope.is_ok());
    held.give_up("test").await.unwrap();
    assert!(second
        .begin_scope(scope, Duration::from_secs(2))
        .await
        .is_ok());
}

#[tokio::test]
async fn runs_left_running_by_a_dead_process_are_marked_abandoned() {
    let db = test_db().await;
    let store = db.store();
    // A run whose process died: its row says running, nobody holds its lock.
    sqlx::query("INSERT INTO ecp.sync_runs (tool_version) VALUES ('crashed')")
        .execute(&db.pool)
        .await
        .unwrap();
    // It applied two scopes before it died: their changes are in the inventory,
    // and the abandoned run accounts for them (its counts stayed 0).
    sqlx::query(
        "INSERT INTO ecp.sync_run_scopes (run_id, source, biz_region_id, complete, applied, \
         filtered, pages_fetched, instances_seen, records_skipped, field_problems, \
         created_count, updated_count, deleted_count, restored_count, unchanged_count, \
         volatile_count, started_at) \
         VALUES (1, 'default', 'cn-shanghai', true, true, false, 3, 250, 0, 0, 7, 5, 2, 1, 235, 4, now()), \
                (1, 'default', 'cn-beijing', true, true, false, 2, 100, 0, 0, 100, 0, 0, 0, 0, 0, now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let live = store.start_run("test").await.unwrap();

    let abandoned = store.mark_abandoned_runs().await.unwrap();

    assert!(abandoned.is_empty(), "start_run already marked it");
    let statuses: Vec<(i64, String)> =
        sqlx::query_as("SELECT run_id, status FROM ecp.sync_runs ORDER BY run_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        vec![(1, "abandoned".into()), (live.id(), "running".into())]
    );
    let counts: (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pages_fetched, instances_seen, created_count, updated_count, deleted_count, \
         restored_count, unchanged_count, volatile_count FROM ecp.sync_runs WHERE run_id = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(counts, (5, 350, 107, 5, 2, 1, 235, 4));
    live.finish(RunOutcome::Succeeded).await.unwrap();
}

#[tokio::test]
async fn every_table_view_function_and_column_has_a_comment() {
    let db = test_db().await;
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname || coalesce('.' || a.attname, '') FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE n.nspname = 'ecp' AND c.relkind IN ('r', 'v', 'm', 'p') \
           AND (obj_description(c.oid, 'pg_class') IS NULL \
                OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL)) \
         UNION ALL \
         SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'ecp' AND obj_description(p.oid, 'pg_proc') IS NULL",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(missing.is_empty(), "no COMMENT on: {missing:?}");
}

/// When the apply last sampled `table` itself (autovacuum's own sampling does
/// not count).
async fn analyzed_by_the_tool(p: &PgPool, table: &str) -> bool {
    sqlx::query_scalar::<_, Option<Ts>>(
        "SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'ecp' AND relname = $1",
    )
    .bind(table)
    .fetch_one(p)
    .await
    .unwrap()
    .is_some()
}

#[tokio::test]
async fn a_run_that_wrote_much_of_the_fleet_refreshes_the_statistics() {
    // Stale statistics once turned the next apply's deletion check quadratic:
    // a plan made for an empty ecp.instances.
    let db = test_db().await;
    // Autovacuum's own sample would replace the tool's before it is read.
    sqlx::raw_sql("ALTER TABLE ecp.instances SET (autovacuum_enabled = off)")
        .execute(&db.pool)
        .await
        .unwrap();
    let store = db.store();
    let small = &fleet(N)[..20];
    sync(
        &store,
        "cn-shanghai",
        small,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        !analyzed_by_the_tool(&db.pool, "instances").await,
        "20 new instances are not worth a sample"
    );
    let big = fleet(N + 100);
    sync(&store, "cn-shanghai", &big, at(2), &ApplyOptions::default())
        .await
        .unwrap();
    for table in [
        "instances",
        "instance_versions",
        "instance_tags",
        "instance_disks",
    ] {
        assert!(analyzed_by_the_tool(&db.pool, table).await, "{table}");
    }
    let estimate: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'ecp.instances'::regclass")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(estimate, big.len() as f32);
    // A small sample (target 10: a histogram of at most 11 bounds, where the
    // server's default of 100 gives up to 101).
    let bounds: i32 = sqlx::query_scalar(
        "SELECT array_length(histogram_bounds, 1) FROM pg_stats \
         WHERE schemaname = 'ecp' AND tablename = 'instances' AND attname = 'instance_id'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(big.len() > 101, "{} instances", big.len());
    assert!((2..=11).contains(&bounds), "{bounds} histogram bounds");
}

#[tokio::test]
async fn raw_is_compressed_with_lz4_where_the_server_has_it() {
    let db = test_db().await;
    let has_lz4: bool = sqlx::query_scalar(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let method: String = sqlx::query_scalar(
        "SELECT attcompression::text FROM pg_attribute \
         WHERE attrelid = 'ecp.instances'::regclass AND attname = 'raw'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(method, if has_lz4 { "l" } else { "" });
}

#[tokio::test]
async fn a_digest_that_differs_alone_is_refreshed_without_a_version() {
    // The same values staged in another form (an upgrade that changes how a
    // record is written, say) give another digest. The apply must then find no
    // change, write no history, and store the new digest, or every later run
    // would compare every instance in full.
    let db = test_db().await;
    let store = db.store();
    let records = fleet(50);
    sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    let digests = "SELECT count(DISTINCT content_hash) FROM ecp.instances";
    assert_eq!(count(&db.pool, digests).await, 50);
    sqlx::query("UPDATE ecp.instances SET content_hash = gen_random_uuid()")
        .execute(&db.pool)
        .await
        .unwrap();

    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(2),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((counts.created, counts.updated), (0, 0));
    // Not a volatile change: only the digest was written, not the row's values.
    assert_eq!((counts.unchanged, counts.volatile), (50, 0), "{counts:?}");
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ecp.instances WHERE last_run_id = 1"
        )
        .await,
        50,
        "rows still as the first run wrote them"
    );
    assert_eq!(count(&db.pool, digests).await, 50);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_versions").await,
        50
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_changes").await,
        50,
        "the creations only"
    );

    let before = write_fingerprint(&db.pool).await;
    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(3),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(counts.volatile, 0, "digests refreshed: {counts:?}");
    // Row identities only: the pooled session that ran this test's UPDATE may
    // report its counters seconds later (an idle backend flushes them late).
    assert_eq!(
        write_fingerprint(&db.pool).await.1,
        before.1,
        "nothing written"
    );
}

/// An instance listed twice in one crawl (the page it was on moved while the
/// crawl ran) is one instance, in the state of its last listing.
#[tokio::test]
async fn an_instance_listed_twice_keeps_its_last_listing() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(2 * PAGE + 50);
    let mut relisted = records[3].clone();
    relisted.insert("AndroidInstanceName".into(), json!("renamed-while-crawled"));
    records.push(relisted);

    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(1),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();

    let n = 2 * PAGE as u64 + 50;
    assert_eq!((counts.seen, counts.created), (n, n));
    let p = &db.pool;
    let id = records[3]["AndroidInstanceId"].as_str().unwrap().to_owned();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT instance_name FROM ecp.instances WHERE instance_id = $1 \
         UNION ALL SELECT instance_name FROM ecp.instance_versions WHERE instance_id = $1",
    )
    .bind(&id)
    .fetch_all(p)
    .await
    .unwrap();
    assert_eq!(names, ["renamed-while-crawled", "renamed-while-crawled"]);
    assert_eq!(
        count(p, "SELECT count(*) FROM ecp.instance_changes").await,
        n as i64
    );
}

/// A tag too long for the indexes of `ecp.instance_tags` (random text, which
/// the server cannot compress below the B-tree's limit) used to fail the
/// scope's apply on every run. It stays in the instance's tags, and the other
/// instances and tags are stored.
#[tokio::test]
async fn a_tag_too_long_to_index_does_not_fail_the_scope() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(3);
    let mut state = 7_u64;
    let long: String = (0..3000)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + (state >> 59) as u8 % 26)
        })
        .collect();
    records[1].insert(
        "Tags".into(),
        json!([{"Key": "env", "Value": "prod"}, {"Key": "notes", "Value": long}]),
    );
    let counts = sync(
        &store,
        "cn-shanghai",
        &records,
        at(0),
        &ApplyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(counts.created, 3);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT tag_key, tag_value FROM ecp.instance_tags \
         WHERE instance_id = 'acp-000001' AND kind = 'user' ORDER BY tag_key",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows, [("env".to_owned(), "prod".to_owned())]);
    let kept: String = sqlx::query_scalar(
        "SELECT tags ->> 'notes' FROM ecp.instances WHERE instance_id = 'acp-000001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kept, long);
}

/// An instance that comes back changed: its field changes compare with the
/// state of before it disappeared, which was last seen by the last crawl that
/// returned it. They used to say the run that missed it (when the deletion was
/// recorded), claiming the change happened after that run.
#[tokio::test]
async fn a_restored_instance_changes_date_back_to_when_it_was_last_seen() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(N);
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, at(1), &opts)
        .await
        .unwrap();
    let without: Vec<_> = records
        .iter()
        .filter(|r| r["AndroidInstanceId"] != "acp-000005")
        .cloned()
        .collect();
    sync(&store, "cn-shanghai", &without, at(2), &opts)
        .await
        .unwrap();
    records[5].insert("AndroidInstanceStatus".into(), json!("STOPPED"));
    let back = sync(&store, "cn-shanghai", &records, at(3), &opts)
        .await
        .unwrap();
    assert_eq!(back.restored, 1);

    let updated: Vec<(Option<String>, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT field, previously_observed_at FROM ecp.instance_changes \
         WHERE instance_id = 'acp-000005' AND change_kind = 'updated'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(updated, [(Some("status".to_owned()), Some(at(1)))]);
}

/// Migration 0032 gives runs abandoned under earlier versions the counts of the
/// scopes they applied (they kept 0), and leaves other runs alone.
#[tokio::test]
async fn migration_0032_counts_what_abandoned_runs_applied() {
    let db = test_db_migrated_to(Some(31)).await;
    sqlx::raw_sql(
        "INSERT INTO ecp.sync_runs (tool_version, status, finished_at) \
         VALUES ('old', 'abandoned', now()), ('old', 'failed', now()); \
         INSERT INTO ecp.sync_run_scopes (run_id, source, biz_region_id, complete, applied, \
         filtered, pages_fetched, instances_seen, records_skipped, field_problems, \
         created_count, updated_count, deleted_count, restored_count, unchanged_count, \
         volatile_count, started_at) \
         VALUES (1, 'default', 'cn-shanghai', true, true, false, 3, 250, 0, 0, 7, 5, 2, 1, 235, 4, now()), \
                (2, 'default', 'cn-shanghai', true, true, false, 1, 10, 0, 0, 10, 0, 0, 0, 0, 0, now())",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    ecp_inventory::store::migrate(&db.pool).await.unwrap();
    let counts: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT run_id, instances_seen, created_count, unchanged_count FROM ecp.sync_runs \
         ORDER BY run_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(counts, [(1, 250, 7, 235), (2, 0, 0, 0)]);
}

/// Two sources that list the same account, applied at the same moment, write
/// the same new instances. The second writer used to fail on the primary key,
/// losing everything else its crawl had to apply; it now waits for the first
/// and leaves it the instances, as if the first had been there all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_creating_the_same_instances_at_once_leave_them_to_the_first() {
    let db = test_db().await;
    let store = db.store();
    // The second source's crawl saw the shared instances with other tags (a
    // moment earlier or later), and one instance of its own: its apply has
    // other writes to make, which must not touch the instances it left.
    let records_a = norm(&fleet(50));
    let mut records_b = fleet(51);
    for r in &mut records_b {
        r.insert("Tags".into(), json!([{"Key": "seen-by", "Value": "b"}]));
    }
    let records_b = norm(&records_b);
    let apply = |source, records| spawn_apply(&store, source, records);
    // The first apply stops at its last write (its ledger line), with every
    // instance written but not committed; the second then waits for it.
    let blocker = crate::helpers::hold_table_lock(&db, "ecp.sync_run_scopes").await;
    let first = apply("a", records_a);
    wait_for_lock_waits(&db, 1).await;
    let second = apply("b", records_b);
    wait_for_lock_waits(&db, 2).await;
    blocker.rollback().await.unwrap();

    let first = first.await.unwrap().expect("the first writer commits");
    assert_eq!(first.created, 50);
    let second = second
        .await
        .unwrap()
        .expect("the second writer commits too");
    assert_eq!((second.created, second.unchanged), (1, 50));
    for (sql, n) in [
        ("SELECT count(*) FROM ecp.instances WHERE source = 'a'", 50),
        ("SELECT count(*) FROM ecp.instances WHERE source = 'b'", 1),
        ("SELECT count(*) FROM ecp.instance_versions", 51),
        ("SELECT count(*) FROM ecp.instance_changes", 51),
        ("SELECT count(*) FROM ecp.sync_run_scopes WHERE applied", 2),
        // The first source's tag rows, as its instance rows say.
        (
            "SELECT count(*) FROM ecp.instance_tags t JOIN ecp.instances i USING (instance_id) \
             WHERE i.source = 'a' AND t.tag_key = 'seen-by'",
            0,
        ),
        (
            "SELECT count(*) FROM ecp.instances i WHERE i.source = 'a' AND NOT EXISTS \
             (SELECT 1 FROM ecp.instance_tags t WHERE t.instance_id = i.instance_id)",
            0,
        ),
    ] {
        assert_eq!(count(&db.pool, sql).await, n, "{sql}");
    }
}

/// A prune waits for an apply under way rather than racing it: an apply that
/// committed between the prune's statements left a version whose predecessor
/// the prune deleted without marking it, and the prune failed on
/// instance_versions_names_its_predecessor. After the wait, the new version is
/// marked and its predecessor pruned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_waits_for_an_apply_under_way() {
    let db = test_db().await;
    let store = db.store();
    let mut records = fleet(10);
    let opts = ApplyOptions::default();
    sync(&store, "cn-shanghai", &records, at(0), &opts)
        .await
        .unwrap();
    records[0].insert("AndroidInstanceStatus".into(), json!("STOPPED"));

    let blocker = crate::helpers::hold_table_lock(&db, "ecp.sync_run_scopes").await;
    let applying = {
        let (store, records) = (store.clone(), records.clone());
        tokio::spawn(async move {
            sync(
                &store,
                "cn-shanghai",
                &records,
                at(1),
                &ApplyOptions::default(),
            )
            .await
        })
    };
    wait_for_lock_waits(&db, 1).await;
    let pruning = {
        let store = store.clone();
        tokio::spawn(async move { store.prune(at(2), false).await })
    };
    wait_for_lock_waits(&db, 2).await;
    assert!(!pruning.is_finished(), "the prune waits for the apply");
    blocker.rollback().await.unwrap();
    applying.await.unwrap().unwrap();
    let pruned = pruning.await.unwrap().unwrap();
    assert_eq!(pruned.versions, 1);
    let chain: (i32, bool) = sqlx::query_as(
        "SELECT version, chain_pruned FROM ecp.instance_versions WHERE instance_id = 'acp-000000'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(chain, (2, true));
}

/// Two sources creating the same new instances at once, listed in opposite
/// orders: both write them in instance-id order, so the second waits for the
/// first, instead of each waiting for a row the other wrote (a deadlock the
/// server breaks by failing one of them). (Staged: first crawls written
/// straight into the tables are the next test's.)
#[tokio::test]
async fn two_sources_listing_the_same_new_instances_in_opposite_orders_do_not_deadlock() {
    let db = test_db().await;
    let store = db.staging_store();
    let records = norm(&fleet(4000));
    let mut reversed = records.clone();
    reversed.reverse();
    let apply = |source, records| spawn_apply(&store, source, records);
    // Both applies stop at their first write to ecp.instances, and start it
    // together.
    let blocker = crate::helpers::hold_table_lock(&db, "ecp.instances").await;
    let first = apply("a", records);
    let second = apply("b", reversed);
    wait_for_lock_waits(&db, 2).await;
    blocker.rollback().await.unwrap();

    let results = [first.await.unwrap(), second.await.unwrap()];
    let created: Vec<u64> = results
        .iter()
        .map(|r| r.as_ref().expect("both applies commit").created)
        .collect();
    assert_eq!(created.iter().sum::<u64>(), 4000, "{created:?}");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ecp.instance_versions").await,
        4000
    );
}

/// The same two first crawls, each written straight into the tables as it
/// goes: each holds its new instances until its apply commits, so they can
/// meet in a deadlock the server breaks. The one it fails, having written
/// batches it cannot keep, fails whole, as colliding applies do; the other
/// commits everything, and nothing is half written.
#[tokio::test]
async fn two_first_crawls_loading_the_same_new_instances_leave_one_whole() {
    let db = test_db().await;
    let store = db.store();
    let records = norm(&fleet(4000));
    let mut reversed = records.clone();
    reversed.reverse();
    let first = spawn_apply(&store, "a", records);
    let second = spawn_apply(&store, "b", reversed);

    let results = [first.await.unwrap(), second.await.unwrap()];
    let created: u64 = results.iter().flatten().map(|c| c.created).sum();
    assert_eq!(created, 4000, "{results:?}");
    for failed in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(failed, StoreError::ConcurrentWrite { .. }),
            "{failed}"
        );
    }
    for (sql, n) in [
        ("SELECT count(*) FROM ecp.instances", 4000),
        ("SELECT count(*) FROM ecp.instance_versions", 4000),
        ("SELECT count(*) FROM ecp.instance_changes", 4000),
        ("SELECT count(*) FROM ecp.instance_disks", 8000),
    ] {
        assert_eq!(count(&db.pool, sql).await, n, "{sql}");
    }
}

/// A run of its own applying `records` to `source`'s cn-shanghai, in a task
/// (to be released by a lock the test holds), pages of 100.
fn spawn_apply(
    store: &ecp_inventory::store::Store,
    source: &'static str,
    records: Vec<Normalized>,
) -> tokio::task::JoinHandle<Result<ApplyCounts, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move {
        let run = store.start_run("test").await.unwrap();
        let mut scope = run
            .begin_scope(Scope::new(source, "cn-shanghai"), Duration::from_secs(5))
            .await
            .unwrap();
        for page in records.chunks(100) {
            if let Err(e) = scope.push_page(at(0), page).await {
                scope.give_up(&e.to_string()).await.unwrap();
                run.finish(RunOutcome::Failed(e.to_string())).await.unwrap();
                return Err(e);
            }
        }
        let result = scope.apply(&ApplyOptions::default()).await;
        run.finish(RunOutcome::Succeeded).await.unwrap();
        result
    })
}

/// Returns once `n` sessions of the test's database wait for a lock.
async fn wait_for_lock_waits(db: &crate::helpers::TestDb, n: i64) {
    for _ in 0..3000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(&db.name)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited for a lock");
}
