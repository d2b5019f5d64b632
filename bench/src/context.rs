//! What every scenario gets from the runner: the sizes of the run, the run directory and
//! worker executables, the systems measured and the seeded order of each pair, the main
//! workload pool and the floors; and the uid pools the workloads run under.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::floors::Floors;
use crate::peer::{Binaries, EntrySpec, ExeSelectors, Kind, Peer, PeerOptions};
use crate::stats::Rng;
use crate::wire::Command;
use crate::workers::Pool;

pub use crate::sizes::Sizes;

/// First uid of the main workload pool; high so it never collides with real users.
pub const UID_BASE: u32 = 3_000_000;
/// First uid of the probe pool (storm probes, cold start, attestation matrix).
pub const UID_PROBE: u32 = UID_BASE + 20_000;

/// What every scenario gets.
#[derive(Debug)]
pub struct Ctx {
    /// Sizes.
    pub sizes: Sizes,
    /// Binaries.
    pub bins: Binaries,
    /// The run directory (mode 0755: workers under other uids reach the sockets).
    pub work: PathBuf,
    /// The worker executable copy inside `work` (stripped).
    pub worker_bin: PathBuf,
    /// Its path and digest, for entries that require them.
    pub worker_exe: ExeSelectors,
    /// Systems measured.
    pub kinds: Vec<Kind>,
    /// The main workload pool (uids from [`UID_BASE`]).
    pub pool: Pool,
    /// Whether workers can take other uids (the runner is root).
    pub root: bool,
    /// The floors of this run.
    pub floors: Floors,
    /// Raw per-scenario data for the JSON.
    pub raw: serde_json::Map<String, serde_json::Value>,
    /// Stopped instances holding a large datastore, shared by the memory and cold-start
    /// scenarios (built once per system, restarted per repetition).
    pub bigstore: BTreeMap<Kind, Peer>,
    /// The pair order: which system runs first, drawn per pair.
    rng: Rng,
    /// The order every scenario ran its pairs in, for the JSON.
    pub orders: serde_json::Map<String, serde_json::Value>,
    started: Instant,
    estimate_s: f64,
    seq: u32,
}

