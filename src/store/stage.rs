//! Staging: the rows of a scope's crawl, page by page, into a temporary table on
//! the scope's own connection, with COPY. Temporary because nobody else should
//! ever see a half crawl, and because a killed process then leaves nothing behind:
//! the table, like the scope lock, ends with the connection.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tracing::debug;

use super::direct::{self, DirectLoad};
use super::lock::lock_scope;
use super::templates::typed_columns;
use super::{apply, ApplyCounts, ApplyOptions, Scope, Store, StoreError};
use crate::normalize::{ColumnValue, Normalized, TagKind};

/// Staged rows are sent once this much COPY text has accumulated: large enough
/// that the statements of a batch (a probe and five COPYs, written directly)
/// cost little next to its rows, small enough that memory stays flat whatever
/// the fleet size. On a first sync of 100k, 4 MB instead of 1 MB took 0.9 s
/// less of the server's CPU (8.9-9.0 s against 9.8-9.9 s) for 20-30 MB more
/// peak RSS (BENCHMARKS.md).
pub(super) const BATCH_BYTES: usize = 4 << 20;

/// Room past the batch size for the page that crosses it (a page of 100
/// instances is about 300 kB of COPY text), so that the buffer is not
/// reallocated, and copied, at every batch.
const HEADROOM_BYTES: usize = 1 << 20;

/// Session settings for a scope's connection (it is closed after the apply):
/// - the staged crawl mostly fits in temp buffers (they must be set before the
///   first temp table is touched), and the apply's hash joins and sorts run in
///   memory;
/// - no JIT: each apply statement runs once, so compiled code never pays for
///   its compiling, which the statements' estimated costs make the slowest
///   kind (inlined and optimized): 0.3 s of a 2.7 s insert of the 310k tag rows
///   of a 100k fleet;
/// - a direct load keeps its transaction open while the crawl waits on the
///   API between batches (retries, throttling): a server that ends sessions
///   idle in a transaction sooner must not end this one, yet a client gone
///   without a word must not hold it for good either.
const STAGE_SESSION_SETTINGS: &str = "SET temp_buffers = '256MB'; SET work_mem = '128MB'; \
     SET jit = off; SET idle_in_transaction_session_timeout = '15min'";

/// Where the server can (PostgreSQL 14 and later, on Linux), it checks every
/// second, while a statement runs, that the client is still connected: an apply
/// whose process was stopped or killed then ends at once, rolled back, instead
/// of running its statement to the end while holding the scope's lock, which
/// would turn the next run away. Best effort: a server that cannot refuses the
/// setting, and the scope goes on without it.
const CLIENT_CHECK_SETTING: &str = "SET client_connection_check_interval = '1s'";

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
    /// Encoded records not yet sent: their content lines back to back in `buf`.
    pending: Vec<PendingRow>,
    /// The observation times of the pages in the batch, as COPY text.
    observed: Vec<String>,
    buf: Vec<u8>,
    seq: i64,
    copy_statement: String,
    /// Set just before the apply's COMMIT is sent (see [`ScopeSync::report_commit_to`]).
    pub(crate) committing: Option<Arc<AtomicBool>>,
    /// The scope held no live instance when the crawl began (and nothing but
    /// this crawl's apply can add one while it holds the lock): nothing can be
    /// unchanged or deleted.
    pub(super) nothing_live_at_start: bool,
    /// While the batches go straight into the tables (see [`direct`]).
    pub(super) direct: Option<DirectLoad>,
    /// The scope's transaction is open: the apply's, begun early by a direct load.
    pub(super) in_transaction: bool,
}

