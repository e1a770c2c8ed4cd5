//! The simulated fleet as state: the generated base fleet plus an overlay of the
//! instances that churn or tests changed, created or deleted. Instances are
//! numbered; number `i` is generated from `(seed, i)` unless the overlay says
//! otherwise. Listing is a scan in sort order from a cursor, so a page costs about
//! its own size and a whole crawl is one pass, whatever the fleet size.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::filter::{Filter, Sort, SortKey};
use super::generate::Generator;
use crate::api::model::RawInstance;

/// What the overlay holds for a changed instance.
#[derive(Clone, Debug)]
enum Slot {
    Deleted,
    /// The instance's whole JSON object, replacing the generated one. Tests may put
    /// anything here (a missing id, `"Cpu": "four"`), and its text is served as is.
    Json(RawInstance),
}

/// Where a page starts: the first instance of the page, identified by its sort key
/// and number. Because it names an instance rather than a position, instances
/// created or deleted between pages do not shift the rest of the crawl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub indices: Vec<u64>,
    /// `None` on the last page.
    pub next: Option<Cursor>,
}

pub struct Fleet {
    pub generator: Generator,
    /// Instances numbered `0..total` exist or existed; churn appends new ones.
    total: u64,
    overlay: HashMap<u64, Slot>,
    deleted: u64,
    /// Bumped by every change, so the caches below know when they are stale.
    generation: u64,
    counts: Mutex<(u64, HashMap<u64, u64>)>,
    expiry_order: Mutex<Option<(u64, Arc<Vec<u32>>)>>,
}

impl Fleet {
    pub fn new(generator: Generator, instances: usize) -> Self {
        Fleet {
            generator,
            total: instances as u64,
            overlay: HashMap::new(),
            deleted: 0,
            generation: 0,
            counts: Mutex::new((0, HashMap::new())),
            expiry_order: Mutex::new(None),
        }
    }

    /// A fleet of exactly these instance objects, served as they are. The first
    /// record is the newest, so the default sort (newest first) serves them in
    /// the order given, as the captured pages they may come from listed them.
    pub fn from_records(generator: Generator, records: Vec<RawInstance>) -> Self {
        let mut fleet = Fleet::new(generator, records.len());
        let last = records.len() as u64;
        for (i, record) in records.into_iter().enumerate() {
            fleet
                .overlay
                .insert(last - 1 - i as u64, Slot::Json(record));
        }
        fleet
    }

    pub fn live_count(&self) -> u64 {
        self.total - self.deleted
    }

    pub fn total_slots(&self) -> u64 {
        self.total
    }

    pub fn is_live(&self, index: u64) -> bool {
        index < self.total && !matches!(self.overlay.get(&index), Some(Slot::Deleted))
    }

    pub fn matches(&self, index: u64, filter: &Filter) -> bool {
        match self.overlay.get(&index) {
            Some(Slot::Deleted) => false,
            Some(Slot::Json(raw)) => filter.matches(&raw.fields),
            None => {
                let cheap = self.generator.cheap(index);
                if let Some(region) = &filter.biz_region_id {
                    if self.generator.regions.get(cheap.region) != Some(region) {
                        return false;
                    }
                }
                if let Some(charge) = &filter.charge_type {
                    let have = if cheap.prepaid { "PrePaid" } else { "PostPaid" };
                    if charge != have {
                        return false;
                    }
                }
                if filter.status.as_deref().is_some_and(|s| s != cheap.status) {
                    return false;
                }
                if !filter.ids.is_empty() {
                    let id = self.generator.id(index);
                    if !filter.ids.contains(&id) {
                        return false;
                    }
                }
                !filter.needs_full_record() || filter.matches(&self.generator.instance(index))
            }
        }
    }

