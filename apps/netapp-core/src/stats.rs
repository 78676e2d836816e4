//! Latency percentiles: over a bounded sample ([`Latencies`]), or from a
//! fixed log-linear histogram ([`Histogram`], O(1) memory however many).

use alloc::vec::Vec;

/// Latencies (any unit), up to a bound; past it, samples are counted
/// but not kept (the report says so).
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    kept: Vec<u64>,
    cap: usize,
    /// Samples seen, kept or not.
    pub seen: u64,
    sum: u128,
}

impl Latencies {
    /// Keeps up to `cap` samples (memory is reserved as they come).
    pub fn new(cap: usize) -> Latencies {
        Latencies {
            kept: Vec::new(),
            cap,
            seen: 0,
            sum: 0,
        }
    }

    /// Adds one sample.
    pub fn add(&mut self, v: u64) {
        self.seen += 1;
        self.sum += u128::from(v);
        if self.kept.len() < self.cap && self.kept.try_reserve(1).is_ok() {
            self.kept.push(v);
        }
    }

    /// Samples kept.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }

    /// The mean of every sample seen (0 with none).
    pub fn mean(&self) -> u64 {
        if self.seen == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.seen)).unwrap_or(u64::MAX)
        }
    }

    /// The `p`-th percentile (0..=100) of the kept samples, nearest rank;
    /// 0 with none. Sorts the samples.
    pub fn percentile(&mut self, p: u32) -> u64 {
        if self.kept.is_empty() {
            return 0;
        }
        self.kept.sort_unstable();
        let n = self.kept.len();
        // Nearest rank: ceil(p/100 * n), from 1.
        let rank = (usize::try_from(p.min(100)).unwrap_or(100) * n)
            .div_ceil(100)
            .max(1);
        self.kept.get(rank - 1).copied().unwrap_or(0)
    }
}

/// Exact buckets below this; above, 16 per power of two.
const SUB: u64 = 16;
const SUB_BITS: u32 = 4;
/// Buckets: 16 exact, then 16 for each of the exponents 4..=63.
const BUCKETS: usize = 16 + 60 * 16;

/// Counts of values in log-linear buckets (16 per power of two, so a
/// percentile is within 1/16 of the true value), in a fixed array: memory
/// does not grow with the number of samples.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: [u32; BUCKETS],
    /// Samples counted.
    pub seen: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: [0; BUCKETS],
            seen: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return usize::try_from(v).unwrap_or(0);
    }
    let e = 63 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    usize::try_from(SUB + u64::from(e - SUB_BITS) * SUB + sub).unwrap_or(BUCKETS - 1)
}

/// The largest value of bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let e = (i - SUB) / SUB + u64::from(SUB_BITS);
    let sub = (i - SUB) % SUB;
    let low = (SUB + sub) << (e - u64::from(SUB_BITS));
    low.saturating_add((1u64 << (e - u64::from(SUB_BITS))) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Counts `v`.
    pub fn add(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(bucket(v)) {
            *c = c.saturating_add(1);
        }
        self.seen += 1;
        self.max = self.max.max(v);
    }

    /// The `p`th percentile (nearest rank), as its bucket's largest value
    /// (at most the largest seen); 0 when empty.
    pub fn percentile(&self, p: u32) -> u64 {
        if self.seen == 0 {
            return 0;
        }
        let rank = (u64::from(p.min(100)) * self.seen).div_ceil(100).max(1);
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            below += u64::from(c);
            if below >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        *self = Histogram::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let mut l = Latencies::new(1000);
        for v in 1..=100 {
            l.add(v);
        }
        assert_eq!(
            (l.percentile(50), l.percentile(99), l.percentile(100)),
            (50, 99, 100)
        );
        assert_eq!(l.percentile(0), 1);
        assert_eq!(l.mean(), 50);
        assert_eq!(Latencies::new(4).percentile(50), 0);
        let mut c = Latencies::new(2);
        for v in [5, 1, 9] {
            c.add(v);
        }
        assert_eq!((c.seen, c.kept(), c.mean()), (3, 2, 5));
    }

    proptest! {
        #[test]
        fn percentiles_are_samples_in_order(v in proptest::collection::vec(any::<u32>(), 1..200)) {
            let mut l = Latencies::new(usize::MAX);
            for &x in &v { l.add(u64::from(x)); }
            let (p50, p99) = (l.percentile(50), l.percentile(99));
            prop_assert!(p50 <= p99);
            prop_assert!(v.iter().any(|&x| u64::from(x) == p50));
            let below = v.iter().filter(|&&x| u64::from(x) <= p50).count();
            prop_assert!(below * 2 >= v.len());
        }
    }

    #[test]
    fn histogram_examples() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(50), 0);
        for v in 1..=100 {
            h.add(v);
        }
        // Exact below 16, within 1/16 above.
        assert_eq!(h.percentile(10), 10);
        let p50 = h.percentile(50);
        assert!((50..=53).contains(&p50), "{p50}");
        assert_eq!(h.percentile(100), 100);
        h.clear();
        h.add(u64::MAX);
        assert_eq!(h.percentile(99), u64::MAX);
    }

    proptest! {
        #[test]
        fn buckets_hold_their_values(v in any::<u64>()) {
            let i = bucket(v);
            prop_assert!(i < BUCKETS);
            prop_assert!(v <= upper(i));
            prop_assert!(i == 0 || v > upper(i - 1));
        }

        #[test]
        fn histogram_is_within_a_sixteenth(v in proptest::collection::vec(any::<u32>(), 1..300), p in 1u32..=100) {
            let mut h = Histogram::new();
            let mut l = Latencies::new(usize::MAX);
            for &x in &v { h.add(u64::from(x)); l.add(u64::from(x)); }
            let (exact, got) = (l.percentile(p), h.percentile(p));
            prop_assert!(got >= exact && got - exact <= exact / 16, "{} {}", exact, got);
        }
    }
}
