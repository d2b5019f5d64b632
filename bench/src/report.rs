//! Results: `results.json` (everything, including every repetition) and `RESULTS.md` (one
//! row per metric: sworn, SPIRE, ratio, floor; plus machine, versions, date, and the list of
//! metrics where sworn loses).

use std::fmt::Write as _;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::context::Sizes;
use crate::floors::Floors;
use crate::peer::Binaries;
use crate::scenario::Row;
use crate::stats::Summary;

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// `nproc`.
    pub nproc: usize,
    /// `MemTotal` in GiB.
    pub mem_gib: f64,
    /// CPU model name.
    pub cpu: String,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// Reads /proc.
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_ascii_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            mem_gib: kib / 1024.0 / 1024.0,
            cpu,
            kernel: output("uname", &["-r"]),
        }
    }
}

/// The whole run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    /// Sizes used.
    pub size: Sizes,
    /// Machine.
    pub machine: Machine,
    /// Versions of everything measured.
    pub versions: Vec<(String, String)>,
    /// UTC date of the run.
    pub date: String,
    /// Systems measured.
    pub systems: Vec<String>,
    /// Floors.
    pub floors: Floors,
    /// Rows.
    pub rows: Vec<Row>,
    /// Scenarios that failed, with why.
    pub failures: Vec<String>,
    /// Raw per-scenario data.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

fn output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if s.is_empty() {
                s = String::from_utf8_lossy(&o.stderr).trim().to_owned();
            }
            s
        })
        .unwrap_or_default()
}

/// Versions of sworn (git), SPIRE, the Rust and Go toolchains.
pub fn versions(bins: &Binaries) -> Vec<(String, String)> {
    let mut v = vec![(
        "sworn".to_owned(),
        format!(
            "{} (git {})",
            env!("CARGO_PKG_VERSION"),
            output("git", &["rev-parse", "--short", "HEAD"])
        ),
    )];
    if let Some(s) = &bins.spire_server {
        v.push((
            "spire".to_owned(),
            output(&s.to_string_lossy(), &["--version"]),
        ));
    }
    v.push(("rustc".to_owned(), output("rustc", &["--version"])));
    v.push(("go".to_owned(), output("go", &["version"])));
    v.push(("spiffe crate (client)".to_owned(), "0.19".to_owned()));
    v
}

