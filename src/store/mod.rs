//! The Postgres store: schema migrations, the run ledger, staging of crawled
//! pages, and the apply that turns a complete snapshot of a scope into current
//! rows, versions and change rows in one transaction.
//!
//! A scope is `(source, biz_region_id)`. The call sequence `sync` follows:
//!
//! ```no_run
//! # use ecp_inventory::store::*;
//! # use ecp_inventory::normalize::Normalized;
//! # async fn example(pool: sqlx::PgPool, pages: Vec<Vec<Normalized>>) -> Result<(), StoreError> {
//! let store = Store::new(pool, StoreConfig::default())?;
//! store.migrate().await?;
//! // Marks runs whose process died as 'abandoned', then opens this one.
//! let run = store.start_run(env!("CARGO_PKG_VERSION")).await?;
//! let scope = Scope::new("default", "cn-shanghai");
//! // Takes the scope's advisory lock (waits up to the given time) and opens staging.
//! let mut staging = run.begin_scope(scope, std::time::Duration::from_secs(30)).await?;
//! for page in pages {
//!     // Each page as it arrives; memory stays bounded whatever the fleet size.
//!     staging.push_page(chrono::Utc::now(), &page).await?;
//! }
//! // Only when the crawl reached its last page: diff and write, one transaction.
//! // The scope's line in sync_run_scopes is written in that same transaction.
//! let counts = staging.apply(&ApplyOptions::default()).await?;
//! // (For a crawl that failed midway: `staging.give_up("why").await?` instead.)
//! run.finish(RunOutcome::Succeeded).await?;
//! # let _ = counts; Ok(()) }
//! ```
//!
//! Nothing a reader can see changes before `apply` commits: staging lives in
//! temporary tables of the scope's own connection, and the first crawl of a
//! scope, which writes straight into the tables, does so in the transaction the
//! apply commits; so a killed process leaves nothing behind, and the advisory
//! lock goes with the connection too.

mod apply;
mod direct;
mod ledger;
mod lock;
mod prune;
mod retire;
mod stage;
mod templates;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

pub use apply::{ApplyCounts, ApplyOptions};
pub use ledger::{GivenUpScope, Run, RunOutcome};
pub use prune::PruneCounts;
pub use retire::RetiredScope;
pub use stage::ScopeSync;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Brings the schema up to date. Safe to run on every start. A schema a newer
/// build migrated is refused as such (an image rolled back), before the
/// migrator's own complaint that a migration it does not know was applied.
/// A schema already current is left alone: the migrator would first create its
/// ledger table if missing, which a database user with only the rights a sync
/// needs may not do.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    match schema_state(pool).await? {
        SchemaState::Current => return Ok(()),
        SchemaState::Ahead { applied } => {
            return Err(StoreError::SchemaAhead {
                applied,
                latest: latest_migration(),
            })
        }
        SchemaState::Modified { version } => return Err(StoreError::SchemaModified { version }),
        SchemaState::Behind { .. } | SchemaState::Unreadable => {}
    }
    MIGRATOR.run(pool).await.map_err(|e| {
        if is_permission_denied(&e) {
            StoreError::MigrationDenied(e)
        } else {
            StoreError::Migrate(e)
        }
    })
}

/// How many of the migrations a database has applied (0 for a fresh one).
pub async fn applied_migrations(pool: &PgPool) -> Result<i64, StoreError> {
    count_or_none(pool, "SELECT count(*) FROM _sqlx_migrations WHERE success").await
}

/// How many instances a database holds, deleted ones included (0 before the
/// first migration).
pub async fn instances_held(pool: &PgPool) -> Result<i64, StoreError> {
    count_or_none(pool, "SELECT count(*) FROM ecp.instances").await
}

/// A count of a table that a database without the schema does not have yet.
async fn count_or_none(pool: &PgPool, sql: &'static str) -> Result<i64, StoreError> {
    match sqlx::query_scalar(sql).fetch_one(pool).await {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNDEFINED_TABLE) => Ok(0),
        other => Ok(other?),
    }
}

/// SQLSTATE of "relation does not exist".
const UNDEFINED_TABLE: &str = "42P01";

/// The database's migrations against this build's.
#[derive(Debug, PartialEq, Eq)]
enum SchemaState {
    Current,
    /// Some of this build's migrations are missing.
    Behind {
        applied: i64,
    },
    /// A migration was applied from a file other than this build's.
    Modified {
        version: i64,
    },
    /// A newer build migrated it.
    Ahead {
        applied: i64,
    },
    /// The user may not read the migrator's ledger.
    Unreadable,
}

