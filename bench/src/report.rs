//! Results: `results.json` (everything, including every run and the pair orders) and
//! `RESULTS.md` (machine, versions and seed; the method; the targets, judged; one row per
//! metric: medians, ratio, interval, verdict, floor; the rows SPIRE wins; the floors).

use std::collections::BTreeMap;
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
    /// The seed of the pair order and of every bootstrap interval.
    #[serde(default)]
    pub seed: u64,
    /// Each scenario's pair order (which system ran first in each pair).
    #[serde(default)]
    pub orders: serde_json::Map<String, serde_json::Value>,
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
    let mut line = format!(
        "{} / {}: sworn {} spire {} {}",
        r.scenario,
        r.metric,
        cell(&r.sworn),
        cell(&r.spire),
        r.unit
    );
    if let (Some(x), Some((lo, hi)), Some(v)) = (r.ratio(), r.interval, r.verdict) {
        let _ = write!(line, "; ratio {x:.2} [{lo:.2}, {hi:.2}] → {}", v.text());
    }
    line
}

/// The Markdown report; `causes` maps a target's label to why it was missed.
pub fn markdown(r: &Report, causes: &BTreeMap<String, String>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# sworn vs SPIRE — benchmark results (v2)\n");
    if r.rows.is_empty() {
        let _ = writeln!(
            md,
            "**Numbers pending the full v2 run** (`bench/run` on an otherwise idle machine). \
             The method and the targets below are final; the results, the targets' measured \
             values and the machine section are written by that run.\n"
        );
    } else {
        let _ = writeln!(
            md,
            "Generated by `bench/run` ({} size) on {}, seed {}. Do not edit by hand; re-run \
             instead (`--render` re-renders from results.json).\n",
            r.size.name, r.date, r.seed
        );
    }
    if !r.rows.is_empty() && r.systems.len() < 2 {
        let _ = writeln!(
            md,
            "**Only {} was measured in this run: no ratio, no winner.**\n",
            r.systems.join(", ")
        );
    }
    if !r.rows.is_empty() {
        let _ = writeln!(md, "## Machine and versions\n");
        let _ = writeln!(
            md,
            "- machine: {} CPUs ({}), {:.1} GiB RAM, kernel {}",
            r.machine.nproc, r.machine.cpu, r.machine.mem_gib, r.machine.kernel
        );
        for (k, v) in &r.versions {
            let _ = writeln!(md, "- {k}: {v}");
        }
        let _ = writeln!(
            md,
            "- seed {} (pair order and bootstrap), {} bootstrap resamples per interval",
            r.seed,
            crate::stats::RESAMPLES
        );
    }
    let _ = writeln!(md, "\n## Method\n");
    let _ = writeln!(md, "{}", crate::method::METHOD);
    targets_table(&mut md, r, causes);
    if !r.rows.is_empty() {
        results_table(&mut md, r);
        floors(&mut md, &r.floors);
    }
    if !r.failures.is_empty() {
        let _ = writeln!(md, "\n## Scenarios that failed in this run\n");
        for x in &r.failures {
            let _ = writeln!(md, "- {x}");
        }
    }
    md
}

fn targets_table(md: &mut String, r: &Report, causes: &BTreeMap<String, String>) {
    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(
        md,
        "From issue 21; measured on this 2-core machine, in one run. Ratio = sworn ÷ SPIRE. \
         The absolute rows (ms, SVID/s, s) hold only for this machine.\n"
    );
    let _ = writeln!(md, "| row | target | sworn | ratio | 95% interval | met? |");
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    let full = r.size.name == "full";
    for j in crate::targets::judge(&r.rows, full) {
        let value = j
            .value
            .as_ref()
            .map_or("pending".to_owned(), |(v, u)| format!("{} {u}", num(*v)));
        let ratio = j.ratio.map_or("—".to_owned(), |x| format!("{x:.2}"));
        let interval = j
            .interval
            .map_or("—".to_owned(), |(a, b)| format!("{a:.2}–{b:.2}"));
        let met = match j.met {
            None if j.value.is_some() && !full => format!("not judged ({} size)", r.size.name),
            None => "pending".to_owned(),
            Some(true) => "met".to_owned(),
            Some(false) => format!(
                "**missed** ({}): {}",
                j.failed.join("; "),
                causes
                    .get(&j.label)
                    .map_or("cause not yet analysed", String::as_str)
            ),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {value} | {ratio} | {interval} | {met} |",
            j.label, j.goal
        );
    }
}

fn results_table(md: &mut String, r: &Report) {
    let _ = writeln!(md, "\n## Results\n");
    let _ = writeln!(
        md,
        "Each cell: median over the runs (min–max in parentheses). Ratio = sworn ÷ SPIRE \
         medians, with its 95% bootstrap interval; \"better\" names a side only when the \
         interval excludes 1.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | metric | unit | sworn | SPIRE | ratio | 95% interval | better | floor |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let ratio = row.ratio().map_or("—".to_owned(), |x| format!("{x:.2}"));
        let interval = row
            .interval
            .map_or("—".to_owned(), |(a, b)| format!("{a:.2}–{b:.2}"));
        let better = row.verdict.map_or("—", crate::stats::Verdict::text);
        let mut metric = row.metric.clone();
        if let Some(n) = &row.note {
            let _ = write!(metric, " ({n})");
        }
        let _ = writeln!(
            md,
            "| {} | {} | {}{} | {} | {} | {ratio} | {interval} | {better} | {} |",
            row.scenario,
            metric,
            row.unit,
            if row.lower_is_better { " ↓" } else { " ↑" },
            cell(&row.sworn),
            cell(&row.spire),
            row.floor.as_deref().unwrap_or("")
        );
    }
    let losses: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| x.verdict == Some(crate::stats::Verdict::Spire))
        .collect();
    let _ = writeln!(md, "\n## Where SPIRE wins (interval excludes 1)\n");
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
}

fn floors(md: &mut String, f: &Floors) {
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
        "- SHA-256 of the worker executable ({:.1} MiB): {:.0} µs",
        f.worker_exe_bytes as f64 / 1048576.0,
        f.sha256_worker_exe_us
    );
}
