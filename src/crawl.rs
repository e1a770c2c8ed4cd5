//! Every page of one scope: walks `DescribeAndroidInstances` by `NextToken` until
//! the service says there is no next page, and streams the pages to the consumer
//! through a bounded channel, so the fleet is never held in memory and the next
//! page is fetched while the current one is being stored.
//!
//! The loop trusts only the token: `TotalCount` is never a stop condition (the
//! service is known to report counts that drift while the fleet changes). A token
//! seen twice, or more pages than the cap, ends the crawl with an error rather than
//! looping forever. So does a cursor that keeps going over pages that add no
//! instance never listed before (empty pages, or a cursor that wrapped around to
//! the start): more than `MAX_PAGES_WITHOUT_INSTANCES` in a row.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, RandomState};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::api::model::{DescribeAndroidInstancesRequest, RawInstance};
use crate::api::{ApiError, Client};

/// The API's maximum, and so the fewest requests per crawl.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Ten million instances at full pages: far past any real account, so hitting it
/// means a cursor that never ends rather than a large fleet.
pub const DEFAULT_MAX_PAGES: u64 = 100_000;

/// Pages in a row that add no instance (empty, or only repeats) before the
/// cursor is taken for one that never ends. The service sends an empty page now
/// and then while the fleet changes, and a listing that filters after paging
/// could send runs of them over instances its filter leaves out; a hundred in a
/// row (ten thousand instances' worth at full pages) is a cursor going nowhere,
/// found after a hundred cheap requests rather than at the page cap.
pub const MAX_PAGES_WITHOUT_INSTANCES: u64 = 100;

/// One page waiting in the channel while the consumer stores the one before it,
/// and the next one fetched meanwhile, held until there is room. More would
/// only add memory, a parsed page per region crawled at once; the consumer,
/// not the network, is the slower side. A second page waiting made a 100k
/// first sync of six regions no faster (6.49-6.58 s against 6.40 s) and its
/// peak RSS larger by 3-10 MB, run against run (BENCHMARKS.md).
const CHANNEL_CAPACITY: usize = 1;

/// An instance moves by a position or two when the fleet changes between two
/// page fetches, so it shows up again on a nearby page: the ids of the last few
/// pages are kept whole, and a repeat among them is dropped (its first listing
/// passes). The store keeps the last of any farther repeat.
const DEDUP_WINDOW_PAGES: usize = 4;

/// How many instances a complete crawl may return short of the service's
/// `TotalCount` without its being noticed: counts drift while the fleet changes
/// (an instance created during the crawl lands on a page already passed), so only
/// a gap past 1% of the count, and of more than a few instances, is one. Never a
/// reason to refuse the crawl (the reference warns that the counts are not to be
/// trusted), but one not to take it as evidence of deletions.
pub fn clear_shortfall(returned: u64, counted: u64) -> Option<u64> {
    const FEW: u64 = 5;
    let short = counted.saturating_sub(returned);
    (short > FEW && short > counted / 100).then_some(short)
}

#[derive(Clone, Debug)]
pub struct CrawlOptions {
    /// `MaxResults`, 1 to 100.
    pub page_size: u32,
    pub max_pages: u64,
}

impl Default for CrawlOptions {
    fn default() -> Self {
        CrawlOptions {
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
        }
    }
}

/// One page as it arrived, its instances listed for the first time apart from
/// those a recent page (or this one) already listed.
#[derive(Clone, Debug)]
pub struct Page {
    /// 1-based.
    pub number: u64,
    pub request_id: Option<String>,
    pub total_count: Option<i64>,
    /// When the answer arrived: the time at which these states were observed.
    pub fetched_at: DateTime<Utc>,
    pub instances: Vec<RawInstance>,
    /// Instances listed again, in order: a recent page, or this one, listed them
    /// already (a page boundary that moved while the crawl ran). This listing is
    /// the later one, so the newer state: a store writes it over the first; a
    /// consumer that wants each instance once leaves them out.
    pub repeated: Vec<RawInstance>,
    /// `repeated.len()`.
    pub duplicates: u64,
    /// Instances of this page the crawl had not listed before, as far as its
    /// fixed-size record of ids tells: a repeat from farther back than the
    /// recent pages is in `instances` but not counted here, and a new instance
    /// may be missed now and then (more often the more the crawl listed); past
    /// about 2.9 million ids in the scope, every id counts. Enough to see a
    /// cursor going nowhere; not a count.
    pub new_instances: u64,
    /// No page follows: the crawl is complete once this one is consumed.
    pub is_last: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    // The API error is part of the message, not a `source`, so that printing the
    // chain does not repeat it.
    #[error("page {page}: {error}{note}", note = signed_alike_before(*page, error))]
    Api { page: u64, error: ApiError },
    #[error("page {page} (RequestId {request_id}) returned NextToken {token:?}, which an earlier page already returned: the service's cursor is stuck, so the crawl stopped", request_id = .request_id.as_deref().unwrap_or("none"))]
    RepeatedToken {
        page: u64,
        request_id: Option<String>,
        token: String,
    },
    #[error("the crawl passed {max_pages} pages without reaching the last one; if the scope really is that large, raise --max-pages")]
    TooManyPages { max_pages: u64 },
    #[error("pages {first} to {last} added no instance (empty, or only instances of earlier pages) and still had a NextToken: the service's cursor keeps going without getting anywhere, so the crawl stopped")]
    EndlessCursor { first: u64, last: u64 },
    #[error("page size {0} is outside the API's range 1..=100 (--page-size)")]
    BadPageSize(u32),
}