/// One encoded record waiting in [`ScopeSync::buf`].
pub(super) struct PendingRow {
    seq: i64,
    pub(super) instance_id: String,
    /// The content digest, 32 hex digits.
    pub(super) hash: String,
    /// Index into the batch's observation times.
    pub(super) observed: usize,
    /// The record's content line (without the trailing newline) in `buf`.
    pub(super) content: std::ops::Range<usize>,
    /// Where in `buf` the line's last column, raw, begins (at its tab).
    pub(super) raw_at: usize,
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
    // raw is parsed into jsonb here, by the COPYs that run while the crawl goes
    // on, rather than by the apply, when every scope's statements compete for
    // the cores: the parse is most of what writing an instance row costs
    // (BENCHMARKS.md, "Where the time goes"). A staged
    // row (~3 kB, raw included) is past the 2 kB at which Postgres compresses a
    // row with pglz, which costs more CPU than the whole COPY parse: the table's
    // toast_tuple_target keeps it whole. Rows are read once and dropped with the session: keep
    // them as they come.
    let create = format!(
        "CREATE TEMP TABLE ecp_stage (seq bigint NOT NULL, observed_at timestamptz NOT NULL, \
         content_hash uuid NOT NULL, {}, tags jsonb, biz_tags jsonb, disks jsonb, raw jsonb) \
         WITH (toast_tuple_target = 8160)",
        defs.join(", ")
    );
    sqlx::raw_sql(STAGE_SESSION_SETTINGS)
        .execute(&mut conn)
        .await?;
    if conn.server_version_num().is_some_and(|v| v >= 140_000) {
        if let Err(e) = sqlx::raw_sql(CLIENT_CHECK_SETTING).execute(&mut conn).await {
            debug!(error = %e, "the server does not check for vanished clients");
        }
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut conn)
        .await?;
    let nothing_live_at_start: bool = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM ecp.instances \
         WHERE source = $1 AND biz_region_id = $2 AND deleted_at IS NULL)",
    )
    .bind(&scope.source)
    .bind(&scope.biz_region_id)
    .fetch_one(&mut conn)
    .await?;
    let direct = if store.direct_first_load && nothing_live_at_start {
        match DirectLoad::open().await {
            Ok(load) => Some(load),
            Err(e) => {
                debug!(%scope, error = %e, "no file for a direct load: staging the first crawl");
                None
            }
        }
    } else {
        None
    };
    let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
    let copy_statement = format!(
        "COPY ecp_stage (seq, observed_at, content_hash, {}, tags, biz_tags, disks, raw) FROM STDIN",
        names.join(", ")
    );
    debug!(run_id, %scope, "scope locked, staging open");
    let buf = Vec::with_capacity(store.batch_bytes.saturating_add(HEADROOM_BYTES));
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
        pending: Vec::new(),
        observed: Vec::new(),
        buf,
        seq: 0,
        copy_statement,
        committing: None,
        nothing_live_at_start,
        direct,
        in_transaction: false,
    })
}

impl ScopeSync {
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Stages one page of the listing, fetched at `observed_at`. Pages must come
    /// in crawl order: when an instance shows up twice, the later one wins.
    pub async fn push_page(
        &mut self,
        observed_at: DateTime<Utc>,
        records: &[Normalized],
    ) -> Result<(), StoreError> {
        self.pages += 1;
        self.push_records(observed_at, records).await
    }

