//! The real client and crawler against the simulator, over loopback sockets.

use std::collections::HashSet;
use std::time::Duration;

use ecp_inventory::api::model::DescribeAndroidInstancesRequest;
use ecp_inventory::api::retry::RetryPolicy;
use ecp_inventory::api::{Client, ClientConfig, Credentials};
use ecp_inventory::crawl::{self, CrawlError, CrawlOptions, Page};
use ecp_inventory::simulator::{Faults, RunningSimulator, Simulator, SimulatorConfig};

use crate::helpers::{quick_retry_client, sim_client, start_sim};

/// Drains a crawl: every page, or the error that ended it.
pub async fn collect(
    client: Client,
    request: DescribeAndroidInstancesRequest,
    page_size: u32,
) -> Result<Vec<Page>, CrawlError> {
    let mut rx = crawl::spawn(
        client,
        request,
        CrawlOptions {
            page_size,
            ..Default::default()
        },
    );
    let mut pages = Vec::new();
    while let Some(page) = rx.recv().await {
        let page = page?;
        let last = page.is_last;
        pages.push(page);
        if last {
            return Ok(pages);
        }
    }
    panic!("the crawl ended without its last page and without an error");
}

/// A simulated fleet of `instances`, and a crawl of all of it (every region)
/// with `options`. The running simulator serves as long as it is kept.
async fn crawl_fleet(
    instances: usize,
    options: CrawlOptions,
) -> (
    Simulator,
    RunningSimulator,
    tokio::sync::mpsc::Receiver<Result<Page, CrawlError>>,
) {
    let (sim, running) = start_sim(SimulatorConfig {
        instances,
        ..Default::default()
    })
    .await;
    let rx = crawl::spawn(
        sim_client(&running),
        DescribeAndroidInstancesRequest::default(),
        options,
    );
    (sim, running, rx)
}

fn ids(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| &p.instances)
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect()
}

fn fleet_ids(sim: &Simulator) -> HashSet<String> {
    sim.fleet()
        .iter()
        .map(|i| i["AndroidInstanceId"].as_str().unwrap().to_owned())
        .collect()
}

/// The next pages are fetched while the consumer still holds the current one
/// (a crawl waits for the network only at its start), and no more than a few:
/// the crawl's memory is a few pages, whatever the fleet.
#[tokio::test]
async fn pages_are_fetched_ahead_of_the_consumer_and_only_a_few() {
    let options = CrawlOptions {
        page_size: 10,
        ..Default::default()
    };
    let (sim, _running, mut rx) = crawl_fleet(1000, options).await;
    let first = rx.recv().await.unwrap().unwrap();
    assert_eq!(first.number, 1);
    // Held, and nothing more received: the crawl fetches ahead, then waits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim.stats().pages < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no page fetched ahead of the consumer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = sim.stats().pages;
    assert!(
        (2..=4).contains(&served),
        "{served} pages of 100 served while the consumer held the first"
    );
    drop(first);
    let second = rx.recv().await.unwrap().unwrap();
    assert_eq!(second.number, 2);
}

#[tokio::test]
async fn every_instance_exactly_once_in_pages_of_100_37_and_1() {
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 10_000,
        ..Default::default()
    })
    .await;
    let expected = fleet_ids(&sim);
    assert_eq!(expected.len(), 10_000);
    for page_size in [100u32, 37, 1] {
        let pages = collect(
            sim_client(&running),
            DescribeAndroidInstancesRequest::default(),
            page_size,
        )
        .await
        .unwrap();
        let got = ids(&pages);
        let unique: HashSet<String> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            10_000,
            "page size {page_size}: every instance once"
        );
        assert_eq!(unique, expected, "page size {page_size}: exactly the fleet");
        assert_eq!(
            pages.len(),
            10_000usize.div_ceil(page_size as usize),
            "page size {page_size}"
        );
        assert!(pages
            .iter()
            .all(|p| p.instances.len() <= page_size as usize));
    }
}

