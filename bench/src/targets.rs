//! The targets of issue 21 ("Targets"): each a row of the results with conditions on its
//! ratio (sworn ÷ SPIRE medians) and on sworn's median, judged met or missed. A miss states
//! the condition it failed; its cause (why) comes from `bench/causes.json` when the run's
//! analysis has written one (`{"<target>": "<cause>"}`), and is reported as not yet
//! analysed otherwise.

use serde::{Deserialize, Serialize};

use crate::scenario::Row;

/// A condition on a row.
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    /// Ratio of medians at most this.
    RatioMax(f64),
    /// Ratio of medians at least this.
    RatioMin(f64),
    /// sworn's median at most this, in the row's unit.
    Max(f64),
    /// sworn's median at least this, in the row's unit.
    Min(f64),
}

/// One target.
#[derive(Debug)]
pub struct Target {
    /// As the issue words it.
    pub label: &'static str,
    /// As the issue states it.
    pub goal: &'static str,
    /// The scenario of its row.
    pub scenario: &'static str,
    /// Its row's metric starts with this...
    pub prefix: &'static str,
    /// ...and contains this.
    pub contains: &'static str,
    /// All must hold.
    pub conds: &'static [Cond],
}

/// The targets table.
pub const TARGETS: &[Target] = &[
    Target {
        label: "fetch p50, N=1, path+sha256",
        goal: "ratio ≤ 0.1, and ≤ 0.4 ms",
        scenario: "fetch",
        prefix: "fetch p50, N=1",
        contains: "",
        conds: &[Cond::RatioMax(0.1), Cond::Max(400.0)],
    },
    Target {
        label: "fetch p99, N=1",
        goal: "ratio ≤ 0.25",
        scenario: "fetch",
        prefix: "fetch p99, N=1",
        contains: "",
        conds: &[Cond::RatioMax(0.25)],
    },
    Target {
        label: "fetch throughput, N=100",
        goal: "≥ 10×",
        scenario: "fetch",
        prefix: "fetch throughput, N=",
        contains: "",
        conds: &[Cond::RatioMin(10.0)],
    },
    Target {
        label: "issuance",
        goal: "≥ 10×, and ≥ 1500 SVID/s",
        scenario: "issuance",
        prefix: "SVIDs per second",
        contains: "",
        conds: &[Cond::RatioMin(10.0), Cond::Min(1500.0)],
    },
    Target {
        label: "server CPU per 1000 SVIDs",
        goal: "≤ 0.5×",
        scenario: "issuance",
        prefix: "server CPU per 1000 SVIDs",
        contains: "",
        conds: &[Cond::RatioMax(0.5)],
    },
    Target {
        label: "storm drain, 1000 due together",
        goal: "≤ 0.5 s",
        scenario: "storm",
        prefix: "storm drain",
        contains: "",
        conds: &[Cond::Max(0.5)],
    },
    Target {
        label: "server RSS, 100k entries, agent connected",
        goal: "≤ 0.25×",
        scenario: "memory",
        prefix: "server RSS",
        contains: "",
        conds: &[Cond::RatioMax(0.25)],
    },
    Target {
        label: "cold start, 100k entries",
        goal: "≤ 0.3 s",
        scenario: "coldstart",
        prefix: "cold start, ",
        contains: "first SVID",
        conds: &[Cond::Max(0.3)],
    },
    Target {
        label: "Kubernetes pod Running → SVID, 100 pods",
        goal: "p99 ≤ 50 ms",
        scenario: "k8s",
        prefix: "pod Running → SVID, ",
        contains: "one every",
        conds: &[Cond::Max(50.0)],
    },
];

/// A target judged against a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judged {
    /// The target.
    pub label: String,
    /// Its goal.
    pub goal: String,
    /// The row it was judged on, when measured.
    pub metric: Option<String>,
    /// sworn's median and the row's unit.
    pub value: Option<(f64, String)>,
    /// Ratio of medians.
    pub ratio: Option<f64>,
    /// Its interval.
    pub interval: Option<(f64, f64)>,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run.
    pub met: Option<bool>,
    /// The failed conditions, when missed.
    pub failed: Vec<String>,
}