    /// The instance's JSON, or `None` if it is deleted or never existed.
    pub fn json(&self, index: u64) -> Option<Map<String, Value>> {
        if !self.is_live(index) {
            return None;
        }
        Some(match self.overlay.get(&index) {
            Some(Slot::Json(raw)) => raw.fields.clone(),
            _ => match serde_json::to_value(self.generator.instance(index)) {
                Ok(Value::Object(map)) => map,
                _ => unreachable!("an InstanceModel serializes to an object"),
            },
        })
    }

    /// Appends the instance's JSON to `out` without building a `Value` first:
    /// serving a million-instance crawl is mostly this.
    pub fn write_json(&self, index: u64, out: &mut Vec<u8>) {
        match self.overlay.get(&index) {
            Some(Slot::Json(raw)) => out.extend_from_slice(raw.text.get().as_bytes()),
            _ => serde_json::to_writer(&mut *out, &self.generator.instance(index))
                .expect("writing JSON to memory cannot fail"),
        }
    }

    /// The instance number currently carrying this `AndroidInstanceId`.
    pub fn find(&self, id: &str) -> Option<u64> {
        for (index, slot) in &self.overlay {
            if let Slot::Json(raw) = slot {
                if raw.instance_id() == Some(id) {
                    return Some(*index);
                }
            }
        }
        (0..self.total).find(|i| !self.overlay.contains_key(i) && self.generator.id(*i) == id)
    }

    pub fn live_indices(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.total).filter(|i| self.is_live(*i))
    }

    // ----- changes -----

    fn changed(&mut self) {
        self.generation += 1;
    }

    pub fn replace(&mut self, index: u64, json: Map<String, Value>) {
        if self.is_live(index) {
            self.overlay.insert(index, Slot::Json(json.into()));
            self.changed();
        }
    }

    pub fn delete(&mut self, index: u64) {
        if self.is_live(index) {
            self.overlay.insert(index, Slot::Deleted);
            self.deleted += 1;
            self.changed();
        }
    }

    /// Brings a deleted instance back, in its generated state. Returns false when
    /// no deleted instance has this id.
    pub fn undelete(&mut self, id: &str) -> bool {
        let found = self
            .overlay
            .iter()
            .find(|(i, slot)| matches!(slot, Slot::Deleted) && self.generator.id(**i) == id)
            .map(|(i, _)| *i);
        let Some(index) = found else {
            return false;
        };
        self.overlay.remove(&index);
        self.deleted -= 1;
        self.changed();
        true
    }

    /// A new instance, generated like the others, created after all of them.
    pub fn create(&mut self) -> u64 {
        let index = self.total;
        self.total += 1;
        self.changed();
        index
    }

    // ----- listing -----

    /// Number of live instances matching `filter`, cached per fleet generation:
    /// with filters other than the region it costs a scan of the fleet once.
    pub fn count(&self, filter: &Filter, fingerprint: u64) -> u64 {
        if filter.is_empty() {
            return self.live_count();
        }
        {
            let mut cache = self.counts.lock().expect("count cache");
            if cache.0 != self.generation {
                *cache = (self.generation, HashMap::new());
            }
            if let Some(n) = cache.1.get(&fingerprint) {
                return *n;
            }
        }
        let n = (0..self.total).filter(|i| self.matches(*i, filter)).count() as u64;
        self.counts
            .lock()
            .expect("count cache")
            .1
            .insert(fingerprint, n);
        n
    }

    /// The sort key of an instance for `key` (the cursor's first half). Creation
    /// order is instance-number order; expiry sorts instances without an expiry
    /// date (pay-as-you-go) after all dated ones in ascending order.
    pub fn sort_key(&self, index: u64, key: SortKey) -> i64 {
        match key {
            SortKey::CreationTime => 0,
            SortKey::ExpiredTime => {
                let expires = match self.overlay.get(&index) {
                    Some(Slot::Json(raw)) => raw
                        .fields
                        .get("GmtExpired")
                        .and_then(Value::as_str)
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|t| t.timestamp()),
                    _ => self.generator.cheap(index).expires,
                };
                expires.unwrap_or(i64::MAX)
            }
        }
    }

    fn expiry_order(&self) -> Arc<Vec<u32>> {
        let mut cached = self.expiry_order.lock().expect("expiry order");
        if let Some((generation, order)) = &*cached {
            if *generation == self.generation {
                return order.clone();
            }
        }
        let mut keyed: Vec<(i64, u32)> = self
            .live_indices()
            .map(|i| (self.sort_key(i, SortKey::ExpiredTime), i as u32))
            .collect();
        keyed.sort_unstable();
        let order = Arc::new(keyed.into_iter().map(|(_, i)| i).collect::<Vec<u32>>());
        *cached = Some((self.generation, order.clone()));
        order
    }

    /// Up to `max` matching instances in `sort` order, starting at `from`
    /// (inclusive; `None` = the beginning), and the cursor of the next page.
    pub fn page(&self, filter: &Filter, sort: Sort, from: Option<Cursor>, max: usize) -> Page {
        let order = Order::new(self, sort);
        let mut pos = from.map_or(0, |c| order.position(self, c));
        let mut indices = Vec::with_capacity(max);
        while pos < order.len() {
            let index = order.at(pos);
            pos += 1;
            if !self.matches(index, filter) {
                continue;
            }
            if indices.len() == max {
                let next = Cursor {
                    key: self.sort_key(index, sort.key),
                    index,
                };
                return Page {
                    indices,
                    next: Some(next),
                };
            }
            indices.push(index);
        }
        Page {
            indices,
            next: None,
        }
    }

    pub fn cursor_of(&self, index: u64, sort: Sort) -> Cursor {
        Cursor {
            key: self.sort_key(index, sort.key),
            index,
        }
    }
}

