//! Choosing a target: uniform or Zipf(α) over `n` targets.
//!
//! Target `k` (from 0) has weight `1 / (k + 1)^α`. The table holds the
//! cumulative weights scaled to 2^32, so a draw is one 32-bit random number
//! and a binary search. `α = 0` is uniform. It costs [`BYTES_PER_TARGET`]
//! bytes a target and nothing more while it is built: loadgen's heap holds
//! one for every httpd of a ceiling probe (100,000).

use alloc::vec::Vec;

/// xorshift64*: small, fast, good enough to pick targets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a fixed one).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Why a sampler cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerError {
    /// No targets.
    Empty,
    /// α negative, not finite, or over 10.
    BadAlpha,
    /// The heap is full.
    NoMemory,
}

/// Heap bytes a [`Sampler`] holds per target.
pub const BYTES_PER_TARGET: usize = core::mem::size_of::<u32>();

/// A Zipf(α) (or uniform) choice of one of `n` targets.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// `cdf[k] + 1`: the cumulative weight of targets `0..=k`, scaled to
    /// 2^32 (the last is 2^32, so one less fits a `u32`; the first is at
    /// least 1, which costs a target of weight 0 a chance in 2^32).
    cdf: Vec<u32>,
}

/// `x^y` for `x ≥ 1`, `y ≥ 0`, without libm: `exp(y ln x)`.
pub fn powf(x: f64, y: f64) -> f64 {
    exp(y * ln(x))
}

