//! The client against a scripted server that records every request byte for byte
//! and answers what each test lays out: the answers a real gateway may give that
//! the simulator does not (XML errors, unlisted throttling codes, rate-limit
//! headers, a cursor that never ends).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ecp_inventory::api::model::DescribeAndroidInstancesRequest;
use ecp_inventory::api::retry::RetryPolicy;
use ecp_inventory::api::{ApiError, Client, ClientConfig, Credentials};
use ecp_inventory::crawl::{self, CrawlError, CrawlOptions};

/// One scripted answer: status, extra header lines, body.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Answer {
    fn json(status: u16, body: impl Into<String>) -> Self {
        Answer {
            status,
            headers: vec![("content-type", "application/json;charset=utf-8".into())],
            body: body.into(),
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

const EMPTY_LAST_PAGE: &str =
    r#"{"RequestId":"R-OK","TotalCount":0,"NextToken":"","InstanceModel":[]}"#;

/// The requests a [`scripted_server`] received, as raw text.
type Requests = Arc<Mutex<Vec<String>>>;

/// Serves `answer(n)` to the n-th request (0-based), on one connection or many.
async fn scripted_server(
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (String, Requests) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                loop {
                    // Requests carry no body (Content-Length: 0): the head is all.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match sock.read(&mut byte).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => head.push(byte[0]),
                        }
                    }
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(String::from_utf8_lossy(&head).into_owned());
                        seen.len() - 1
                    };
                    let a = answer(n);
                    let mut out = format!("HTTP/1.1 {} Scripted\r\n", a.status);
                    for (name, value) in &a.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    out.push_str(&format!(
                        "content-length: {}\r\n\r\n{}",
                        a.body.len(),
                        a.body
                    ));
                    if sock.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), requests)
}

fn client(endpoint: String, attempts: u32, max_elapsed: Duration) -> Client {
    Client::new(
        Credentials::new("testAccessKeyId", "testAccessKeySecret"),
        ClientConfig {
            endpoint,
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_secs(120),
                max_elapsed,
            },
            ..Default::default()
        },
    )
    .unwrap()
}

