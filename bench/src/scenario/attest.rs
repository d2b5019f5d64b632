//! Attestation matrix: the cost of what the agent must learn about a caller. Two cells per
//! system, both with the same workload executable padded to `attest_exe_bytes` (4 MiB in a
//! full run; the stripped worker with zeros appended, which still runs):
//! - uid-only: entries `unix:uid:<uid>`; SPIRE's unix attestor at its default (no path
//!   discovery, so no hashing);
//! - path+sha256: entries `unix:uid` + `unix:path` + `unix:sha256` of that executable;
//!   SPIRE with `discover_workload_path = true` (it hashes the executable to derive
//!   `unix:sha256`); sworn derives the digest because an entry needs it.
//!
//! Per run and cell (fresh instance): one workload, warm, calls FetchX509SVID
//! `attest_calls` times in a closed loop on a connected client → p50 and p99.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::collect::{Collector, Row, latencies};
use crate::context::{Ctx, UID_PROBE, connect};
use crate::peer::{EntrySpec, ExeSelectors, Kind, PeerOptions};
use crate::stats::percentile;
use crate::wire::Command;
use crate::workers::Pool;

/// Runs the scenario.
pub async fn attest(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let (exe, sel) = padded_worker(ctx)?;
    let mut pool = ctx.extra_pool(UID_PROBE + 200, 1, Some(&exe)).await?;
    let mut c = Collector::new("attest");
    let mib = ctx.sizes.attest_exe_bytes as f64 / 1048576.0;
    for (pair, kind) in ctx.schedule("attest") {
        ctx.progress("attest", pair, kind);
        for (cell, exe) in [("uid-only", None), ("path+sha256", Some(sel.clone()))] {
            let name = format!("{cell}, {mib:.0} MiB executable");
            one(ctx, kind, &mut pool, PeerOptions { exe }, &name, &mut c).await?;
        }
    }
    pool.shutdown().await;
    Ok(c.rows())
}

async fn one(
    ctx: &mut Ctx,
    kind: Kind,
    pool: &mut Pool,
    opts: PeerOptions,
    name: &str,
    c: &mut Collector,
) -> Result<()> {
    let mut peer = ctx.start_with("attest", kind, &opts).await?;
    peer.create_entries(&[EntrySpec::local(pool.workers[0].uid)])
        .await?;
    let ep = peer.endpoint();
    connect(pool, 0..1, &ep).await?;
    pool.call_all_ok(
        0..1,
        &Command::FetchUntilOk {
            socket: ep.clone(),
            interval_ms: 100,
            timeout_ms: 120_000,
        },
    )
    .await?;
    let replies = pool
        .call_all_ok(
            0..1,
            &Command::Fetch {
                socket: ep,
                count: ctx.sizes.attest_calls,
            },
        )
        .await?;
    let (lat, _, errors, first) = latencies(&replies);
    if lat.is_empty() {
        anyhow::bail!("{}: {name}: no successful fetch: {first:?}", kind.name());
    }
    if errors > 0 {
        eprintln!(
            "  {} {name}: {errors} failed calls, first: {first:?}",
            kind.name()
        );
    }
    c.low(
        &format!("fetch p50, N=1, {name}"),
        "µs",
        kind,
        percentile(&lat, 50.0).unwrap_or(0.0),
    );
    c.low(
        &format!("fetch p99, N=1, {name}"),
        "µs",
        kind,
        percentile(&lat, 99.0).unwrap_or(0.0),
    );
    peer.shutdown().await;
    Ok(())
}

/// The worker padded with zeros to `attest_exe_bytes`, and its selectors.
fn padded_worker(ctx: &Ctx) -> Result<(PathBuf, ExeSelectors)> {
    let mut bytes = std::fs::read(&ctx.worker_bin)
        .with_context(|| format!("reading {}", ctx.worker_bin.display()))?;
    let size = usize::try_from(ctx.sizes.attest_exe_bytes)?;
    if bytes.len() < size {
        bytes.resize(size, 0);
    }
    let path = ctx.work.join("sworn-bench-worker-padded");
    std::fs::write(&path, &bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok((path.clone(), exe_selectors(&path, &bytes)))
}

/// The path and SHA-256 selectors of an executable with contents `bytes`.
pub fn exe_selectors(path: &Path, bytes: &[u8]) -> ExeSelectors {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    ExeSelectors {
        path: path.display().to_string(),
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    }
}