    /// Stages records fetched at `observed_at` that are no page of the listing
    /// (the answer to a recheck by id): `pages_fetched` counts the listing's.
    pub async fn push_records(
        &mut self,
        observed_at: DateTime<Utc>,
        records: &[Normalized],
    ) -> Result<(), StoreError> {
        // Microseconds, as Postgres keeps them, cut the way sqlx cuts a bound
        // time: COPY text with nanoseconds would be rounded instead, and the
        // instances of the last page would seem changed a microsecond after the
        // crawl's snapshot_at, which its ledger line binds.
        let observed_at = observed_at.trunc_subsecs(6);
        self.last_observed_at = Some(match self.last_observed_at {
            Some(t) if t > observed_at => t,
            _ => observed_at,
        });
        self.observed
            .push(observed_at.to_rfc3339_opts(SecondsFormat::Micros, true));
        let observed = self.observed.len() - 1;
        for n in records {
            self.seq += 1;
            self.records += 1;
            self.problems += n.problems.len() as i64;
            let start = self.buf.len();
            let (hash, raw_at) = encode_content(&mut self.buf, n);
            self.pending.push(PendingRow {
                seq: self.seq,
                instance_id: n.row.instance_id.clone(),
                hash,
                observed,
                content: start..self.buf.len(),
                raw_at: start + raw_at,
            });
            if let Some(load) = &mut self.direct {
                load.push_lists(n);
            }
        }
        if self.buf.len() >= self.store.batch_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// Counts records the caller skipped because they could not be normalized.
    pub fn record_skipped(&mut self, n: u64) {
        self.skipped += n as i64;
    }

    /// The service answered `pages` pages in all, some of them not staged: the
    /// crawl stopped at a page it could not use (a repeated cursor, say), which
    /// still counts as fetched in the ledger.
    pub fn record_pages_fetched(&mut self, pages: u64) {
        self.pages = self.pages.max(pages as i64);
    }

    /// Sends the batch. Records whose digest equals the one stored with their
    /// current row (same scope, not deleted) are staged as a short row: sequence,
    /// time, digest and id. Nothing else about them is needed unless the row
    /// changes before the apply, which the apply refuses (see
    /// [`StoreError::ConcurrentChange`]). The others are staged in full.
    pub(crate) async fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.direct.is_some() && self.load_directly().await? {
            self.pending.clear();
            self.observed.clear();
            self.buf.clear();
            return Ok(());
        }
        let ids: Vec<&str> = self
            .pending
            .iter()
            .map(|r| r.instance_id.as_str())
            .collect();
        let hashes: Vec<&str> = self.pending.iter().map(|r| r.hash.as_str()).collect();
        // The positions (1-based) of the unchanged records in the batch (none
        // in a scope that had no live instance).
        let unchanged: Vec<i64> = if self.nothing_live_at_start {
            Vec::new()
        } else {
            sqlx::query_scalar(
                // A scalar subquery per record: always one primary-key probe, whatever
                // the planner thinks of the table's size.
                "SELECT u.n \
             FROM unnest($1::text[], $2::text[]::uuid[]) WITH ORDINALITY \
                  AS u (instance_id, content_hash, n) \
             WHERE (SELECT i.content_hash = u.content_hash AND i.deleted_at IS NULL \
                           AND i.source = $3 AND i.biz_region_id = $4 \
                    FROM ecp.instances i WHERE i.instance_id = u.instance_id)",
            )
            .bind(&ids)
            .bind(&hashes)
            .bind(&self.scope.source)
            .bind(&self.scope.biz_region_id)
            .fetch_all(&mut self.conn)
            .await?
        };
        let mut is_unchanged = vec![false; self.pending.len()];
        for n in unchanged {
            is_unchanged[n as usize - 1] = true;
        }

        let mut full = Vec::with_capacity(self.buf.len() + self.pending.len() * 96);
        let mut short = Vec::with_capacity(self.pending.len() * 96);
        for (r, unchanged) in self.pending.iter().zip(is_unchanged) {
            let observed = &self.observed[r.observed];
            if unchanged {
                let _ = write!(short, "{}\t{observed}\t{}\t", r.seq, r.hash);
                let mut id = String::with_capacity(r.instance_id.len());
                escape_into(&mut id, &r.instance_id);
                short.extend_from_slice(id.as_bytes());
                short.push(b'\n');
            } else {
                let _ = write!(full, "{}\t{observed}\t{}\t", r.seq, r.hash);
                full.extend_from_slice(&self.buf[r.content.clone()]);
                full.push(b'\n');
            }
        }
        self.pending.clear();
        self.observed.clear();
        self.buf.clear();
        if !full.is_empty() {
            let mut copy = self.conn.copy_in_raw(&self.copy_statement).await?;
            copy.send(full).await?;
            copy.finish().await?;
        }
        if !short.is_empty() {
            let mut copy = self
                .conn
                .copy_in_raw(
                    "COPY ecp_stage (seq, observed_at, content_hash, instance_id) FROM STDIN",
                )
                .await?;
            copy.send(short).await?;
            copy.finish().await?;
        }
        Ok(())
    }

