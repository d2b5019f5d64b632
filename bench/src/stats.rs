//! The statistics of a run: percentiles of one repetition, the median and spread of a value
//! over repetitions, and the comparison of two systems (ratio of medians with a percentile
//! bootstrap interval, and the winner rule). Everything random here comes from [`Rng`], a
//! seeded generator, so a run's order and intervals are reproducible from its seeds.

use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 10_000;

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

/// The median: the middle value, or the mean of the middle two; `None` when empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    })
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
        Some(Self {
            median: median(runs)?,
            min: runs.iter().copied().fold(f64::INFINITY, f64::min),
            max: runs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            runs: runs.to_vec(),
        })
    }
}

/// A small seeded generator (SplitMix64): the pair order and the bootstrap draw from it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for n far below 2^32, as here.
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

/// For each of `pairs` pairs, whether sworn runs first (a fair coin per pair from `rng`).
pub fn pair_order(rng: &mut Rng, pairs: usize) -> Vec<bool> {
    (0..pairs).map(|_| rng.coin()).collect()
}

/// sworn's median ÷ SPIRE's median; `None` when either is empty or SPIRE's median is 0.
pub fn ratio_of_medians(sworn: &[f64], spire: &[f64]) -> Option<f64> {
    let (a, b) = (median(sworn)?, median(spire)?);
    (b != 0.0).then_some(a / b)
}

/// A 95% percentile bootstrap interval of the ratio of medians: `resamples` times, resample
/// each side with replacement (independently: the systems ran separately), take the ratio of
/// the resampled medians; the interval is the 2.5th and 97.5th percentiles of those ratios.
/// `None` when a side is empty or no resample has a non-zero SPIRE median.
pub fn bootstrap_ratio(
    sworn: &[f64],
    spire: &[f64],
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if sworn.is_empty() || spire.is_empty() {
        return None;
    }
    let mut rng = Rng::new(seed);
    let draw = |v: &[f64], rng: &mut Rng| -> Option<f64> {
        let s: Vec<f64> = (0..v.len()).map(|_| v[rng.below(v.len())]).collect();
        median(&s)
    };
    let mut ratios = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let a = draw(sworn, &mut rng)?;
        let b = draw(spire, &mut rng)?;
        if b != 0.0 {
            ratios.push(a / b);
        }
    }
    Some((percentile(&ratios, 2.5)?, percentile(&ratios, 97.5)?))
}

/// Who wins a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The interval excludes 1 on sworn's side.
    Sworn,
    /// The interval excludes 1 on SPIRE's side.
    Spire,
    /// The interval includes 1.
    NoDifference,
}

impl Verdict {
    /// The winner rule: a winner only when the interval `(lo, hi)` of sworn ÷ SPIRE excludes 1.
    pub fn of(interval: (f64, f64), lower_is_better: bool) -> Self {
        let (lo, hi) = interval;
        let sworn_smaller = hi < 1.0;
        let sworn_larger = lo > 1.0;
        match (sworn_smaller, sworn_larger, lower_is_better) {
            (true, _, true) | (_, true, false) => Verdict::Sworn,
            (true, _, false) | (_, true, true) => Verdict::Spire,
            _ => Verdict::NoDifference,
        }
    }

    /// As a table cell.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Sworn => "sworn",
            Verdict::Spire => "**SPIRE**",
            Verdict::NoDifference => "no difference shown",
        }
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

    #[test]
    fn ratio_is_sworn_median_over_spire_median() {
        assert_eq!(
            ratio_of_medians(&[1.0, 2.0, 9.0], &[4.0, 4.0, 100.0]),
            Some(0.5)
        );
        assert_eq!(ratio_of_medians(&[1.0], &[0.0]), None);
        assert_eq!(ratio_of_medians(&[], &[1.0]), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_order_and_interval() {
        let a = pair_order(&mut Rng::new(42), 64);
        assert_eq!(a, pair_order(&mut Rng::new(42), 64));
        assert_ne!(a, pair_order(&mut Rng::new(43), 64));
        // Both orders occur: the coin is not stuck.
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
        let (s, p) = ([1.0, 1.2, 0.9, 1.1, 1.3], [2.0, 2.1, 1.8, 2.4, 2.2]);
        assert_eq!(
            bootstrap_ratio(&s, &p, RESAMPLES, 7),
            bootstrap_ratio(&s, &p, RESAMPLES, 7)
        );
    }

    #[test]
    fn separated_samples_give_an_interval_below_one_and_a_winner() {
        let sworn = [1.0, 1.1, 0.9, 1.05, 0.95];
        let spire = [2.0, 2.2, 1.9, 2.1, 2.05];
        let (lo, hi) = bootstrap_ratio(&sworn, &spire, RESAMPLES, 1).unwrap();
        assert!(lo <= 0.5 && (0.5..1.0).contains(&hi), "({lo}, {hi})");
        // Every resampled median lies within each side's range.
        assert!(lo >= 0.9 / 2.2 && hi <= 1.1 / 1.9, "({lo}, {hi})");
        assert_eq!(Verdict::of((lo, hi), true), Verdict::Sworn);
        assert_eq!(Verdict::of((lo, hi), false), Verdict::Spire);
    }

    #[test]
    fn overlapping_samples_give_an_interval_around_one_and_no_winner() {
        let sworn = [1.0, 3.0, 2.0, 0.5, 2.5];
        let spire = [2.0, 1.0, 3.0, 2.5, 0.8];
        let (lo, hi) = bootstrap_ratio(&sworn, &spire, RESAMPLES, 3).unwrap();
        assert!(lo < 1.0 && 1.0 < hi, "({lo}, {hi})");
        assert_eq!(Verdict::of((lo, hi), true), Verdict::NoDifference);
        assert_eq!(Verdict::of((lo, hi), false), Verdict::NoDifference);
    }

    #[test]
    fn winner_rule_needs_the_whole_interval_on_one_side_of_one() {
        assert_eq!(Verdict::of((0.5, 0.99), true), Verdict::Sworn);
        assert_eq!(Verdict::of((1.01, 3.0), true), Verdict::Spire);
        assert_eq!(Verdict::of((1.01, 3.0), false), Verdict::Sworn);
        assert_eq!(Verdict::of((0.5, 1.0), true), Verdict::NoDifference);
        assert_eq!(Verdict::of((1.0, 1.5), false), Verdict::NoDifference);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(9);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let i = r.below(5);
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
