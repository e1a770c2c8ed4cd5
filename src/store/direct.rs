//! Direct load: the first crawl of a scope writes its instances straight into
//! the tables, with COPY, instead of staging them for the apply.
//!
//! A scope that holds no live instance when its crawl begins (its first sync, or
//! the first after all its instances were deleted) can only gain instances, and
//! nearly always ones the inventory has never seen. What the apply would write
//! for those is known as soon as they are listed: the instance row, version 1, a
//! `created` change row, the disk and tag rows. Written batch by batch while the
//! crawl goes on, each value is parsed and stored once; staged, it was parsed and
//! stored in the stage, then indexed, classified, joined and copied into every
//! table: about a fifth more of the server's CPU on a first sync of 100k
//! (BENCHMARKS.md, which also says how little of it shows in the wall time).
//!
//! Nothing shows before the apply commits: the first batch opens the scope's
//! transaction, the apply goes on in it and commits it, and a crawl that fails
//! rolls it back (as does the server, when the process dies).
//!
//! Each batch is first checked against `ecp.instances` (one primary-key probe
//! per record) and against itself. A batch that lists an instance already
//! stored (in another scope, deleted earlier, or written by this load from an
//! earlier page) ends the load before anything of it is written: the instances
//! the load wrote are read out into a file, the transaction is rolled back, and
//! they are staged from the file, as if they had been staged from the start.
//! The crawl then stages like any other, and the apply classifies everything:
//! the outcome is the one staging gives. Rolled back, not deleted: rows a
//! transaction deleted stay locked until it ends, and another scope creating
//! the same instances would wait for this one while this one waits for it.
//!
//! No savepoint guards a batch: a transaction that lasts a whole crawl would
//! gather one subtransaction per batch, and past 64 of them every snapshot the
//! server takes, for any session, gets slower until it ends. So a batch the
//! server refuses after all (another scope's load wrote one of its instances
//! since the check, or a value the server refuses) aborts the transaction: a
//! load that had written nothing goes on staging; one that had is lost, and the
//! scope fails, as colliding applies do.

use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::sync::LazyLock;

use futures_util::TryStreamExt as _;
use sqlx::PgConnection;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use super::stage::{escape_into, PendingRow};
use super::templates::typed_columns;
use super::{Scope, StoreError};
use crate::normalize::{Normalized, MAX_TAG_ROW_BYTES};

/// The COPY statements of a batch, in the order they run: the instance rows
/// first, whose primary key refuses an instance that slipped past the check.
struct Statements {
    instances: String,
    versions: String,
    changes: &'static str,
    disks: &'static str,
    tags: &'static str,
}

static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
    // A staged record's content line: the typed columns (instance_id first),
    // tags, biz_tags, disks and raw.
    let typed: Vec<&str> = typed_columns().iter().map(|(c, _)| *c).collect();
    let typed = typed.join(", ");
    Statements {
        instances: format!(
            "COPY ecp.instances ({typed}, tags, biz_tags, disks, raw, content_hash, source, \
             biz_region_id, version, first_seen_at, last_changed_at, last_seen_at, last_run_id) \
             FROM STDIN"
        ),
        // previous_version, valid_to, is_deleted and chain_pruned keep their
        // defaults (NULL, NULL, false, false): a first version.
        versions: format!(
            "COPY ecp.instance_versions ({typed}, tags, biz_tags, disks, version, valid_from, \
             run_id, source, biz_region_id) FROM STDIN"
        ),
        changes: "COPY ecp.instance_changes (run_id, instance_id, observed_at, change_kind, \
                  source, biz_region_id) FROM STDIN",
        disks: "COPY ecp.instance_disks (instance_id, disk_index, disk_type, disk_size_gb) \
                FROM STDIN",
        tags: "COPY ecp.instance_tags (instance_id, kind, tag_key, tag_value) FROM STDIN",
    }
});

/// A scope's direct load: the disk and tag rows of the batch being gathered,
/// how many instances the batches before it wrote, and the file that keeps
/// those if the load ends early.
pub(super) struct DirectLoad {
    disks: String,
    tags: String,
    /// Per record of the batch, in the order pushed: where its lines are in
    /// `disks`, and in `tags`.
    disk_lines: Vec<Range<usize>>,
    tag_lines: Vec<Range<usize>>,
    pub(super) written: u64,
    file: tokio::fs::File,
}