async fn one_page(c: &Client) -> Result<(), ApiError> {
    c.describe_android_instances(&DescribeAndroidInstancesRequest::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_empty_post_announces_its_length() {
    let (endpoint, requests) = scripted_server(|_| Answer::json(200, EMPTY_LAST_PAGE)).await;
    one_page(&client(endpoint, 1, Duration::from_secs(5)))
        .await
        .unwrap();
    let head = requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("post / "), "{head}");
    assert!(head.contains("\r\ncontent-length: 0\r\n"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
}

#[tokio::test]
async fn any_throttling_answer_is_retried() {
    // Each answer is refused once, then the page comes.
    let refusals = [
        // A Throttling code no list names, with the service's wait.
        Answer::json(
            400,
            r#"{"RequestId":"R1","Code":"Throttling.Concurrent","Message":"too many concurrent requests"}"#,
        )
        .with_header("x-acs-retry-after", "30"),
        // Any code with x-acs-retry-after: the SDK's ThrottlingException.
        Answer::json(400, r#"{"RequestId":"R2","Code":"QuotaExceeded.Flow","Message":"m"}"#)
            .with_header("x-acs-retry-after", "30"),
        // A 429 whose body is a proxy's page.
        Answer {
            status: 429,
            headers: vec![("content-type", "text/html".into())],
            body: "<html>slow down</html>".into(),
        },
        // The gateway's XML error body.
        Answer {
            status: 400,
            headers: vec![("content-type", "text/xml;charset=utf-8".into())],
            body: "<?xml version='1.0' encoding='UTF-8'?><Error><RequestId>R4</RequestId>\
                   <Code>Throttling.User</Code><Message>Request was denied due to user flow \
                   control.</Message></Error>"
                .into(),
        },
    ];
    for refusal in refusals {
        let (endpoint, requests) = scripted_server(move |n| {
            if n == 0 {
                refusal.clone()
            } else {
                Answer::json(200, EMPTY_LAST_PAGE)
            }
        })
        .await;
        let c = client(endpoint, 3, Duration::from_secs(5));
        one_page(&c).await.unwrap();
        assert_eq!(requests.lock().unwrap().len(), 2);
        assert_eq!((c.stats().retries(), c.stats().throttled()), (1, 1));
    }
}

/// Every throttled answer counts, the last one of a call that gives up too.
#[tokio::test]
async fn a_call_given_up_on_throttling_counts_every_refusal() {
    let (endpoint, requests) = scripted_server(|_| {
        Answer::json(
            400,
            r#"{"RequestId":"R","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
        )
    })
    .await;
    let c = client(endpoint, 3, Duration::from_secs(5));
    let err = one_page(&c).await.unwrap_err();
    assert!(err.to_string().contains("Throttling.User"), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 3);
    assert_eq!((c.stats().retries(), c.stats().throttled()), (2, 3));
}

#[tokio::test]
async fn an_xml_error_is_read_and_a_parameter_error_not_retried() {
    let (endpoint, requests) = scripted_server(|_| Answer {
        status: 400,
        headers: vec![("content-type", "text/xml;charset=utf-8".into())],
        body: "<Error><RequestId>R-XML</RequestId><Code>InvalidParameter</Code>\
               <Message>The value of MaxResults is invalid.</Message></Error>"
            .into(),
    })
    .await;
    let err = one_page(&client(endpoint, 3, Duration::from_secs(5)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, ApiError::Service { code, .. } if code == "InvalidParameter"),
        "{text}"
    );
    assert!(
        text.contains("MaxResults is invalid") && text.contains("R-XML"),
        "{text}"
    );
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_rate_limit_headers_say_how_long_to_wait() {
    // A throttling code without x-acs-retry-after, but with the quota's refill
    // time: 60 s, past this client's 5 s budget, so it stops at once instead of
    // retrying into the same wall.
    let (endpoint, requests) = scripted_server(|_| {
        Answer::json(
            400,
            r#"{"RequestId":"R","Code":"Throttling.Api","Message":"m"}"#,
        )
        .with_header(
            "x-ratelimit-user-api",
            "Limit:10,Remain:0,TimeLeft:60000,Reset:1700000000",
        )
    })
    .await;
    let err = one_page(&client(endpoint, 5, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_gateway_retry_after_is_honoured() {
    // A proxy's 429 page and the API's 503, each asking for a minute the standard
    // way: past this client's 5 s budget, so each stops at once with that wait
    // rather than retrying after a few milliseconds of back-off.
    let answers = [
        Answer {
            status: 429,
            headers: vec![
                ("content-type", "text/html".into()),
                ("retry-after", "60".into()),
            ],
            body: "<html>Too Many Requests</html>".into(),
        },
        Answer::json(
            503,
            r#"{"RequestId":"R5","Code":"ServiceUnavailable","Message":"m"}"#,
        )
        .with_header("retry-after", "60"),
    ];
    for answer in answers {
        let (endpoint, requests) = scripted_server(move |_| answer.clone()).await;
        let err = one_page(&client(endpoint, 5, Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(60)), "{err}");
        assert_eq!(requests.lock().unwrap().len(), 1, "{err}");
        // A 429 is throttling; a 503 that asks for a wait is still an outage.
        let status = match err.last() {
            ApiError::Service { status, .. } | ApiError::BadResponse { status, .. } => *status,
            other => panic!("{other}"),
        };
        assert_eq!(err.is_throttling(), status == 429, "{err}");
    }
    // Within the budget, the wait is kept before the next attempt.
    let (endpoint, requests) = scripted_server(|n| {
        if n == 0 {
            Answer {
                status: 503,
                headers: vec![("retry-after", "1".into())],
                body: "Service Unavailable".into(),
            }
        } else {
            Answer::json(200, EMPTY_LAST_PAGE)
        }
    })
    .await;
    let started = std::time::Instant::now();
    one_page(&client(endpoint, 3, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(requests.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_cursor_that_keeps_going_over_empty_pages_is_stopped() {
    // Five instances on page 1, then empty pages with fresh tokens forever.
    let (endpoint, requests) = scripted_server(|n| {
        let instances = if n == 0 {
            (0..5)
                .map(|i| format!(r#"{{"AndroidInstanceId":"acp-{i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            String::new()
        };
        Answer::json(
            200,
            format!(
                r#"{{"RequestId":"R{n}","TotalCount":5,"NextToken":"token-{n}","InstanceModel":[{instances}]}}"#
            ),
        )
    })
    .await;
    let mut rx = crawl::spawn(
        client(endpoint, 1, Duration::from_secs(5)),
        DescribeAndroidInstancesRequest::default(),
        CrawlOptions {
            page_size: 100,
            max_pages: 1_000,
        },
    );
    let mut error = None;
    while let Some(page) = rx.recv().await {
        if let Err(e) = page {
            error = Some(e);
        }
    }
    let err = error.expect("the crawl must stop");
    // MAX_PAGES_WITHOUT_INSTANCES pages in a row without an instance are borne;
    // one more is not.
    let last = 2 + crawl::MAX_PAGES_WITHOUT_INSTANCES;
    assert!(
        matches!(err, CrawlError::EndlessCursor { first: 2, last: l } if l == last),
        "{err}"
    );
    assert!(err.to_string().contains("added no instance"), "{err}");
    assert_eq!(requests.lock().unwrap().len() as u64, last);
}

#[tokio::test]
async fn a_cursor_that_wraps_around_to_the_start_is_stopped() {
    // A listing of `cycle` pages of two instances, then the same pages again and
    // again, each with a fresh token: every page is full, none adds an instance.
    // Three pages come back within the crawler's window of recent pages (their
    // repeats are dropped); eight come back past it (passed on, counted as not
    // new). Either way MAX_PAGES_WITHOUT_INSTANCES pages without a new instance
    // stop the crawl.
    let borne = crawl::MAX_PAGES_WITHOUT_INSTANCES;
    for (cycle, listed_before_the_stop) in [(3u64, 6), (8, 16 + 2 * borne as usize)] {
        let (endpoint, requests) = scripted_server(move |n| {
            let first = (n as u64 % cycle) * 2;
            Answer::json(
                200,
                format!(
                    r#"{{"RequestId":"R{n}","TotalCount":{},"NextToken":"token-{n}","InstanceModel":[{{"AndroidInstanceId":"acp-{first}"}},{{"AndroidInstanceId":"acp-{}"}}]}}"#,
                    cycle * 2,
                    first + 1
                ),
            )
        })
        .await;
        let mut rx = crawl::spawn(
            client(endpoint, 1, Duration::from_secs(5)),
            DescribeAndroidInstancesRequest::default(),
            CrawlOptions {
                page_size: 2,
                max_pages: 1_000,
            },
        );
        let (mut listed, mut new, mut error) = (0, 0, None);
        while let Some(page) = rx.recv().await {
            match page {
                Ok(page) => {
                    listed += page.instances.len();
                    new += page.new_instances;
                }
                Err(e) => error = Some(e),
            }
        }
        // However many times they came back, the distinct instances.
        assert_eq!(new, cycle * 2, "cycle {cycle}");
        let err = error.expect("the crawl must stop");
        let (first, last) = (cycle + 1, cycle + borne + 1);
        assert!(
            matches!(err, CrawlError::EndlessCursor { first: f, last: l } if f == first && l == last),
            "cycle {cycle}: {err}"
        );
        assert_eq!(listed, listed_before_the_stop, "cycle {cycle}");
        assert_eq!(requests.lock().unwrap().len() as u64, last);
    }
}

#[tokio::test]
async fn uneven_pages_and_a_few_empty_ones_are_a_crawl_like_any_other() {
    // A full page, then pages of 30, with five empty pages in the middle: 2,050
    // instances over 71 pages, TotalCount honest.
    let (endpoint, _requests) = scripted_server(|n| {
        let (from, len) = match n {
            0 => (0, 100),
            1..=30 => (100 + (n - 1) * 30, 30),
            31..=35 => (0, 0),
            _ => (100 + (n - 6) * 30, 30),
        };
        let ids: Vec<String> = (from..from + len)
            .filter(|i| *i < 2050)
            .map(|i| format!(r#"{{"AndroidInstanceId":"acp-{i}"}}"#))
            .collect();
        let last = from + len >= 2050 && len > 0;
        let token = if last { String::new() } else { format!("t{n}") };
        Answer::json(
            200,
            format!(
                r#"{{"RequestId":"R{n}","TotalCount":2050,"NextToken":"{token}","InstanceModel":[{}]}}"#,
                ids.join(",")
            ),
        )
    })
    .await;
    let mut rx = crawl::spawn(
        client(endpoint, 1, Duration::from_secs(5)),
        DescribeAndroidInstancesRequest::default(),
        CrawlOptions::default(),
    );
    let mut instances = 0;
    let mut last = false;
    while let Some(page) = rx.recv().await {
        let page = page.unwrap();
        instances += page.instances.len();
        last = page.is_last;
    }
    assert!(last, "the crawl reached its last page");
    assert_eq!(instances, 2050);
}

#[tokio::test]
async fn an_error_answered_with_http_200_is_an_error_not_an_empty_last_page() {
    // A gateway's error with status 200: no InstanceModel, no NextToken. Read as
    // a page it would end the crawl as complete, and the rest of the fleet would
    // look deleted. A retryable code is retried, then the page comes.
    let unavailable = r#"{"RequestId":"E200","Code":"ServiceUnavailable","Message":"The service is unavailable."}"#;
    let (endpoint, requests) = scripted_server(move |n| match n {
        0 => Answer::json(200, unavailable),
        _ => Answer::json(200, EMPTY_LAST_PAGE),
    })
    .await;
    let c = client(endpoint, 3, Duration::from_secs(5));
    one_page(&c).await.unwrap();
    assert_eq!(requests.lock().unwrap().len(), 2, "retried once");

    // Any other code is reported, by name, for both calls.
    let denied = r#"{"RequestId":"E403","Code":"Forbidden.RAM","Message":"User not authorized"}"#;
    let (endpoint, _) = scripted_server(move |_| Answer::json(200, denied)).await;
    let c = client(endpoint, 3, Duration::from_secs(5));
    let err = one_page(&c).await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Service { code, status: 200, .. } if code == "Forbidden.RAM"),
        "{err}"
    );
    assert!(err.to_string().contains("E403"), "{err}");
    let err = c.describe_regions(&Default::default()).await.unwrap_err();
    assert!(err.is_auth(), "{err}");

    // A page without InstanceModel and without a Code is still an empty page.
    let (endpoint, _) = scripted_server(|_| {
        Answer::json(200, r#"{"RequestId":"R0","TotalCount":0,"NextToken":""}"#)
    })
    .await;
    let page = client(endpoint, 1, Duration::from_secs(5))
        .describe_android_instances(&DescribeAndroidInstancesRequest::default())
        .await
        .unwrap();
    assert!(page.instances.is_empty());
}

#[tokio::test]
async fn a_listing_that_loses_pages_behind_repeats_or_a_smaller_last_count_deletes_nothing() {
    use ecp_inventory::sync;
    // Six pages of ten, counted 60. Each run: DescribeRegions, then the pages.
    // Run 2's last page repeats page 1 (past the crawler's window of recent
    // pages, so its records pass as new): 60 records, 50 instances. Run 3's last
    // page is empty and counts 0. Either way ten instances went unlisted; asked
    // for by id (one more request), they answer, and stay.
    const PER_PAGE: usize = 10;
    const PAGES: usize = 6;
    let page = |n: usize, ids: std::ops::Range<usize>, total: usize| {
        let records: Vec<_> = ids.map(crate::helpers::record).collect();
        let next = if n < PAGES {
            format!("t{}", n + 1)
        } else {
            String::new()
        };
        serde_json::json!({"RequestId": format!("P{n}"), "TotalCount": total,
                           "NextToken": next, "InstanceModel": records})
        .to_string()
    };
    let mut answers = Vec::new();
    for run in 1..=4 {
        answers
            .push(r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#.to_owned());
        for k in 1..=PAGES {
            answers.push(match (run, k) {
                (2, PAGES) => page(k, 0..PER_PAGE, PER_PAGE * PAGES),
                (3, PAGES) => page(k, 0..0, 0),
                _ => page(k, (k - 1) * PER_PAGE..k * PER_PAGE, PER_PAGE * PAGES),
            });
        }
        if run == 2 || run == 3 {
            // The recheck by id: the ten the listing lost.
            let lost = PER_PAGE * (PAGES - 1)..PER_PAGE * PAGES;
            answers.push(page(PAGES, lost, PER_PAGE));
        }
    }
    let (endpoint, requests) =
        scripted_server(move |n| Answer::json(200, answers[n].clone())).await;
    let db = crate::helpers::test_db().await;
    let settings = only_shanghai();
    let c = client(endpoint, 1, Duration::from_secs(5));
    for run in 1..=4 {
        let report = sync::run(&db.store(), &c, &settings).await.unwrap();
        assert!(report.succeeded(), "run {run}: {}", report.summary_line());
        let scope = &report.scopes[0];
        assert_eq!(scope.pages, PAGES as u64, "run {run}");
        // The ledger counts the listing's pages, as the report does: the
        // recheck is a request, not a page.
        let ledger: i64 =
            sqlx::query_scalar("SELECT pages_fetched FROM ecp.sync_run_scopes WHERE run_id = $1")
                .bind(report.run_id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(ledger, PAGES as i64, "run {run}");
        assert_eq!(
            scope.total_count,
            Some((PER_PAGE * PAGES) as u64),
            "run {run}"
        );
        assert_eq!(
            report.totals.deleted,
            0,
            "run {run}: {}",
            report.summary_line()
        );
        assert!(!scope.deletions_withheld, "run {run}");
        let current =
            crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await;
        assert_eq!(current, (PER_PAGE * PAGES) as i64, "run {run}");
    }
    let requests = requests.lock().unwrap();
    let rechecks: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("AndroidInstanceIds.1="))
        .collect();
    assert_eq!(rechecks.len(), 2, "one recheck in runs 2 and 3");
    assert!(
        rechecks
            .iter()
            .all(|r| r.contains("AndroidInstanceIds.10=") && !r.contains("AndroidInstanceIds.11=")),
        "the ten lost instances, asked for by id"
    );
}

#[tokio::test]
async fn a_recheck_the_service_does_not_filter_by_id_is_not_followed_through_the_region() {
    use ecp_inventory::sync;
    // Run 1 lists twenty instances on two pages. Run 2's listing ends after the
    // first page; asked for the ten others by id, the service answers with ten
    // it was not asked for and a cursor: it ignores the filter. The recheck
    // stops there instead of listing the region again, and, the listing being
    // short of its count, nothing is marked deleted.
    let page = |ids, next| listing_page(ids, 20, next);
    let regions = r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#;
    let (endpoint, requests) = scripted_server(move |n| match n {
        0 | 3 => Answer::json(200, regions),
        1 => page(0..10, "t2"),
        2 => page(10..20, ""),
        4 => page(0..10, ""),
        5 => page(0..10, "t2"),
        _ => page(10..20, ""),
    })
    .await;
    let db = crate::helpers::test_db().await;
    let c = client(endpoint, 1, Duration::from_secs(5));
    for run in 1..=2 {
        let report = sync::run(&db.store(), &c, &only_shanghai()).await.unwrap();
        assert!(report.succeeded(), "run {run}: {}", report.summary_line());
        assert_eq!(report.totals.deleted, 0, "run {run}");
    }
    assert_eq!(
        requests.lock().unwrap().len(),
        6,
        "one recheck request, its cursor not followed"
    );
    assert_eq!(
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await,
        20
    );
}

#[tokio::test]
async fn a_recheck_that_fails_withholds_deletions_and_one_refused_leaves_them_to_the_listing() {
    // Run 1 lists twenty instances; run 2 lists fifteen, counted fifteen: five
    // are gone. Asked for them by id, the service fails (503): nothing is marked
    // deleted. Or it refuses the question (400 InvalidParameter, as a service
    // might answer ids it does not know): the listing alone decides, as it did
    // before any recheck, and the five are deleted.
    let page = |ids, total| listing_page(ids, total, "");
    let error = |status: u16, code: &str| {
        Answer::json(
            status,
            format!(r#"{{"RequestId":"E","Code":"{code}","Message":"no"}}"#),
        )
    };
    for (recheck, deleted, withheld) in [
        (error(503, "ServiceUnavailable"), 0, true),
        (error(400, "InvalidParameter"), 5, false),
    ] {
        let regions = r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#;
        let (endpoint, _) = scripted_server(move |n| match n {
            0 | 2 => Answer::json(200, regions),
            1 => page(0..20, 20),
            3 => page(0..15, 15),
            _ => recheck.clone(),
        })
        .await;
        let (_db, report) = second_run_of_shanghai(endpoint).await;
        assert_eq!(report.totals.deleted, deleted, "{}", report.summary_line());
        assert_eq!(report.scopes[0].deletions_withheld, withheld);
    }
}

#[tokio::test]
async fn a_recheck_refused_for_too_many_ids_asks_again_ten_at_a_time() {
    // Run 1 lists thirty instances; run 2 lists eighteen, counted eighteen.
    // Asked for the twelve others by id at once, the service refuses (as one
    // that takes at most ten ids might); asked ten, then two, it answers with
    // eleven of them: only the last one is gone.
    let page = |ids, total| listing_page(ids, total, "");
    let regions = r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#;
    let (endpoint, requests) = scripted_server(move |n| match n {
        0 | 2 => Answer::json(200, regions),
        1 => page(0..30, 30),
        3 => page(0..18, 18),
        4 => Answer::json(
            400,
            r#"{"RequestId":"E","Code":"InvalidParameter.AndroidInstanceIds","Message":"at most 10"}"#,
        ),
        // Each answer holds every instance still there; the recheck keeps
        // those it asked for in that request.
        _ => page(18..29, 11),
    })
    .await;
    let (db, report) = second_run_of_shanghai(endpoint).await;
    assert_eq!(report.totals.deleted, 1, "{}", report.summary_line());
    assert!(!report.scopes[0].deletions_withheld);
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 7, "twelve ids, then ten, then two");
    let asked = |r: &str| r.matches("AndroidInstanceIds.").count();
    assert_eq!(
        [
            asked(&requests[4]),
            asked(&requests[5]),
            asked(&requests[6])
        ],
        [12, 10, 2]
    );
    let gone: Vec<String> =
        sqlx::query_scalar("SELECT instance_id FROM ecp.instances WHERE deleted_at IS NOT NULL")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let last: String = crate::helpers::record(29)["AndroidInstanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(gone, [last]);
}

#[tokio::test]
async fn a_recheck_batch_refused_after_others_were_answered_leaves_only_its_ids_to_the_listing() {
    // Run 1 lists sixty instances; run 2 lists thirty-five, counted thirty-five.
    // Asked for the twenty-five others: all at once is refused, then the first
    // ten are answered (they exist), the next ten refused, the last five
    // answered. The ten refused are judged on the listing (deleted); the
    // fifteen answered are kept.
    let refused = || {
        Answer::json(
            400,
            r#"{"RequestId":"E","Code":"InvalidParameter","Message":"no"}"#,
        )
    };
    let regions = r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#;
    let (endpoint, requests) = scripted_server(move |n| match n {
        0 | 2 => Answer::json(200, regions),
        1 => listing_page(0..60, 60, ""),
        3 => listing_page(0..35, 35, ""),
        4 | 6 => refused(),
        _ => listing_page(35..60, 25, ""),
    })
    .await;
    let (_db, report) = second_run_of_shanghai(endpoint).await;
    assert_eq!(report.totals.deleted, 10, "{}", report.summary_line());
    assert!(!report.scopes[0].deletions_withheld);
    let requests = requests.lock().unwrap().clone();
    let asked: Vec<usize> = requests[4..]
        .iter()
        .map(|r| r.matches("AndroidInstanceIds.").count())
        .collect();
    assert_eq!(asked, [25, 10, 10, 5]);
}

#[tokio::test]
async fn a_redirect_is_reported_and_never_followed() {
    // Where the redirect points: it must never see a request.
    let (elsewhere, elsewhere_requests) =
        scripted_server(|_| Answer::json(200, EMPTY_LAST_PAGE)).await;
    let location = format!("{elsewhere}/login");
    let (endpoint, requests) = scripted_server(move |_| Answer {
        status: 302,
        headers: vec![
            ("location", location.clone()),
            ("x-acs-request-id", "R-302".into()),
        ],
        body: String::new(),
    })
    .await;
    let c = Client::new(
        Credentials::new("testAccessKeyId", "testAccessKeySecret")
            .with_security_token("the-sts-token"),
        ClientConfig {
            endpoint,
            ..Default::default()
        },
    )
    .unwrap();
    let err = one_page(&c).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("redirects to {elsewhere}/login")),
        "{err}"
    );
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.request_id(), Some("R-302"), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 1);
    assert!(
        elsewhere_requests.lock().unwrap().is_empty(),
        "the signed request went to the redirect's address"
    );
}

#[tokio::test]
async fn odd_region_lists_and_a_nul_in_an_error_still_end_in_a_recorded_run() {
    use ecp_inventory::sync::{self, Regions, SyncSettings};
    // DescribeRegions lists one region twice, one id with a NUL in it and one of
    // 5,000 bytes (which failed its scope, unrecorded: too long for the ledger's
    // index); every page then fails with a message that carries a NUL too.
    let long = "x".repeat(5000);
    let (endpoint, requests) = scripted_server(move |n| match n {
        0 => Answer::json(
            200,
            format!(
                r#"{{"RequestId":"R0","RegionModels":[{{"RegionId":"cn-shanghai"}},{{"RegionId":"cn-shanghai"}},{{"RegionId":"cn-\u0000x"}},{{"RegionId":"{long}"}}]}}"#
            ),
        ),
        _ => Answer::json(
            400,
            r#"{"RequestId":"R1","Code":"InvalidParameter","Message":"bad\u0000value"}"#,
        ),
    })
    .await;
    let db = crate::helpers::test_db().await;
    let settings = SyncSettings {
        regions: Regions::All,
        ..Default::default()
    };
    let c = client(endpoint, 1, Duration::from_secs(5));
    let report = sync::run(&db.store(), &c, &settings).await.unwrap();

    // One scope, crawled once: one regions call and one page.
    assert_eq!(report.scopes.len(), 1, "{}", report.summary_line());
    assert_eq!(report.scopes[0].biz_region_id, "cn-shanghai");
    assert_eq!(requests.lock().unwrap().len(), 2);
    // The failure is recorded, NUL and all (as U+FFFD): the run is not left
    // `running` for want of a storable message.
    let (status, error) = crate::helpers::last_run(&db.pool).await;
    assert_eq!(status, "failed");
    assert!(error.contains("bad\u{FFFD}value"), "{error}");
    let scope_error: String = sqlx::query_scalar("SELECT error FROM ecp.sync_run_scopes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(scope_error.contains("InvalidParameter"), "{scope_error}");
}

#[tokio::test]
async fn instances_deleted_while_the_crawl_runs_are_marked_deleted_once_asked_for() {
    use ecp_inventory::sync;
    // Run 1 lists 60 instances on six pages. In run 2, the last ten are deleted
    // after its first page, which still counts 60: five pages list the 50 left,
    // counted 50. The largest count is clearly short of what was listed, but the
    // ten left out are asked for by id and do not answer: they are gone on the
    // service's word, and marked deleted (they used to stay current).
    let page = |n: usize, ids: std::ops::Range<usize>, total: usize, last: bool| {
        let records: Vec<_> = ids.map(crate::helpers::record).collect();
        let next = if last {
            String::new()
        } else {
            format!("t{}", n + 1)
        };
        serde_json::json!({"RequestId": format!("P{n}"), "TotalCount": total,
                           "NextToken": next, "InstanceModel": records})
        .to_string()
    };
    let regions = r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#;
    let mut answers = vec![regions.to_owned()];
    for k in 1..=6 {
        answers.push(page(k, (k - 1) * 10..k * 10, 60, k == 6));
    }
    answers.push(regions.to_owned());
    for k in 1..=5 {
        answers.push(page(
            k,
            (k - 1) * 10..k * 10,
            if k == 1 { 60 } else { 50 },
            k == 5,
        ));
    }
    answers.push(page(1, 0..0, 0, true));
    // Run 3: four pages list 40 of the 50, counted 70; the ten left out do not
    // answer either, but 50 is still clearly short of 70: the listing may have
    // lost others, and nothing is marked deleted.
    answers.push(regions.to_owned());
    for k in 1..=4 {
        answers.push(page(k, (k - 1) * 10..k * 10, 70, k == 4));
    }
    answers.push(page(1, 0..0, 0, true));
    let (endpoint, requests) =
        scripted_server(move |n| Answer::json(200, answers[n].clone())).await;
    let db = crate::helpers::test_db().await;
    let settings = only_shanghai();
    let c = client(endpoint, 1, Duration::from_secs(5));
    sync::run(&db.store(), &c, &settings).await.unwrap();
    let report = sync::run(&db.store(), &c, &settings).await.unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].total_count, Some(60));
    assert!(!report.scopes[0].deletions_withheld);
    assert_eq!(report.totals.deleted, 10, "{}", report.summary_line());
    let current =
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await;
    assert_eq!(current, 50);
    {
        let requests = requests.lock().unwrap();
        let last = requests.last().unwrap();
        assert!(
            last.contains("AndroidInstanceIds.10=") && !last.contains("AndroidInstanceIds.11="),
            "the ten left out, asked for by id: {last}"
        );
    }
    let report = sync::run(&db.store(), &c, &settings).await.unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert!(report.scopes[0].deletions_withheld);
    assert_eq!(report.totals.deleted, 0, "{}", report.summary_line());
    let current =
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.current_instances").await;
    assert_eq!(current, 50);
}

/// Two syncs of cn-shanghai from `endpoint` into a new database; the second
/// must succeed: the database and its report.
async fn second_run_of_shanghai(
    endpoint: String,
) -> (crate::helpers::TestDb, ecp_inventory::sync::RunReport) {
    let db = crate::helpers::test_db().await;
    let c = client(endpoint, 1, Duration::from_secs(5));
    let settings = only_shanghai();
    ecp_inventory::sync::run(&db.store(), &c, &settings)
        .await
        .unwrap();
    let report = ecp_inventory::sync::run(&db.store(), &c, &settings)
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    (db, report)
}

/// A page of DescribeAndroidInstances listing the helper records `ids`.
fn listing_page(ids: std::ops::Range<usize>, total: usize, next: &str) -> Answer {
    let records: Vec<_> = ids.map(crate::helpers::record).collect();
    Answer::json(
        200,
        serde_json::json!({"RequestId": "P", "TotalCount": total, "NextToken": next,
                           "InstanceModel": records})
        .to_string(),
    )
}

/// Settings that crawl cn-shanghai alone, the region the scripted servers list.
fn only_shanghai() -> ecp_inventory::sync::SyncSettings {
    ecp_inventory::sync::SyncSettings {
        regions: ecp_inventory::sync::Regions::Only(vec!["cn-shanghai".into()]),
        ..Default::default()
    }
}

/// A sync of region cn-shanghai from a server that lists it, then answers the
/// n-th page request (1-based) with `page(n)`.
async fn sync_scripted(
    page: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (crate::helpers::TestDb, ecp_inventory::sync::RunReport) {
    use ecp_inventory::sync;
    let (endpoint, _) = scripted_server(move |n| match n {
        0 => Answer::json(
            200,
            r#"{"RequestId":"R0","RegionModels":[{"RegionId":"cn-shanghai"}]}"#,
        ),
        n => page(n),
    })
    .await;
    let db = crate::helpers::test_db().await;
    let settings = only_shanghai();
    let c = client(endpoint, 1, Duration::from_secs(5));
    let report = sync::run(&db.store(), &c, &settings).await.unwrap();
    (db, report)
}

/// [`sync_scripted`] with `page` as the answer to every page request.
async fn sync_one_page(
    page: &'static str,
) -> (crate::helpers::TestDb, ecp_inventory::sync::RunReport) {
    sync_scripted(move |_| Answer::json(200, page)).await
}

#[tokio::test]
async fn a_disk_entry_that_is_no_disk_keeps_its_place_in_the_list() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":1,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1","Disks":[1,{"DiskSize":32,"DiskType":"SYSTEM"}]}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].field_problems, 1);
    let disks: Vec<(i32, Option<String>, Option<i32>)> = sqlx::query_as(
        "SELECT disk_index, disk_type, disk_size_gb FROM ecp.instance_disks ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        disks,
        [(0, None, None), (1, Some("SYSTEM".into()), Some(32))]
    );
}

/// An https endpoint whose server speaks plain HTTP fails with rustls's
/// "InvalidContentType"; the error says what that means.
#[tokio::test]
async fn an_https_endpoint_answered_in_plain_http_says_so() {
    let (_sim, running) = crate::helpers::start_sim(Default::default()).await;
    let https = running.endpoint().replacen("http://", "https://", 1);
    let err = client(https, 1, Duration::from_secs(5))
        .describe_android_instances(&Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("write the endpoint with http://"), "{err}");
}

#[tokio::test]
async fn a_page_after_a_byte_order_mark_is_read() {
    let (db, report) = sync_one_page(concat!(
        "\u{FEFF}",
        r#"{"RequestId":"R1","TotalCount":1,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1"}]}"#
    ))
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(
        crate::helpers::count(&db.pool, "SELECT count(*) FROM ecp.instances").await,
        1
    );
}

#[tokio::test]
async fn a_leap_second_is_stored_not_a_failed_region() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":2,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1","GmtCreate":"2016-12-31 23:59:60.5","GmtExpired":"9999-12-31T23:59:59.9999995Z"},{"AndroidInstanceId":"acp-2","GmtCreate":"2024-05-06 10:42:10"}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].field_problems, 2);
    let times: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT instance_id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
                expires_at::text FROM ecp.instances ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        times,
        [
            (
                "acp-1".into(),
                Some("2017-01-01 00:00:00.500000".into()),
                None
            ),
            (
                "acp-2".into(),
                Some("2024-05-06 10:42:10.000000".into()),
                None
            ),
        ]
    );
}

#[tokio::test]
async fn a_record_that_is_no_object_is_skipped_and_the_page_stored() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":3,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1"},null,{"AndroidInstanceId":"acp-2"}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].skipped, 1);
    assert!(report.scopes[0].deletions_withheld);
    let ids: Vec<String> = sqlx::query_scalar("SELECT instance_id FROM ecp.instances ORDER BY 1")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(ids, ["acp-1", "acp-2"]);
}

#[tokio::test]
async fn a_name_with_half_a_surrogate_pair_is_stored_not_a_failed_region() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":2,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1","AndroidInstanceName":"phone \ud83d"},{"AndroidInstanceId":"acp-2","AndroidInstanceName":"ok"}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    let (name, raw_name): (String, String) = sqlx::query_as(
        "SELECT instance_name, raw ->> 'AndroidInstanceName' FROM ecp.instances \
         WHERE instance_id = 'acp-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), raw_name.as_str()),
        ("phone \u{FFFD}", "phone \u{FFFD}")
    );
    assert_eq!(
        report.scopes[0].field_problems, 1,
        "the mended name is reported"
    );
}

