//! Time to first SVID: entry created → SVID fetched, for workloads that are already running
//! and retrying (as a freshly started pod's SPIFFE client does).
//!
//! Workloads go in batches of [`BATCH`]: the batch's entries are created together, and the
//! clock starts when the server has acknowledged all of them; each workload then calls
//! FetchX509SVID every [`POLL_MS`] until it gets an SVID. Batches alternate between systems.
//! The poll interval bounds the resolution from below.

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::{Ctx, UID_TTFS, connect};
use crate::peer::EntrySpec;
use crate::stats::percentile;
use crate::wire::{Command, Reply, now_ns};

/// Workloads whose entries are created together.
const BATCH: usize = 10;
/// Retry interval of a workload without an SVID.
const POLL_MS: u64 = 25;

/// Runs the scenario.
pub async fn ttfs(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.ttfs_workloads;
    let mut pool = ctx.extra_pool(UID_TTFS, n).await?;
    let mut peers = Vec::new();
    for kind in ctx.kinds.clone() {
        let peer = ctx.start("ttfs", kind).await?;
        connect(&mut pool, 0..n, &peer.endpoint()).await?;
        peers.push(peer);
    }
    let mut c = Collector::new("ttfs");
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); peers.len()];
    let mut raw = serde_json::Map::new();
    for start in (0..n).step_by(BATCH) {
        let idx = start..(start + BATCH).min(n);
        for (pi, peer) in peers.iter_mut().enumerate() {
            let specs: Vec<EntrySpec> = idx
                .clone()
                .map(|i| EntrySpec::local(ctx.uid(UID_TTFS, i)))
                .collect();
            peer.create_entries(&specs).await?;
            let t0 = now_ns();
            let replies = pool
                .call_all_ok(
                    idx.clone(),
                    &Command::FetchUntilOk {
                        socket: peer.endpoint(),
                        interval_ms: POLL_MS,
                        timeout_ms: 120_000,
                    },
                )
                .await?;
            let ms: Vec<f64> = replies
                .iter()
                .filter_map(|r| match r {
                    Reply::Fetched { at_ns, .. } => Some(at_ns.saturating_sub(t0) as f64 / 1e6),
                    _ => None,
                })
                .collect();
            c.low(
                "time to first SVID, batch p50",
                "ms",
                peer.kind(),
                percentile(&ms, 50.0).unwrap_or(0.0),
            );
            all[pi].extend(ms);
        }
    }
    for (pi, peer) in peers.iter().enumerate() {
        let k = peer.kind();
        c.low(
            "time to first SVID, p50",
            "ms",
            k,
            percentile(&all[pi], 50.0).unwrap_or(0.0),
        );
        c.low(
            "time to first SVID, p99",
            "ms",
            k,
            percentile(&all[pi], 99.0).unwrap_or(0.0),
        );
        raw.insert(k.name().to_owned(), serde_json::json!(all[pi]));
    }
    c.note(
        "time to first SVID, p50",
        "entries created 10 at a time; workloads retry every 25 ms",
    );
    c.floor("time to first SVID, p50", format!("poll {POLL_MS} ms"));
    ctx.raw
        .insert("ttfs_ms".into(), serde_json::Value::Object(raw));
    pool.shutdown().await;
    for p in peers {
        p.shutdown().await;
    }
    Ok(c.rows())
}