impl CrawlError {
    /// How many pages the service answered before the crawl stopped: the page a
    /// request failed on is not one of them, a page refused for what it said (a
    /// repeated cursor, one more page without instances) is.
    pub fn pages_fetched(&self) -> u64 {
        match self {
            CrawlError::Api { page, .. } => page - 1,
            CrawlError::RepeatedToken { page, .. } => *page,
            CrawlError::EndlessCursor { last, .. } => *last,
            CrawlError::TooManyPages { max_pages } => *max_pages,
            CrawlError::BadPageSize(_) => 0,
        }
    }

    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            CrawlError::Api { error, .. } => Some(error.last()),
            _ => None,
        }
    }
}

/// A signature refused after the service accepted the crawl's earlier pages is
/// unlikely to be a wrong secret, which the error's own hint suggests: what
/// changed is this request (its NextToken, the one parameter that differs) or the
/// credentials, renewed meanwhile.
fn signed_alike_before(page: u64, error: &ApiError) -> String {
    match error.last() {
        ApiError::Service { code, .. } if code == "SignatureDoesNotMatch" && page > 1 => format!(
            "; but the {accepted} page{s} before it, signed with the same credentials \
             unless they were renewed meanwhile, {were} accepted: suspect what differs in \
             this request, its NextToken (re-encoded by a proxy?)",
            accepted = page - 1,
            s = if page > 2 { "s" } else { "" },
            were = if page > 2 { "were" } else { "was" },
        ),
        _ => String::new(),
    }
}