/// Natural log for `x > 0`: `x = m 2^e` with `m` in [1, 2), then the
/// atanh series of `(m - 1) / (m + 1)`.
pub fn ln(x: f64) -> f64 {
    if x <= 0.0 || x.is_nan() {
        return f64::NAN;
    }
    let mut m = x;
    let mut e = 0i32;
    while m >= 2.0 {
        m /= 2.0;
        e += 1;
    }
    while m < 1.0 {
        m *= 2.0;
        e -= 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    while k < 60.0 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + f64::from(e) * core::f64::consts::LN_2
}

/// `e^x` for moderate `x`: halve until small, Taylor, square back.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < -700.0 {
        return 0.0;
    }
    let mut r = x;
    let mut halvings = 0;
    while r.abs() > 0.5 {
        r /= 2.0;
        halvings += 1;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    let mut k = 1.0;
    while k < 20.0 {
        term *= r / k;
        sum += term;
        k += 1.0;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

impl Sampler {
    /// Zipf(`alpha`) over `n` targets (`alpha = 0`: uniform).
    pub fn zipf(n: usize, alpha: f64) -> Result<Sampler, SamplerError> {
        if n == 0 {
            return Err(SamplerError::Empty);
        }
        if !(0.0..=10.0).contains(&alpha) {
            return Err(SamplerError::BadAlpha);
        }
        // Two passes over the weights, so the only table is the result.
        let weight = |k: usize| 1.0 / powf((k + 1) as f64, alpha);
        let total: f64 = (0..n).map(weight).sum();
        let mut cdf = Vec::new();
        cdf.try_reserve_exact(n)
            .map_err(|_| SamplerError::NoMemory)?;
        let (scale, top) = ((1u64 << 32) as f64, u64::from(u32::MAX));
        let (mut sum, mut last) = (0.0, 0u64);
        for k in 0..n {
            sum += weight(k);
            // Monotone even if rounding says otherwise.
            let v = ((sum / total) * scale) as u64;
            last = last.max(v.saturating_sub(1).min(top));
            cdf.push(last as u32);
        }
        if let Some(l) = cdf.last_mut() {
            *l = u32::MAX;
        }
        Ok(Sampler { cdf })
    }

    /// Uniform over `n` targets.
    pub fn uniform(n: usize) -> Result<Sampler, SamplerError> {
        Sampler::zipf(n, 0.0)
    }

    /// Targets.
    pub fn len(&self) -> usize {
        self.cdf.len()
    }

    /// Whether there are none (never: construction refuses it).
    pub fn is_empty(&self) -> bool {
        self.cdf.is_empty()
    }

    /// The probability of target `k`, scaled to 2^32.
    pub fn weight(&self, k: usize) -> u64 {
        let at = |k: usize| self.cdf.get(k).map_or(0, |&c| u64::from(c) + 1);
        let hi = at(k);
        let lo = if k == 0 { 0 } else { at(k - 1).min(hi) };
        hi - lo
    }

    /// Heap bytes the table holds.
    pub fn table_bytes(&self) -> usize {
        self.cdf.capacity() * BYTES_PER_TARGET
    }

    /// Draws a target in `0..len()`.
    pub fn draw(&self, rng: &mut Rng) -> usize {
        let r = rng.next_u32();
        // The first k with r < cdf[k] + 1.
        let k = self.cdf.partition_point(|&c| c < r);
        k.min(self.cdf.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn math_agrees_with_std() {
        for x in [1.0f64, 1.5, 2.0, 3.0, 10.0, 1000.0, 12345.0] {
            for y in [0.0, 0.5, 0.8, 1.0, 1.2, 2.0] {
                let (a, b) = (powf(x, y), std::primitive::f64::powf(x, y));
                assert!(((a - b) / b).abs() < 1e-9, "{x}^{y}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn uniform_is_even_and_zipf_is_skewed() {
        let u = Sampler::uniform(4).unwrap();
        for k in 0..4 {
            assert!((u.weight(k) as i64 - (1 << 30)).abs() <= 1);
        }
        let z = Sampler::zipf(10, 1.0).unwrap();
        // H(10) = 2.928968...; target 0 has 1/H, target 9 has 1/(10 H).
        let p0 = z.weight(0) as f64 / (1u64 << 32) as f64;
        assert!((p0 - 1.0 / 2.928_968_253_968_254).abs() < 1e-6, "{p0}");
        assert!((z.weight(0) as f64 / z.weight(9) as f64 - 10.0).abs() < 1e-3);
        assert_eq!(Sampler::zipf(0, 1.0).err(), Some(SamplerError::Empty));
        assert_eq!(Sampler::zipf(3, -1.0).err(), Some(SamplerError::BadAlpha));
        assert_eq!(
            Sampler::zipf(3, f64::NAN).err(),
            Some(SamplerError::BadAlpha)
        );
    }

    #[test]
    fn draws_follow_the_weights() {
        let z = Sampler::zipf(8, 0.8).unwrap();
        let mut rng = super::Rng::new(42);
        let mut hits = [0u32; 8];
        const N: u32 = 200_000;
        for _ in 0..N {
            hits[z.draw(&mut rng)] += 1;
        }
        for (k, &h) in hits.iter().enumerate() {
            let p = z.weight(k) as f64 / (1u64 << 32) as f64;
            let seen = f64::from(h) / f64::from(N);
            assert!((seen - p).abs() < 0.01, "target {k}: {seen} vs {p}");
        }
    }

    #[test]
    fn a_ceiling_sized_table_is_small_and_whole() {
        // The ceiling's target, and past it: 4 bytes a target.
        for n in [100_000usize, 1 << 20] {
            let z = Sampler::zipf(n, 0.8).unwrap();
            assert_eq!(z.len(), n);
            assert_eq!(z.table_bytes(), n * BYTES_PER_TARGET);
            let total: u64 = (0..n).map(|k| z.weight(k)).sum();
            assert_eq!(total, 1 << 32);
            // The tail still gets drawn: its share is about 1 - H(n/2)/H(n).
            let mut rng = super::Rng::new(7);
            let tail = (0..100_000).filter(|_| z.draw(&mut rng) >= n / 2).count();
            assert!((5_000..30_000).contains(&tail), "{n}: tail {tail}");
        }
    }

    proptest! {
        #[test]
        fn a_table_is_a_distribution(n in 1usize..300, alpha in 0.0f64..3.0, seed in any::<u64>()) {
            let z = Sampler::zipf(n, alpha).unwrap();
            prop_assert_eq!(z.len(), n);
            let total: u64 = (0..n).map(|k| z.weight(k)).sum();
            prop_assert_eq!(total, 1 << 32);
            // Weights never grow with the rank.
            for k in 1..n {
                prop_assert!(z.weight(k) <= z.weight(k - 1) + 1);
            }
            let mut rng = super::Rng::new(seed);
            for _ in 0..50 {
                prop_assert!(z.draw(&mut rng) < n);
            }
        }
    }
}