/// The applied migrations against this build's, as the migrator would judge
/// them: each one applied, with the same checksum, and no other.
async fn schema_state(pool: &PgPool) -> Result<SchemaState, StoreError> {
    let read: Result<Vec<(i64, Vec<u8>)>, sqlx::Error> = sqlx::query_as(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await;
    let applied = match read {
        Ok(rows) => rows,
        Err(e) => match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some(UNDEFINED_TABLE) => Vec::new(),
            Some(crate::error::INSUFFICIENT_PRIVILEGE) => return Ok(SchemaState::Unreadable),
            _ => return Err(e.into()),
        },
    };
    let known: Vec<(i64, &[u8])> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, &*m.checksum))
        .collect();
    let last = applied.last().map_or(0, |(v, _)| *v);
    let known_checksum = |v: i64| known.iter().find(|(k, _)| *k == v).map(|(_, c)| *c);
    Ok(
        if applied.iter().any(|(v, _)| known_checksum(*v).is_none()) {
            SchemaState::Ahead { applied: last }
        } else if let Some((version, _)) = applied
            .iter()
            .find(|(v, c)| known_checksum(*v) != Some(c.as_slice()))
        {
            SchemaState::Modified { version: *version }
        } else if applied.len() == known.len() {
            SchemaState::Current
        } else {
            SchemaState::Behind { applied: last }
        },
    )
}

/// The version of the last migration this build carries.
fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn is_permission_denied(e: &sqlx::migrate::MigrateError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(db) = c
            .downcast_ref::<sqlx::Error>()
            .and_then(|s| s.as_database_error())
        {
            return db.code().as_deref() == Some(crate::error::INSUFFICIENT_PRIVILEGE);
        }
        cause = c.source();
    }
    false
}

/// A message as the ledger can store it: PostgreSQL's text has no NUL, and an
/// error that quotes a service's message or an id with one in it must still be
/// recorded (a run whose failure cannot be written stays `running`).
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// The columns that, by default, are kept current in `ecp.instances` but open no
/// version and make no change row: they move all the time without meaning much.
pub const DEFAULT_VOLATILE_FIELDS: [&str; 3] = ["session_status", "rate", "modified_at"];

/// What crawl of what account a snapshot covers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The account alias (`default` unless several accounts are crawled).
    pub source: String,
    /// The business region (`BizRegionId`) the crawl asked for.
    pub biz_region_id: String,
}

impl Scope {
    pub fn new(source: impl Into<String>, biz_region_id: impl Into<String>) -> Self {
        Scope {
            source: source.into(),
            biz_region_id: biz_region_id.into(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.biz_region_id)
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Column names of `ecp.instances` treated as volatile.
    pub volatile_fields: Vec<String>,
    /// The first crawl of a scope with no live instance writes straight into
    /// the tables (see `store/direct.rs`); off, it is staged like any other.
    /// The outcome is the same either way: off is for comparing the two.
    pub direct_first_load: bool,
    /// A scope's rows are sent once this much COPY text has gathered (at the
    /// end of the page that reaches it). Memory grows with it, by about twice
    /// this per scope crawled at once; see `stage::BATCH_BYTES`.
    pub batch_bytes: usize,
}

impl StoreConfig {
    /// Whether the store can be made with this configuration (a volatile field
    /// that is no typed column is not), checked before anything connects.
    pub fn check(&self) -> Result<(), String> {
        templates::ApplySql::new(&self.volatile_fields).map(drop)
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            volatile_fields: DEFAULT_VOLATILE_FIELDS.map(String::from).to_vec(),
            direct_first_load: true,
            batch_bytes: stage::BATCH_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Said whole by `describe_db_in_run`; not a `source`, so that printing the
    /// chain does not add sqlx's own text of it.
    #[error("database error: {}", crate::error::describe_db_in_run(.0))]
    Database(sqlx::Error),
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the schema needs migrating, or this database user may not read \
         public._sqlx_migrations to see that it is current, and it may not change the \
         schema ({}): run `ecp-inventory migrate` once as the schema's owner, then sync \
         with --no-migrate (ECP_NO_MIGRATE=true) as this user, or grant it SELECT on \
         public._sqlx_migrations", crate::error::without_sql_position(&.0.to_string())
    )]
    MigrationDenied(sqlx::migrate::MigrateError),
    #[error(
        "the database's schema (migrations up to {applied}) is not the one this version of \
         ecp-inventory needs (up to {latest}){}: run `ecp-inventory migrate` (as the schema's \
         owner), which applies what is missing or says what differs, or sync without \
         --no-migrate",
        if *.applied == 0 { "; none was ever applied here: is this the right database?" } else { "" }
    )]
    SchemaBehind { applied: i64, latest: i64 },
    #[error(
        "the database's schema is at migration {applied}, newer than this version of \
         ecp-inventory knows (up to {latest}): run the version that migrated it, or a later one"
    )]
    SchemaAhead { applied: i64, latest: i64 },
    #[error(
        "migration {version} was applied to this database from another file than this version \
         of ecp-inventory carries (a development build's?), and is not applied over: migrate \
         with the build that applied it, or restore the database from before it"
    )]
    SchemaModified { version: i64 },
    #[error(
        "scope {scope} is locked by another run (waited {:.1} s, --lock-wait-secs); \
         is a previous sync still running?",
        .waited.as_secs_f64()
    )]
    LockBusy { scope: Scope, waited: Duration },
    #[error(
        "refusing to mark {would_delete} of the {current} current instances of scope {scope} \
         deleted: more than {:.0}% of the scope vanished in one crawl, which looks like an \
         API or permission problem rather than real deletions; rerun with \
         --allow-mass-delete if they really are gone",
        share * 100.0
    )]
    RefusedDeletion {
        scope: Scope,
        would_delete: u64,
        current: u64,
        share: f64,
    },
    #[error(
        "instance {instance_id} of scope {scope} was changed by another run, or by another \
         scope of this run (two sources listing one account?), while this crawl ran; \
         nothing of this scope was applied, run the sync again"
    )]
    ConcurrentChange { scope: Scope, instance_id: String },
    /// Another scope's apply wrote the same instances at the same time (two
    /// sources listing one account, synced at once): the database refused the
    /// second writer.
    #[error(
        "scope {scope} wrote instances that another scope's apply was writing at the same \
         time ({constraint}); nothing of this scope was applied. Two sources probably \
         list the same account: sync them one after the other (the next run settles \
         which source keeps each instance), or drop one of them"
    )]
    ConcurrentWrite { scope: Scope, constraint: String },
    #[error(
        "no scope {scope} in this database: no crawl of it was recorded and it holds no \
         instance (the scopes holding instances: {})",
        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
    )]
    UnknownScope { scope: Scope, known: Vec<String> },
    #[error(
        "permission denied: this database user lacks privileges a sync needs: {}; grant \
         them as the owner of each (the schema's owner for its tables and function, the \
         database's for TEMP; README, \"Sync into your own database\")",
        .missing.join("; ")
    )]
    MissingPrivileges { missing: Vec<String> },
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A first crawl written straight into the tables met an instance already
    /// stored, and its rows could not be kept in its file while it switched to
    /// staging (the disk full, say).
    #[error(
        "could not keep the instances of a first crawl in a temporary file while \
         switching it to staging (an instance it listed was already stored): {source}; \
         TMPDIR needs room for a region's instances"
    )]
    KeepRows { source: std::io::Error },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl StoreError {
    /// The database's own error, if this is one.
    pub fn database_error(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Database(e) => Some(e),
            _ => None,
        }
    }
}