impl Ctx {
    /// A context for one run, with an empty main pool and no raw data yet.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sizes: Sizes,
        bins: Binaries,
        work: PathBuf,
        worker_bin: PathBuf,
        worker_exe: ExeSelectors,
        kinds: Vec<Kind>,
        root: bool,
        floors: Floors,
        seed: u64,
        estimate_s: f64,
    ) -> Self {
        Self {
            sizes,
            bins,
            work,
            worker_bin,
            worker_exe,
            kinds,
            pool: Pool::new(),
            root,
            floors,
            raw: serde_json::Map::new(),
            bigstore: BTreeMap::new(),
            rng: Rng::new(seed),
            orders: serde_json::Map::new(),
            started: Instant::now(),
            estimate_s,
            seq: 0,
        }
    }

    /// The runs of `scenario`: `sizes.pairs` pairs, each both systems (those measured) in an
    /// order drawn from the seeded generator; recorded for the JSON.
    pub fn schedule(&mut self, scenario: &str) -> Vec<(usize, Kind)> {
        let mut out = Vec::new();
        let mut record = Vec::new();
        for pair in 0..self.sizes.pairs {
            let sworn_first = self.rng.coin();
            let mut order = self.kinds.clone();
            order.sort();
            if !sworn_first {
                order.reverse();
            }
            record.push(serde_json::json!(
                order.iter().map(|k| k.name()).collect::<Vec<_>>()
            ));
            out.extend(order.into_iter().map(|k| (pair, k)));
        }
        self.orders
            .insert(scenario.to_owned(), serde_json::Value::Array(record));
        out
    }

    /// Prints a progress line: elapsed, estimate, and what runs now.
    pub fn progress(&self, scenario: &str, pair: usize, kind: Kind) {
        eprintln!(
            "sworn-bench: [{:>4.0}s of ~{:.0}s] {scenario}: pair {}/{}, {}",
            self.started.elapsed().as_secs_f64(),
            self.estimate_s,
            pair + 1,
            self.sizes.pairs,
            kind.name()
        );
    }

    /// Makes sure the main pool has at least `n` workers.
    pub async fn main_pool(&mut self, n: usize) -> Result<()> {
        let have = self.pool.workers.len();
        if have < n {
            let uids = self.uids(UID_BASE + have as u32, n - have)?;
            let log = self.work.join("workers.log");
            self.pool.spawn(&self.worker_bin, uids, &log).await?;
        }
        Ok(())
    }

    fn uids(&self, base: u32, n: usize) -> Result<std::ops::Range<u32>> {
        if self.root {
            Ok(base..base + n as u32)
        } else if n == 1 {
            let me = current_uid();
            Ok(me..me + 1)
        } else {
            bail!("{n} distinct workloads need distinct uids: run as root");
        }
    }

    /// A fresh directory for one system instance.
    pub fn instance_dir(&mut self, label: &str, kind: Kind) -> Result<PathBuf> {
        self.seq += 1;
        let d = self
            .work
            .join(format!("{}-{label}-{}", self.seq, kind.name()));
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        Ok(d)
    }

    /// Starts a fresh `kind` system for scenario `label` with uid-only entries.
    pub async fn start(&mut self, label: &str, kind: Kind) -> Result<Peer> {
        self.start_with(label, kind, &PeerOptions::default()).await
    }

    /// Starts a fresh `kind` system for scenario `label` with `opts`.
    pub async fn start_with(
        &mut self,
        label: &str,
        kind: Kind,
        opts: &PeerOptions,
    ) -> Result<Peer> {
        let dir = self.instance_dir(label, kind)?;
        Peer::start(kind, &self.bins, &dir, opts)
            .await
            .with_context(|| format!("starting {} for {label}", kind.name()))
    }

    /// The uid a workload of pool `base` index `i` runs as.
    pub fn uid(&self, base: u32, i: usize) -> u32 {
        if self.root {
            base + i as u32
        } else {
            current_uid()
        }
    }

    /// A new pool of `n` workers from uid `base`, running `bin` (the worker by default).
    pub async fn extra_pool(
        &self,
        base: u32,
        n: usize,
        bin: Option<&std::path::Path>,
    ) -> Result<Pool> {
        let mut p = Pool::new();
        p.spawn(
            bin.unwrap_or(&self.worker_bin),
            self.uids(base, n)?,
            &self.work.join("workers.log"),
        )
        .await?;
        Ok(p)
    }

    /// Stops the shared large-datastore instances.
    pub async fn shutdown(self) {
        let Ctx { pool, bigstore, .. } = self;
        pool.shutdown().await;
        for (_, p) in bigstore {
            p.shutdown().await;
        }
    }
}

impl Ctx {
    /// Registers one local (uid-only) entry for each of workers `0..n` on `peer` and
    /// connects those workers to its Workload API; returns the endpoint.
    pub async fn serve_local(&mut self, peer: &mut Peer, n: usize) -> Result<String> {
        let specs: Vec<EntrySpec> = (0..n)
            .map(|i| EntrySpec::local(self.uid(UID_BASE, i)))
            .collect();
        peer.create_entries(&specs).await?;
        let ep = peer.endpoint();
        connect(&mut self.pool, 0..n, &ep).await?;
        Ok(ep)
    }
}

/// Connects workers `idx` of `pool` to `endpoint`.
pub async fn connect(pool: &mut Pool, idx: std::ops::Range<usize>, endpoint: &str) -> Result<()> {
    pool.call_all_ok(
        idx,
        &Command::Connect {
            socket: endpoint.to_owned(),
        },
    )
    .await
    .map(|_| ())
}

pub(crate) fn current_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_ascii_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}
