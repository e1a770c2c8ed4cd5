//! `ecp-inventory demo`: the main job on an embedded default. A local Postgres
//! (or `--database-url`), the simulator in-process, two syncs with churn between
//! them, and a look at what changed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;

use super::db::{connect, parse_secret};
use crate::api::ratelimit::RateLimiter;
use crate::api::{Client, ClientConfig, Credentials};
use crate::error::ConfigError;
use crate::pg_local::LocalPostgres;
use crate::secret::{without_password, Secret};
use crate::simulator::{
    ChurnSpec, Simulator, SimulatorConfig, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET,
};
use crate::store::{Store, StoreConfig};
use crate::sync::{self, SyncSettings};

/// The database the demo creates in its local cluster.
const DEMO_DATABASE: &str = "ecp_demo";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Use this database instead of starting a local one. Only from the flag:
    /// DATABASE_URL, set for `sync`, may name the production inventory, and the
    /// demo fills its database with simulated instances.
    #[arg(long, value_name = "URL", value_parser = parse_secret)]
    pub database_url: Option<Secret>,

    /// Where the local Postgres keeps its data (the cluster is reused by the next
    /// demo, which makes its database afresh).
    #[arg(long, default_value = ".ecp-demo")]
    pub data_dir: PathBuf,

    /// Size of the simulated fleet.
    #[arg(long, default_value_t = 2000)]
    pub instances: usize,

    /// Seed of the simulated fleet and of the churn.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (url, local) = match &args.database_url {
        Some(url) => (url.expose().to_owned(), None),
        None => {
            let dir = args.data_dir.join("postgres");
            say!(
                "Starting a local PostgreSQL under {} (or reusing the one running there) ...",
                dir.display()
            );
            let dir2 = dir.clone();
            let pg = tokio::task::spawn_blocking(move || LocalPostgres::start(&dir2, &[]))
                .await?
                .with_context(|| {
                    format!("starting the local PostgreSQL under {}", dir.display())
                })?;
            // A fresh database each time, so every demo tells the same story.
            let url = pg
                .recreate_database(DEMO_DATABASE)
                .await
                .with_context(|| format!("creating database {DEMO_DATABASE}"))?;
            (url, Some(pg))
        }
    };
    let pool = connect(&url, 8).await?;
    if args.database_url.is_some() {
        refuse_an_inventory(&pool).await?;
    }
    let store = Store::new(pool.clone(), StoreConfig::default())?;
    store.migrate().await?;

    let sim = Simulator::new(SimulatorConfig {
        instances: args.instances,
        seed: args.seed,
        ..Default::default()
    });
    let running = sim.start("127.0.0.1:0".parse()?).await?;
    say!(
        "Simulated eds-aic API with {} cloud phones at {}",
        args.instances,
        running.endpoint()
    );
    let client = Client::new(
        Credentials::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET),
        ClientConfig {
            endpoint: running.endpoint(),
            rate_limiter: Some(Arc::new(RateLimiter::new(500.0))),
            ..Default::default()
        },
    )?;
    let settings = SyncSettings::default();

    say!("\n1. First sync: every region through DescribeRegions");
    let first = sync::run(&store, &client, &settings).await?;
    say!("   {}", first.summary_line());
    first.ensure_succeeded()?;

    let churn = sim.churn(&ChurnSpec {
        seed: args.seed,
        create: 12,
        delete: 8,
        status: 25,
        rename: 5,
        retag: 15,
        resize_disk: 4,
        volatile: 200,
    });
    say!(
        "\n2. The fleet changes: {} created, {} deleted, {} changed status, {} renamed, {} retagged, {} disks resized, {} volatile-only",
        churn.created.len(),
        churn.deleted.len(),
        churn.status_changed.len(),
        churn.renamed.len(),
        churn.retagged.len(),
        churn.disk_resized.len(),
        churn.volatile.len()
    );

    say!("\n3. Second sync");
    let second = sync::run(&store, &client, &settings).await?;
    say!("   {}", second.summary_line());
    second.ensure_succeeded()?;
    running.shutdown().await;

    print_changes(&pool, first.run_id, second.run_id).await?;
    print_next_steps(&url, local.as_ref(), first.run_id, second.run_id);
    Ok(())
}

/// The demo writes simulated instances, and would mix them into a real
/// inventory: a database given by flag must hold none yet.
async fn refuse_an_inventory(pool: &PgPool) -> anyhow::Result<()> {
    let held = crate::store::instances_held(pool).await?;
    if held > 0 {
        return Err(ConfigError::new(format!(
            "the database of --database-url already holds {held} instances, and the demo would \
             add simulated ones to them: give it an empty database, or leave out \
             --database-url for a local one"
        ))
        .into());
    }
    Ok(())
}

async fn print_changes(pool: &PgPool, from: i64, to: i64) -> anyhow::Result<()> {
    say!("\nWhat changed between run {from} and run {to} (ecp.run_diff):");
    // Field NULL marks a whole-instance change (created, deleted, restored).
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT coalesce(field, array_to_string(change_kinds, ', ')), count(*) \
         FROM ecp.run_diff($1, $2) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 15",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    for (what, n) in rows {
        say!("   {n:>5}  {what}");
    }
    say!("\nA few of them (ecp.change_feed):");
    #[allow(clippy::type_complexity)] // one row of a query, read once
    let rows: Vec<(
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT instance_id, change_kind, field, old_value::text, new_value::text \
         FROM ecp.change_feed WHERE run_id = $1 AND change_kind = 'updated' LIMIT 8",
    )
    .bind(to)
    .fetch_all(pool)
    .await?;
    for (id, kind, field, old, new) in rows {
        say!(
            "   {id}  {kind} {}: {} -> {}",
            field.unwrap_or_default(),
            old.unwrap_or_else(|| "(none)".into()),
            new.unwrap_or_else(|| "(none)".into())
        );
    }
    Ok(())
}

fn print_next_steps(url: &str, local: Option<&LocalPostgres>, from: i64, to: i64) {
    say!("\nLook further with psql:");
    say!("   psql '{}'", without_password(url));
    say!("   SELECT biz_region_id, status, count(*) FROM ecp.current_instances GROUP BY 1, 2 ORDER BY 1, 2;");
    say!("   SELECT * FROM ecp.run_diff({from}, {to}) LIMIT 20;");
    say!("   SELECT * FROM ecp.change_feed LIMIT 20;");
    say!("   More queries: the files under sql/.");
    if let Some(pg) = local {
        let stop = format!(
            "{} -D {} stop",
            pg.bin_dir().join("pg_ctl").display(),
            pg.data_dir().display()
        );
        say!(
            "\nThe local PostgreSQL keeps running (data in {}). Stop it with:",
            pg.data_dir().display()
        );
        if running_as_root() {
            say!("   runuser -u postgres -- {stop}");
        } else {
            say!("   {stop}");
        }
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