/// The current UTC time, ISO 8601.
pub fn now_utc() -> String {
    output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(s: &Option<Summary>) -> String {
    match s {
        None => "—".to_owned(),
        Some(s) if s.runs.len() > 1 => {
            format!("{} ({}–{})", num(s.median), num(s.min), num(s.max))
        }
        Some(s) => num(s.median),
    }
}

/// One row as a log line.
pub fn row_line(r: &Row) -> String {
    format!(
        "{} / {}: sworn {} spire {} {}",
        r.scenario,
        r.metric,
        cell(&r.sworn),
        cell(&r.spire),
        r.unit
    )
}

/// How the numbers were made; printed in every report so a reader need not open the code.
const METHOD: &str = "\
- Same machine, same run, same client: every workload is a `sworn-bench-worker` process \
(the public `spiffe` 0.19 crate) under its own uid, with one entry `unix:uid:<uid>` per \
workload on each system. Both systems run with SQLite, P-256, X509-SVID TTL 1 h, join-token \
node attestation and unix workload attestation. SPIRE runs with `discover_workload_path = \
true` because sworn always derives `unix:path` and `unix:sha256`: both agents hash the \
caller's executable (the stripped worker, see floors) on every call. Everything else in SPIRE \
is at its defaults (5 s agent sync, 1000-SVID agent cache).
- Timing scenarios alternate the systems (A B A B); cells give the median and min–max over \
repetitions. The machine has 2 shared cores: read ratios, not absolute values.
- fetch: N workloads in a closed loop of FetchX509SVID on an already connected client, warm \
cache; both systems run side by side during this scenario.
- ttfs: entries created 10 at a time for running workloads that retry every 25 ms; clock \
from the creation call's return to the SVID in the workload's hands.
- issuance: fresh system, N entries (1000 in a full run) created together for running workloads retrying \
every 200 ms; from creation done to the last workload served. CPU from /proc/<pid>/stat.
- storm: fresh system, N entries (1000 in a full run) with the same short TTL on both sides (see \
`size.storm_ttl_s` in results.json), each SVID held by an open stream; drain = first to \
last rotated SVID pushed; 10 probe workloads with 1 h SVIDs measure fetch latency during it. \
Caveat: sworn mints on a workload's first request, one workload at a time, so its N SVIDs are \
minted over the whole issuance wall time (see issuance); when that is longer than half the \
TTL they never expire together, and sworn's drain time measures that spread (about half \
the TTL), not a rotation backlog. SPIRE mints the batch ahead of requests, within seconds.
- coldstart: entries spread over 100 agents that never connect (the measured agent's own \
view is one entry on both systems); server RSS read at each size; then server and agent \
killed and restarted together, clock from server spawn to the first SVID served.";

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# sworn vs SPIRE — benchmark results\n");
    let _ = writeln!(
        md,
        "Generated by `bench/run` ({} size) on {}. Do not edit by hand; re-run instead.\n",
        r.size.name, r.date
    );
    if r.systems.len() < 2 {
        let _ = writeln!(
            md,
            "**Only {} was measured in this run: the other column is empty.**\n",
            r.systems.join(", ")
        );
    }
    let _ = writeln!(md, "## Machine and versions\n");
    let _ = writeln!(
        md,
        "- machine: {} CPUs ({}), {:.1} GiB RAM, kernel {} — shared with other builds, so \
         ratios matter more than absolute numbers",
        r.machine.nproc, r.machine.cpu, r.machine.mem_gib, r.machine.kernel
    );
    for (k, v) in &r.versions {
        let _ = writeln!(md, "- {k}: {v}");
    }
    let _ = writeln!(md, "\n## Method\n");
    let _ = writeln!(md, "{METHOD}");
    let _ = writeln!(md, "\n## Results\n");
    let _ = writeln!(
        md,
        "Each cell: median over repetitions (min–max in parentheses when repeated). Ratio = \
         sworn ÷ SPIRE; \"better\" says which side wins given the metric's direction.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | metric | unit | sworn | SPIRE | ratio | better | floor |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let better = match (row.ratio(), row.sworn_loses()) {
            (Some(r), _) if (0.97..=1.03).contains(&r) => "tie (±3%)",
            (_, None) => "—",
            (_, Some(true)) => "**SPIRE**",
            (_, Some(false)) => "sworn",
        };
        let ratio = row.ratio().map_or("—".to_owned(), |x| format!("{x:.2}"));
        let mut metric = row.metric.clone();
        if let Some(n) = &row.note {
            let _ = write!(metric, " ({n})");
        }
        let _ = writeln!(
            md,
            "| {} | {} | {}{} | {} | {} | {} | {} | {} |",
            row.scenario,
            metric,
            row.unit,
            if row.lower_is_better { " ↓" } else { " ↑" },
            cell(&row.sworn),
            cell(&row.spire),
            ratio,
            better,
            row.floor.as_deref().unwrap_or("")
        );
    }
    let losses: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| {
            x.sworn_loses() == Some(true) && x.ratio().is_some_and(|q| !(0.97..=1.03).contains(&q))
        })
        .collect();
    let _ = writeln!(md, "\n## Where sworn loses\n");
    if r.systems.len() < 2 {
        let _ = writeln!(md, "Not known from this run: only one system was measured.");
    } else if losses.is_empty() {
        let _ = writeln!(md, "Nowhere in this run.");
    } else {
        for x in losses {
            let _ = writeln!(
                md,
                "- {} / {}: sworn {} vs SPIRE {} {} (ratio {:.2})",
                x.scenario,
                x.metric,
                cell(&x.sworn),
                cell(&x.spire),
                x.unit,
                x.ratio().unwrap_or(0.0)
            );
        }
    }
    let f = &r.floors;
    let _ = writeln!(md, "\n## Floors (same run)\n");
    let _ = writeln!(
        md,
        "- ECDSA P-256 sign + verify (ring, one thread): {:.1} µs, {:.0}/s",
        f.p256_sign_verify_us, f.p256_sign_verify_per_s
    );
    let _ = writeln!(
        md,
        "- tonic unary round trip on a unix socket: p50 {:.0} µs, p99 {:.0} µs",
        f.tonic_uds_rtt_p50_us, f.tonic_uds_rtt_p99_us
    );
    let _ = writeln!(
        md,
        "- SHA-256 of the worker executable ({:.1} MiB; both agents hash the caller's binary on \
         every call for `unix:sha256`): {:.0} µs",
        f.worker_exe_bytes as f64 / 1048576.0,
        f.sha256_worker_exe_us
    );
    if !r.failures.is_empty() {
        let _ = writeln!(md, "\n## Scenarios that failed in this run\n");
        for x in &r.failures {
            let _ = writeln!(md, "- {x}");
        }
    }
    md
}
