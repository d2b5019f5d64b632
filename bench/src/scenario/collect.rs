//! How a scenario's measurements become rows: a [`Collector`] gathers one value per
//! repetition per system and per metric, [`Collector::rows`] summarises each metric into
//! a [`Row`] (median and spread), and [`Row::compare`] adds the ratio of medians, its
//! bootstrap interval and the verdict (crate::stats).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::peer::Kind;
use crate::stats::{self, Summary, Verdict};
use crate::wire::Reply;

/// One line of the results table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// What is measured.
    pub metric: String,
    /// Its unit.
    pub unit: String,
    /// Whether a smaller value is better.
    pub lower_is_better: bool,
    /// sworn's repetitions.
    pub sworn: Option<Summary>,
    /// SPIRE's repetitions.
    pub spire: Option<Summary>,
    /// The floor, as text (for context; not a bound on both sides' design).
    pub floor: Option<String>,
    /// A remark (conditions, caveats).
    pub note: Option<String>,
    /// 95% percentile bootstrap interval of sworn ÷ SPIRE medians (when both measured).
    #[serde(default)]
    pub interval: Option<(f64, f64)>,
    /// Who wins: only when the interval excludes 1.
    #[serde(default)]
    pub verdict: Option<Verdict>,
}

impl Row {
    /// sworn ÷ SPIRE medians.
    pub fn ratio(&self) -> Option<f64> {
        stats::ratio_of_medians(&self.sworn.as_ref()?.runs, &self.spire.as_ref()?.runs)
    }

    /// Fills the interval (`stats::RESAMPLES` resamples from `seed`) and the verdict.
    pub fn compare(&mut self, seed: u64) {
        let (Some(a), Some(b)) = (&self.sworn, &self.spire) else {
            return;
        };
        self.interval = stats::bootstrap_ratio(&a.runs, &b.runs, stats::RESAMPLES, seed);
        self.verdict = self.interval.map(|i| Verdict::of(i, self.lower_is_better));
    }
}

#[derive(Debug)]
struct Metric {
    unit: &'static str,
    lower_is_better: bool,
    runs: BTreeMap<&'static str, Vec<f64>>,
    floor: Option<String>,
    note: Option<String>,
}

/// Collects per-repetition values of one scenario's metrics, in insertion order.
#[derive(Debug)]
pub struct Collector {
    scenario: &'static str,
    order: Vec<String>,
    metrics: BTreeMap<String, Metric>,
}

impl Collector {
    /// For scenario `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            order: Vec::new(),
            metrics: BTreeMap::new(),
        }
    }

    fn metric(&mut self, name: &str, unit: &'static str, lower_is_better: bool) -> &mut Metric {
        if !self.metrics.contains_key(name) {
            self.order.push(name.to_owned());
        }
        self.metrics.entry(name.to_owned()).or_insert(Metric {
            unit,
            lower_is_better,
            runs: BTreeMap::new(),
            floor: None,
            note: None,
        })
    }

    /// Records one repetition of a lower-is-better metric.
    pub fn low(&mut self, name: &str, unit: &'static str, kind: Kind, value: f64) {
        self.metric(name, unit, true)
            .runs
            .entry(kind.name())
            .or_default()
            .push(value);
    }

    /// Records one repetition of a higher-is-better metric.
    pub fn high(&mut self, name: &str, unit: &'static str, kind: Kind, value: f64) {
        self.metric(name, unit, false)
            .runs
            .entry(kind.name())
            .or_default()
            .push(value);
    }

    /// Sets a metric's floor text.
    pub fn floor(&mut self, name: &str, text: String) {
        if let Some(m) = self.metrics.get_mut(name) {
            m.floor = Some(text);
        }
    }

    /// Sets a metric's note.
    pub fn note(&mut self, name: &str, text: &str) {
        if let Some(m) = self.metrics.get_mut(name) {
            m.note = Some(text.to_owned());
        }
    }

    /// The rows, in the order metrics were first recorded.
    pub fn rows(mut self) -> Vec<Row> {
        let mut out = Vec::new();
        for name in self.order {
            let Some(m) = self.metrics.remove(&name) else {
                continue;
            };
            out.push(Row {
                scenario: self.scenario.to_owned(),
                metric: name,
                unit: m.unit.to_owned(),
                lower_is_better: m.lower_is_better,
                sworn: m.runs.get("sworn").and_then(|r| Summary::of(r)),
                spire: m.runs.get("spire").and_then(|r| Summary::of(r)),
                floor: m.floor,
                note: m.note,
                interval: None,
                verdict: None,
            });
        }
        out
    }
}

/// Latencies out of `Latencies` replies (µs), with the error count.
pub fn latencies(replies: &[Reply]) -> (Vec<f64>, Vec<u64>, u32, Option<String>) {
    let mut lat = Vec::new();
    let mut at = Vec::new();
    let mut errors = 0;
    let mut first = None;
    for r in replies {
        match r {
            Reply::Latencies {
                lat_us,
                at_ns,
                errors: e,
                first_error,
            } => {
                lat.extend(lat_us.iter().map(|&v| v as f64));
                at.extend(at_ns.iter().copied());
                errors += e;
                if first.is_none() {
                    first.clone_from(first_error);
                }
            }
            Reply::Error { message } => {
                errors += 1;
                first.get_or_insert_with(|| message.clone());
            }
            _ => {}
        }
    }
    (lat, at, errors, first)
}
