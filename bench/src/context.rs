//! What every scenario gets from the runner: the sizes of the run, the run directory and
//! worker executable, the systems measured, the main workload pool and the floors; and the
//! uid pools the workloads run under.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::floors::Floors;
use crate::peer::{Binaries, Kind, Peer};
use crate::wire::Command;
use crate::workers::Pool;

/// First uid of the main workload pool; high so it never collides with real users.
pub const UID_BASE: u32 = 3_000_000;
/// First uid of the time-to-first-SVID pool.
pub const UID_TTFS: u32 = UID_BASE + 10_000;
/// First uid of the probe pool (storm latency probes, cold start).
pub const UID_PROBE: u32 = UID_BASE + 20_000;

/// How big a run is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    /// Name: smoke, quick or full.
    pub name: String,
    /// Repetitions per system for timing scenarios (interleaved A B A B).
    pub reps: usize,
    /// Concurrency levels of the fetch scenario, with total calls per level.
    pub fetch_levels: Vec<(usize, u32)>,
    /// Workloads in the time-to-first-SVID scenario.
    pub ttfs_workloads: usize,
    /// Entries created together in the issuance scenario.
    pub issuance_entries: usize,
    /// Repetitions of the issuance scenario (each a fresh instance per system).
    pub issuance_reps: usize,
    /// Repetitions of the storm scenario.
    pub storm_reps: usize,
    /// SVIDs in the rotation storm.
    pub storm_svids: usize,
    /// Their TTL in seconds.
    pub storm_ttl_s: u32,
    /// Server datastore sizes for the memory rows and cold start (the last one is cold-started).
    pub server_entries: Vec<usize>,
    /// Cold-start repetitions.
    pub cold_reps: usize,
    /// Memory scenario: cached SVIDs / open streams.
    pub memory_workloads: usize,
}

impl Sizes {
    /// Picks the sizes for the flags.
    pub fn new(quick: bool, smoke: bool) -> Self {
        if smoke {
            return Self {
                name: "smoke".into(),
                reps: 1,
                fetch_levels: vec![(1, 20)],
                ttfs_workloads: 2,
                issuance_entries: 2,
                issuance_reps: 1,
                storm_reps: 1,
                storm_svids: 2,
                storm_ttl_s: 10,
                server_entries: vec![100],
                cold_reps: 1,
                memory_workloads: 1,
            };
        }
        if quick {
            return Self {
                name: "quick".into(),
                reps: 2,
                fetch_levels: vec![(1, 100), (10, 200), (100, 500), (1000, 1000)],
                ttfs_workloads: 20,
                issuance_entries: 200,
                issuance_reps: 1,
                storm_reps: 1,
                storm_svids: 200,
                storm_ttl_s: 20,
                server_entries: vec![10_000],
                cold_reps: 1,
                memory_workloads: 1000,
            };
        }
        Self {
            name: "full".into(),
            reps: 3,
            fetch_levels: vec![(1, 1000), (10, 2000), (100, 3000), (1000, 5000)],
            ttfs_workloads: 100,
            issuance_entries: 1000,
            issuance_reps: 2,
            storm_reps: 2,
            storm_svids: 1000,
            storm_ttl_s: 60,
            server_entries: vec![10_000, 100_000],
            cold_reps: 3,
            memory_workloads: 1000,
        }
    }
}

/// What every scenario gets.
#[derive(Debug)]
pub struct Ctx {
    /// Sizes.
    pub sizes: Sizes,
    /// Binaries.
    pub bins: Binaries,
    /// The run directory (mode 0755: workers under other uids reach the sockets).
    pub work: PathBuf,
    /// The worker executable copy inside `work`.
    pub worker_bin: PathBuf,
    /// Systems measured, in interleaving order.
    pub kinds: Vec<Kind>,
    /// The main workload pool (uids from [`UID_BASE`]).
    pub pool: Pool,
    /// Whether workers can take other uids (the runner is root).
    pub root: bool,
    /// The floors of this run.
    pub floors: Floors,
    /// Raw per-scenario data for the JSON.
    pub raw: serde_json::Map<String, serde_json::Value>,
    seq: u32,
}

impl Ctx {
    /// A context for one run, with an empty main pool and no raw data yet.
    pub fn new(
        sizes: Sizes,
        bins: Binaries,
        work: PathBuf,
        worker_bin: PathBuf,
        kinds: Vec<Kind>,
        root: bool,
        floors: Floors,
    ) -> Self {
        Self {
            sizes,
            bins,
            work,
            worker_bin,
            kinds,
            pool: Pool::new(),
            root,
            floors,
            raw: serde_json::Map::new(),
            seq: 0,
        }
    }

    /// Makes sure the main pool has at least `n` workers, all connected to `endpoints`.
    pub async fn main_pool(&mut self, n: usize) -> Result<()> {
        let have = self.pool.workers.len();
        if have < n {
            let uids = if self.root {
                UID_BASE + have as u32..UID_BASE + n as u32
            } else if n == 1 {
                let me = current_uid();
                me..me + 1
            } else {
                bail!("{n} distinct workloads need distinct uids: run as root");
            };
            let log = self.work.join("workers.log");
            self.pool.spawn(&self.worker_bin, uids, &log).await?;
        }
        Ok(())
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

    /// Starts a fresh `kind` system for scenario `label`.
    pub async fn start(&mut self, label: &str, kind: Kind) -> Result<Peer> {
        let dir = self.instance_dir(label, kind)?;
        Peer::start(kind, &self.bins, &dir)
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

    /// A new pool of `n` workers from uid `base`.
    pub async fn extra_pool(&self, base: u32, n: usize) -> Result<Pool> {
        let mut p = Pool::new();
        let uids = if self.root {
            base..base + n as u32
        } else if n == 1 {
            let me = current_uid();
            me..me + 1
        } else {
            bail!("{n} distinct workloads need distinct uids: run as root");
        };
        p.spawn(&self.worker_bin, uids, &self.work.join("workers.log"))
            .await?;
        Ok(p)
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
