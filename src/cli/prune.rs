//! `ecp-inventory prune`: retention of history.

use std::time::Duration;

use super::db::{connect, DbArgs};
use super::OutputFormat;
use crate::error::ConfigError;
use crate::store::{Store, StoreConfig};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Remove versions that ended, and changes observed, longer ago than this:
    /// a number and a unit, s, min, h, d or w (e.g. 400d, 12h, 2w). Questions
    /// about any instant inside the horizon keep their answers.
    // Hyphen values allowed so that `-1d` reaches parse_age, which says what
    // an age is, rather than clap taking it for an unknown flag.
    #[arg(long, value_name = "AGE", value_parser = parse_age, allow_hyphen_values = true)]
    pub older_than: Duration,

    /// Count what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// `400d`, `12h`, `2w`, `90min`, `30s`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if s.starts_with('-') {
        return Err(format!(
            "{s:?} is not an age: an age counts back from now, so it has no sign (400d, 12h, 2w)"
        ));
    }
    let n: u64 = number.parse().map_err(|_| {
        format!("{s:?} is not an age like 400d, 12h or 2w (a whole number, then its unit)")
    })?;
    let unit_secs = match unit.trim() {
        "s" => 1,
        "min" => 60,
        // Months to some, minutes to others: `6m` meant as half a year would
        // remove all but the last six minutes of history.
        "m" | "M" | "mo" => {
            return Err(format!(
                "{s:?}: m is ambiguous (minutes or months?): write {n}min for minutes, or the \
                 age in days ({}d for {n} months)",
                n.saturating_mul(30)
            ))
        }
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        // "1.5d": the number stopped at the '.', and the rest is no unit.
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!(
                "{s:?}: the number must be whole (36h rather than 1.5d)"
            ))
        }
        _ => return Err(format!("{s:?}: the unit must be s, min, h, d or w")),
    };
    if n == 0 {
        return Err("the age must be more than zero".into());
    }
    // Past a thousand years the horizon leaves what a timestamp can hold (and
    // no history is that old).
    n.checked_mul(unit_secs)
        .filter(|secs| *secs <= MAX_AGE_SECS)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long: at most 365000d (about 1000 years)"))
}

const MAX_AGE_SECS: u64 = 365_000 * 86_400;

pub async fn run(args: PruneArgs) -> anyhow::Result<()> {
    let age = chrono::Duration::from_std(args.older_than)
        .map_err(|_| ConfigError::new("--older-than is too long"))?;
    let horizon = chrono::Utc::now()
        .checked_sub_signed(age)
        .ok_or_else(|| ConfigError::new("--older-than is too long"))?;
    let pool = connect(args.db.url()?, 2).await?;
    let store = Store::new(pool, StoreConfig::default())?;
    // Pruning a schema this version does not know (a newer one, or none yet)
    // would delete by a layout it cannot vouch for.
    store.check_schema().await?;
    let counts = store.prune(horizon, args.dry_run).await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    tracing::info!(
        horizon = %horizon.to_rfc3339(),
        versions = counts.versions,
        changes = counts.changes,
        dry_run = args.dry_run,
        "prune finished"
    );
    match args.output {
        OutputFormat::Text => say!(
            "prune {verb} {} versions and {} changes older than {}",
            counts.versions,
            counts.changes,
            horizon.to_rfc3339()
        ),
        OutputFormat::Json => say!(
            "{}",
            serde_json::json!({
                "horizon": horizon,
                "dry_run": args.dry_run,
                "versions": counts.versions,
                "changes": counts.changes,
            })
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fractional_age_is_refused_for_its_number_not_its_unit() {
        let err = parse_age("1.5d").unwrap_err();
        assert!(err.contains("whole") && !err.contains("unit must"), "{err}");
        assert!(parse_age("3x").unwrap_err().contains("unit must be"));
        assert_eq!(parse_age("36h"), Ok(Duration::from_secs(36 * 3600)));
    }

    #[test]
    fn a_negative_age_is_refused_as_an_age_not_an_unknown_flag() {
        use clap::Parser;
        let err = crate::cli::Cli::try_parse_from([
            "ecp-inventory",
            "prune",
            "--older-than",
            "-1d",
            "--database-url",
            "postgres://localhost/x",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("has no sign"), "{err}");
    }

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(
            parse_age("400d").unwrap(),
            Duration::from_secs(400 * 86_400)
        );
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(14 * 86_400));
        assert_eq!(parse_age("30min").unwrap(), Duration::from_secs(1800));
        // Minutes or months: refused, with both ways to say it.
        let err = parse_age("6m").unwrap_err();
        assert!(err.contains("6min") && err.contains("180d"), "{err}");
        assert!(parse_age("52000w").is_ok() && parse_age("365000d").is_ok());
        for bad in [
            "",
            "d",
            "400",
            "400y",
            "-1d",
            "0d",
            "1.5d",
            "52143w",
            "10000000000d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad:?}");
        }
    }
}
