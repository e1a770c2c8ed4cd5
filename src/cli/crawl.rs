//! `ecp-inventory crawl`: every instance of one scope, as JSON lines on stdout.

use std::io::Write;

use anyhow::Context;

use super::{ApiArgs, FilterArgs};
use crate::crawl;

#[derive(Debug, clap::Args)]
pub struct CrawlArgs {
    #[command(flatten)]
    pub api: ApiArgs,

    /// The business region to crawl (BizRegionId); omit for whatever the service
    /// returns without one.
    #[arg(long)]
    pub region: Option<String>,

    #[command(flatten)]
    pub filters: FilterArgs,
}

pub async fn run(args: CrawlArgs) -> anyhow::Result<()> {
    let client = args.api.client().await?;
    if let Some(region) = &args.region {
        // As sync does: the API lists nothing for an unknown region, which a
        // typo would otherwise turn into an empty, successful crawl.
        crate::sync::check_regions(&client, std::slice::from_ref(region)).await?;
    }
    let request = args.filters.request(args.region.as_deref());
    let mut pages = crawl::spawn(client, request, args.api.crawl_options());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut instances, mut duplicates) = (0u64, 0u64);
    while let Some(page) = pages.recv().await {
        let page = page.context("crawl failed")?;
        for instance in &page.instances {
            serde_json::to_writer(&mut out, &instance.fields)?;
            out.write_all(b"\n")?;
        }
        instances += page.instances.len() as u64;
        duplicates += page.duplicates;
        if page.is_last {
            out.flush()?;
            tracing::info!(pages = page.number, instances, duplicates, "crawl complete");
            return Ok(());
        }
    }
    anyhow::bail!("the crawl ended without reaching its last page")
}
