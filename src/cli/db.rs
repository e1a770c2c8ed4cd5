//! The `--database-url` flag and the connection pool behind it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::error::ConfigError;
use crate::secret::Secret;

#[derive(Clone, Debug, clap::Args)]
pub struct DbArgs {
    /// PostgreSQL connection URL, e.g. postgres://user:password@host:5432/db.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Option<Secret>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

impl DbArgs {
    pub fn url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(|| ConfigError::new("no database: pass --database-url or set DATABASE_URL"))
    }
}

/// Connects, or fails with a message that names the problem but never the password.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().map_err(|_| {
        ConfigError::new(
            "DATABASE_URL / --database-url is not a valid PostgreSQL URL \
             (expected postgres://user:password@host:port/database)",
        )
    })?;
    let target = format!(
        "{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(15))
        .connect_with(options)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot connect to PostgreSQL at {target}: {}", describe(&e))
        })?;
    Ok(pool)
}

/// sqlx's error text, with any URL it might quote dropped.
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        other => other.to_string(),
    }
}
