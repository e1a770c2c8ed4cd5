//! Churn between crawls: creations, deletions and the kinds of change a real fleet
//! sees, applied to distinct instances chosen by a seeded RNG. The report lists
//! the ids touched per kind, so a test can predict exactly what a crawl must find.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

use super::fleet::Fleet;
use super::generate::{mix, Rng, TAG_POOL};

/// How many instances each kind of change touches. Every kind but `create` picks
/// distinct live instances, so one instance changes in one way per churn.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChurnSpec {
    pub seed: u64,
    pub create: usize,
    pub delete: usize,
    /// `AndroidInstanceStatus` changes (and `GmtModified`).
    pub status: usize,
    /// `AndroidInstanceName` changes (and `GmtModified`).
    pub rename: usize,
    /// One tag added, changed or removed (and `GmtModified`).
    pub retag: usize,
    /// One disk grows (and `GmtModified`).
    pub resize_disk: usize,
    /// Exactly one of `SessionStatus`, `Rate`, `GmtModified` changes: the fields a
    /// store may want to treat as noise.
    pub volatile: usize,
}

/// The `AndroidInstanceId`s changed, per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnReport {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    pub status_changed: Vec<String>,
    pub renamed: Vec<String>,
    pub retagged: Vec<String>,
    pub disk_resized: Vec<String>,
    pub volatile: Vec<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Delete,
    Status,
    Rename,
    Retag,
    Resize,
    Volatile,
}

pub fn apply(fleet: &mut Fleet, spec: &ChurnSpec, now: DateTime<Utc>) -> ChurnReport {
    // The fleet's state is part of the seed, so repeating a spec changes other
    // instances, while the same history always gives the same result.
    let mut rng = Rng::new(
        mix(spec.seed ^ mix(fleet.generator.seed))
            ^ fleet.total_slots()
            ^ (fleet.live_count() << 32),
    );
    let kinds = [
        (Kind::Delete, spec.delete),
        (Kind::Status, spec.status),
        (Kind::Rename, spec.rename),
        (Kind::Retag, spec.retag),
        (Kind::Resize, spec.resize_disk),
        (Kind::Volatile, spec.volatile),
    ];
    let wanted: usize = kinds.iter().map(|(_, n)| n).sum();
    let mut targets = pick_live(fleet, wanted, &mut rng).into_iter();
    let modified = now.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut report = ChurnReport::default();
    for (kind, n) in kinds {
        for index in targets.by_ref().take(n) {
            let Some(mut json) = fleet.json(index) else {
                continue;
            };
            let id = json
                .get("AndroidInstanceId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let list = match kind {
                Kind::Delete => {
                    fleet.delete(index);
                    report.deleted.push(id);
                    continue;
                }
                Kind::Status => {
                    change_status(&mut json, &mut rng);
                    &mut report.status_changed
                }
                Kind::Rename => {
                    let name = format!("phone-{}", rng.alnum(8));
                    json.insert("AndroidInstanceName".into(), name.into());
                    &mut report.renamed
                }
                Kind::Retag => {
                    retag(&mut json, &mut rng);
                    &mut report.retagged
                }
                Kind::Resize => {
                    resize(&mut json, &mut rng);
                    &mut report.disk_resized
                }
                Kind::Volatile => {
                    volatile(&mut json, &mut rng, now);
                    fleet.replace(index, json);
                    report.volatile.push(id);
                    continue;
                }
            };
            json.insert("GmtModified".into(), modified.clone().into());
            fleet.replace(index, json);
            list.push(id);
        }
    }
    for _ in 0..spec.create {
        let index = fleet.create();
        report.created.push(fleet.generator.id(index));
    }
    report
}