#[tokio::test]
async fn a_number_past_a_float_is_stored_as_sent_not_a_failed_region() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":2,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-1","Memory":1e400,"ImageId":-1E+400,"Extra":[1e999,2]},{"AndroidInstanceId":"acp-2","Memory":8192}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    // Memory cannot be read as an integer; ImageId reads as text; Extra is kept.
    assert_eq!(report.scopes[0].field_problems, 3);
    let row: (Option<i32>, Option<String>, String, String) = sqlx::query_as(
        "SELECT memory_mib, image_id, raw ->> 'Memory', raw -> 'Extra' ->> 1 \
         FROM ecp.instances WHERE instance_id = 'acp-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.0, None);
    assert_eq!(row.1.as_deref(), Some("-1E+400"));
    assert_eq!(
        row.2,
        format!("1{}", "0".repeat(400)),
        "raw keeps the number"
    );
    assert_eq!(row.3, "2");
    let memory: Option<i32> =
        sqlx::query_scalar("SELECT memory_mib FROM ecp.instances WHERE instance_id = 'acp-2'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(memory, Some(8192));
}

#[tokio::test]
async fn an_instance_id_with_a_nul_is_stored_without_it_not_a_failed_region() {
    let (db, report) = sync_one_page(
        r#"{"RequestId":"R1","TotalCount":2,"NextToken":"","InstanceModel":[{"AndroidInstanceId":"acp-\u00001"},{"AndroidInstanceId":"acp-2"}]}"#,
    )
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].field_problems, 1, "the NUL is reported");
    let ids: Vec<(String, String)> = sqlx::query_as(
        "SELECT instance_id, raw ->> 'AndroidInstanceId' FROM ecp.instances ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let acp = |s: &str| (s.to_owned(), s.to_owned());
    assert_eq!(ids, [acp("acp-1"), acp("acp-2")]);
}

