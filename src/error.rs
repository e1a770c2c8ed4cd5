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
        if let Some(crate::store::StoreError::LockBusy { .. }) = cause.downcast_ref() {
            return EXIT_LOCK_BUSY;
        }
    }
    EXIT_FAILED
}
