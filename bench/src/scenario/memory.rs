//! Server memory with `server_entries` entries and an agent connected. Per run: the
//! large-datastore instance (crate::scenario::bigstore) is cold-started (server, then its
//! agent, then the probe's first SVID), left to settle for [`SETTLE`], and the server's
//! resident set (`VmRSS`) is read; the agent's too.

use std::time::Duration;

use anyhow::Result;

use super::bigstore;
use super::coldstart::human;
use super::collect::{Collector, Row};
use crate::context::Ctx;
use crate::procfs::rss_bytes;

const MIB: f64 = 1024.0 * 1024.0;
/// Wait after the first SVID before reading memory.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs the scenario.
pub async fn memory(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut probe = bigstore::probe(ctx).await?;
    let probe_uid = probe.workers[0].uid;
    let mut c = Collector::new("memory");
    let k = human(ctx.sizes.server_entries);
    let server = format!("server RSS, {k} entries, agent connected");
    for (pair, kind) in ctx.schedule("memory") {
        bigstore::ensure(ctx, kind, probe_uid).await?;
        ctx.progress("memory", pair, kind);
        bigstore::cold_start(ctx, kind, &mut probe).await?;
        tokio::time::sleep(SETTLE).await;
        if let Some(p) = bigstore::peer(ctx, kind) {
            if let Some(pid) = p.server_pid() {
                c.low(&server, "MiB", kind, rss_bytes(pid)? as f64 / MIB);
            }
            if let Some(pid) = p.agent_pid() {
                c.low(
                    &format!("agent RSS, server holding {k} entries"),
                    "MiB",
                    kind,
                    rss_bytes(pid)? as f64 / MIB,
                );
            }
        }
        bigstore::stop(ctx, kind).await?;
    }
    c.note(
        &server,
        "the agent's own entries: one; the rest belong to 100 agents that never connect",
    );
    probe.shutdown().await;
    Ok(c.rows())
}
