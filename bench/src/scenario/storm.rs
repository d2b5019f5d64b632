//! Rotation storm: `storm_svids` SVIDs due for rotation at one instant T0.
//!
//! Per run (one system, fresh instance): every storm workload gets an entry with the same
//! short TTL (`storm_ttl_s`), fetches its SVID and holds it on an open FetchX509SVID stream.
//! The agent is then frozen (SIGSTOP) until every SVID is past its latest possible rotation
//! point and resumed (SIGCONT) at T0, a margin (TTL/12, at least 2 s) after the last rotation point and
//! before the first expiry, so all `storm_svids` are due at once. The latest rotation point
//! of an SVID is the half-life of `max(notBefore, seen)..notAfter`, where `seen` is when
//! every storm workload held its SVID (read from the certificate and the bench's clock):
//! SPIRE's agent rotates at the half-life of the certificate's own validity, sworn's at the
//! half-life counted from receipt (its server backdates `notBefore` by 10 s, so the
//! certificate's half-life comes earlier; receipt is before `seen`). Both rotate by then.
//! Measured from T0:
//! - drain time: T0 → the last workload receiving its rotated SVID on its stream;
//! - first rotated SVID after T0, and the jitter: the spread of the SVIDs' rotation points
//!   (last − first latest rotation point), how far apart they fell due before T0;
//! - fetch p99 of [`PROBES`] warm workloads (1 h SVIDs) calling in a closed loop from T0,
//!   counting calls started before the last rotated SVID arrived;
//! - peak agent and server RSS during the drain.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::collect::{Collector, Row, latencies};
use crate::context::{Ctx, UID_BASE, UID_PROBE, connect};
use crate::peer::{EntrySpec, Kind};
use crate::procfs::rss_bytes;
use crate::stats::percentile;
use crate::wire::{Command, Reply, now_ns};
use crate::workers::Pool;

/// Probe workloads measuring latency during the storm.
const PROBES: usize = 5;
const MIB: f64 = 1024.0 * 1024.0;

/// Runs the scenario.
pub async fn storm(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let n = ctx.sizes.storm_svids;
    let probes_n = if ctx.root { PROBES } else { 1 };
    ctx.main_pool(n).await?;
    let mut probes = ctx.extra_pool(UID_PROBE, probes_n, None).await?;
    let mut c = Collector::new("storm");
    let drain = format!("storm drain, {n} SVIDs due together (T0 → last rotated SVID pushed)");
    for (pair, kind) in ctx.schedule("storm") {
        ctx.progress("storm", pair, kind);
        one(ctx, kind, &mut probes, &drain, &mut c).await?;
    }
    c.note(
        &drain,
        "agent frozen (SIGSTOP) until every SVID is past its rotation point, resumed at T0",
    );
    c.floor(
        &drain,
        format!(
            "{:.2} s of P-256 sign+verify on one core",
            n as f64 / ctx.floors.p256_sign_verify_per_s
        ),
    );
    probes.shutdown().await;
    ctx.raw.insert(
        "storm_ttl_s".into(),
        serde_json::json!(ctx.sizes.storm_ttl_s),
    );
    Ok(c.rows())
}