/// A sort order seen as a sequence of instance numbers.
enum Order {
    Creation {
        total: u64,
        descending: bool,
    },
    Expiry {
        sorted: Arc<Vec<u32>>,
        descending: bool,
    },
}

impl Order {
    fn new(fleet: &Fleet, sort: Sort) -> Order {
        match sort.key {
            SortKey::CreationTime => Order::Creation {
                total: fleet.total,
                descending: sort.descending,
            },
            SortKey::ExpiredTime => Order::Expiry {
                sorted: fleet.expiry_order(),
                descending: sort.descending,
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Order::Creation { total, .. } => *total as usize,
            Order::Expiry { sorted, .. } => sorted.len(),
        }
    }

    fn at(&self, pos: usize) -> u64 {
        match self {
            Order::Creation { total, descending } => {
                if *descending {
                    total - 1 - pos as u64
                } else {
                    pos as u64
                }
            }
            Order::Expiry { sorted, descending } => {
                let p = if *descending {
                    sorted.len() - 1 - pos
                } else {
                    pos
                };
                u64::from(sorted[p])
            }
        }
    }

    /// Position of the first instance at or after `c` in this order.
    fn position(&self, fleet: &Fleet, c: Cursor) -> usize {
        match self {
            Order::Creation { total, descending } => {
                if *descending {
                    if c.index >= *total {
                        0
                    } else {
                        (total - 1 - c.index) as usize
                    }
                } else {
                    c.index.min(*total) as usize
                }
            }
            Order::Expiry { sorted, descending } => {
                let key = |i: &u32| {
                    (
                        fleet.sort_key(u64::from(*i), SortKey::ExpiredTime),
                        u64::from(*i),
                    )
                };
                let target = (c.key, c.index);
                if *descending {
                    sorted.len() - sorted.partition_point(|i| key(i) <= target)
                } else {
                    sorted.partition_point(|i| key(i) < target)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::generate::DEFAULT_REGIONS;

    fn fleet(n: usize) -> Fleet {
        let regions = DEFAULT_REGIONS
            .iter()
            .map(|(r, _)| (*r).to_owned())
            .collect();
        Fleet::new(Generator::new(3, regions, n), n)
    }

    fn crawl(f: &Fleet, filter: &Filter, sort: Sort, max: usize) -> Vec<u64> {
        let (mut all, mut from) = (Vec::new(), None);
        loop {
            let page = f.page(filter, sort, from, max);
            assert!(page.indices.len() <= max);
            all.extend(page.indices);
            match page.next {
                Some(c) => from = Some(c),
                None => return all,
            }
        }
    }

    const DESC: Sort = Sort {
        key: SortKey::CreationTime,
        descending: true,
    };

    #[test]
    fn records_are_served_in_the_order_given_under_the_default_sort() {
        let records: Vec<Map<String, Value>> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| {
                let mut m = Map::new();
                m.insert("AndroidInstanceId".into(), Value::from(*id));
                m.insert("RegionId".into(), Value::from("cn-hangzhou"));
                m
            })
            .collect();
        let records = records.into_iter().map(RawInstance::from).collect();
        let f = Fleet::from_records(Generator::new(1, vec!["cn-hangzhou".into()], 5), records);
        let ids: Vec<String> = crawl(&f, &Filter::default(), DESC, 2)
            .into_iter()
            .map(|i| f.json(i).unwrap()["AndroidInstanceId"].to_string())
            .collect();
        assert_eq!(ids, [r#""a""#, r#""b""#, r#""c""#, r#""d""#, r#""e""#]);
        assert_eq!(f.live_count(), 5);
    }

    #[test]
    fn default_order_is_newest_first_and_covers_everything_once() {
        let f = fleet(250);
        let all = crawl(&f, &Filter::default(), DESC, 100);
        assert_eq!(all, (0..250).rev().collect::<Vec<_>>());
    }

    #[test]
    fn pages_of_one_walk_ten_thousand_instances_once() {
        let f = fleet(10_000);
        let all = crawl(&f, &Filter::default(), DESC, 1);
        assert_eq!(all, (0..10_000).rev().collect::<Vec<_>>());
    }

    #[test]
    fn expiry_order_is_sorted_both_ways() {
        let f = fleet(300);
        for descending in [false, true] {
            let sort = Sort {
                key: SortKey::ExpiredTime,
                descending,
            };
            let all = crawl(&f, &Filter::default(), sort, 7);
            assert_eq!(all.len(), 300);
            let keys: Vec<(i64, u64)> =
                all.iter().map(|i| (f.sort_key(*i, sort.key), *i)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if descending {
                sorted.reverse();
            }
            assert_eq!(keys, sorted);
        }
    }

    #[test]
    fn changes_between_pages_do_not_shift_the_crawl() {
        let mut f = fleet(100);
        let filter = Filter::default();
        let first = f.page(&filter, DESC, None, 10);
        f.delete(first.indices[3]);
        f.delete(85); // on the next page
        let created = f.create();
        let second = f.page(&filter, DESC, first.next, 10);
        assert_eq!(second.indices[0], 89);
        assert!(!second.indices.contains(&85));
        assert!(!second.indices.contains(&created));
        assert_eq!(f.live_count(), 99);
    }

    #[test]
    fn counts_follow_filters_and_changes() {
        let mut f = fleet(500);
        let filter = Filter {
            biz_region_id: Some("cn-beijing".into()),
            ..Filter::default()
        };
        let expected = (0..500)
            .filter(|i| f.generator.instance(*i).region_id.as_deref() == Some("cn-beijing"))
            .count() as u64;
        assert_eq!(f.count(&filter, 1), expected);
        let victim = (0..500).find(|i| f.matches(*i, &filter)).unwrap();
        f.delete(victim);
        assert_eq!(f.count(&filter, 1), expected - 1);
    }

    #[test]
    fn find_locates_generated_and_replaced_instances() {
        let mut f = fleet(50);
        let id = f.generator.id(17);
        assert_eq!(f.find(&id), Some(17));
        let mut json = f.json(17).unwrap();
        json.insert("AndroidInstanceId".into(), "acp-renamed".into());
        f.replace(17, json);
        assert_eq!(f.find("acp-renamed"), Some(17));
        assert_eq!(f.find(&id), None);
    }
}