impl DirectLoad {
    /// Opens the load's file: in the temporary directory, readable by this
    /// user alone, and unlinked at once, so that nothing of it outlives the
    /// process however it ends. A directory where none can be made means no
    /// direct load: the crawl stages, as it would without one.
    pub(super) async fn open() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "ecp-inventory-{}.copy",
            uuid::Uuid::new_v4().simple()
        ));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await?;
        tokio::fs::remove_file(&path).await?;
        Ok(DirectLoad {
            disks: String::new(),
            tags: String::new(),
            disk_lines: Vec::new(),
            tag_lines: Vec::new(),
            written: 0,
            file,
        })
    }

    /// Adds a record's disk and tag rows to the batch, as COPY text: the rows
    /// `sql/refill_disks_tags.sql` makes of its staged lists.
    pub(super) fn push_lists(&mut self, n: &Normalized) {
        let (disks_from, tags_from) = (self.disks.len(), self.tags.len());
        let mut id = String::with_capacity(n.row.instance_id.len());
        escape_into(&mut id, &n.row.instance_id);
        for (index, d) in n.disks.iter().enumerate() {
            let _ = write!(self.disks, "{id}\t{index}\t");
            push_nullable(&mut self.disks, d.disk_type.as_deref());
            match d.disk_size_gb {
                Some(gb) => {
                    let _ = writeln!(self.disks, "\t{gb}");
                }
                None => self.disks.push_str("\t\\N\n"),
            }
        }
        for t in &n.tags {
            // Measured as stored, without the NULs text cannot hold; a tag too
            // long for the table's indexes stays in the instance's tags only.
            let value = t.value.as_deref().map_or(0, stored_len);
            if stored_len(&t.key) + value > MAX_TAG_ROW_BYTES {
                continue;
            }
            let _ = write!(self.tags, "{id}\t{}\t", t.kind.as_str());
            escape_into(&mut self.tags, &t.key);
            self.tags.push('\t');
            push_nullable(&mut self.tags, t.value.as_deref());
            self.tags.push('\n');
        }
        self.disk_lines.push(disks_from..self.disks.len());
        self.tag_lines.push(tags_from..self.tags.len());
    }

    /// Forgets the gathered rows (written, or the batch goes to the stage).
    pub(super) fn clear_batch(&mut self) {
        self.disks.clear();
        self.tags.clear();
        self.disk_lines.clear();
        self.tag_lines.clear();
    }
}

/// COPY data goes out in pieces of about this size: each table's rows are
/// written into one piece at a time, never into a copy of the whole batch, and
/// the connection's buffer never grows past it.
const PIECE_BYTES: usize = 256 << 10;

/// The batch's rows as the apply would write them for new instances, one COPY
/// per table. `observed` holds the pages' times as COPY text; `buf` the rows'
/// content lines.
pub(super) async fn write_batch(
    conn: &mut PgConnection,
    load: &mut DirectLoad,
    run_id: i64,
    scope: &Scope,
    rows: &[PendingRow],
    observed: &[String],
    buf: &[u8],
) -> Result<(), sqlx::Error> {
    let mut source = String::new();
    escape_into(&mut source, &scope.source);
    let mut region = String::new();
    escape_into(&mut region, &scope.biz_region_id);
    let s = &*STATEMENTS;
    let mut piece = Vec::with_capacity(PIECE_BYTES + (16 << 10));
    // Every table gets the batch in instance id order: consecutive rows then
    // land on neighbouring pages of the indexes that begin with the id (most
    // of them), which the server finds in its caches. On a first sync of 100k,
    // 4-5% of the server's CPU (BENCHMARKS.md).
    // One disk range and one tag range per row: push_lists runs for each.
    debug_assert_eq!(load.disk_lines.len(), rows.len());
    debug_assert_eq!(load.tag_lines.len(), rows.len());
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_unstable_by(|&a, &b| rows[a].instance_id.cmp(&rows[b].instance_id));
    let rows: Vec<&PendingRow> = order.iter().map(|&i| &rows[i]).collect();

    let mut copy = Copy::start(conn, &s.instances).await?;
    for r in &rows {
        let at = &observed[r.observed];
        piece.extend_from_slice(&buf[r.content.clone()]);
        let _ = writeln!(
            piece,
            "\t{}\t{source}\t{region}\t1\t{at}\t{at}\t{at}\t{run_id}",
            r.hash
        );
        copy.send_full(&mut piece).await?;
    }
    copy.finish(&mut piece).await?;

    let mut copy = Copy::start(conn, &s.versions).await?;
    for r in &rows {
        let at = &observed[r.observed];
        piece.extend_from_slice(&buf[r.content.start..r.raw_at]);
        let _ = writeln!(piece, "\t1\t{at}\t{run_id}\t{source}\t{region}");
        copy.send_full(&mut piece).await?;
    }
    copy.finish(&mut piece).await?;

    let mut copy = Copy::start(conn, s.changes).await?;
    for r in &rows {
        let at = &observed[r.observed];
        // The content line begins with the escaped id.
        let content = &buf[r.content.clone()];
        let id_end = content.iter().position(|&b| b == b'\t');
        let _ = write!(piece, "{run_id}\t");
        piece.extend_from_slice(&content[..id_end.unwrap_or(content.len())]);
        let _ = writeln!(piece, "\t{at}\tcreated\t{source}\t{region}");
        copy.send_full(&mut piece).await?;
    }
    copy.finish(&mut piece).await?;

    for (statement, text, lines) in [
        (s.disks, &load.disks, &load.disk_lines),
        (s.tags, &load.tags, &load.tag_lines),
    ] {
        if text.is_empty() {
            continue;
        }
        let mut copy = Copy::start(conn, statement).await?;
        for &i in &order {
            piece.extend_from_slice(text[lines[i].clone()].as_bytes());
            copy.send_full(&mut piece).await?;
        }
        copy.finish(&mut piece).await?;
    }
    load.written += rows.len() as u64;
    Ok(())
}