/// Entry point: a pool plus the settings and SQL derived from them.
#[derive(Clone)]
pub struct Store {
    pool: PgPool,
    sql: Arc<templates::ApplySql>,
    direct_first_load: bool,
    batch_bytes: usize,
}

impl Store {
    /// Fails if a volatile field is not a column of `ecp.instances`.
    pub fn new(pool: PgPool, config: StoreConfig) -> Result<Self, StoreError> {
        let sql = templates::ApplySql::new(&config.volatile_fields).map_err(StoreError::Config)?;
        Ok(Store {
            pool,
            sql: Arc::new(sql),
            direct_first_load: config.direct_first_load,
            batch_bytes: config.batch_bytes.max(1),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Brings the schema up to date before a sync (see [`migrate`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate(&self.pool).await
    }

    /// For `sync --no-migrate`, `prune` and `retire`: the schema must already be
    /// this version's.
    pub async fn check_schema(&self) -> Result<(), StoreError> {
        let latest = latest_migration();
        match schema_state(&self.pool).await? {
            // Unreadable: the sync's privilege check names what it may not read.
            SchemaState::Current | SchemaState::Unreadable => Ok(()),
            SchemaState::Behind { applied } => Err(StoreError::SchemaBehind { applied, latest }),
            SchemaState::Ahead { applied } => Err(StoreError::SchemaAhead { applied, latest }),
            SchemaState::Modified { version } => Err(StoreError::SchemaModified { version }),
        }
    }

    /// Refuses a database user that may not do everything a sync can need: a
    /// privilege missing on one table would otherwise fail an apply only when a
    /// change first needs it. Call once the schema is current.
    /// `metrics`: the run exports metrics, which count the current instances.
    pub async fn check_privileges(&self, metrics: bool) -> Result<(), StoreError> {
        let missing: Vec<String> = sqlx::query_scalar(include_str!("sql/missing_privileges.sql"))
            .bind(metrics)
            .fetch_all(&self.pool)
            .await?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::MissingPrivileges { missing })
        }
    }

    /// Marks runs whose process is gone as abandoned, then starts a run.
    pub async fn start_run(&self, tool_version: &str) -> Result<Run, StoreError> {
        ledger::start_run(self.clone(), tool_version, ledger::RunCommand::Sync).await
    }

    /// Marks runs left 'running' by a dead process as 'abandoned'; returns their ids.
    pub async fn mark_abandoned_runs(&self) -> Result<Vec<i64>, StoreError> {
        ledger::mark_abandoned_runs(&self.pool).await
    }
}
