//! Errors that decide the exit code, and the codes themselves, in one place.

use crate::api::client::ClientBuildError;

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

/// The exit code for an error chain: the first link that knows its kind decides.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<ConfigError>() {
            return EXIT_CONFIG;
        }
        if let Some(crate::sync::SyncError::UnknownRegions { .. }) = cause.downcast_ref() {
            return EXIT_CONFIG;
        }
        match cause.downcast_ref() {
            Some(crate::store::StoreError::LockBusy { .. }) => return EXIT_LOCK_BUSY,
            Some(
                crate::store::StoreError::SchemaBehind { .. }
                | crate::store::StoreError::MigrationDenied(_),
            ) => return EXIT_CONFIG,
            _ => {}
        }
        // Wrong credentials, a clock off by more than the gateway allows, or a RAM
        // user without the API's permission: retrying cannot help, fix the setup.
        if let Some(api) = cause.downcast_ref::<crate::api::ApiError>() {
            if api.is_auth() {
                return EXIT_CONFIG;
            }
        }
        // The database user lacks a privilege the job needs.
        if let Some(db) = cause
            .downcast_ref::<sqlx::Error>()
            .and_then(sqlx::Error::as_database_error)
        {
            if db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE) {
                return EXIT_CONFIG;
            }
        }
    }
    EXIT_FAILED
}

/// The error and its causes on one line, each said once: many errors repeat their
/// source's text in their own message, and printing the chain would say it twice.
pub fn chain_message(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        // One line, whatever the text: a service message may span several.
        let text = cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
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
    fn the_message_is_one_line() {
        let e = anyhow::anyhow!("signature mismatch; string to sign:\nACS3\r\nabc");
        assert_eq!(
            chain_message(&e),
            "signature mismatch; string to sign: ACS3 abc"
        );
    }
}
