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
    let before = store::applied_migrations(&pool).await?;
    store::migrate(&pool).await?;
    let applied = store::applied_migrations(&pool).await? - before;
    tracing::info!(applied, "database schema is up to date");
    if applied > 0 {
        say!("migrate applied {applied} migrations; the schema is up to date");
    } else {
        say!("migrate: the schema was already up to date");
    }
    Ok(())
}