/// `n` distinct live instances (all of them if there are fewer).
fn pick_live(fleet: &Fleet, n: usize, rng: &mut Rng) -> Vec<u64> {
    let live = fleet.live_count() as usize;
    if n == 0 || live == 0 {
        return Vec::new();
    }
    if n * 2 >= live {
        let mut all: Vec<u64> = fleet.live_indices().collect();
        for i in 0..all.len().min(n) {
            let j = i + rng.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(n);
        return all;
    }
    let mut chosen = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    while chosen.len() < n {
        let index = rng.below(fleet.total_slots());
        if fleet.is_live(index) && seen.insert(index) {
            chosen.push(index);
        }
    }
    chosen
}

fn change_status(json: &mut Map<String, Value>, rng: &mut Rng) {
    let current = json
        .get("AndroidInstanceStatus")
        .and_then(Value::as_str)
        .unwrap_or("");
    let next = match current {
        "RUNNING" => *rng.pick(&[
            "STOPPED",
            "STOPPED",
            "STOPPED",
            "REBOOTING",
            "BACKUPING",
            "UNAVAILABLE",
        ]),
        _ => "RUNNING",
    };
    json.insert("AndroidInstanceStatus".into(), next.into());
}

fn retag(json: &mut Map<String, Value>, rng: &mut Rng) {
    let mut tags = match json.get("Tags") {
        Some(Value::Array(tags)) => tags.clone(),
        _ => Vec::new(),
    };
    let key_of = |t: &Value| t.get("Key").and_then(Value::as_str).map(str::to_owned);
    let present: Vec<String> = tags.iter().filter_map(key_of).collect();
    let absent: Vec<&(&str, &[&str])> = TAG_POOL
        .iter()
        .filter(|(k, _)| !present.iter().any(|p| p == k))
        .collect();
    let op = if tags.is_empty() {
        0
    } else if absent.is_empty() {
        1 + rng.below(2)
    } else {
        rng.below(3)
    };
    match op {
        0 => {
            let (key, values) = **rng.pick(&absent);
            tags.push(json!({"Key": key, "Value": *rng.pick(values)}));
        }
        1 => {
            let i = rng.below(tags.len() as u64) as usize;
            let old = tags[i]
                .get("Value")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            tags[i]["Value"] = format!("{old}-v{}", 2 + rng.below(8)).into();
        }
        _ => {
            tags.remove(rng.below(tags.len() as u64) as usize);
        }
    }
    json.insert("Tags".into(), Value::Array(tags));
}

fn resize(json: &mut Map<String, Value>, rng: &mut Rng) {
    let grow = 32 * (1 + rng.below(4));
    let Some(Value::Array(disks)) = json.get_mut("Disks") else {
        json.insert(
            "Disks".into(),
            json!([{"DiskSize": 32 + grow, "DiskType": "SYSTEM"}]),
        );
        return;
    };
    if disks.is_empty() {
        disks.push(json!({"DiskSize": 32 + grow, "DiskType": "SYSTEM"}));
        return;
    }
    let i = disks
        .iter()
        .position(|d| d.get("DiskType").and_then(Value::as_str) == Some("DATA"))
        .unwrap_or(0);
    let size = disks[i]
        .get("DiskSize")
        .and_then(Value::as_u64)
        .unwrap_or(32);
    disks[i]["DiskSize"] = (size + grow).into();
}

fn volatile(json: &mut Map<String, Value>, rng: &mut Rng, now: DateTime<Utc>) {
    match rng.below(3) {
        0 => {
            let current = json
                .get("SessionStatus")
                .and_then(Value::as_str)
                .unwrap_or("");
            let next = if current == "connect" {
                "disconnect"
            } else {
                "connect"
            };
            json.insert("SessionStatus".into(), next.into());
        }
        1 => {
            let current = json.get("Rate").and_then(Value::as_i64).unwrap_or(100);
            let next = (current + 1 + rng.below(99) as i64) % 101;
            json.insert("Rate".into(), next.into());
        }
        _ => {
            let current = json
                .get("GmtModified")
                .and_then(Value::as_str)
                .unwrap_or("");
            // Moves forward, as a real modification time does: a second past
            // now when it already says now (a second churn within the second).
            let format = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
            let next = if current == format(now) {
                format(now + chrono::Duration::seconds(1))
            } else {
                format(now)
            };
            json.insert("GmtModified".into(), next.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::generate::{Generator, DEFAULT_REGIONS};

    fn fleet() -> Fleet {
        let regions = DEFAULT_REGIONS
            .iter()
            .map(|(r, _)| (*r).to_owned())
            .collect();
        Fleet::new(Generator::new(5, regions, 300), 300)
    }

    fn spec() -> ChurnSpec {
        ChurnSpec {
            seed: 1,
            create: 3,
            delete: 4,
            status: 5,
            rename: 6,
            retag: 7,
            resize_disk: 8,
            volatile: 9,
        }
    }

    #[test]
    fn churn_is_deterministic_and_touches_distinct_instances() {
        let now = chrono::Utc::now();
        let (mut a, mut b) = (fleet(), fleet());
        let (ra, rb) = (apply(&mut a, &spec(), now), apply(&mut b, &spec(), now));
        assert_eq!(ra, rb);
        let counts = [
            ra.created.len(),
            ra.deleted.len(),
            ra.status_changed.len(),
            ra.renamed.len(),
            ra.retagged.len(),
            ra.disk_resized.len(),
            ra.volatile.len(),
        ];
        assert_eq!(counts, [3, 4, 5, 6, 7, 8, 9]);
        let mut all: Vec<&String> = [
            &ra.deleted,
            &ra.status_changed,
            &ra.renamed,
            &ra.retagged,
            &ra.disk_resized,
            &ra.volatile,
            &ra.created,
        ]
        .into_iter()
        .flatten()
        .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 42);
        assert_eq!(a.live_count(), 300 - 4 + 3);
        // the same spec again picks other instances
        let again = apply(&mut a, &spec(), now);
        assert_ne!(again.deleted, ra.deleted);
    }

    /// A volatile change of `GmtModified` moves it forward, also when it already
    /// says now (it used to go back to the year 2000, before `GmtCreate`).
    #[test]
    fn a_volatile_modification_time_never_goes_back() {
        let now = chrono::Utc::now();
        let at_now = now.format("%Y-%m-%d %H:%M:%S").to_string();
        for seed in 0..64 {
            let mut json = Map::new();
            json.insert("GmtModified".into(), at_now.clone().into());
            json.insert("SessionStatus".into(), "connect".into());
            json.insert("Rate".into(), 100.into());
            volatile(&mut json, &mut Rng::new(seed), now);
            let modified = json["GmtModified"].as_str().unwrap();
            assert!(modified >= at_now.as_str(), "{modified} before {at_now}");
        }
    }
}