/// Starts crawling in a task of its own and returns the stream of pages. The stream
/// ends after the page marked `is_last`, or after an error. Dropping the receiver
/// stops the crawl.
pub fn spawn(
    client: Client,
    request: DescribeAndroidInstancesRequest,
    options: CrawlOptions,
) -> mpsc::Receiver<Result<Page, CrawlError>> {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let span = tracing::info_span!(
        "crawl",
        biz_region_id = request.biz_region_id.as_deref().unwrap_or("")
    );
    tokio::spawn(
        async move {
            if let Err(e) = run(&client, request, &options, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        }
        .instrument(span),
    );
    rx
}

async fn run(
    client: &Client,
    mut request: DescribeAndroidInstancesRequest,
    options: &CrawlOptions,
    tx: &mpsc::Sender<Result<Page, CrawlError>>,
) -> Result<(), CrawlError> {
    if !(1..=100).contains(&options.page_size) {
        return Err(CrawlError::BadPageSize(options.page_size));
    }
    request.max_results = Some(options.page_size as i32);
    request.next_token = None;

    let hasher = RandomState::new();
    let mut seen_tokens: HashSet<u64> = HashSet::new();
    let mut seen_ids = SeenIds::default();
    let mut number = 0u64;
    let mut pages_without_instances = 0u64;
    loop {
        number += 1;
        if number > options.max_pages {
            return Err(CrawlError::TooManyPages {
                max_pages: options.max_pages,
            });
        }
        let started = std::time::Instant::now();
        let page = client
            .describe_android_instances(&request)
            .await
            .map_err(|error| CrawlError::Api {
                page: number,
                error,
            })?;
        let fetched_at = Utc::now();
        let next = page.next_token.filter(|t| !t.is_empty());
        if let Some(token) = &next {
            // Tokens are kept as hashes: a crawl of a million instances has ten
            // thousand of them, and only equality matters.
            if !seen_tokens.insert(hasher.hash_one(token)) {
                return Err(CrawlError::RepeatedToken {
                    page: number,
                    request_id: page.request_id,
                    token: token.clone(),
                });
            }
        }
        let (instances, repeated, new) = seen_ids.dedup(page.instances);
        let duplicates = repeated.len() as u64;
        if new == 0 && next.is_some() {
            pages_without_instances += 1;
            if pages_without_instances > MAX_PAGES_WITHOUT_INSTANCES {
                return Err(CrawlError::EndlessCursor {
                    first: number + 1 - pages_without_instances,
                    last: number,
                });
            }
        } else {
            pages_without_instances = 0;
        }
        if duplicates > 0 {
            tracing::warn!(
                page = number,
                request_id = page.request_id.as_deref().unwrap_or(""),
                duplicates,
                "instances listed again from a recent page"
            );
        }
        tracing::debug!(
            page = number,
            instances = instances.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "page fetched"
        );
        let is_last = next.is_none();
        let out = Page {
            number,
            request_id: page.request_id,
            total_count: page.total_count,
            fetched_at,
            instances,
            repeated,
            duplicates,
            new_instances: new,
            is_last,
        };
        if tx.send(Ok(out)).await.is_err() || is_last {
            return Ok(()); // done, or the consumer has gone away
        }
        request.next_token = next;
    }
}

/// What the crawl has listed: the ids of the last few pages whole, and a bit
/// per hash of every id so far ([`ListedBits`]). The bits only tell whether a
/// page added an instance never listed before: a cursor that wraps around to
/// the start, with a fresh token on every page, adds none, and the crawl stops
/// after `MAX_PAGES_WITHOUT_INSTANCES` such pages instead of running to the page
/// cap. They never drop a record. The hash has fixed keys: which ids share a
/// bit is the same from run to run, so a page judged one way is judged so again.
#[derive(Default)]
struct SeenIds {
    hasher: BuildHasherDefault<DefaultHasher>,
    every: ListedBits,
    recent: VecDeque<HashSet<String>>,
}

/// Which ids a crawl has listed, in the same 512 KiB whatever the fleet: one bit
/// per hash of an id. A set of the hashes took 9 bytes an id, 14 MB for the six
/// regions of a million instances, which made the job's memory grow with the
/// fleet.
///
/// Up to half set, an id whose bit another id set first counts as listed, never
/// the other way round, so a page can only seem to add less than it does. A
/// page seems to add nothing only if each of its ids does: with the bits half
/// set (about 2.9 million ids in one scope), a full page of new instances once
/// in 2^100 pages, and the crawl stops only after more than a hundred such
/// pages in a row. Past half set, the bits say nothing: every id counts as new,
/// a cursor going round is no longer seen, and the page cap alone bounds the
/// crawl.
struct ListedBits {
    words: Vec<u64>,
    set: usize,
}

impl ListedBits {
    const BITS: usize = 1 << 22;

    /// Marks the hash's bit; whether the id is new: its bit was clear, or the
    /// bits are too full to say.
    fn insert(&mut self, hash: u64) -> bool {
        let bit = hash as usize & (Self::BITS - 1);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        let clear = self.words[word] & mask == 0;
        if clear {
            self.words[word] |= mask;
            self.set += 1;
        }
        clear || self.set > Self::BITS / 2
    }
}

impl Default for ListedBits {
    fn default() -> Self {
        ListedBits {
            words: vec![0; Self::BITS / 64],
            set: 0,
        }
    }
}

impl SeenIds {
    /// The page split into first listings and repeats of recent pages (or of
    /// this one), and how many of its instances the crawl had never listed, as
    /// far as [`ListedBits`] tells.
    fn dedup(&mut self, instances: Vec<RawInstance>) -> (Vec<RawInstance>, Vec<RawInstance>, u64) {
        let mut ids = HashSet::with_capacity(instances.len());
        let mut kept = Vec::with_capacity(instances.len());
        let mut repeated = Vec::new();
        let mut new = 0;
        for instance in instances {
            // Records without an id pass through: normalizing reports them.
            if let Some(id) = instance.instance_id() {
                // Every id of the page joins the window, repeats too: a cursor
                // going round a short cycle stays inside it.
                let recent = self.recent.iter().any(|p| p.contains(id));
                if !ids.insert(id.to_owned()) || recent {
                    repeated.push(instance);
                    continue;
                }
                if self.every.insert(self.hasher.hash_one(id)) {
                    new += 1;
                }
            } else {
                new += 1;
            }
            kept.push(instance);
        }
        if self.recent.len() == DEDUP_WINDOW_PAGES {
            self.recent.pop_front();
        }
        self.recent.push_back(ids);
        (kept, repeated, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signature_refused_after_accepted_pages_points_at_the_request() {
        let refused = |code: &str| ApiError::Service {
            action: "DescribeAndroidInstances".into(),
            status: 400,
            code: code.into(),
            message: "Specified signature is not matched with our calculation.".into(),
            request_id: Some("R".into()),
            retry_after: None,
            x_acs_retry_after: false,
        };
        let first = CrawlError::Api {
            page: 1,
            error: refused("SignatureDoesNotMatch"),
        }
        .to_string();
        assert!(first.contains("check the AccessKey secret"), "{first}");
        assert!(!first.contains("NextToken"), "{first}");
        let later = CrawlError::Api {
            page: 4,
            error: refused("SignatureDoesNotMatch"),
        }
        .to_string();
        assert!(
            later.contains("the 3 pages before it") && later.contains("NextToken"),
            "{later}"
        );
        let other = CrawlError::Api {
            page: 4,
            error: refused("InvalidAccessKeyId.NotFound"),
        }
        .to_string();
        assert!(!other.contains("pages before it"), "{other}");
    }

    #[test]
    fn only_a_clear_shortfall_of_the_total_count_is_reported() {
        // As counted, or more (instances created while the crawl ran).
        assert_eq!(clear_shortfall(1000, 1000), None);
        assert_eq!(clear_shortfall(1010, 1000), None);
        // Drift: within 1%, or only a few instances.
        assert_eq!(clear_shortfall(990, 1000), None);
        assert_eq!(clear_shortfall(45, 50), None);
        // Clearly short.
        assert_eq!(clear_shortfall(980, 1000), Some(20));
        assert_eq!(clear_shortfall(0, 6), Some(6));
        assert_eq!(clear_shortfall(100, 100_000), Some(99_900));
        // Whatever count the service sends.
        assert_eq!(clear_shortfall(0, u64::MAX), Some(u64::MAX));
    }

    fn rec(id: &str) -> RawInstance {
        json!({ "AndroidInstanceId": id })
            .as_object()
            .unwrap()
            .clone()
            .into()
    }

    #[test]
    fn a_repeat_of_a_recent_page_is_set_apart_and_a_farther_one_passed_on_as_not_new() {
        let ids = |v: &[RawInstance]| -> Vec<String> {
            v.iter()
                .map(|r| r.instance_id().unwrap().to_owned())
                .collect()
        };
        let mut seen = SeenIds::default();
        let (kept, repeated, new) = seen.dedup(vec![rec("a"), rec("b"), rec("a")]);
        assert_eq!(
            (ids(&kept), ids(&repeated), new),
            (vec!["a".into(), "b".into()], vec!["a".into()], 2)
        );
        let (kept, repeated, new) = seen.dedup(vec![rec("b"), rec("c")]);
        assert_eq!(
            (ids(&kept), ids(&repeated), new),
            (vec!["c".into()], vec!["b".into()], 1)
        );
        for i in 0..DEDUP_WINDOW_PAGES {
            seen.dedup(vec![rec(&format!("x{i}"))]);
        }
        // Beyond the window: passed on (the store keeps the last), but not new.
        let (kept, repeated, new) = seen.dedup(vec![rec("a"), rec("d")]);
        assert_eq!((kept.len(), repeated.len(), new), (2, 0, 1));
    }

    #[test]
    fn the_record_of_listed_ids_stays_its_size_and_tells_new_from_listed() {
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let mut bits = ListedBits::default();
        assert_eq!(bits.words.len() * 64, ListedBits::BITS, "512 KiB");
        // A million ids, each new when first listed (a miss of a new one is
        // possible, and counted; a listed one is never taken for new).
        let ids: Vec<String> = (0..1_000_000).map(|i| format!("acp-{i:012}")).collect();
        let missed = ids
            .iter()
            .filter(|id| !bits.insert(hasher.hash_one(id.as_str())))
            .count();
        assert!(
            missed < 150_000,
            "{missed} of a million new ids taken for listed"
        );
        assert!(ids
            .iter()
            .all(|id| !bits.insert(hasher.hash_one(id.as_str()))));
        assert_eq!(bits.words.len() * 64, ListedBits::BITS, "as many as before");
        // Past half set, nothing is taken for listed: the page cap bounds the crawl.
        let mut full = ListedBits::default();
        for i in 0..ListedBits::BITS {
            full.insert(i as u64);
        }
        assert!(full.insert(0));
    }
}
