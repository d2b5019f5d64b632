//! Cold start with `server_entries` entries, split into its stages: server spawn → server
//! ready (its readiness endpoint answers) → agent connected (the agent, spawned then and
//! resuming its stored identity, answers its readiness endpoint) → first SVID (a probe
//! workload polling FetchX509SVID holds one). Per run: the large-datastore instance
//! (crate::scenario::bigstore) is restarted from stopped; readiness and the probe poll every
//! 10 ms, which bounds the resolution.

use anyhow::Result;

use super::bigstore;
use super::collect::{Collector, Row};
use crate::context::Ctx;

/// Runs the scenario.
pub async fn coldstart(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut probe = bigstore::probe(ctx).await?;
    let probe_uid = probe.workers[0].uid;
    let mut c = Collector::new("coldstart");
    let k = human(ctx.sizes.server_entries);
    let total = format!("cold start, {k} entries: server spawn → first SVID");
    for (pair, kind) in ctx.schedule("coldstart") {
        bigstore::ensure(ctx, kind, probe_uid).await?;
        ctx.progress("coldstart", pair, kind);
        let s = bigstore::cold_start(ctx, kind, &mut probe).await?;
        bigstore::stop(ctx, kind).await?;
        c.low(&total, "s", kind, s.total());
        c.low(
            "cold start: spawn → server ready",
            "s",
            kind,
            s.server_ready,
        );
        c.low(
            "cold start: server ready → agent connected",
            "s",
            kind,
            s.agent_connected,
        );
        c.low(
            "cold start: agent connected → first SVID",
            "s",
            kind,
            s.first_svid,
        );
    }
    c.note(
        &total,
        "server, then agent, spawned from stopped; readiness polled every 10 ms",
    );
    probe.shutdown().await;
    Ok(c.rows())
}

/// `100000` → `100k`.
pub fn human(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
