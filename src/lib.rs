//! ecp-inventory: keeps an always-current, fully historied inventory of Alibaba
//! Cloud Elastic Cloud Phone instances in PostgreSQL.
//!
//! Data flows one way through the stages, each a module named after what it owns:
//! [`api`] (sign, send, retry) → [`crawl`] (every page of a scope) → [`normalize`]
//! (API record → rows, pure) → [`store`] (stage, then apply in one transaction) —
//! joined by [`sync`]. The [`simulator`] serves the same wire protocol on loopback
//! for tests, the demo and benchmarks; [`pg_local`] starts a throwaway Postgres.

/// `println!` for what a command reports on stdout once its work is done (see
/// [`cli::say`]): a reader that went away does not turn it into a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say(format_args!($($arg)*))
    };
}

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crawl;
pub mod credentials;
pub mod error;
pub mod interrupt;
pub mod metrics;
pub mod multi;
pub mod normalize;
pub mod pg_local;
pub mod progress;
pub mod secret;
pub mod simulator;
pub mod store;
pub mod sync;
pub mod telemetry;
