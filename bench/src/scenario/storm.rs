//! Rotation storm: `storm_svids` SVIDs minted together with a short TTL (the same on both
//! sides, `storm_ttl_s`), each held by an open FetchX509SVID stream, all due for rotation at
//! about the same time. Measured per system on a fresh instance:
//! - drain time: first rotated SVID pushed → last workload holding a rotated SVID;
//! - peak agent and server RSS, sampled every 250 ms from the streams' opening to the end;
//! - fetch p99 of [`PROBES`] warm workloads (1 h SVIDs) calling in a closed loop, counting
//!   only calls started within the storm (first push − 1 s … last push + 1 s).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::collect::{Collector, Row, latencies};
use crate::context::{Ctx, UID_BASE, UID_PROBE, connect};
use crate::peer::EntrySpec;
use crate::procfs::rss_bytes;
use crate::stats::percentile;
use crate::wire::{Command, Reply};

/// Probe workloads measuring latency during the storm.
const PROBES: usize = 10;
const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario.
pub async fn storm(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.storm_svids;
    let ttl = ctx.sizes.storm_ttl_s;
    let probes_n = if ctx.root { PROBES } else { 1 };
    ctx.main_pool(n).await?;
    let mut probes = ctx.extra_pool(UID_PROBE, probes_n).await?;
    let mut c = Collector::new("storm");
    let drain_name = format!("drain time, {n} SVIDs (first → last rotated SVID pushed)");
    let reps = ctx.sizes.storm_reps;
    for _rep in 0..reps {
        for kind in ctx.kinds.clone() {
            let mut peer = ctx.start("storm", kind).await?;
            let ep = peer.endpoint();
            let mut specs: Vec<EntrySpec> = (0..n)
                .map(|i| EntrySpec {
                    uid: ctx.uid(UID_BASE, i),
                    ttl_seconds: Some(ttl),
                    fake_node: None,
                })
                .collect();
            specs.extend((0..probes_n).map(|i| EntrySpec::local(ctx.uid(UID_PROBE, i))));
            peer.create_entries(&specs).await?;
            connect(&mut ctx.pool, 0..n, &ep).await?;
            connect(&mut probes, 0..probes_n, &ep).await?;
            let until_ok = Command::FetchUntilOk {
                socket: ep.clone(),
                interval_ms: 100,
                timeout_ms: 120_000,
            };
            probes.call_all_ok(0..probes_n, &until_ok).await?;
            ctx.pool.call_all_ok(0..n, &until_ok).await?;
            ctx.pool.drain_events();
            let opened_replies = ctx
                .pool
                .call_all_ok(0..n, &Command::Stream { socket: ep.clone() })
                .await?;
            let first_tags: HashMap<u32, u64> = ctx.pool.workers[0..n]
                .iter()
                .zip(&opened_replies)
                .filter_map(|(w, r)| match r {
                    Reply::Streaming { tag } => Some((w.uid, *tag)),
                    _ => None,
                })
                .collect();
            let opened = Instant::now();
            // Probes run for the whole TTL: every SVID is rotated within it on both systems.
            let probe_ms = u64::from(ttl) * 1000;
            let (agent, server) = (
                peer.agent_pid().unwrap_or(0),
                peer.server_pid().unwrap_or(0),
            );
            let pool = &mut ctx.pool;
            let probe_calls = probes.call_each(0..probes_n, |_| Command::FetchFor {
                socket: ep.clone(),
                millis: probe_ms,
            });
            let watch = async {
                let mut rotated = HashSet::new();
                let (mut first, mut last) = (None::<u64>, 0u64);
                let (mut peak_agent, mut peak_server) = (0u64, 0u64);
                let mut ended = 0usize;
                let deadline = opened + Duration::from_secs(u64::from(ttl) + 15);
                let mut next_sample = Instant::now();
                while rotated.len() < n && Instant::now() < deadline {
                    if Instant::now() >= next_sample {
                        peak_agent = peak_agent.max(rss_bytes(agent).unwrap_or(0));
                        peak_server = peak_server.max(rss_bytes(server).unwrap_or(0));
                        next_sample += Duration::from_millis(250);
                    }
                    if let Some((uid, ev)) = pool.next_event(Duration::from_millis(250)).await {
                        match ev {
                            Reply::Update { at_ns, tag, .. }
                                if first_tags.get(&uid) != Some(&tag) && rotated.insert(uid) =>
                            {
                                first = Some(first.map_or(at_ns, |f| f.min(at_ns)));
                                last = last.max(at_ns);
                            }
                            Reply::StreamEnded { .. } => ended += 1,
                            _ => {}
                        }
                    }
                }
                (rotated.len(), first, last, peak_agent, peak_server, ended)
            };
            let (probe_replies, (rotated, first, last, peak_agent, peak_server, ended)) =
                tokio::join!(probe_calls, watch);
            let probe_replies = probe_replies?;
            ctx.pool.call_all_ok(0..n, &Command::CloseStreams).await?;
            ctx.pool.drain_events();
            let Some(first) = first else {
                bail!("{}: no SVID rotated within {}s", kind.name(), ttl + 15);
            };
            let (lat, at, errors, _) = latencies(&probe_replies);
            let (lo, hi) = (first.saturating_sub(1_000_000_000), last + 1_000_000_000);
            let during: Vec<f64> = lat
                .iter()
                .zip(&at)
                .filter(|(_, t)| **t >= lo && **t <= hi)
                .map(|(l, _)| *l)
                .collect();
            c.low(&drain_name, "s", kind, (last - first) as f64 / 1e9);
            c.high("SVIDs rotated and pushed", "SVIDs", kind, rotated as f64);
            c.low(
                "peak agent RSS during storm",
                "MiB",
                kind,
                peak_agent as f64 / MIB,
            );
            c.low(
                "peak server RSS during storm",
                "MiB",
                kind,
                peak_server as f64 / MIB,
            );
            c.low(
                "fetch p99 during storm",
                "µs",
                kind,
                percentile(&during, 99.0).unwrap_or(0.0),
            );
            c.low(
                "fetch p50 during storm",
                "µs",
                kind,
                percentile(&during, 50.0).unwrap_or(0.0),
            );
            if errors > 0 || ended > 0 {
                eprintln!(
                    "  {}: {errors} probe errors, {ended} streams ended",
                    kind.name()
                );
            }
            peer.shutdown().await;
        }
    }
    c.note(
        &drain_name,
        "TTL set to the same short value on both sides; both rotate at about half-life",
    );
    c.floor(
        &drain_name,
        format!(
            "{:.2} s of P-256 sign+verify on one core",
            n as f64 / ctx.floors.p256_sign_verify_per_s
        ),
    );
    probes.shutdown().await;
    ctx.raw.insert("storm_ttl_s".into(), serde_json::json!(ttl));
    Ok(c.rows())
}
