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

use crate::context::current_uid;
use crate::floors;
use crate::peer::{Binaries, Kind};
use crate::report::{self, Machine, Report};
use crate::scenario::{self, Row};

pub use crate::context::{Ctx, Sizes, UID_BASE, UID_PROBE, UID_TTFS, connect};

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
    let mut ctx = Ctx::new(
        sizes.clone(),
        opts.bins.clone(),
        work.clone(),
        worker_bin,
        kinds.clone(),
        root,
        floors.clone(),
    );
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
