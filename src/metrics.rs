//! Prometheus metrics of a run, in the text exposition format (version 0.0.4),
//! pushed to a Pushgateway or written for node_exporter's textfile collector.
//!
//! Everything describes the last run, except `ecp_inventory_runs_total`, counted
//! from the run ledger (so it is a true counter however the job is scheduled), and
//! `ecp_inventory_instances`, the fleet now by status from `ecp.current_instances`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use sqlx::PgPool;

use crate::sync::{RunReport, ScopeReport};

/// The Pushgateway job name: metrics go to `{url}/metrics/job/ecp_inventory`.
pub const JOB: &str = "ecp_inventory";

/// What the database says, gathered after the run.
#[derive(Clone, Debug, Default)]
pub struct FleetFacts {
    /// `(source, biz_region_id, status, count)` of the current instances.
    pub instances: Vec<(String, String, String, i64)>,
    /// `(status, count)` of the runs in the ledger that have ended: a run still
    /// `running` may end `abandoned`, and a counter's series must not fall.
    pub runs: Vec<(String, i64)>,
}

impl FleetFacts {
    pub async fn query(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let instances = sqlx::query_as(
            "SELECT source, biz_region_id, COALESCE(status, 'UNKNOWN'), count(*) \
             FROM ecp.current_instances GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(pool)
        .await?;
        let runs = sqlx::query_as(
            "SELECT status, count(*) FROM ecp.sync_runs WHERE status <> 'running' \
                 GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(pool)
        .await?;
        Ok(FleetFacts { instances, runs })
    }
}

/// Builds the exposition text, one metric family at a time.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// Whether the run succeeded, and when it finished.
    fn outcome(&mut self, succeeded: bool, finished_at: f64) {
        self.family(
            "ecp_inventory_last_run_success",
            "gauge",
            "1 if the last run succeeded in every scope, else 0.",
        );
        let ok = if succeeded { 1.0 } else { 0.0 };
        self.sample("ecp_inventory_last_run_success", &[], ok);
        self.family(
            "ecp_inventory_last_run_timestamp_seconds",
            "gauge",
            "When the last run finished, in Unix time.",
        );
        self.sample(
            "ecp_inventory_last_run_timestamp_seconds",
            &[],
            finished_at.floor(),
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", format_value(value));
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The metrics of a run that failed before it had a report (credentials, the
/// endpoint or the database refused it): success 0 and when, so that an alert on
/// `ecp_inventory_last_run_success == 0` fires for it too.
pub fn render_failed_start(finished_at: f64) -> String {
    let mut e = Exposition(String::new());
    e.outcome(false, finished_at);
    e.0
}

/// The run's scopes, and for a source whose regions could not be listed (one
/// scope, region `*`), also each region where it holds current instances, as
/// failed: per-region series then go to 0 with the rest of the source instead of
/// vanishing, which an alert on a region's success would never notice.
fn with_unlisted_regions<'r>(
    report: &'r RunReport,
    facts: &FleetFacts,
) -> Vec<std::borrow::Cow<'r, ScopeReport>> {
    let mut scopes: Vec<std::borrow::Cow<'r, ScopeReport>> = report
        .scopes
        .iter()
        .map(std::borrow::Cow::Borrowed)
        .collect();
    for unlisted in report
        .scopes
        .iter()
        .filter(|s| s.biz_region_id == crate::multi::REGIONS_UNKNOWN)
    {
        let mut regions: Vec<&str> = facts
            .instances
            .iter()
            .filter(|(source, ..)| *source == unlisted.source)
            .map(|(_, region, ..)| region.as_str())
            .collect();
        regions.dedup();
        for region in regions {
            let listed = report
                .scopes
                .iter()
                .any(|s| s.source == unlisted.source && s.biz_region_id == region);
            if !listed {
                scopes.push(std::borrow::Cow::Owned(ScopeReport {
                    biz_region_id: region.to_owned(),
                    ..unlisted.clone()
                }));
            }
        }
    }
    scopes
}

/// The metrics of `report`, finished at `finished_at` (Unix seconds).
pub fn render(report: &RunReport, facts: &FleetFacts, finished_at: f64) -> String {
    let mut e = Exposition(String::new());
    e.outcome(report.succeeded(), finished_at);
    e.family(
        "ecp_inventory_last_run_duration_seconds",
        "gauge",
        "How long the last run took.",
    );
    e.sample(
        "ecp_inventory_last_run_duration_seconds",
        &[],
        report.duration_secs,
    );
    e.family(
        "ecp_inventory_last_run_id",
        "gauge",
        "The run_id of the last run in ecp.sync_runs.",
    );
    e.sample("ecp_inventory_last_run_id", &[], report.run_id as f64);
    e.family(
        "ecp_inventory_last_run_api_requests",
        "gauge",
        "API requests sent by the last run, retries included.",
    );
    e.sample(
        "ecp_inventory_last_run_api_requests",
        &[],
        report.requests as f64,
    );
    e.family(
        "ecp_inventory_last_run_api_retries",
        "gauge",
        "API calls retried by the last run.",
    );
    e.sample(
        "ecp_inventory_last_run_api_retries",
        &[],
        report.retries as f64,
    );
    e.family(
        "ecp_inventory_last_run_api_throttled",
        "gauge",
        "Throttled API answers in the last run.",
    );
    e.sample(
        "ecp_inventory_last_run_api_throttled",
        &[],
        report.throttled as f64,
    );

    e.family(
        "ecp_inventory_runs_total",
        "counter",
        "Runs recorded in ecp.sync_runs, by how they ended.",
    );
    for (status, n) in &facts.runs {
        e.sample("ecp_inventory_runs_total", &[("status", status)], *n as f64);
    }

    // One gauge family per scope fact, each with a sample per scope.
    type ScopeFact = fn(&ScopeReport) -> f64;
    let per_scope: [(&str, &str, ScopeFact); 4] = [
        (
            "ecp_inventory_scope_success",
            "1 if the scope was applied in the last run, else 0 (when the source's regions could not be listed: biz_region_id *, and each region where it holds instances).",
            |s| if s.error.is_none() { 1.0 } else { 0.0 },
        ),
        (
            "ecp_inventory_scope_pages",
            "API pages fetched per scope in the last run.",
            |s| s.pages as f64,
        ),
        (
            "ecp_inventory_scope_instances_seen",
            "Instances returned per scope in the last run.",
            |s| s.instances as f64,
        ),
        (
            "ecp_inventory_scope_deletions_withheld",
            "1 if the scope's last crawl was not taken as evidence of deletions (short of TotalCount, or records skipped), else 0. If it stays 1, deleted instances are never marked.",
            |s| if s.deletions_withheld { 1.0 } else { 0.0 },
        ),
    ];
    let scopes = with_unlisted_regions(report, facts);
    for (name, help, value) in per_scope {
        e.family(name, "gauge", help);
        for s in &scopes {
            let labels = [
                ("source", s.source.as_str()),
                ("biz_region_id", s.biz_region_id.as_str()),
            ];
            e.sample(name, &labels, value(s));
        }
    }
    e.family(
        "ecp_inventory_changes",
        "gauge",
        "Instances changed by the last run, per scope and kind (created, updated, deleted, restored, unchanged).",
    );
    for s in &report.scopes {
        let Some(c) = s.counts else { continue };
        for (kind, n) in [
            ("created", c.created),
            ("updated", c.updated),
            ("deleted", c.deleted),
            ("restored", c.restored),
            ("unchanged", c.unchanged),
        ] {
            let labels = [
                ("source", s.source.as_str()),
                ("biz_region_id", s.biz_region_id.as_str()),
                ("kind", kind),
            ];
            e.sample("ecp_inventory_changes", &labels, n as f64);
        }
    }
    e.family(
        "ecp_inventory_instances",
        "gauge",
        "Current instances by source, region and status (ecp.current_instances).",
    );
    for (source, region, status, n) in &facts.instances {
        let labels = [
            ("source", source.as_str()),
            ("biz_region_id", region.as_str()),
            ("status", status.as_str()),
        ];
        e.sample("ecp_inventory_instances", &labels, *n as f64);
    }
    e.0
}

/// Writes `body` to `path` atomically (a temporary file in the same directory,
/// then a rename), so the textfile collector never reads half a file.
pub fn write_textfile(path: &Path, body: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the metrics path has no file name"))?;
    let tmp_name = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let tmp = match dir {
        Some(d) => d.join(tmp_name),
        None => tmp_name.into(),
    };
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Why, from the innermost cause (reqwest's own text is only "error sending
    /// request"), without the URL, which may carry a password (it is logged
    /// beside, without).
    #[error("could not reach the Pushgateway: {0}")]
    Http(String),
    #[error("the Pushgateway answered {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
}

impl PushError {
    fn http(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        PushError::Http(reason)
    }
}

/// The grouping URL: `{base}/metrics/job/ecp_inventory`.
pub fn push_url(base: &str) -> String {
    format!("{}/metrics/job/{JOB}", base.trim_end_matches('/'))
}

/// How a delivery treats the metrics already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Everything is replaced: a run's full metrics (scopes that no longer exist
    /// do not linger).
    Replace,
    /// Only the families in the body are replaced: a run that failed before it
    /// had a report leaves the fleet's last known gauges standing.
    Update,
}

/// `existing` exposition text with the families `body` defines taken out, then
/// `body`: what a textfile holds after a `Delivery::Update`.
pub fn update_families(existing: &str, body: &str) -> String {
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The family a line belongs to: its HELP or TYPE name, or its sample's.
    fn family(line: &str) -> &str {
        let line = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        line.split(|c: char| c == '{' || c.is_whitespace())
            .next()
            .unwrap_or("")
    }
    let mut out: String = existing
        .lines()
        .filter(|l| !names.contains(&family(l)))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(body);
    out
}

/// Sends `body` to the Pushgateway: a PUT replaces the metrics of the job's
/// group, a POST only those of the families it names.
pub async fn push(base: &str, body: String, delivery: Delivery) -> Result<(), PushError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(PushError::http)?;
    let request = match delivery {
        Delivery::Replace => client.put(push_url(base)),
        Delivery::Update => client.post(push_url(base)),
    };
    let response = request
        .header("Content-Type", "text/plain; version=0.0.4")
        .body(body)
        .send()
        .await
        .map_err(PushError::http)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(PushError::Status { status, body });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreachable Pushgateway is said with the reason (reqwest's own text
    /// is only "error sending request"), and without the URL's password.
    #[tokio::test]
    async fn an_unreachable_pushgateway_says_why() {
        let err = push(
            "http://u:Pw9secret@127.0.0.1:1",
            String::new(),
            Delivery::Replace,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.to_lowercase().contains("connection refused"), "{err}");
        assert!(!err.contains("Pw9secret"), "{err}");
    }

    #[test]
    fn an_update_replaces_only_the_families_it_names() {
        let existing = "# HELP ecp_inventory_last_run_success x\n\
                        # TYPE ecp_inventory_last_run_success gauge\n\
                        ecp_inventory_last_run_success 1\n\
                        # TYPE ecp_inventory_instances gauge\n\
                        ecp_inventory_instances{source=\"a\"} 7\n";
        let updated = update_families(existing, &render_failed_start(5.0));
        assert!(
            updated.contains("ecp_inventory_instances{source=\"a\"} 7\n"),
            "{updated}"
        );
        assert!(
            updated.contains("\necp_inventory_last_run_success 0\n"),
            "{updated}"
        );
        assert!(
            !updated.contains("\necp_inventory_last_run_success 1\n"),
            "{updated}"
        );
        assert_eq!(
            updated
                .matches("# TYPE ecp_inventory_last_run_success")
                .count(),
            1
        );
    }

    #[test]
    fn a_run_that_failed_before_its_report_reads_as_failed() {
        let body = render_failed_start(1_700_000_000.5);
        assert!(
            body.contains("\necp_inventory_last_run_success 0\n"),
            "{body}"
        );
        assert!(
            body.contains("\necp_inventory_last_run_timestamp_seconds 1700000000\n"),
            "{body}"
        );
    }

    #[test]
    fn a_scope_whose_deletions_were_withheld_says_so() {
        let report = RunReport {
            scopes: vec![ScopeReport {
                source: "main".into(),
                biz_region_id: "cn-shanghai".into(),
                complete: true,
                deletions_withheld: true,
                ..Default::default()
            }],
            run_id: 1,
            status: "succeeded",
            duration_secs: 1.0,
            requests: 1,
            retries: 0,
            throttled: 0,
            totals: Default::default(),
        };
        let text = render(&report, &FleetFacts::default(), 0.0);
        assert!(
            text.contains(
                "ecp_inventory_scope_deletions_withheld{source=\"main\",biz_region_id=\"cn-shanghai\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_source_whose_regions_could_not_be_listed_fails_each_region_it_holds() {
        let unlisted = ScopeReport::unreached(
            "main",
            "could not reach the endpoint".into(),
            crate::sync::FailureKind::Other,
        );
        let applied = ScopeReport {
            source: "other".into(),
            biz_region_id: "cn-beijing".into(),
            complete: true,
            ..Default::default()
        };
        let report = RunReport {
            scopes: vec![unlisted, applied],
            run_id: 2,
            status: "failed",
            duration_secs: 1.0,
            requests: 1,
            retries: 0,
            throttled: 0,
            totals: Default::default(),
        };
        let facts = FleetFacts {
            instances: vec![
                ("main".into(), "cn-hangzhou".into(), "RUNNING".into(), 3),
                ("main".into(), "cn-hangzhou".into(), "STOPPED".into(), 1),
                ("main".into(), "cn-shanghai".into(), "RUNNING".into(), 2),
                ("other".into(), "cn-beijing".into(), "RUNNING".into(), 5),
            ],
            runs: Vec::new(),
        };
        let text = render(&report, &facts, 0.0);
        let success = |source: &str, region: &str| {
            let prefix = format!(
                "ecp_inventory_scope_success{{source=\"{source}\",biz_region_id=\"{region}\"}} "
            );
            let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
            assert_eq!(lines.len(), 1, "{prefix}: {text}");
            lines[0][prefix.len()..].to_owned()
        };
        assert_eq!(success("main", "*"), "0");
        assert_eq!(success("main", "cn-hangzhou"), "0");
        assert_eq!(success("main", "cn-shanghai"), "0");
        assert_eq!(success("other", "cn-beijing"), "1");
    }

    #[test]
    fn labels_are_escaped_and_integers_print_plainly() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("ecp-metrics-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ecp.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