#[tokio::test]
async fn a_region_scope_returns_exactly_that_region() {
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 600,
        ..Default::default()
    })
    .await;
    let expected: HashSet<String> = sim
        .fleet()
        .iter()
        .filter(|i| i["RegionId"] == "cn-hangzhou")
        .map(|i| i["AndroidInstanceId"].as_str().unwrap().to_owned())
        .collect();
    assert!(!expected.is_empty());
    let request = DescribeAndroidInstancesRequest {
        biz_region_id: Some("cn-hangzhou".into()),
        ..Default::default()
    };
    let pages = collect(sim_client(&running), request, 50).await.unwrap();
    let got: HashSet<String> = ids(&pages).into_iter().collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_until_the_crawl_completes() {
    let (sim, running) = start_sim(SimulatorConfig {
        instances: 500,
        faults: Faults {
            seed: 3,
            throttle_rate: 0.3,
            error_503_rate: 0.1,
            error_500_rate: 0.05,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let client = quick_retry_client(&running, 12);
    let pages = collect(
        client.clone(),
        DescribeAndroidInstancesRequest::default(),
        20,
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages).len(), 500);
    assert!(
        client.stats().retries() > 0,
        "faults were injected, so retries happened"
    );
    assert!(client.stats().throttled() > 0);
    let stats = sim.stats();
    assert!(stats.errors.contains_key("Throttling.User"), "{stats:?}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 50,
        faults: Faults {
            seed: 1,
            throttle_rate: 0.5,
            retry_after_ms: Some(5),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let client = quick_retry_client(&running, 20);
    let pages = collect(
        client.clone(),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap();
    assert_eq!(ids(&pages).len(), 50);
    assert!(client.stats().throttled() > 0);
}

#[tokio::test]
async fn a_stuck_cursor_ends_the_crawl_with_an_error() {
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 100,
        faults: Faults {
            stuck_token_page: Some(3),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let err = collect(
        sim_client(&running),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CrawlError::RepeatedToken { .. }), "{err}");
    assert!(err.to_string().contains("stuck"), "{err}");
}

#[tokio::test]
async fn the_page_cap_ends_a_crawl_that_never_ends() {
    let options = CrawlOptions {
        page_size: 10,
        max_pages: 3,
    };
    let (_sim, _running, mut rx) = crawl_fleet(100, options).await;
    let mut error = None;
    while let Some(page) = rx.recv().await {
        if let Err(e) = page {
            error = Some(e);
        }
    }
    let err = error.expect("the cap stops the crawl");
    assert!(
        matches!(err, CrawlError::TooManyPages { max_pages: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("--max-pages"), "{err}");
}

#[tokio::test]
async fn an_empty_page_in_the_middle_does_not_end_the_crawl() {
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 100,
        faults: Faults {
            empty_page: Some(2),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let pages = collect(
        sim_client(&running),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap();
    assert!(pages.iter().any(|p| p.instances.is_empty() && !p.is_last));
    assert_eq!(ids(&pages).len(), 100);
}

#[tokio::test]
async fn an_instance_repeated_on_the_next_page_is_kept_once_and_counted() {
    let (_sim, running) = start_sim(SimulatorConfig {
        instances: 100,
        faults: Faults {
            duplicate_page: Some(2),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let pages = collect(
        sim_client(&running),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap();
    let got = ids(&pages);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no duplicates reach the consumer");
    assert_eq!(got.len(), 100);
    assert_eq!(pages.iter().map(|p| p.duplicates).sum::<u64>(), 1);
}

#[tokio::test]
async fn malformed_json_and_html_pages_name_the_page_and_are_not_data() {
    for faults in [
        Faults {
            malformed_json_page: Some(2),
            ..Default::default()
        },
        Faults {
            html_502_page: Some(2),
            ..Default::default()
        },
    ] {
        let (_sim, running) = start_sim(SimulatorConfig {
            instances: 100,
            faults: faults.clone(),
            ..Default::default()
        })
        .await;
        let err = collect(
            quick_retry_client(&running, 2),
            DescribeAndroidInstancesRequest::default(),
            10,
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("page 2:"), "{faults:?}: {text}");
        assert!(text.contains("bad response"), "{faults:?}: {text}");
    }
}

#[tokio::test]
async fn auth_errors_are_not_retried_and_say_what_is_wrong() {
    let (sim, running) = start_sim(SimulatorConfig::default()).await;
    let client = Client::new(
        Credentials::new("testAccessKeyId", "wrong-secret"),
        ClientConfig {
            endpoint: running.endpoint(),
            ..Default::default()
        },
    )
    .unwrap();
    let err = collect(
        client.clone(),
        DescribeAndroidInstancesRequest::default(),
        10,
    )
    .await
    .unwrap_err();
    let api = err.api_error().expect("an API error");
    assert!(api.is_auth(), "{err}");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert_eq!(client.stats().requests(), 1, "never retried");
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transport_error_naming_it() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let client = Client::new(
        Credentials::new("a", "b"),
        ClientConfig {
            endpoint: endpoint.clone(),
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let err = collect(client, DescribeAndroidInstancesRequest::default(), 10)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&endpoint), "{err}");
}
