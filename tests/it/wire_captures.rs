//! Replays the requests the official Python SDK put on the wire (tests/data/wire),
//! byte for byte, against the simulator with its clock at the capture date: every
//! one must pass authentication. The 07* captures also fix the error answers
//! (status, code, body keys) that the SDK understands; the simulator must give the
//! same when it really fails that way.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ecp_inventory::api::Credentials;
use ecp_inventory::simulator::{Clock, Faults, Simulator, SimulatorConfig};

const CAPTURE_DATE: &str = "2026-11-26T11:57:15Z";

/// Codes that mean "authentication refused this request".
const AUTH_CODES: [&str; 8] = [
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId.NotFound",
    "InvalidTimeStamp.Expired",
    "InvalidTimeStamp.Format",
    "SignatureNonceUsed",
    "MissingSecurityToken",
    "InvalidSecurityToken.MismatchWithAccessKey",
];

fn captures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/wire");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "captures missing in {dir:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The key pairs the captures were signed with (02 uses an STS key).
fn capture_config() -> SimulatorConfig {
    SimulatorConfig {
        instances: 40,
        credentials: vec![
            Credentials::new("testAccessKeyId", "testAccessKeySecret"),
            Credentials::new("STS.testTmpKeyId", "testTmpKeySecret")
                .with_security_token("testSecurityToken=="),
        ],
        clock: Clock::Fixed(CAPTURE_DATE.parse().unwrap()),
        ..SimulatorConfig::default()
    }
}

struct RawReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawReply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` exactly as captured and reads one HTTP/1.1 response.
async fn replay(addr: std::net::SocketAddr, raw: &str) -> RawReply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let header_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the headers");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .expect("content-length");
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    RawReply {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn sends_foreign_token(request: &Value) -> bool {
    request["query_decoded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|pair| pair[0] == "NextToken")
}

#[tokio::test]
async fn every_captured_request_passes_authentication() {
    for (name, capture) in captures() {
        // Fresh simulator per file: several captures share nothing, but a replay
        // into the same simulator would (rightly) be refused as a nonce reuse.
        let sim = Simulator::new(capture_config());
        let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let requests = capture["requests"].as_array().unwrap();
        for (n, request) in requests.iter().enumerate() {
            let reply = replay(running.addr, request["raw"].as_str().unwrap()).await;
            let body = reply.json();
            let code = body["Code"].as_str().unwrap_or_default();
            assert!(
                !AUTH_CODES.contains(&code),
                "{name} #{n}: refused by auth: {}",
                reply.body
            );
            assert!(body["RequestId"].is_string(), "{name} #{n}");
            if sends_foreign_token(request) {
                // Signed fine, but the token was made up by the recorder.
                assert_eq!(
                    (reply.status, code),
                    (400, "InvalidParameter"),
                    "{name} #{n}"
                );
                assert!(body["Message"].as_str().unwrap().contains("NextToken"));
            } else {
                assert_eq!(reply.status, 200, "{name} #{n}: {}", reply.body);
                let action = request["headers_in_order"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h.as_str().unwrap() == "x-acs-action: DescribeRegions");
                let list = if action {
                    "RegionModels"
                } else {
                    "InstanceModel"
                };
                assert!(body[list].is_array(), "{name} #{n}: {}", reply.body);
            }
        }
        // The same bytes again: now a replay.
        let again = replay(running.addr, requests[0]["raw"].as_str().unwrap()).await;
        assert_eq!(
            (again.status, again.json()["Code"].as_str().unwrap()),
            (400, "SignatureNonceUsed"),
            "{name}"
        );
        running.shutdown().await;
    }
}

#[tokio::test]
async fn a_capture_is_expired_fifteen_minutes_later() {
    let (_, capture) = captures()
        .into_iter()
        .find(|(n, _)| n.starts_with("03"))
        .unwrap();
    let mut config = capture_config();
    config.clock = Clock::Fixed("2026-11-26T12:12:16Z".parse().unwrap());
    let sim = Simulator::new(config);
    let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let reply = replay(
        running.addr,
        capture["requests"][0]["raw"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()["Code"].as_str().unwrap()),
        (400, "InvalidTimeStamp.Expired")
    );
}

/// The outcome the SDK reported for an error capture: (status, code, body keys,
/// retry_after).
fn sdk_outcome(capture: &Value) -> (u16, String, BTreeSet<String>, Option<u64>) {
    let text = capture["outcome"].as_str().unwrap();
    let exception: Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let keys = exception["data"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "statusCode") // added by the SDK, not sent
        .cloned()
        .collect();
    (
        exception["status_code"].as_u64().unwrap() as u16,
        exception["code"].as_str().unwrap().to_owned(),
        keys,
        exception["retry_after"].as_u64(),
    )
}

#[tokio::test]
async fn real_failures_look_like_the_error_captures() {
    for (name, capture) in captures().into_iter().filter(|(n, _)| n.starts_with("07")) {
        let mut config = capture_config();
        match &name[..3] {
            "07a" => {
                config.credentials = vec![Credentials::new("testAccessKeyId", "a-different-secret")]
            }
            "07b" => {
                config.credentials = vec![Credentials::new("someoneElse", "testAccessKeySecret")]
            }
            "07c" => {
                config.faults = Faults {
                    throttle_rate: 1.0,
                    ..Faults::default()
                }
            }
            "07d" => {
                config.faults = Faults {
                    throttle_rate: 1.0,
                    retry_after_ms: Some(2),
                    ..Faults::default()
                }
            }
            "07e" => {
                config.faults = Faults {
                    error_500_rate: 1.0,
                    ..Faults::default()
                }
            }
            "07f" => {
                config.faults = Faults {
                    error_503_rate: 1.0,
                    ..Faults::default()
                }
            }
            other => panic!("unexpected error capture {other}"),
        }
        let sim = Simulator::new(config);
        let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let reply = replay(
            running.addr,
            capture["requests"][0]["raw"].as_str().unwrap(),
        )
        .await;
        let (status, code, keys, retry_after) = sdk_outcome(&capture);
        let body = reply.json();
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        assert_eq!(body["Code"].as_str().unwrap(), code, "{name}");
        let got: BTreeSet<String> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(got, keys, "{name}");
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
        let sent_retry_after = reply
            .header("x-acs-retry-after")
            .map(|v| v.parse::<u64>().unwrap());
        assert_eq!(sent_retry_after, retry_after, "{name}");
        running.shutdown().await;
    }
}
