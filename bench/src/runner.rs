//! The runner: prepares the run directory and the worker executable, measures the floors,
//! runs the chosen scenarios and hands the rows to the report.
//!
//! Sizes: `--quick` is meant to finish in about five minutes; the default is the full run
//! committed as `bench/RESULTS.md`; `--smoke` (CI) runs one sworn-only scenario at a tiny
//! size, never needs SPIRE and never overwrites the committed results.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::floors::{self, Floors};
use crate::peer::{Binaries, Kind, Peer};
use crate::report::{self, Machine, Report};
use crate::scenario::{self, Row};
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

/// Command-line choices.
#[derive(Debug, Clone)]
pub struct Options {
    /// One scenario, or all.
    pub scenario: Option<String>,
    /// `--quick`.
    pub quick: bool,
    /// `--smoke`: sworn only, one scenario, tiny.
    pub smoke: bool,
    /// Where results go (`bench/`).
    pub out_dir: PathBuf,
    /// The binaries.
    pub bins: Binaries,
    /// The worker executable as built.
    pub worker_bin: PathBuf,
    /// Keep the run directory (logs, datastores) for inspection.
    pub keep: bool,
    /// Measure only these systems (by name); empty = both.
    pub only: Vec<String>,
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

fn current_uid() -> u32 {
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

/// Writes `md` from a `results.json` written earlier (report fixes without a re-run).
pub fn render(json: &std::path::Path, md: &std::path::Path) -> Result<()> {
    let bytes = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
    let report: Report = serde_json::from_slice(&bytes)?;
    std::fs::write(md, report::markdown(&report))?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(opts: Options) -> Result<()> {
    let sizes = Sizes::new(opts.quick, opts.smoke);
    let root = current_uid() == 0;
    let names: Vec<String> = match (&opts.scenario, opts.smoke) {
        (Some(s), _) => vec![s.clone()],
        (None, true) => vec!["fetch".into()],
        (None, false) => scenario::ALL.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut kinds = if opts.smoke {
        vec![Kind::Sworn]
    } else {
        vec![Kind::Sworn, Kind::Spire]
    };
    if !opts.only.is_empty() {
        kinds.retain(|k| opts.only.iter().any(|o| o == k.name()));
    }
    if kinds.contains(&Kind::Spire)
        && (opts.bins.spire_server.is_none() || opts.bins.spire_agent.is_none())
    {
        bail!("SPIRE is not built: run bench/spire/build.sh (or use --smoke for sworn only)");
    }
    let work = std::env::temp_dir().join(format!("sworn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    let worker_bin = work.join("sworn-bench-worker");
    std::fs::copy(&opts.worker_bin, &worker_bin)
        .with_context(|| format!("copying {}", opts.worker_bin.display()))?;
    // Both agents hash this file on every call: strip it to a realistic small binary.
    let _ = std::process::Command::new("strip")
        .arg(&worker_bin)
        .status();
    std::fs::set_permissions(&worker_bin, std::fs::Permissions::from_mode(0o755))?;
    eprintln!("sworn-bench: {} run in {}", sizes.name, work.display());

    let budget = if opts.smoke {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let floors = floors::measure(&work, &worker_bin, budget).await?;
    eprintln!("sworn-bench: floors {floors:?}");
    let mut ctx = Ctx {
        sizes: sizes.clone(),
        bins: opts.bins.clone(),
        work: work.clone(),
        worker_bin,
        kinds: kinds.clone(),
        pool: Pool::new(),
        root,
        floors: floors.clone(),
        raw: serde_json::Map::new(),
        seq: 0,
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        eprintln!("sworn-bench: scenario {name}");
        let started = std::time::Instant::now();
        match scenario::run(name, &mut ctx).await {
            Ok(r) => {
                for row in &r {
                    eprintln!("  {}", report::row_line(row));
                }
                rows.extend(r);
            }
            Err(e) => {
                eprintln!("sworn-bench: scenario {name} failed: {e:#}");
                failures.push(format!("{name}: {e:#}"));
            }
        }
        eprintln!(
            "sworn-bench: scenario {name} took {:.0?}",
            started.elapsed()
        );
    }
    let Ctx { pool, raw, .. } = ctx;
    pool.shutdown().await;

    let report = Report {
        size: sizes,
        machine: Machine::probe(),
        versions: report::versions(&opts.bins),
        date: report::now_utc(),
        systems: kinds.iter().map(|k| k.name().to_owned()).collect(),
        floors,
        rows,
        failures: failures.clone(),
        raw,
    };
    let (json_path, md_path) = if opts.smoke {
        let d = std::env::temp_dir();
        (
            d.join("sworn-bench-smoke.json"),
            d.join("sworn-bench-smoke.md"),
        )
    } else {
        (
            opts.out_dir.join("results.json"),
            opts.out_dir.join("RESULTS.md"),
        )
    };
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)?;
    let md = report::markdown(&report);
    std::fs::write(&md_path, &md)?;
    println!("{md}");
    eprintln!(
        "sworn-bench: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    if opts.keep {
        eprintln!("sworn-bench: kept {}", work.display());
    } else {
        // Smoke results were printed above; nothing in the run directory is needed.
        let _ = std::fs::remove_dir_all(&work);
    }
    if !failures.is_empty() {
        bail!(
            "{} scenario(s) failed: {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(())
}
