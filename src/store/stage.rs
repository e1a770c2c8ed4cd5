//! Staging: the rows of a scope's crawl, page by page, into a temporary table on
//! the scope's own connection, with COPY. Temporary because nobody else should
//! ever see a half crawl, and because a killed process then leaves nothing behind:
//! the table, like the scope lock, ends with the connection.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sqlx::{Connection, PgConnection};
use tracing::debug;

use super::lock::lock_scope;
use super::templates::typed_columns;
use super::{apply, ApplyCounts, ApplyOptions, Scope, Store, StoreError};
use crate::normalize::{ColumnValue, Normalized, TagKind};

/// Staged rows are sent once this much COPY text has accumulated: large enough
/// that a COPY round trip per page does not dominate, small enough that memory
/// stays flat whatever the fleet size.
const STAGE_FLUSH_BYTES: usize = 4 << 20;

/// One scope's crawl being staged. Created by [`super::Run::begin_scope`]; ends with
/// [`ScopeSync::apply`] (the crawl reached its last page) or
/// [`ScopeSync::give_up`] (it did not). Dropping it without either discards the
/// staged rows and releases the scope lock, recording nothing.
pub struct ScopeSync {
    pub(crate) store: Store,
    pub(crate) conn: PgConnection,
    pub(crate) run_id: i64,
    pub(crate) scope: Scope,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) pages: i64,
    pub(crate) records: i64,
    pub(crate) skipped: i64,
    pub(crate) problems: i64,
    /// When the last page was fetched: a complete crawl saw everything by then.
    pub(crate) last_observed_at: Option<DateTime<Utc>>,
    buf: Vec<u8>,
    seq: i64,
    copy_statement: String,
}

