//! Latency percentiles over a bounded sample.

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
}