#[tokio::test]
async fn an_instance_listed_again_nearby_is_stored_as_last_listed() {
    // acp-0 on pages 1 and 2 (its state changed in between), acp-2 twice on
    // page 2: the later listing is the newer state, as for repeats pages apart.
    let (db, report) = sync_scripted(|n| match n {
        1 => Answer::json(
            200,
            r#"{"RequestId":"R1","TotalCount":3,"NextToken":"t2","InstanceModel":[
                {"AndroidInstanceId":"acp-0","AndroidInstanceStatus":"STOPPED"},
                {"AndroidInstanceId":"acp-1","AndroidInstanceStatus":"RUNNING"}]}"#,
        ),
        _ => Answer::json(
            200,
            r#"{"RequestId":"R2","TotalCount":3,"NextToken":"","InstanceModel":[
                {"AndroidInstanceId":"acp-0","AndroidInstanceStatus":"STARTING"},
                {"AndroidInstanceId":"acp-2","AndroidInstanceName":"first"},
                {"AndroidInstanceId":"acp-2","AndroidInstanceName":"second"}]}"#,
        ),
    })
    .await;
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.scopes[0].instances, 3);
    assert_eq!(report.scopes[0].duplicates, 2);
    let rows: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT instance_id, status, instance_name FROM ecp.instances ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            ("acp-0".into(), Some("STARTING".into()), None),
            ("acp-1".into(), Some("RUNNING".into()), None),
            ("acp-2".into(), None, Some("second".into())),
        ]
    );
}