    /// The instances current in this scope that the crawl has not listed (the
    /// ones the apply would mark deleted), when there are at most `limit` of
    /// them; `None` when there are more. In no particular order: asking for id
    /// order made the planner walk the whole primary key of `ecp.instances`
    /// (0.35 s against 0.24 s for a hash anti-join, one region of a 100k fleet).
    pub async fn unlisted(&mut self, limit: usize) -> Result<Option<Vec<String>>, StoreError> {
        if self.nothing_live_at_start {
            return Ok(Some(Vec::new()));
        }
        self.flush().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT i.instance_id FROM ecp.instances i \
             WHERE i.source = $1 AND i.biz_region_id = $2 AND i.deleted_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM ecp_stage s WHERE s.instance_id = i.instance_id) \
             LIMIT $3",
        )
        .bind(&self.scope.source)
        .bind(&self.scope.biz_region_id)
        .bind(limit.saturating_add(1) as i64)
        .fetch_all(&mut self.conn)
        .await?;
        Ok((ids.len() <= limit).then_some(ids))
    }

    /// Writes the batch straight into the tables; false when it lists an
    /// instance already stored, after which every instance loaded so far is in
    /// the stage, the batch is still to be staged, and the crawl stages from
    /// then on (see [`direct`]).
    async fn load_directly(&mut self) -> Result<bool, StoreError> {
        if direct::meets_stored(&mut self.conn, &self.pending).await? {
            let load = self.direct.take().expect("called during a direct load");
            if self.in_transaction {
                let staged = direct::demote(
                    &mut self.conn,
                    load,
                    self.run_id,
                    &self.scope,
                    &self.store.sql.demote_direct_load,
                    &self.copy_statement,
                )
                .await?;
                self.in_transaction = false;
                debug!(scope = %self.scope, staged,
                       "a batch lists an instance already stored: staging from here on");
            }
            return Ok(false);
        }
        self.begin_transaction().await?;
        let load = self.direct.as_mut().expect("called during a direct load");
        let written = direct::write_batch(
            &mut self.conn,
            load,
            self.run_id,
            &self.scope,
            &self.pending,
            &self.observed,
            &self.buf,
        )
        .await;
        load.clear_batch();
        match written {
            Ok(()) => Ok(true),
            // Refused after all (another scope wrote one of these instances
            // since the check, or a value the server refuses): the transaction
            // is aborted. With nothing loaded before, nothing is lost: the
            // batch goes to the stage, where the apply deals with either.
            Err(e) if e.as_database_error().is_some() && load.written == 0 => {
                self.roll_back().await;
                self.direct = None;
                debug!(scope = %self.scope, error = %e, "a first batch refused: staging");
                Ok(false)
            }
            Err(e) => Err(super::apply::concurrent_write(e.into(), &self.scope)),
        }
    }

    /// Opens the scope's transaction unless it is open already.
    pub(crate) async fn begin_transaction(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            sqlx::raw_sql("BEGIN").execute(&mut self.conn).await?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Commits the scope's transaction (the apply's).
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(flag) = &self.committing {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        sqlx::raw_sql("COMMIT").execute(&mut self.conn).await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Rolls back the scope's transaction, if open: a direct load's rows and an
    /// apply's writes go, and the connection can record the scope's line. A
    /// connection that fails here is reported by that line's attempt.
    pub(crate) async fn roll_back(&mut self) {
        if std::mem::take(&mut self.in_transaction) {
            if let Err(e) = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await {
                debug!(scope = %self.scope, error = %e, "could not roll back");
            }
        }
    }

    /// `flag` is set just before the apply sends its COMMIT: from then on the
    /// outcome is the server's, and a caller that wants to stop (on a signal)
    /// must wait for it rather than drop the apply and guess.
    pub fn report_commit_to(&mut self, flag: Arc<AtomicBool>) {
        self.committing = Some(flag);
    }

    /// The crawl reached its last page: writes the snapshot (see [`apply`]).
    pub async fn apply(self, opts: &ApplyOptions) -> Result<ApplyCounts, StoreError> {
        apply::apply(self, opts).await
    }

    /// The crawl completed, but what it staged could not be used (the server
    /// refused a staged row, say): discards the staged rows, changes nothing in
    /// the inventory and records the scope as complete, not applied, with `error`.
    pub async fn fail(mut self, error: &str) -> Result<(), StoreError> {
        super::ledger::record_failed_scope(&mut self, true, false, error).await?;
        self.conn.close().await?;
        Ok(())
    }

    /// The crawl did not complete: discards the staged rows, changes nothing in
    /// the inventory and records the scope as incomplete with `error`.
    pub async fn give_up(mut self, error: &str) -> Result<(), StoreError> {
        super::ledger::record_failed_scope(&mut self, false, false, error).await?;
        self.conn.close().await?;
        Ok(())
    }
}