/// Judges every target against `rows`; a run smaller than the full size (`full` false)
/// measures other sizes than the targets name, so its values are shown but not judged.
pub fn judge(rows: &[Row], full: bool) -> Vec<Judged> {
    TARGETS
        .iter()
        .map(|t| {
            let mut j = judge_one(t, rows);
            if !full {
                j.met = None;
                j.failed.clear();
            }
            j
        })
        .collect()
}

fn judge_one(t: &Target, rows: &[Row]) -> Judged {
    let row = rows.iter().find(|r| {
        r.scenario == t.scenario
            && r.metric.starts_with(t.prefix)
            && r.metric.contains(t.contains)
            // The k8s rows come as p50 and p99; the target is on the p99 of the first count.
            && (t.scenario != "k8s" || r.metric.ends_with("p99"))
    });
    let mut j = Judged {
        label: t.label.to_owned(),
        goal: t.goal.to_owned(),
        metric: row.map(|r| r.metric.clone()),
        value: row.and_then(|r| r.sworn.as_ref().map(|s| (s.median, r.unit.clone()))),
        ratio: row.and_then(Row::ratio),
        interval: row.and_then(|r| r.interval),
        met: None,
        failed: Vec::new(),
    };
    let Some((value, _)) = j.value.clone() else {
        return j;
    };
    let mut judged = true;
    for c in t.conds {
        let fail = match *c {
            Cond::Max(x) => (value > x).then(|| format!("{value:.3} > {x}")),
            Cond::Min(x) => (value < x).then(|| format!("{value:.1} < {x}")),
            Cond::RatioMax(x) | Cond::RatioMin(x) => match j.ratio {
                None => {
                    judged = false;
                    None
                }
                Some(r) if matches!(c, Cond::RatioMax(_)) && r > x => {
                    Some(format!("ratio {r:.2} > {x}"))
                }
                Some(r) if matches!(c, Cond::RatioMin(_)) && r < x => {
                    Some(format!("ratio {r:.2} < {x}"))
                }
                Some(_) => None,
            },
        };
        j.failed.extend(fail);
    }
    if judged || !j.failed.is_empty() {
        j.met = Some(j.failed.is_empty());
    }
    j
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::stats::Summary;

    fn row(scenario: &str, metric: &str, sworn: &[f64], spire: Option<&[f64]>) -> Row {
        Row {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: "µs".into(),
            lower_is_better: true,
            sworn: Summary::of(sworn),
            spire: spire.and_then(Summary::of),
            floor: None,
            note: None,
            interval: None,
            verdict: None,
        }
    }

    #[test]
    fn a_target_is_met_only_when_every_condition_holds() {
        let fast = [row("fetch", "fetch p50, N=1", &[300.0], Some(&[4000.0]))];
        let j = &judge(&fast, true)[0];
        assert_eq!(j.met, Some(true), "{j:?}");
        // Absolute condition holds, ratio does not.
        let close = [row("fetch", "fetch p50, N=1", &[300.0], Some(&[600.0]))];
        let j = &judge(&close, true)[0];
        assert_eq!(j.met, Some(false));
        assert_eq!(j.failed, vec!["ratio 0.50 > 0.1".to_owned()]);
    }

    #[test]
    fn unmeasured_and_small_runs_are_not_judged() {
        assert!(judge(&[], true).iter().all(|j| j.met.is_none()));
        let one_side = [row("fetch", "fetch p99, N=1", &[300.0], None)];
        assert_eq!(
            judge(&one_side, true)[1].met,
            None,
            "a ratio needs both systems"
        );
        let quick = [row("fetch", "fetch p50, N=1", &[9000.0], Some(&[4000.0]))];
        assert_eq!(judge(&quick, false)[0].met, None);
    }
}