#[tokio::test]
async fn a_key_refused_the_listing_but_not_the_regions_is_a_configuration_failure() {
    use ecp_inventory::sync::FailureKind;
    // A RAM policy that allows DescribeRegions and not DescribeAndroidInstances.
    let (_db, report) = sync_scripted(|_| {
        Answer::json(
            403,
            r#"{"RequestId":"R1","Code":"Forbidden.RAM","Message":"User not authorized to operate on the specified resource."}"#,
        )
    })
    .await;
    assert_eq!(report.scopes[0].failure, Some(FailureKind::Configuration));
    assert_eq!(report.exit_code(), 2, "{}", report.summary_line());
}

/// A server that answers every request 503 ServiceUnavailable (RequestId R5).
async fn always_unavailable() -> (String, Requests) {
    scripted_server(|_| {
        Answer::json(
            503,
            r#"{"RequestId":"R5","Code":"ServiceUnavailable","Message":"busy"}"#,
        )
    })
    .await
}

#[tokio::test]
async fn a_service_that_does_not_answer_the_regions_check_is_not_asked_again_for_pages() {
    // Named regions are checked with DescribeRegions first. Its retries spent,
    // the run ends there: the listing would spend them once more (twice the
    // wait, with defaults up to four minutes, before the same error).
    let (endpoint, requests) = always_unavailable().await;
    let db = crate::helpers::test_db().await;
    let c = client(endpoint, 2, Duration::from_secs(5));
    let report = ecp_inventory::sync::run(&db.store(), &c, &only_shanghai())
        .await
        .unwrap();
    assert_eq!(report.exit_code(), 1, "{}", report.summary_line());
    let requests = requests.lock().unwrap();
    assert_eq!(
        requests.len(),
        2,
        "two attempts at DescribeRegions, no page"
    );
    assert!(requests.iter().all(|r| r.contains("DescribeRegions")));
    let error = report.scopes[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("ServiceUnavailable") && error.contains("gave up"),
        "{error}"
    );
}

