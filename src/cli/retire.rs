//! `ecp-inventory retire`: the current instances of a region, or of every region
//! of an account, marked deleted on the operator's word.

use std::time::Duration;

use super::db::{connect, DbArgs};
use super::OutputFormat;
use crate::error::ConfigError;
use crate::store::{RetiredScope, Scope, Store, StoreConfig};
use crate::sync::Regions;

#[derive(Debug, clap::Args)]
pub struct RetireArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// The account alias whose regions are retired (sync's --source, `default`
    /// unless set, or the name of a [[source]] in its config file). Required:
    /// a retirement names what it retires.
    #[arg(long)]
    pub source: String,

    /// Regions to retire (repeatable), or `all` for every region of the source
    /// that holds current instances.
    #[arg(long = "region", value_name = "ID|all", required = true)]
    pub regions: Vec<String>,

    /// Say how many instances each region would lose; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Seconds to wait for a region that a sync is writing.
    #[arg(long, default_value_t = 30.0)]
    pub lock_wait_secs: f64,

    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

impl RetireArgs {
    /// The flags checked before any connection: the regions named (None for
    /// `all`), and the lock wait.
    fn checked(&self) -> Result<(Option<Vec<String>>, Duration), ConfigError> {
        if self.source.trim().is_empty() {
            return Err(ConfigError::new(
                "--source is empty: name the account alias whose regions to retire",
            ));
        }
        let lock_wait = super::seconds("--lock-wait-secs", self.lock_wait_secs, true)?;
        let regions = match Regions::parse(&self.regions) {
            Ok(Regions::All) => None,
            Ok(Regions::Only(regions)) => Some(regions),
            Err(e) => {
                return Err(ConfigError::new(format!(
                    "--region: {e}; name a region, or all"
                )))
            }
        };
        Ok((regions, lock_wait))
    }
}

pub async fn run(args: RetireArgs) -> anyhow::Result<()> {
    let (regions, lock_wait) = args.checked()?;
    let pool = connect(args.db.url()?, 2).await?;
    let store = Store::new(pool, StoreConfig::default())?;
    // A maintenance command changes no schema behind the operator's back.
    store.check_schema().await?;
    let scopes = match regions {
        Some(regions) => regions
            .into_iter()
            .map(|r| Scope::new(args.source.as_str(), r))
            .collect(),
        None => store.source_scopes_holding(&args.source).await?,
    };
    let (run_id, scopes) = if args.dry_run || scopes.is_empty() {
        (None, store.retirement_plan(&scopes).await?)
    } else {
        let (run_id, retired) = store
            .retire(env!("CARGO_PKG_VERSION"), &scopes, lock_wait)
            .await?;
        (Some(run_id), retired)
    };
    if args.dry_run {
        for s in &scopes {
            tracing::info!(scope = %s.scope, instances = s.instances, "scope would be retired");
        }
    }
    say!("{}", render(&args, run_id, &scopes).trim_end_matches('\n'));
    Ok(())
}

fn render(args: &RetireArgs, run_id: Option<i64>, scopes: &[RetiredScope]) -> String {
    match args.output {
        OutputFormat::Json => {
            let scopes: Vec<_> = scopes
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "source": s.scope.source,
                        "biz_region_id": s.scope.biz_region_id,
                        "instances": s.instances,
                        "last_complete_crawl": s.last_crawl,
                    })
                })
                .collect();
            let report = serde_json::json!({
                "dry_run": args.dry_run,
                "run_id": run_id,
                "scopes": scopes,
            });
            format!("{report}\n")
        }
        OutputFormat::Text if scopes.is_empty() => format!(
            "retire: source {} holds no current instance; nothing to do\n",
            args.source
        ),
        OutputFormat::Text => {
            let verb = if args.dry_run {
                "would mark deleted"
            } else {
                "marked deleted"
            };
            let mut out = String::new();
            for s in scopes {
                let last = s.last_crawl.map_or_else(
                    || "never crawled whole".to_owned(),
                    |t| format!("last complete crawl {}", t.to_rfc3339()),
                );
                out.push_str(&format!(
                    "retire: {} {verb} {} current instances ({last})\n",
                    s.scope, s.instances
                ));
            }
            if let Some(run_id) = run_id {
                out.push_str(&format!(
                    "retire: recorded as run {run_id}; a sync that lists one of them again \
                     restores it\n"
                ));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<RetireArgs, String> {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            retire: RetireArgs,
        }
        let mut argv = vec!["retire"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map(|c| c.retire)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_source_and_a_region_are_required_and_all_stands_alone() {
        assert!(parse(&["--source", "a"]).unwrap_err().contains("--region"));
        assert!(parse(&["--region", "all"])
            .unwrap_err()
            .contains("--source"));
        let all = parse(&["--region", "all", "--source", "a"]).unwrap();
        assert_eq!(all.checked().unwrap(), (None, Duration::from_secs(30)));
        let two = parse(&[
            "--source=a",
            "--region=cn-hangzhou",
            "--region=cn-beijing",
            "--region=cn-hangzhou",
        ])
        .unwrap();
        assert_eq!(
            two.checked().unwrap().0,
            Some(vec!["cn-hangzhou".to_owned(), "cn-beijing".to_owned()])
        );
        for bad in [
            &["--source=a", "--region", "all", "--region", "cn-beijing"][..],
            &["--source=a", "--region", ""],
            &["--region", "cn-beijing", "--source", " "],
            &[
                "--source=a",
                "--region",
                "cn-beijing",
                "--lock-wait-secs=-1",
            ],
            &[
                "--source=a",
                "--region",
                "cn-beijing",
                "--lock-wait-secs=1e20",
            ],
        ] {
            let args = parse(bad).unwrap();
            assert!(args.checked().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_text_report_says_what_each_region_lost_and_which_run_did_it() {
        let args = parse(&["--region", "cn-beijing", "--source", "default"]).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-10-01T08:00:00Z")
            .unwrap()
            .to_utc();
        let scopes = [
            RetiredScope {
                scope: Scope::new("default", "cn-beijing"),
                instances: 12,
                last_crawl: Some(at),
            },
            RetiredScope {
                scope: Scope::new("default", "cn-x"),
                instances: 0,
                last_crawl: None,
            },
        ];
        let text = render(&args, Some(7), &scopes);
        assert!(text.contains(
            "retire: default/cn-beijing marked deleted 12 current instances \
             (last complete crawl 2026-10-01T08:00:00+00:00)"
        ));
        assert!(
            text.contains("default/cn-x marked deleted 0 current instances (never crawled whole)")
        );
        assert!(text.contains("recorded as run 7"));
        let dry = parse(&[
            "--region=cn-beijing",
            "--source=a",
            "--dry-run",
            "--output=json",
        ])
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&render(&dry, None, &scopes[..1])).unwrap();
        assert_eq!(json["dry_run"], true);
        assert_eq!(json["run_id"], serde_json::Value::Null);
        assert_eq!(json["scopes"][0]["instances"], 12);
        assert_eq!(
            json["scopes"][0]["last_complete_crawl"],
            "2026-10-01T08:00:00Z"
        );
    }
}