pub(crate) async fn begin(
    store: Store,
    run_id: i64,
    scope: Scope,
    lock_wait: Duration,
) -> Result<ScopeSync, StoreError> {
    // Detached from the pool: the temp tables and the lock must die with it.
    let mut conn = store.pool.acquire().await?.detach();
    lock_scope(&mut conn, &scope, lock_wait).await?;
    let cols = typed_columns();
    let defs: Vec<String> = cols.iter().map(|(c, t)| format!("{c} {t}")).collect();
    let create = format!(
        "CREATE TEMP TABLE ecp_stage (seq bigint NOT NULL, observed_at timestamptz NOT NULL, \
         {}, tags jsonb NOT NULL, biz_tags jsonb NOT NULL, disks jsonb NOT NULL, raw jsonb NOT NULL)",
        defs.join(", ")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await?;
    // Emptied at every commit, so one apply leaves nothing for a later one.
    sqlx::raw_sql(
        "CREATE TEMP TABLE ecp_apply (instance_id text PRIMARY KEY, kind text NOT NULL, \
         old_version integer, changed_at timestamptz NOT NULL, \
         previously_observed_at timestamptz, disks_changed boolean NOT NULL, \
         tags_changed boolean NOT NULL) ON COMMIT DELETE ROWS",
    )
    .execute(&mut conn)
    .await?;
    let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    let copy_statement = format!(
        "COPY ecp_stage (seq, observed_at, {}, tags, biz_tags, disks, raw) FROM STDIN",
        names.join(", ")
    );
    debug!(run_id, %scope, "scope locked, staging open");
    Ok(ScopeSync {
        store,
        conn,
        run_id,
        scope,
        started_at: Utc::now(),
        pages: 0,
        records: 0,
        skipped: 0,
        problems: 0,
        last_observed_at: None,
        buf: Vec::with_capacity(STAGE_FLUSH_BYTES + (64 << 10)),
        seq: 0,
        copy_statement,
    })
}

impl ScopeSync {
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Stages one page of records, fetched at `observed_at`. Pages must come in
    /// crawl order: when an instance shows up twice, the later one wins.
    pub async fn push_page(
        &mut self,
        observed_at: DateTime<Utc>,
        records: &[Normalized],
    ) -> Result<(), StoreError> {
        self.pages += 1;
        self.last_observed_at = Some(match self.last_observed_at {
            Some(t) if t > observed_at => t,
            _ => observed_at,
        });
        let observed = observed_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        for n in records {
            self.seq += 1;
            self.records += 1;
            self.problems += n.problems.len() as i64;
            encode_record(&mut self.buf, self.seq, &observed, n);
        }
        if self.buf.len() >= STAGE_FLUSH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Counts records the caller skipped because they could not be normalized.
    pub fn record_skipped(&mut self, n: u64) {
        self.skipped += n as i64;
    }

    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut copy = self.conn.copy_in_raw(&self.copy_statement).await?;
        copy.send(std::mem::take(&mut self.buf)).await?;
        copy.finish().await?;
        self.buf = Vec::with_capacity(STAGE_FLUSH_BYTES + (64 << 10));
        Ok(())
    }

    /// The crawl reached its last page: writes the snapshot (see [`apply`]).
    pub async fn apply(self, opts: &ApplyOptions) -> Result<ApplyCounts, StoreError> {
        apply::apply(self, opts).await
    }

    /// The crawl did not complete: discards the staged rows, changes nothing in
    /// the inventory and records the scope as incomplete with `error`.
    pub async fn give_up(mut self, error: &str) -> Result<(), StoreError> {
        apply::record_scope(&mut self, false, false, false, None, Some(error)).await?;
        self.conn.close().await?;
        Ok(())
    }
}

/// Appends one record as a line of COPY text format.
fn encode_record(buf: &mut Vec<u8>, seq: i64, observed: &str, n: &Normalized) {
    let mut line = String::with_capacity(4096);
    let _ = write!(line, "{seq}\t{observed}");
    for (_, value) in n.row.columns() {
        line.push('\t');
        match value {
            ColumnValue::Text(Some(s)) => escape_into(&mut line, s),
            ColumnValue::Int(Some(i)) => {
                let _ = write!(line, "{i}");
            }
            ColumnValue::Bool(Some(b)) => line.push(if b { 't' } else { 'f' }),
            ColumnValue::Time(Some(t)) => {
                line.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            }
            ColumnValue::Inet(Some(ip)) => {
                let _ = write!(line, "{ip}");
            }
            _ => line.push_str("\\N"),
        }
    }
    let tags = |kind: TagKind| -> Map<String, Value> {
        n.tags
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| {
                (
                    t.key.clone(),
                    t.value.clone().map_or(Value::Null, Value::String),
                )
            })
            .collect()
    };
    let disks: Vec<Value> = n
        .disks
        .iter()
        .map(|d| serde_json::json!({"disk_type": d.disk_type, "disk_size_gb": d.disk_size_gb}))
        .collect();
    for json in [
        Value::Object(tags(TagKind::User)).to_string(),
        Value::Object(tags(TagKind::Biz)).to_string(),
        Value::Array(disks).to_string(),
        serde_json::to_string(&n.row.raw).unwrap_or_else(|_| "{}".into()),
    ] {
        line.push('\t');
        escape_into(&mut line, &json);
    }
    line.push('\n');
    buf.extend_from_slice(line.as_bytes());
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
/// NUL cannot be stored in Postgres text at all and is dropped.
fn escape_into(out: &mut String, s: &str) {
    if !s.contains(['\\', '\t', '\n', '\r', '\0']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{normalize, NormalizeOptions};

    #[test]
    fn a_record_is_one_line_with_every_column() {
        let raw =
            serde_json::json!({"AndroidInstanceId": "acp-1", "AndroidInstanceName": "a\tb\\c\nd"});
        let n = normalize(raw.as_object().unwrap(), &NormalizeOptions::default()).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, 1, "2024-01-01T00:00:00Z", &n);
        let line = String::from_utf8(buf).unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        // seq, observed_at, the typed columns, tags, biz_tags, disks, raw
        assert_eq!(line.split('\t').count(), 2 + typed_columns().len() + 4);
        assert!(line.contains("a\\tb\\\\c\\nd"));
    }
}
