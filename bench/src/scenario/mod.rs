//! The benchmark scenarios (bench/README.md). Each takes the run context, measures sworn and SPIRE
//! interleaved (A B A B), and returns rows: one value per repetition per system, summarised
//! as median and spread by the report.

mod coldstart;
mod collect;
mod fetch;
mod issuance;
mod storm;
mod ttfs;

use anyhow::{Result, bail};

use crate::context::Ctx;

pub use coldstart::coldstart;
pub use collect::{Collector, Row, latencies};
pub use fetch::fetch;
pub use issuance::issuance;
pub use storm::storm;
pub use ttfs::ttfs;

/// Every scenario name, in run order.
pub const ALL: &[&str] = &["fetch", "ttfs", "issuance", "storm", "coldstart"];

/// Runs one scenario by name.
pub async fn run(name: &str, ctx: &mut Ctx) -> Result<Vec<Row>> {
    match name {
        "fetch" => fetch(ctx).await,
        "ttfs" => ttfs(ctx).await,
        "issuance" => issuance(ctx).await,
        "storm" => storm(ctx).await,
        "coldstart" => coldstart(ctx).await,
        other => bail!("unknown scenario {other:?}; known: {}", ALL.join(", ")),
    }
}