#[tokio::test]
async fn credentials_an_endpoint_quotes_back_are_not_shown() {
    // A gateway or proxy that quotes the request in its error: the security
    // token (a header) or the secret must not reach the message, the log or
    // the ledger, in an error answer, one sent with HTTP 200, or an excerpt of
    // a page cut inside the token.
    let token = format!("Tok3n{}", "x".repeat(300));
    let secret = "Sekr1t-AAA111";
    let quoting = format!(
        r#"{{"RequestId":"R","Code":"InvalidSecurityToken.Malformed","Message":"The security token {token} is malformed"}}"#
    );
    let cut_inside = format!("<html>{} bad token {token}</html>", "-".repeat(90));
    for (status, body) in [
        (400, quoting.clone()),
        (200, quoting),
        (502, format!("<html>bad token {token} for {secret}</html>")),
        (502, cut_inside),
    ] {
        let (endpoint, _) = scripted_server(move |_| Answer::json(status, body.clone())).await;
        let c = Client::new(
            Credentials::new("STS.id", secret).with_security_token(token.as_str()),
            ClientConfig {
                endpoint,
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        let err = one_page(&c).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("Tok3nxxx") && !shown.contains("Sekr1t"),
            "{status}: {shown}"
        );
        assert!(shown.contains("***"), "{status}: {shown}");
    }
}

#[tokio::test]
async fn a_throttled_regions_check_leaves_the_regions_to_the_listing() {
    // Throttled past its retries, DescribeRegions is no sign that the listing
    // (under a quota of its own) would fail: the named region is crawled.
    let (endpoint, requests) = scripted_server(|n| {
        if n < 2 {
            Answer::json(
                400,
                r#"{"RequestId":"T","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
            )
        } else {
            listing_page(0..3, 3, "")
        }
    })
    .await;
    let db = crate::helpers::test_db().await;
    let c = client(endpoint, 2, Duration::from_secs(5));
    let report = ecp_inventory::sync::run(&db.store(), &c, &only_shanghai())
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", report.summary_line());
    assert_eq!(report.totals.created, 3);
    // Two throttled checks, then the one page.
    assert_eq!(requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_compressed_body_nobody_asked_for_is_named_as_such() {
    let (endpoint, requests) = scripted_server(|_| {
        Answer::json(200, "\u{1f}\u{8b}\u{8}binary").with_header("content-encoding", "gzip")
    })
    .await;
    let err = one_page(&client(endpoint, 1, Duration::from_secs(5)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Content-Encoding gzip"), "{text}");
    assert!(!text.contains("binary"), "no bytes of the body: {text}");
    let requests = requests.lock().unwrap();
    assert!(
        !requests[0].to_ascii_lowercase().contains("accept-encoding"),
        "none asked for: {}",
        requests[0]
    );
}

#[tokio::test]
async fn a_call_given_up_on_says_after_how_many_attempts_and_why() {
    // Retries spent.
    let (endpoint, requests) = always_unavailable().await;
    let err = one_page(&client(endpoint, 3, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(requests.lock().unwrap().len(), 3);
    let text = err.to_string();
    assert!(
        text.contains("ServiceUnavailable") && text.contains("R5"),
        "{text}"
    );
    assert!(
        text.contains("gave up after 3 attempt(s)") && text.contains("--max-attempts 3"),
        "{text}"
    );
    assert_eq!(err.request_id(), Some("R5"));

    // A wait asked for that the budget cannot hold: said, not a bare refusal.
    let (endpoint, requests) = scripted_server(|_| {
        Answer::json(
            400,
            r#"{"RequestId":"R6","Code":"Throttling.User","Message":"flow control"}"#,
        )
        .with_header("x-acs-retry-after", "150000")
    })
    .await;
    let err = one_page(&client(endpoint, 8, Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(requests.lock().unwrap().len(), 1);
    let text = err.to_string();
    assert!(text.contains("asked to wait 150.0 s"), "{text}");
    assert!(text.contains("--max-retry-secs 5"), "{text}");
    assert!(err.is_throttling(), "{text}");
}
