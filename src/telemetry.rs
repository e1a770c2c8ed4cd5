//! Logging: one place that sets up `tracing`. Logs go to stderr, so stdout stays
//! free for data (`crawl`'s JSON lines, `--output json` summaries).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Text on a terminal, JSON otherwise (cron mail, Kubernetes log collectors).
    pub fn detect() -> Self {
        if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `--log-level`: level names, or `target=level` directives, comma-separated. A
/// bare word that is no level (`warning`) would be read by `EnvFilter` as a
/// target to log at every level, which silences everything else: refused.
pub fn parse_level(value: &str) -> Result<String, String> {
    for directive in value.split(',').map(str::trim) {
        let known = match directive.split_once('=') {
            Some((_, level)) => LEVELS.contains(&level.to_ascii_lowercase().as_str()),
            None => LEVELS.contains(&directive.to_ascii_lowercase().as_str()),
        };
        if !known || EnvFilter::try_new(directive).is_err() {
            return Err(format!(
                "{directive:?} is not a log level: use one of {}, or a filter such as \
                 ecp_inventory=debug",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(value.to_owned())
}

/// `level` is an `EnvFilter` directive (`info`, `debug`, `ecp_inventory=trace`);
/// `RUST_LOG`, when set, wins.
pub fn init(format: LogFormat, level: &str) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // The server's notices ("relation ... already exists, skipping" on every
    // migration check) are not the job's news, unless asked for by name. Only
    // where they would show: a quieter level already hides them, and the
    // directive would raise its target to warn.
    let chatty = level
        .split(',')
        .any(|d| ["info", "debug", "trace"].contains(&d.trim().to_ascii_lowercase().as_str()));
    if chatty && !level.contains("sqlx") && std::env::var_os("RUST_LOG").is_none() {
        filter = filter.add_directive("sqlx::postgres::notice=warn".parse().expect("valid"));
    }
    // Colours only for a person at a terminal: a file or a pipe gets plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(crate::progress::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::parse_level;

    #[test]
    fn levels_and_filters_pass_and_a_misspelt_level_does_not() {
        for ok in [
            "info",
            "WARN",
            "ecp_inventory=debug",
            "warn,ecp_inventory=trace",
            "off",
        ] {
            assert_eq!(parse_level(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in ["warning", "verbose", "ecp_inventory=loud", "info,chatty"] {
            let e = parse_level(bad).unwrap_err();
            assert!(
                e.contains("is not a log level") && e.contains("warn"),
                "{e}"
            );
        }
    }
}
