//! `ecp-inventory migrate`: bring the database schema up to date.

use super::db::{connect, DbArgs};
use crate::store;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let pool = connect(args.db.url()?, 2).await?;
    store::migrate(&pool).await?;
    tracing::info!("database schema is up to date");
    Ok(())
}
