//! A one-line progress display on stderr for long crawls, shown only when asked
//! for (the CLI does so when stderr is a terminal): scopes done, pages and
//! instances so far, and the scopes in flight with their share of `TotalCount`.
//!
//! The pipeline reports each page with [`page`], a no-op unless [`start`] was
//! called. Log lines go through [`stderr`], which wipes the progress line before
//! writing, so the two never mix; the line is redrawn on the next tick.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::store::Scope;

const TICK: Duration = Duration::from_millis(200);
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";
const MAX_WIDTH: usize = 120;

struct Progress {
    active: AtomicBool,
    state: Mutex<State>,
    /// Held while anything writes to stderr, so a log line and a redraw never
    /// interleave.
    terminal: Mutex<()>,
}

struct State {
    started: Instant,
    scopes: BTreeMap<String, ScopeProgress>,
}

#[derive(Default)]
struct ScopeProgress {
    pages: u64,
    instances: u64,
    total: Option<i64>,
    done: bool,
}

static PROGRESS: OnceLock<Progress> = OnceLock::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn progress() -> &'static Progress {
    PROGRESS.get_or_init(|| Progress {
        active: AtomicBool::new(false),
        state: Mutex::new(State {
            started: Instant::now(),
            scopes: BTreeMap::new(),
        }),
        terminal: Mutex::new(()),
    })
}

/// Shows the progress line until [`finish`]; redrawn by a background thread.
pub fn start() {
    let p = progress();
    {
        let mut state = lock(&p.state);
        state.started = Instant::now();
        state.scopes.clear();
    }
    if p.active.swap(true, Ordering::SeqCst) {
        return;
    }
    std::thread::Builder::new()
        .name("progress".into())
        .spawn(|| {
            let p = progress();
            while p.active.load(Ordering::SeqCst) {
                let line = lock(&p.state).line();
                let _t = lock(&p.terminal);
                if p.active.load(Ordering::SeqCst) {
                    let mut err = io::stderr().lock();
                    let _ = err.write_all(CLEAR_LINE);
                    let _ = err.write_all(line.as_bytes());
                    let _ = err.flush();
                }
                drop(_t);
                std::thread::sleep(TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|_| p.active.store(false, Ordering::SeqCst));
}

/// Removes the progress line; later [`page`] calls are ignored.
pub fn finish() {
    let p = progress();
    if p.active.swap(false, Ordering::SeqCst) {
        let _t = lock(&p.terminal);
        let mut err = io::stderr().lock();
        let _ = err.write_all(CLEAR_LINE);
        let _ = err.flush();
    }
}

/// One page of `scope` was crawled.
pub fn page(scope: &Scope, number: u64, instances: u64, total: Option<i64>, is_last: bool) {
    let Some(p) = PROGRESS.get() else { return };
    if !p.active.load(Ordering::Relaxed) {
        return;
    }
    let mut state = lock(&p.state);
    let s = state.scopes.entry(scope.to_string()).or_default();
    s.pages = number;
    s.instances += instances;
    s.total = total.or(s.total);
    s.done |= is_last;
}

impl State {
    fn line(&self) -> String {
        let done = self.scopes.values().filter(|s| s.done).count();
        let pages: u64 = self.scopes.values().map(|s| s.pages).sum();
        let instances: u64 = self.scopes.values().map(|s| s.instances).sum();
        let mut line = format!(
            "crawling: {done}/{} scopes done, {pages} pages, {instances} instances, {}s",
            self.scopes.len(),
            self.started.elapsed().as_secs()
        );
        let busy: Vec<String> = self
            .scopes
            .iter()
            .filter(|(_, s)| !s.done)
            .map(|(name, s)| match s.total {
                Some(t) if t > 0 => format!("{name} {}%", (s.instances * 100 / t as u64).min(100)),
                _ => format!("{name} {} pages", s.pages),
            })
            .collect();
        if !busy.is_empty() {
            line.push_str(" | ");
            line.push_str(&busy.join(", "));
        }
        if line.len() > MAX_WIDTH {
            let mut cut = MAX_WIDTH - 1;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        line
    }
}

/// Stderr for the log subscriber: wipes the progress line before each write.
pub fn stderr() -> ProgressAwareStderr {
    ProgressAwareStderr
}

pub struct ProgressAwareStderr;

impl Write for ProgressAwareStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match PROGRESS.get() {
            Some(p) if p.active.load(Ordering::Relaxed) => {
                let _t = lock(&p.terminal);
                let mut err = io::stderr().lock();
                err.write_all(CLEAR_LINE)?;
                err.write_all(buf)?;
                Ok(buf.len())
            }
            _ => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_scopes_pages_and_shares() {
        let mut state = State {
            started: Instant::now(),
            scopes: BTreeMap::new(),
        };
        state.scopes.insert(
            "default/cn-shanghai".into(),
            ScopeProgress {
                pages: 3,
                instances: 250,
                total: Some(1000),
                done: false,
            },
        );
        state.scopes.insert(
            "default/cn-hangzhou".into(),
            ScopeProgress {
                pages: 1,
                instances: 10,
                total: Some(10),
                done: true,
            },
        );
        let line = state.line();
        assert!(
            line.starts_with("crawling: 1/2 scopes done, 4 pages, 260 instances"),
            "{line}"
        );
        assert!(line.ends_with("| default/cn-shanghai 25%"), "{line}");
    }
}
