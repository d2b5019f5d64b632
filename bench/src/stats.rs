//! Percentiles of one run and the median/spread of a value over repeated runs.

use serde::{Deserialize, Serialize};

/// Nearest-rank percentile (`p` in 0..=100) of `samples`; `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    // The epsilon keeps float noise (0.999 * 1000 = 999.0000000000001) from moving up a rank.
    let rank = ((p / 100.0) * v.len() as f64 - 1e-9).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// A value measured once per repetition: its median and its spread (min..max).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Median over the repetitions.
    pub median: f64,
    /// Smallest repetition.
    pub min: f64,
    /// Largest repetition.
    pub max: f64,
    /// Every repetition, in run order.
    pub runs: Vec<f64>,
}

impl Summary {
    /// Summarises the repetitions; `None` when there are none.
    pub fn of(runs: &[f64]) -> Option<Self> {
        let median = percentile(runs, 50.0)?;
        let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Self {
            median: if runs.len().is_multiple_of(2) {
                let mut v = runs.to_vec();
                v.sort_by(f64::total_cmp);
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            } else {
                median
            },
            min,
            max,
            runs: runs.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(500.0));
        assert_eq!(percentile(&v, 99.0), Some(990.0));
        assert_eq!(percentile(&v, 99.9), Some(999.0));
        assert_eq!(percentile(&[7.0], 99.9), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_median_of_even_count_is_the_mean_of_the_middle_two() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }
}
