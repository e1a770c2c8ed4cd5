//! `ecp-inventory crawl`: every instance of one scope, as JSON lines on stdout.

use std::collections::HashSet;
use std::hash::BuildHasher as _;
use std::io::Write;

use anyhow::Context;

use super::{ApiArgs, FilterArgs};
use crate::api::model;
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
    let (mut instances, mut distinct, mut duplicates) = (0u64, 0u64, 0u64);
    // The distinct instances, counted here (the crawl's own record of ids is
    // fixed in size, and may miss one): a 64-bit hash of each id, exact but for
    // a collision, about once in 3*10^7 crawls of a million instances.
    let hasher = std::hash::RandomState::new();
    let mut listed: HashSet<u64> = HashSet::new();
    let mut total_count: Option<u64> = None;
    while let Some(page) = pages.recv().await {
        let page = page.context("crawl failed")?;
        match print(&mut out, &page.instances) {
            // The reader went away (`| head`): nobody is left to print for.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                tracing::debug!("stdout closed: the crawl stops");
                return Ok(());
            }
            written => written?,
        }
        instances += page.instances.len() as u64;
        for record in &page.instances {
            // A record without an id is some instance all the same.
            if record
                .instance_id()
                .is_none_or(|id| listed.insert(hasher.hash_one(id)))
            {
                distinct += 1;
            }
        }
        duplicates += page.duplicates;
        let counted = page.total_count.and_then(|n| u64::try_from(n).ok());
        total_count = total_count.max(counted);
        if page.is_last {
            match out.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                flushed => flushed?,
            }
            // printed: the lines written (a repeat from far back is one more);
            // distinct: the instances among them.
            tracing::info!(
                pages = page.number,
                printed = instances,
                distinct,
                duplicates,
                "crawl complete"
            );
            // Distinct instances, as the service counts them: a repeat from far
            // back must not make up for an instance the listing lost.
            if let Some(short) = total_count.and_then(|n| crawl::clear_shortfall(distinct, n)) {
                tracing::warn!(
                    distinct,
                    total_count,
                    short,
                    "the crawl reached its last page with clearly fewer instances than the \
                     service counted: pages may have been lost (try again; sync asks by id \
                     for the stored instances such a crawl left out before marking any deleted)"
                );
            }
            return Ok(());
        }
    }
    anyhow::bail!("the crawl ended without reaching its last page")
}

/// One page's instances, a line each: the record's own text, not its parsed
/// fields written anew, which would turn 123456789012345678901234567890 into
/// 1.2345678901234568e29 and 2.4e2 into 240.0 (a replay of the output would
/// differ).
fn print(out: &mut impl Write, instances: &[model::RawInstance]) -> std::io::Result<()> {
    for instance in instances {
        out.write_all(model::on_one_line(instance.text.get()).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