/// One COPY FROM STDIN, fed piece by piece.
struct Copy<'c>(sqlx::postgres::PgCopyIn<&'c mut PgConnection>);

impl<'c> Copy<'c> {
    async fn start(conn: &'c mut PgConnection, statement: &str) -> Result<Self, sqlx::Error> {
        Ok(Copy(conn.copy_in_raw(statement).await?))
    }

    /// Sends the piece once it is full, and empties it.
    async fn send_full(&mut self, piece: &mut Vec<u8>) -> Result<(), sqlx::Error> {
        if piece.len() >= PIECE_BYTES {
            self.0.send(piece.as_slice()).await?;
            piece.clear();
        }
        Ok(())
    }

    /// Sends what is left of the piece and ends the COPY.
    async fn finish(mut self, piece: &mut Vec<u8>) -> Result<(), sqlx::Error> {
        if !piece.is_empty() {
            self.0.send(piece.as_slice()).await?;
            piece.clear();
        }
        self.0.finish().await?;
        Ok(())
    }
}

/// Whether the batch lists an instance twice, or one already in
/// `ecp.instances` (this load's own rows included): then it cannot be loaded.
pub(super) async fn meets_stored(
    conn: &mut PgConnection,
    rows: &[PendingRow],
) -> Result<bool, sqlx::Error> {
    let mut ids = std::collections::HashSet::with_capacity(rows.len());
    if !rows.iter().all(|r| ids.insert(r.instance_id.as_str())) {
        return Ok(true);
    }
    let ids: Vec<&str> = ids.into_iter().collect();
    // A scalar subquery per id: always one primary-key probe, whatever the
    // planner thinks of the table's size (the load itself grows it).
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) AS u (instance_id) \
         WHERE (SELECT true FROM ecp.instances i WHERE i.instance_id = u.instance_id))",
    )
    .bind(&ids)
    .fetch_one(conn)
    .await
}

/// Ends a direct load whose transaction is open and sound: the instances it
/// wrote go into its file (streamed: a load may have written a whole region),
/// the transaction is rolled back, and they are staged from the file. `export`
/// is `sql/demote_direct_load.sql`, `stage` the stage's COPY statement.
/// Returns how many were staged.
pub(super) async fn demote(
    conn: &mut PgConnection,
    load: DirectLoad,
    run_id: i64,
    scope: &Scope,
    export: &str,
    stage: &str,
) -> Result<u64, StoreError> {
    let statement: String =
        sqlx::query_scalar("SELECT format('COPY (' || $1 || ') TO STDOUT', $2, $3, $4)")
            .bind(export)
            .bind(&scope.source)
            .bind(&scope.biz_region_id)
            .bind(run_id)
            .fetch_one(&mut *conn)
            .await?;
    let mut file = load.file;
    let io = |source| StoreError::KeepRows { source };
    let mut rows = conn.copy_out_raw(&statement).await?;
    while let Some(chunk) = rows.try_next().await? {
        file.write_all(&chunk).await.map_err(io)?;
    }
    drop(rows);
    file.flush().await.map_err(io)?;
    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
    file.rewind().await.map_err(io)?;
    let mut copy = conn.copy_in_raw(stage).await?;
    copy.read_from(&mut file).await?;
    Ok(copy.finish().await?)
}

/// COPY text of a nullable text value.
fn push_nullable(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => escape_into(out, s),
        None => out.push_str("\\N"),
    }
}

/// The length of `s` in bytes once stored: without its NULs.
fn stored_len(s: &str) -> usize {
    s.len() - s.bytes().filter(|&b| b == 0).count()
}
