//! Server memory at large datastores and cold start.
//!
//! Per system: a fresh instance gets one entry for a probe workload on its agent; the agent
//! is stopped, and entries scoped to 100 agents that never connect are added in bulk (so the
//! real agent's view stays one entry, on both systems). Server RSS is read when the datastore
//! reaches each size in `server_entries`. Then, `cold_reps` times and alternating systems,
//! server and agent are killed and restarted together; cold start = spawn of the server →
//! the probe workload (retrying every 20 ms) holds an SVID.

use std::time::Duration;

use anyhow::Result;

use super::collect::{Collector, Row};
use crate::context::{Ctx, UID_PROBE};
use crate::peer::{EntrySpec, Peer};
use crate::procfs::rss_bytes;
use crate::wire::{Command, Reply, now_ns};

const MIB: f64 = 1024.0 * 1024.0;
/// Fake agents the bulk entries are spread over.
const FAKE_NODES: u32 = 100;
/// Entries per create call batch (progress granularity).
const CHUNK: usize = 5000;

/// Runs the scenario.
pub async fn coldstart(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let sizes = ctx.sizes.server_entries.clone();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut probe = ctx.extra_pool(UID_PROBE + 100, 1).await?;
    let probe_uid = probe.workers[0].uid;
    let mut c = Collector::new("coldstart");
    let mut peers: Vec<Peer> = Vec::new();
    for kind in ctx.kinds.clone() {
        let mut peer = ctx.start("coldstart", kind).await?;
        peer.create_entries(&[EntrySpec::local(probe_uid)]).await?;
        peer.stop_agent().await?;
        let mut made = 0usize;
        let bulk_started = std::time::Instant::now();
        for &target in &sizes {
            while made < target {
                let end = (made + CHUNK).min(target);
                let specs: Vec<EntrySpec> = (made..end)
                    .map(|i| EntrySpec {
                        uid: 100_000 + i as u32,
                        ttl_seconds: None,
                        fake_node: Some(i as u32 % FAKE_NODES),
                    })
                    .collect();
                peer.create_entries(&specs).await?;
                made = end;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Some(pid) = peer.server_pid() {
                c.low(
                    &format!("server RSS, {} entries", human(target)),
                    "MiB",
                    kind,
                    rss_bytes(pid)? as f64 / MIB,
                );
            }
        }
        c.high(
            "bulk entry creation rate (admin API)",
            "entries/s",
            kind,
            largest as f64 / bulk_started.elapsed().as_secs_f64(),
        );
        eprintln!(
            "  {}: {largest} entries in {:.0?}",
            kind.name(),
            bulk_started.elapsed()
        );
        peer.stop_server().await?;
        peers.push(peer);
    }
    let name = format!("cold start, {} entries → first SVID", human(largest));
    for _rep in 0..ctx.sizes.cold_reps {
        for peer in &mut peers {
            let spawned = peer.restart().await?;
            let t0 = now_ns() - spawned.elapsed().as_nanos() as u64;
            let replies = probe
                .call_all_ok(
                    0..1,
                    &Command::FetchUntilOk {
                        socket: peer.endpoint(),
                        interval_ms: 20,
                        timeout_ms: 600_000,
                    },
                )
                .await?;
            if let Some(Reply::Fetched { at_ns, .. }) = replies.first() {
                c.low(
                    &name,
                    "s",
                    peer.kind(),
                    at_ns.saturating_sub(t0) as f64 / 1e9,
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(pid) = peer.server_pid() {
                c.low(
                    &format!("server RSS after cold start, {} entries", human(largest)),
                    "MiB",
                    peer.kind(),
                    rss_bytes(pid)? as f64 / MIB,
                );
            }
            peer.stop_agent().await?;
            peer.stop_server().await?;
        }
    }
    c.note(
        &name,
        "server and agent restarted together; the agent resumes its stored identity",
    );
    probe.shutdown().await;
    for p in peers {
        p.shutdown().await;
    }
    Ok(c.rows())
}

fn human(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
