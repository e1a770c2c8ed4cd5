//! ecp.fleet_daily, counted from the moves kept in ecp.fleet_count_changes, gives
//! exactly what the view of migration 0013 computed from the versions: over a
//! history of several days with creations, status and region changes, deletions,
//! restorations and a prune, in time zones with whole-hour, half-hour and
//! quarter-hour offsets, for data written before the migration (its backfill) and
//! after it (the trigger).

use chrono::{DateTime, Duration, TimeZone, Utc};
use ecp_inventory::store::{ApplyOptions, Store};
use serde_json::{json, Map, Value};
use sqlx::PgPool;

use crate::helpers::{fleet, sync, test_db_migrated_to};

/// The view as migration 0013 defined it: the versions valid at the end of each
/// day (now, for today), counted.
const FROM_THE_VERSIONS: &str = "
SELECT d.day::date AS day, v.source, COALESCE(v.region_id, v.biz_region_id) AS region_id,
       v.status, count(*) AS instances
FROM generate_series(
        (SELECT date_trunc('day', min(valid_from)) FROM ecp.instance_versions),
        date_trunc('day', now()),
        interval '1 day'
     ) AS d(day)
JOIN ecp.instance_versions v
  ON v.valid_from <= LEAST(d.day + interval '1 day', now())
 AND (v.valid_to IS NULL OR v.valid_to > LEAST(d.day + interval '1 day', now()))
 AND NOT v.is_deleted
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4";

const THE_VIEW: &str = "SELECT day, source, region_id, status, instances \
                        FROM ecp.fleet_daily ORDER BY 1, 2, 3, 4";

const ZONES: [&str; 6] = [
    "UTC",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/Los_Angeles",
];

type Row = (chrono::NaiveDate, String, String, Option<String>, i64);

async fn rows(p: &PgPool, zone: &str, query: &str) -> Vec<Row> {
    let mut conn = p.acquire().await.unwrap();
    sqlx::query("SELECT set_config('TimeZone', $1, false)")
        .bind(zone)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_as(sqlx::AssertSqlSafe(query))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

async fn assert_same_as_from_the_versions(p: &PgPool, step: &str) {
    for zone in ZONES {
        let expected = rows(p, zone, FROM_THE_VERSIONS).await;
        assert!(!expected.is_empty(), "{step}, {zone}: no rows to compare");
        assert_eq!(
            rows(p, zone, THE_VIEW).await,
            expected,
            "{step}, time zone {zone}"
        );
    }
}

fn t(day: i64, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, hour, minute, second)
        .unwrap()
        + Duration::days(day)
}

fn set(r: &mut Map<String, Value>, field: &str, value: Value) {
    r.insert(field.into(), value);
}

/// Syncs `records` of `region` at each time, changing the fleet in between.
async fn history(store: &Store, records: &mut [Map<String, Value>], times: &[DateTime<Utc>]) {
    let opts = ApplyOptions::default();
    for (k, when) in times.iter().enumerate() {
        // Some instances change status, some move region, one disappears, the one
        // that disappeared before comes back.
        let n = records.len();
        let s = ["STOPPED", "RUNNING", "BACKUPING"][k % 3];
        for i in (k % 4..n).step_by(7) {
            set(&mut records[i], "AndroidInstanceStatus", json!(s));
        }
        set(
            &mut records[(5 * k) % n],
            "RegionId",
            json!(["cn-hangzhou", ""][k % 2]),
        );
        // A new version under the same status and region: -1 and +1 that cancel.
        set(
            &mut records[(3 * k + 1) % n],
            "AndroidInstanceName",
            json!(format!("renamed-{k}")),
        );
        let snapshot: Vec<_> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 11 != k % 11)
            .map(|(_, r)| r.clone())
            .collect();
        sync(store, "cn-shanghai", &snapshot, *when, &opts)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn fleet_daily_counts_what_the_versions_say() {
    // Written before migration 0025: the migration's backfill.
    let db = test_db_migrated_to(Some(24)).await;
    let store = db.store();
    let mut records = fleet(120);
    history(
        &store,
        &mut records,
        &[t(0, 3, 7, 0), t(0, 18, 31, 12), t(1, 0, 0, 1)],
    )
    .await;
    ecp_inventory::store::migrate(&db.pool).await.unwrap();
    assert_same_as_from_the_versions(&db.pool, "after the migration").await;

    // Written after it: the trigger. Times close to midnight in the zones above
    // (UTC 18:15 is midnight in Nepal, 18:30 in India, 16:00 in Shanghai, 02:30
    // in Newfoundland), and a version that starts and ends within a quarter hour.
    history(
        &store,
        &mut records,
        &[
            t(1, 18, 14, 59),
            t(1, 18, 15, 1),
            t(1, 18, 29, 59),
            t(1, 18, 30, 0),
            t(2, 2, 29, 0),
            t(2, 2, 31, 0),
            t(2, 15, 59, 59),
            t(3, 16, 0, 0),
            t(5, 7, 45, 30),
            t(5, 7, 50, 0),
        ],
    )
    .await;
    assert_same_as_from_the_versions(&db.pool, "after more syncs").await;

    // Retention deletes versions (and clears the link of the versions that
    // followed them): the counts of the days before the horizon drop, as they
    // did when the view read the versions.
    let pruned = store.prune(t(2, 12, 0, 0), false).await.unwrap();
    assert!(pruned.versions > 0);
    assert_same_as_from_the_versions(&db.pool, "after a prune").await;
    // The prune merged the moves: one row per quarter hour and key, none zero.
    let merged: (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE delta = 0) FROM ecp.fleet_count_changes",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT at, source, region_id, status \
         FROM ecp.fleet_count_changes) k",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(merged, (keys, 0));
}
