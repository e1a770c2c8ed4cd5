//! Logging: one place that sets up `tracing`. Logs go to stderr, so stdout stays
//! free for data (`crawl`'s JSON lines, `--output json` summaries).

use std::io::{self, IsTerminal, Write};

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
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_writer(move || OneLine::new(crate::progress::stderr(), ansi))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_writer(crate::progress::stderr)
            .try_init(),
    };
}

/// Keeps each text log line one line of the event it logs. Values come from the
/// API (an instance id, a message) and may hold a newline, which would end the
/// line and let the rest pass for a line of the job's own, or a terminal escape:
/// control characters are written escaped (`\n`, `\x1b`). The formatter writes
/// each event in one call, so the event's own final newline is the last byte of
/// a write, and stays. At a terminal, escapes stay too: the colours are the
/// formatter's own. (JSON lines escape every value already.)
struct OneLine<W> {
    inner: W,
    ansi: bool,
}

impl<W> OneLine<W> {
    fn new(inner: W, ansi: bool) -> Self {
        OneLine { inner, ansi }
    }

    fn escapes(&self, b: u8) -> bool {
        (b < 0x20 && !(self.ansi && b == 0x1b)) || b == 0x7f
    }
}

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if !body.iter().any(|&b| self.escapes(b)) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b'\t' => line.extend_from_slice(b"\\t"),
                b if self.escapes(b) => {
                    let _ = write!(line, "\\x{b:02x}");
                }
                b => line.push(b),
            }
        }
        line.extend_from_slice(&buf[body.len()..]);
        self.inner.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_level, OneLine};
    use std::sync::{Arc, Mutex};

    /// What the text logs wrote, shared with the subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_from_the_api_cannot_forge_a_log_line_or_drive_the_terminal() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_target(false)
            .with_writer(move || OneLine::new(writer.clone(), false))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let id = "acp-x\n2026-11-27T00:00:00Z ERROR forged\x1b[2J\r\x7f";
            tracing::warn!(instance_id = %id, "field value not stored as sent");
            tracing::info!("next");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0]
                .ends_with("instance_id=acp-x\\n2026-11-27T00:00:00Z ERROR forged\\x1b[2J\\r\\x7f"),
            "{text}"
        );
        assert!(lines[1].ends_with("next"), "{text}");

        // At a terminal the formatter's colours pass; a newline still does not.
        let mut at_terminal = OneLine::new(Vec::new(), true);
        std::io::Write::write_all(&mut at_terminal, b"\x1b[33mWARN\x1b[0m a\nb\n").unwrap();
        assert_eq!(at_terminal.inner, b"\x1b[33mWARN\x1b[0m a\\nb\n");
    }

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