async fn one(
    ctx: &mut Ctx,
    kind: Kind,
    probes: &mut Pool,
    drain: &str,
    c: &mut Collector,
) -> Result<()> {
    let n = ctx.sizes.storm_svids;
    let ttl = ctx.sizes.storm_ttl_s;
    let probes_n = probes.workers.len();
    let mut peer = ctx.start("storm", kind).await?;
    let ep = peer.endpoint();
    let mut specs: Vec<EntrySpec> = (0..n)
        .map(|i| EntrySpec {
            ttl_seconds: Some(ttl),
            ..EntrySpec::local(ctx.uid(UID_BASE, i))
        })
        .collect();
    specs.extend((0..probes_n).map(|i| EntrySpec::local(ctx.uid(UID_PROBE, i))));
    peer.create_entries(&specs).await?;
    connect(&mut ctx.pool, 0..n, &ep).await?;
    connect(probes, 0..probes_n, &ep).await?;
    let until_ok = Command::FetchUntilOk {
        socket: ep.clone(),
        interval_ms: 100,
        timeout_ms: 120_000,
    };
    probes.call_all_ok(0..probes_n, &until_ok).await?;
    ctx.pool.call_all_ok(0..n, &until_ok).await?;
    // Every storm workload holds its SVID by now, so each was received before this.
    let seen = now_ns().div_ceil(1_000_000_000);
    ctx.pool.drain_events();
    let opened = ctx
        .pool
        .call_all_ok(0..n, &Command::Stream { socket: ep.clone() })
        .await?;
    let first_tags: HashMap<u32, u64> = ctx.pool.workers[0..n]
        .iter()
        .zip(&opened)
        .filter_map(|(w, r)| match r {
            Reply::Streaming { tag, .. } => Some((w.uid, *tag)),
            _ => None,
        })
        .collect();
    let validity: Vec<(u64, u64)> = opened
        .iter()
        .filter_map(|r| match r {
            Reply::Streaming { validity, .. } => *validity,
            _ => None,
        })
        .collect();
    if validity.len() < n {
        bail!(
            "{}: could not read the validity of every initial SVID",
            kind.name()
        );
    }
    // Every SVID's latest rotation point is the half-life of max(notBefore, seen)..notAfter
    // (module docs; sworn also brings it forward by up to a tenth of the lifetime, at
    // random); T0 is a margin after the last one, well before the first expiry.
    let half = |(nb, na): (u64, u64)| {
        let from = nb.max(seen);
        from as f64 + na.saturating_sub(from) as f64 / 2.0
    };
    let due_last = validity.iter().copied().map(half).fold(f64::MIN, f64::max);
    let due_first = validity.iter().copied().map(half).fold(f64::MAX, f64::min);
    let expiry_first = validity.iter().map(|v| v.1).min().unwrap_or(0) as f64;
    let spread_s = due_last - due_first;
    let margin = (f64::from(ttl) / 12.0).max(2.0);
    let t0_unix = due_last + margin;
    if t0_unix + margin > expiry_first {
        bail!(
            "{}: the initial SVIDs' rotation points are {spread_s:.0} s apart: with a {ttl} s \
             TTL they cannot all be due at one instant before the first expires",
            kind.name()
        );
    }
    peer.signal_agent(0, "STOP").await?;
    let wait = t0_unix - now_ns() as f64 / 1e9;
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    let (agent, server) = (
        peer.agent_pid().unwrap_or(0),
        peer.server_pid().unwrap_or(0),
    );
    peer.signal_agent(0, "CONT").await?;
    let t0 = now_ns();
    let t0_instant = Instant::now();
    let probe_ms = ((expiry_first - t0_unix) * 1000.0) as u64;
    let pool = &mut ctx.pool;
    let probe_calls = probes.call_each(0..probes_n, |_| Command::FetchFor {
        socket: ep.clone(),
        millis: probe_ms,
    });
    let watch = async {
        let mut rotated = HashSet::new();
        let (mut first, mut last) = (None::<u64>, 0u64);
        let (mut peak_agent, mut peak_server) = (0u64, 0u64);
        let deadline = t0_instant + Duration::from_millis(probe_ms);
        let mut next_sample = Instant::now();
        while rotated.len() < n && Instant::now() < deadline {
            if Instant::now() >= next_sample {
                peak_agent = peak_agent.max(rss_bytes(agent).unwrap_or(0));
                peak_server = peak_server.max(rss_bytes(server).unwrap_or(0));
                next_sample += Duration::from_millis(100);
            }
            if let Some((uid, Reply::Update { at_ns, tag, .. })) =
                pool.next_event(Duration::from_millis(100)).await
                && first_tags.get(&uid) != Some(&tag)
                && rotated.insert(uid)
            {
                first = Some(first.map_or(at_ns, |f| f.min(at_ns)));
                last = last.max(at_ns);
            }
        }
        (rotated.len(), first, last, peak_agent, peak_server)
    };
    let (probe_replies, (rotated, first, last, peak_agent, peak_server)) =
        tokio::join!(probe_calls, watch);
    let probe_replies = probe_replies?;
    ctx.pool.call_all_ok(0..n, &Command::CloseStreams).await?;
    ctx.pool.drain_events();
    peer.shutdown().await;
    let Some(first) = first else {
        bail!("{}: no SVID rotated after T0", kind.name());
    };
    if rotated < n {
        bail!(
            "{}: only {rotated} of {n} SVIDs rotated after T0",
            kind.name()
        );
    }
    let (lat, at, _, _) = latencies(&probe_replies);
    let during: Vec<f64> = lat
        .iter()
        .zip(&at)
        .filter(|(_, t)| **t >= t0 && **t <= last)
        .map(|(l, _)| *l)
        .collect();
    c.low(drain, "s", kind, last.saturating_sub(t0) as f64 / 1e9);
    c.low(
        "storm: T0 → first rotated SVID pushed",
        "s",
        kind,
        first.saturating_sub(t0) as f64 / 1e9,
    );
    c.low(
        "storm jitter: spread of the rotation points before T0",
        "s",
        kind,
        spread_s,
    );
    c.low(
        "storm: fetch p99 during the drain",
        "µs",
        kind,
        percentile(&during, 99.0).unwrap_or(0.0),
    );
    c.low(
        "storm: peak agent RSS",
        "MiB",
        kind,
        peak_agent as f64 / MIB,
    );
    c.low(
        "storm: peak server RSS",
        "MiB",
        kind,
        peak_server as f64 / MIB,
    );
    Ok(())
}
