//! The runner: prepares the run directory and the worker executable, measures the floors,
//! prints the plan, runs the chosen scenarios (each in seeded pairs, one system at a time)
//! and hands the rows, compared, to the report.
//!
//! Sizes (crate::sizes): the full run is planned for at most 90 minutes; `--quick` is a
//! short run; `--smoke` (CI) runs every scenario at a tiny size, sworn only, never needs
//! SPIRE and never overwrites the committed results.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::context::current_uid;
use crate::floors;
use crate::peer::{Binaries, Kind};
use crate::report::{self, Machine, Report};
use crate::scenario::{self, Row};

pub use crate::context::{Ctx, Sizes, UID_BASE, UID_PROBE, connect};

/// Command-line choices.
#[derive(Debug, Clone)]
pub struct Options {
    /// Scenarios to run (`--only`); empty = all.
    pub scenarios: Vec<String>,
    /// `--quick`.
    pub quick: bool,
    /// `--smoke`: sworn only, every scenario, tiny.
    pub smoke: bool,
    /// Where results go (`bench/`).
    pub out_dir: PathBuf,
    /// The binaries.
    pub bins: Binaries,
    /// The worker executable as built.
    pub worker_bin: PathBuf,
    /// Keep the run directory (logs, datastores) for inspection.
    pub keep: bool,
    /// Measure only these systems (by name, `--system`); empty = both.
    pub systems: Vec<String>,
    /// Seed of the pair order and the bootstrap; `None` = from the clock (and recorded).
    pub seed: Option<u64>,
    /// `--plan`: print the plan and exit without measuring.
    pub plan_only: bool,
}

/// The causes of missed targets, from `causes.json` in `dir` (empty when absent).
pub fn causes(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read(dir.join("causes.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `md` from a `results.json` written earlier (report fixes without a re-run).
pub fn render(json: &Path, md: &Path) -> Result<()> {
    let bytes = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
    let report: Report = serde_json::from_slice(&bytes)?;
    let dir = md.parent().unwrap_or(Path::new("."));
    std::fs::write(md, report::markdown(&report, &causes(dir)))?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(opts: Options) -> Result<()> {
    let sizes = Sizes::new(opts.quick, opts.smoke);
    let root = current_uid() == 0;
    for s in &opts.scenarios {
        if !scenario::ALL.contains(&s.as_str()) {
            bail!(
                "unknown scenario {s:?}; known: {}",
                scenario::ALL.join(", ")
            );
        }
    }
    let names: Vec<String> = if opts.scenarios.is_empty() {
        scenario::ALL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        opts.scenarios.clone()
    };
    let mut kinds = if opts.smoke {
        vec![Kind::Sworn]
    } else {
        vec![Kind::Sworn, Kind::Spire]
    };
    if !opts.systems.is_empty() {
        kinds.retain(|k| opts.systems.iter().any(|o| o == k.name()));
    }
    if kinds.contains(&Kind::Spire)
        && (opts.bins.spire_server.is_none() || opts.bins.spire_agent.is_none())
    {
        bail!("SPIRE is not built: run bench/spire/build.sh (or use --system sworn)");
    }
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let work = std::env::temp_dir().join(format!("sworn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o755))?;
    let worker_bin = work.join("sworn-bench-worker");
    std::fs::copy(&opts.worker_bin, &worker_bin)
        .with_context(|| format!("copying {}", opts.worker_bin.display()))?;
    // Both agents may hash this file on every call: strip it to a realistic small binary.
    let _ = std::process::Command::new("strip")
        .arg(&worker_bin)
        .status();
    std::fs::set_permissions(&worker_bin, std::fs::Permissions::from_mode(0o755))?;
    let worker_exe = scenario::exe_selectors(&worker_bin, &std::fs::read(&worker_bin)?);
    let plan = scenario::plan(&names, &sizes, kinds.len());
    let estimate: f64 = plan.iter().map(|(_, s)| s).sum();
    eprintln!(
        "sworn-bench: {} run in {}, seed {seed}, systems {}, scenarios {}; planned ~{:.0} min",
        sizes.name,
        work.display(),
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        names.join(","),
        estimate / 60.0
    );
    for (n, secs) in &plan {
        eprintln!("sworn-bench:   {n}: ~{secs:.0} s");
    }
    if opts.plan_only {
        let _ = std::fs::remove_dir_all(&work);
        return Ok(());
    }

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
        worker_exe,
        kinds.clone(),
        root,
        floors.clone(),
        seed,
        estimate,
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        eprintln!("sworn-bench: scenario {name}");
        let started = std::time::Instant::now();
        match scenario::run(name, &mut ctx).await {
            Ok(r) => {
                for mut row in r {
                    row.compare(seed);
                    eprintln!("  {}", report::row_line(&row));
                    rows.push(row);
                }
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
    let raw = std::mem::take(&mut ctx.raw);
    let orders = std::mem::take(&mut ctx.orders);
    ctx.shutdown().await;

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
        seed,
        orders,
    };
    // Only a full run of every scenario and both systems replaces the committed results.
    let complete = !opts.smoke && !opts.quick && opts.scenarios.is_empty() && kinds.len() == 2;
    let (json_path, md_path) = if complete {
        (
            opts.out_dir.join("results.json"),
            opts.out_dir.join("RESULTS.md"),
        )
    } else {
        let d = std::env::temp_dir();
        let tag = if opts.smoke { "smoke" } else { "partial" };
        (
            d.join(format!("sworn-bench-{tag}.json")),
            d.join(format!("sworn-bench-{tag}.md")),
        )
    };
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)?;
    let md = report::markdown(&report, &causes(&opts.out_dir));
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
