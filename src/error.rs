//! Errors that decide the exit code, and the codes themselves, in one place.

use crate::api::client::ClientBuildError;
use crate::store::StoreError;

/// The run did what it was asked.
pub const EXIT_OK: u8 = 0;
/// The run failed: the API, the database or the data.
pub const EXIT_FAILED: u8 = 1;
/// Bad flags, environment or configuration: fix the invocation.
pub const EXIT_CONFIG: u8 = 2;
/// Another run holds the lock of a scope this run needed.
pub const EXIT_LOCK_BUSY: u8 = 3;
/// A complete crawl would have deleted more than allowed; nothing was applied.
pub const EXIT_REFUSED_DELETION: u8 = 4;

/// SQLSTATE of "permission denied".
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// SQLSTATE of a write refused by a read-only server or session.
const READ_ONLY_TRANSACTION: &str = "25006";

/// A mistake in the invocation, named so the user can fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

impl From<ClientBuildError> for ConfigError {
    fn from(e: ClientBuildError) -> Self {
        ConfigError(e.to_string())
    }
}

/// The database's error in a link of the chain: itself, or inside the store's
/// error (which does not name it as its source, see `StoreError::Database`).
fn database_error<'e>(cause: &'e (dyn std::error::Error + 'static)) -> Option<&'e sqlx::Error> {
    cause
        .downcast_ref::<sqlx::Error>()
        .or_else(|| store_error(cause).and_then(StoreError::database_error))
}

/// The store's error in a link of the chain, itself or inside the sync's (which
/// is transparent: it stands in the chain for it).
fn store_error<'e>(cause: &'e (dyn std::error::Error + 'static)) -> Option<&'e StoreError> {
    cause.downcast_ref::<StoreError>().or_else(|| {
        match cause.downcast_ref::<crate::sync::SyncError>() {
            Some(crate::sync::SyncError::Store(e)) => Some(e),
            _ => None,
        }
    })
}

/// A database error as a user reads it: the server's message and SQLSTATE, or
/// the connection's failure, without the position in the statement that sqlx
/// appends (a line of the job's SQL, meaningless to its user) or any URL.
pub fn describe_db(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(INSUFFICIENT_PRIVILEGE) => {
                let needs = if db.message().contains("for database") {
                    "the user needs CONNECT on the database"
                } else {
                    "the job's user needs USAGE on schema ecp, SELECT, INSERT, UPDATE and \
                     DELETE on its tables, TEMP on the database and SELECT on \
                     public._sqlx_migrations; migrate needs the schema's owner (README, \
                     \"Sync into your own database\")"
                };
                format!(
                    "{} (SQLSTATE {INSUFFICIENT_PRIVILEGE}): {needs}",
                    db.message()
                )
            }
            Some(READ_ONLY_TRANSACTION) => format!(
                "{} (SQLSTATE {READ_ONLY_TRANSACTION}): the server takes no writes here (a \
                 standby or read replica, or default_transaction_read_only set for the user \
                 or database): point DATABASE_URL at the primary",
                db.message()
            ),
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => {
            "timed out waiting for a database connection: the server may be down, restarting \
             or out of connections"
                .into()
        }
        other => other.to_string(),
    }
}

/// A database error met by a run, which has connected already: as
/// [`describe_db`] says it, and for a connection that broke, what that means for
/// the run's data. (Not for the first connection: one that a proxy without a
/// server behind it resets was never there to lose.)
pub fn describe_db_in_run(e: &sqlx::Error) -> String {
    use std::io::ErrorKind::*;
    let text = describe_db(e);
    match e {
        sqlx::Error::Io(io)
            if matches!(
                io.kind(),
                BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
            ) =>
        {
            format!(
                "{text}: the connection to PostgreSQL was lost (the server restarted, or \
                 ended the session); what the run had not committed was rolled back, and the \
                 next run goes on from the last committed state"
            )
        }
        _ => text,
    }
}

/// The exit code for an error chain: the first link that knows its kind decides.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<ConfigError>() {
            return EXIT_CONFIG;
        }
        // A region the account does not have, none at all, credentials refused.
        if cause
            .downcast_ref::<crate::sync::SyncError>()
            .is_some_and(crate::sync::SyncError::is_configuration)
        {
            return EXIT_CONFIG;
        }
        match store_error(cause) {
            Some(StoreError::LockBusy { .. }) => return EXIT_LOCK_BUSY,
            Some(
                StoreError::SchemaBehind { .. }
                | StoreError::SchemaAhead { .. }
                | StoreError::SchemaModified { .. }
                | StoreError::MigrationDenied(_)
                | StoreError::MissingPrivileges { .. }
                | StoreError::UnknownScope { .. },
            ) => return EXIT_CONFIG,
            _ => {}
        }
        // Wrong credentials, a clock off by more than the gateway allows, or a RAM
        // user without the API's permission: retrying cannot help, fix the setup.
        let api = cause.downcast_ref::<crate::api::ApiError>().or_else(|| {
            // The crawl names its page and carries the API's error in its message.
            cause
                .downcast_ref::<crate::crawl::CrawlError>()
                .and_then(crate::crawl::CrawlError::api_error)
        });
        if api.is_some_and(crate::api::ApiError::is_auth) {
            return EXIT_CONFIG;
        }
        // The database user lacks a privilege the job needs, or the URL names a
        // server that takes no writes.
        if let Some(db) = database_error(cause).and_then(sqlx::Error::as_database_error) {
            if matches!(
                db.code().as_deref(),
                Some(INSUFFICIENT_PRIVILEGE | READ_ONLY_TRANSACTION)
            ) {
                return EXIT_CONFIG;
            }
        }
    }
    EXIT_FAILED
}

