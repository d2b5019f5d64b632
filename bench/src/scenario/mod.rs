//! The benchmark scenarios (bench/README.md), one file each; their module docs say exactly
//! what is measured. Each takes the run context and measures `pairs` pairs: in each pair,
//! every measured system once on its own (never two systems running at once), in an order
//! drawn from the seeded generator ([`Ctx::schedule`]). A scenario returns rows: one value
//! per run per system, which the report turns into medians, a ratio and its interval.

mod agents;
mod attest;
mod bigstore;
mod coldstart;
mod collect;
mod fetch;
mod idle;
mod issuance;
mod k8s;
mod memory;
mod restart;
mod storm;

use anyhow::{Result, bail};

use crate::context::{Ctx, Sizes};

pub use attest::exe_selectors;
pub use collect::{Collector, Row, latencies};

/// Every scenario name, in run order.
pub const ALL: &[&str] = &[
    "fetch",
    "issuance",
    "storm",
    "memory",
    "coldstart",
    "attest",
    "idle",
    "agents",
    "restart",
    "k8s",
];

/// Scenarios that measure sworn only.
pub const SWORN_ONLY: &[&str] = &["k8s"];

/// Runs one scenario by name.
pub async fn run(name: &str, ctx: &mut Ctx) -> Result<Vec<Row>> {
    match name {
        "fetch" => fetch::fetch(ctx).await,
        "issuance" => issuance::issuance(ctx).await,
        "storm" => storm::storm(ctx).await,
        "memory" => memory::memory(ctx).await,
        "coldstart" => coldstart::coldstart(ctx).await,
        "attest" => attest::attest(ctx).await,
        "idle" => idle::idle(ctx).await,
        "agents" => agents::agents(ctx).await,
        "restart" => restart::restart(ctx).await,
        "k8s" => k8s::k8s(ctx).await,
        other => bail!("unknown scenario {other:?}; known: {}", ALL.join(", ")),
    }
}

/// A rough plan of a scenario's wall time in seconds, for `systems` systems (assumes about
/// 50 new SVIDs/s and 200 fetches/s where the rate is what is being measured; a slower
/// system makes the run longer than planned, and the progress lines show it).
pub fn estimate(name: &str, s: &Sizes, systems: usize) -> f64 {
    let start = 6.0;
    let mint = |n: usize| n as f64 / 50.0;
    let calls = |n: u32| f64::from(n) / 200.0;
    let per_run = match name {
        "fetch" => start + 4.0 + mint(s.fetch_n) + calls(s.fetch_n1_calls) + calls(s.fetch_n_calls),
        "issuance" => start + mint(s.issuance_entries),
        "storm" => start + mint(s.storm_svids) + f64::from(s.storm_ttl_s) * 0.75,
        "memory" => start + 10.0,
        "coldstart" => start + 2.0,
        "attest" => 2.0 * (start + calls(s.attest_calls)),
        "idle" => start + mint(s.idle_workloads) + 5.0 + s.idle_window_s as f64,
        "agents" => start + 2.0 * s.agents as f64 + mint(s.agents * s.per_agent),
        "restart" => start + mint(s.restart_workloads) + 5.0,
        "k8s" => {
            let paced: usize = s.k8s_paced.iter().sum();
            10.0 + paced as f64 * s.k8s_interval_ms as f64 / 1000.0 + mint(s.k8s_burst)
        }
        _ => 0.0,
    };
    let systems = if SWORN_ONLY.contains(&name) {
        1
    } else {
        systems
    };
    let once = match name {
        // The large datastore is built once per system (SPIRE's CLI about 220 entries/s,
        // sworn's admin API about 1500/s); `plan` counts it once for both scenarios.
        "memory" | "coldstart" => {
            let n = s.server_entries as f64;
            n / 1500.0 + if systems > 1 { n / 220.0 } else { 0.0 }
        }
        "k8s" => 30.0,
        _ => 0.0,
    };
    once + per_run * (s.pairs * systems) as f64
}

/// The plan of a run: each scenario's estimate ([`estimate`]), the shared large datastore
/// counted once.
pub fn plan(names: &[String], s: &Sizes, systems: usize) -> Vec<(String, f64)> {
    let mut built = false;
    names
        .iter()
        .map(|n| {
            let mut secs = estimate(n, s, systems);
            if n == "memory" || n == "coldstart" {
                if built {
                    secs -= estimate(n, s, systems) - estimate_runs_only(n, s, systems);
                }
                built = true;
            }
            (n.clone(), secs)
        })
        .collect()
}

fn estimate_runs_only(name: &str, s: &Sizes, systems: usize) -> f64 {
    let mut none = s.clone();
    none.server_entries = 0;
    estimate(name, &none, systems)
}
