//! Latency histograms: samples in, percentiles out.
//!
//! Clients keep raw samples in a plain `Vec` (8 bytes each) and the run
//! merges them into one hdrhistogram at the end: a histogram per client
//! would cost hundreds of KiB each, which adds up with a thousand clients.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Three significant digits: 0.1 % resolution at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;
/// Highest trackable latency, in microseconds (one hour); larger values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// Raw latency samples of one client, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    pub fn record(&mut self, d: Duration) {
        self.0.push(micros(d));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A merged latency distribution in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(
            Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        )
    }
}

impl Latency {
    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        self.record_micros(micros(d));
    }

    fn record_micros(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_MICROS));
    }

    /// Adds every sample of one client.
    pub fn add_samples(&mut self, samples: &Samples) {
        for &us in &samples.0 {
            self.record_micros(us);
        }
    }

    /// Folds another distribution into this one (e.g. the rounds of a compare).
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with equal bounds always merge");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        let q = |quantile: f64| self.0.value_at_quantile(quantile);
        Summary {
            count: self.0.len(),
            mean_us: self.0.mean(),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: self.0.max(),
        }
    }
}

/// The numbers a report shows for one distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// `new / old`, or `None` when the baseline is zero or either side is not a
/// number, so a missing measurement never shows up as an infinite speedup.
pub fn ratio(new: f64, old: f64) -> Option<f64> {
    let r = new / old;
    (old != 0.0 && r.is_finite()).then_some(r)
}

/// Percentile of a small sorted-on-demand sample set, by the nearest-rank
/// method. Used where an hdrhistogram is overkill (a few hundred fsyncs).
pub fn nearest_rank(samples: &mut [u64], quantile: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (quantile * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut samples = Samples::default();
        for us in 1..=1000u64 {
            samples.record(Duration::from_micros(us));
        }
        let mut lat = Latency::default();
        lat.add_samples(&samples);
        let s = lat.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 0.01, "{}", s.mean_us);
    }

    #[test]
    fn merge_adds_counts_and_keeps_max() {
        let mut a = Latency::default();
        let mut b = Latency::default();
        for _ in 0..99 {
            a.record(Duration::from_micros(100));
        }
        b.record(Duration::from_millis(50));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p99_us, 100);
        // 50 ms is above the exact range; three significant digits hold.
        assert!(
            (s.max_us as f64 - 50_000.0).abs() / 50_000.0 < 0.001,
            "{}",
            s.max_us
        );
    }

    #[test]
    fn empty_and_clamped() {
        assert_eq!(Latency::default().summary(), Summary::default());
        let mut lat = Latency::default();
        lat.record(Duration::ZERO);
        lat.record(Duration::from_secs(10_000));
        assert_eq!(lat.count(), 2);
        assert_eq!(lat.summary().p50_us, 1);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(200.0, 100.0), Some(2.0));
        assert_eq!(ratio(50.0, 200.0), Some(0.25));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(0.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(nearest_rank(&mut v, 0.5), Some(50));
        assert_eq!(nearest_rank(&mut v, 0.99), Some(99));
        assert_eq!(nearest_rank(&mut v, 1.0), Some(100));
        assert_eq!(nearest_rank(&mut v, 0.0), Some(1));
        assert_eq!(nearest_rank(&mut [], 0.5), None);
    }
}