/// A server error's text without the position sqlx gives it (" at line 3655"):
/// a line of the job's own migration SQL, which tells a user nothing.
pub fn without_sql_position(text: &str) -> &str {
    match text.rsplit_once(" at line ") {
        Some((head, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => text,
    }
}

/// `text` on one line, its runs of whitespace (line breaks too) made one space:
/// a service or server message may span several lines.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The error and its causes on one line, each said once: many errors repeat their
/// source's text in their own message, and printing the chain would say it twice.
pub fn chain_message(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = one_line(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_errors_of_the_region_listing_exit_2() {
        use crate::sync::SyncError;
        let code = |e: SyncError| exit_code(&anyhow::Error::from(e).context("sync"));
        assert_eq!(code(SyncError::NoRegions), EXIT_CONFIG);
        assert_eq!(
            code(SyncError::UnknownRegions {
                unknown: vec!["cn-nowhere".into()],
                known: vec!["cn-shanghai".into()],
            }),
            EXIT_CONFIG
        );
        assert_eq!(code(SyncError::Interrupted("SIGTERM")), 1);
    }

    #[test]
    fn a_pool_timeout_says_what_may_be_wrong_with_the_server() {
        let text = describe_db(&sqlx::Error::PoolTimedOut);
        assert!(
            text.contains("database connection") && text.contains("down"),
            "{text}"
        );
    }

    #[test]
    fn a_connection_lost_mid_run_says_so_and_what_became_of_the_data() {
        let io = |kind, text| sqlx::Error::Io(std::io::Error::new(kind, text));
        let lost = io(std::io::ErrorKind::BrokenPipe, "Broken pipe");
        let text = describe_db_in_run(&lost);
        assert!(
            text.starts_with("Broken pipe: ") && text.contains("was lost"),
            "{text}"
        );
        let eof = io(std::io::ErrorKind::UnexpectedEof, "early eof");
        assert!(describe_db_in_run(&eof).contains("was lost"));
        // A connection never made was not lost, nor is the first one reset.
        let refused = io(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(describe_db_in_run(&refused), "refused");
        assert_eq!(describe_db(&lost), "Broken pipe");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = anyhow::Error::new(Outer(std::io::Error::other("disk on fire")))
            .context("saving the run");
        assert_eq!(chain_message(&e), "saving the run: outer: disk on fire");
    }

    #[test]
    fn config_errors_anywhere_in_the_chain_exit_with_2() {
        let e = anyhow::Error::new(ConfigError::new("bad flag")).context("starting");
        assert_eq!(exit_code(&e), EXIT_CONFIG);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), EXIT_FAILED);
    }

    #[test]
    fn a_position_in_the_jobs_own_sql_is_left_out() {
        assert_eq!(
            without_sql_position("permission denied for schema public at line 3655"),
            "permission denied for schema public"
        );
        assert_eq!(without_sql_position("at line 7 of it"), "at line 7 of it");
        assert_eq!(without_sql_position("ends at line "), "ends at line ");
    }

    #[test]
    fn the_message_is_one_line() {
        let e = anyhow::anyhow!("signature mismatch; string to sign:\nACS3\r\nabc");
        assert_eq!(
            chain_message(&e),
            "signature mismatch; string to sign: ACS3 abc"
        );
    }
}