/// Appends the content of one record to `buf` as COPY text (the typed columns,
/// tags, biz_tags, disks, raw; no newline) and returns its digest, 32 hex digits.
/// Equal digests mean equal staged values (raw equal in content, however
/// written), which lets unchanged instances be recognized cheaply.
/// Also returns where, in the line, raw begins (at the tab before it).
fn encode_content(buf: &mut Vec<u8>, n: &Normalized) -> (String, usize) {
    let mut line = String::with_capacity(4096);
    let mut first = true;
    for (_, value) in n.row.columns() {
        if !first {
            line.push('\t');
        }
        first = false;
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
    // tags and biz_tags as JSON objects, disks as a JSON array, written straight
    // into the line: normalize already made the tag keys unique per kind.
    let mut json = String::with_capacity(256);
    for kind in [TagKind::User, TagKind::Biz] {
        json.clear();
        json.push('{');
        for (i, t) in n.tags.iter().filter(|t| t.kind == kind).enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_json_string(&mut json, &t.key);
            json.push(':');
            push_json_nullable(&mut json, t.value.as_deref());
        }
        json.push('}');
        line.push('\t');
        escape_into(&mut line, &json);
    }
    json.clear();
    json.push('[');
    for (i, d) in n.disks.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"disk_type\":");
        push_json_nullable(&mut json, d.disk_type.as_deref());
        json.push_str(",\"disk_size_gb\":");
        match d.disk_size_gb {
            Some(gb) => {
                let _ = write!(json, "{gb}");
            }
            None => json.push_str("null"),
        }
        json.push('}');
    }
    json.push(']');
    line.push('\t');
    escape_into(&mut line, &json);
    // The digest takes raw's content, not its text: a record written
    // differently but saying the same is unchanged (jsonb keeps no difference).
    let mut digest = Sha256::new();
    digest.update(line.as_bytes());
    digest.update(n.raw_digest);
    let digest = digest.finalize();
    let raw_at = line.len();
    line.push('\t');
    escape_into(&mut line, n.raw.get());
    buf.extend_from_slice(line.as_bytes());
    (hex::encode(&digest[..16]), raw_at)
}

/// A JSON string literal, or `null`.
fn push_json_nullable(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_json_string(out, s),
        None => out.push_str("null"),
    }
}

/// A JSON string literal. NUL is dropped, as in [`escape_into`]: jsonb refuses
/// `\u0000`.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => {}
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
/// NUL cannot be stored in Postgres text at all and is dropped.
pub(super) fn escape_into(out: &mut String, s: &str) {
    // By bytes: each of the five is one byte in UTF-8, and no other character's
    // bytes look like them (a char pattern decodes every character first).
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0))
    {
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
        let n = normalize(
            raw.as_object().unwrap().clone().into(),
            &NormalizeOptions::default(),
        )
        .unwrap();
        let mut buf = Vec::new();
        let (hash, raw_at) = encode_content(&mut buf, &n);
        assert_eq!(hash.len(), 32);
        assert_eq!(
            &buf[raw_at..raw_at + 2],
            b"\t{",
            "raw follows the tab at raw_at"
        );
        let line = String::from_utf8(buf).unwrap();
        assert_eq!(line.matches('\n').count(), 0);
        // the typed columns, tags, biz_tags, disks, raw
        assert_eq!(line.split('\t').count(), typed_columns().len() + 4);
        assert!(line.contains("a\\tb\\\\c\\nd"));
    }

    /// COPY text back to the value it stands for.
    fn unescape(field: &str) -> String {
        let mut out = String::new();
        let mut chars = field.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => {}
            }
        }
        out
    }

    #[test]
    fn tags_disks_and_raw_are_json_whatever_their_characters() {
        let raw = serde_json::json!({
            "AndroidInstanceId": "acp-1",
            "Tags": [
                {"Key": "quote\"back\\slash", "Value": "tab\tline\ncontrol\u{1}nul\u{0}end"},
                {"Key": "empty", "Value": null},
            ],
            "BizTags": [{"Key": "é ü 中", "Value": "✓"}],
            "Disks": [{"DiskType": "SYSTEM\"X", "DiskSize": 32}, {"DiskType": "DATA"}],
        });
        let n = normalize(
            raw.as_object().unwrap().clone().into(),
            &NormalizeOptions::default(),
        )
        .unwrap();
        let mut buf = Vec::new();
        encode_content(&mut buf, &n);
        let line = String::from_utf8(buf).unwrap();
        let fields: Vec<&str> = line.split('\t').collect();
        let json = |i: usize| -> serde_json::Value {
            let text = unescape(fields[typed_columns().len() + i]);
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        assert_eq!(
            json(0),
            serde_json::json!({
                "quote\"back\\slash": "tab\tline\ncontrol\u{1}nulend",
                "empty": null,
            }),
            "NUL dropped, as jsonb refuses it"
        );
        assert_eq!(json(1), serde_json::json!({"é ü 中": "✓"}));
        assert_eq!(
            json(2),
            serde_json::json!([
                {"disk_type": "SYSTEM\"X", "disk_size_gb": 32},
                {"disk_type": "DATA", "disk_size_gb": null},
            ])
        );
        let stored_raw = json(3);
        assert_eq!(stored_raw["BizTags"], raw["BizTags"]);
        assert_eq!(
            stored_raw["Tags"][0]["Value"], "tab\tline\ncontrol\u{1}nulend",
            "raw is the record, without its NUL"
        );
    }
}
