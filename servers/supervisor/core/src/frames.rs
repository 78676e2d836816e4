//! The supervisor's frame pool: a bitmap over its memory grant.
//!
//! The kernel hands the supervisor frames `[first, first + count)`, owned
//! and unbound. The pool tracks which of them are free (owned, not in use
//! for an image page and not given away). Its bitmap is sized from the
//! grant (a bit a frame: 32 KiB for 1 GiB); it holds at most
//! [`MAX_FRAMES`], and a larger grant (or one whose bitmap the heap
//! refuses) is clipped and the rest stays unused.

extern crate alloc;
use alloc::vec::Vec;

/// Most frames the pool tracks (16 TiB of 4 KiB frames): every
/// pool-relative frame number fits a `u32` (see [`FramePool::offset`]).
pub const MAX_FRAMES: usize = u32::MAX as usize + 1;

/// A bitmap of free frames (bit set = free).
#[derive(Debug, Clone)]
pub struct FramePool {
    first: u64,
    count: usize,
    free: usize,
    hint: usize,
    bits: Vec<u64>,
}

impl FramePool {
    /// A pool over `count` frames from `first`, all free; `count` is clipped
    /// to [`MAX_FRAMES`] and to what the heap holds a bitmap for (see
    /// [`FramePool::len`]).
    pub fn new(first: u64, count: u64) -> FramePool {
        let mut count = usize::try_from(count).unwrap_or(MAX_FRAMES).min(MAX_FRAMES);
        let mut bits = Vec::new();
        while bits.try_reserve_exact(count.div_ceil(64)).is_err() {
            count /= 2;
        }
        bits.resize(count.div_ceil(64), 0u64);
        for (w, word) in bits.iter_mut().enumerate() {
            let lo = w * 64;
            if lo + 64 <= count {
                *word = u64::MAX;
            } else if lo < count {
                *word = (1u64 << (count - lo)) - 1;
            }
        }
        FramePool {
            first,
            count,
            free: count,
            hint: 0,
            bits,
        }
    }

    /// Frames tracked (after clipping).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the pool tracks no frames.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Frames currently free.
    pub fn free_count(&self) -> usize {
        self.free
    }

    /// Takes a free frame.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let words = self.bits.len();
        for k in 0..words {
            let w = (self.hint + k) % words;
            let word = self.bits[w];
            if word != 0 {
                let bit = word.trailing_zeros() as usize;
                self.bits[w] &= !(1u64 << bit);
                self.free -= 1;
                self.hint = w;
                return Some(self.first + (w * 64 + bit) as u64);
            }
        }
        None
    }

    /// Takes `n` free frames that are physically contiguous (a driver's
    /// DMA queues must be); returns the first. O(pool size).
    pub fn alloc_run(&mut self, n: usize) -> Option<u64> {
        if n == 0 || n > self.free {
            return None;
        }
        let mut start = 0;
        let mut len = 0;
        for i in 0..self.count {
            if self.bits[i / 64] & (1u64 << (i % 64)) != 0 {
                if len == 0 {
                    start = i;
                }
                len += 1;
                if len == n {
                    for j in start..start + n {
                        self.bits[j / 64] &= !(1u64 << (j % 64));
                    }
                    self.free -= n;
                    return Some(self.first + start as u64);
                }
            } else {
                len = 0;
            }
        }
        None
    }

    fn slot(&self, frame: u64) -> Option<(usize, u64)> {
        let i = usize::try_from(frame.checked_sub(self.first)?).ok()?;
        (i < self.count).then_some((i / 64, 1u64 << (i % 64)))
    }

    /// Returns a frame to the pool. `false` (and no change) if it is not
    /// one of the pool's frames or is already free.
    pub fn free(&mut self, frame: u64) -> bool {
        match self.slot(frame) {
            Some((w, m)) if self.bits[w] & m == 0 => {
                self.bits[w] |= m;
                self.free += 1;
                true
            }
            _ => false,
        }
    }

    /// The pool-relative number of `frame` (`frame - first`), if it is one
    /// of the pool's frames: a compact record of a frame (4 bytes instead
    /// of 8), turned back with [`FramePool::frame`].
    pub fn offset(&self, frame: u64) -> Option<u32> {
        let i = usize::try_from(frame.checked_sub(self.first)?).ok()?;
        if i < self.count {
            u32::try_from(i).ok()
        } else {
            None
        }
    }

    /// The frame with pool-relative number `offset` (see [`FramePool::offset`]).
    pub fn frame(&self, offset: u32) -> u64 {
        self.first + u64::from(offset)
    }

    /// Whether `frame` is one of the pool's frames and free.
    pub fn is_free(&self, frame: u64) -> bool {
        self.slot(frame).is_some_and(|(w, m)| self.bits[w] & m != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn allocates_each_frame_once() {
        let mut p = FramePool::new(100, 130);
        assert_eq!((p.len(), p.free_count()), (130, 130));
        let mut seen = BTreeSet::new();
        while let Some(f) = p.alloc() {
            assert!((100..230).contains(&f));
            assert!(seen.insert(f));
        }
        assert_eq!((seen.len(), p.free_count()), (130, 0));
        assert!(p.free(150));
        assert!(!p.free(150), "double free");
        assert!(!p.free(99) && !p.free(230) && !p.free(0));
        assert!(p.is_free(150) && !p.is_free(151));
        assert_eq!(p.alloc(), Some(150));
        assert_eq!(p.alloc(), None);
    }

    #[test]
    fn offsets_round_trip() {
        let p = FramePool::new(0x1000, 130);
        assert_eq!(p.offset(0x1000), Some(0));
        assert_eq!(p.offset(0x1000 + 129), Some(129));
        assert_eq!(p.offset(0x1000 + 130), None);
        assert_eq!(p.offset(0xfff), None);
        assert_eq!(p.frame(129), 0x1000 + 129);
        // Past the old 65,536 (u16) bound.
        let big = FramePool::new(7, 1 << 20);
        let last = 7 + (1 << 20) - 1;
        assert_eq!(big.offset(last), Some((1 << 20) - 1));
        assert_eq!(big.frame((1 << 20) - 1), last);
    }

    /// The bitmap is sized from the grant: a 1 GiB machine's whole half
    /// (131,072 frames, twice the old 65,536 limit) is tracked, in 16 KiB.
    #[test]
    fn sized_from_the_grant_and_handles_empty() {
        let n = 131_072;
        let mut full = FramePool::new(0x4000, n as u64);
        assert_eq!((full.len(), full.free_count()), (n, n));
        assert_eq!(full.bits.len() * 8, n / 8);
        for _ in 0..n {
            assert!(full.alloc().is_some());
        }
        assert_eq!(full.alloc(), None);
        assert!(full.free(0x4000 + n as u64 - 1));
        assert_eq!(full.alloc(), Some(0x4000 + n as u64 - 1));
        let mut e = FramePool::new(5, 0);
        assert!(e.is_empty());
        assert_eq!(e.alloc(), None);
        assert!(!e.free(5));
    }

    proptest::proptest! {
        #[test]
        fn matches_a_model(count in 0u64..300, ops in proptest::collection::vec(proptest::option::of(0u64..320), 0..400)) {
            let mut p = FramePool::new(10, count);
            let mut used = BTreeSet::new();
            for op in ops {
                match op {
                    None => {
                        match p.alloc() {
                            Some(f) => proptest::prop_assert!(used.insert(f)),
                            None => proptest::prop_assert_eq!(used.len() as u64, count),
                        }
                    }
                    Some(f) => {
                        let f = f + 10 - 5;
                        proptest::prop_assert_eq!(p.free(f), used.remove(&f));
                    }
                }
                proptest::prop_assert_eq!(p.free_count() as u64, count - used.len() as u64);
            }
        }
    }

    #[test]
    fn runs_are_contiguous_and_skip_holes() {
        let mut p = FramePool::new(1000, 16);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert!(p.free(a));
        // Frame 1000 is free but alone: the run starts after 1001.
        assert_eq!(p.alloc_run(4), Some(1002));
        assert_eq!(p.free_count(), 16 - 1 - 4);
        for f in 1002..1006 {
            assert!(!p.is_free(f));
        }
        assert_eq!(p.alloc_run(11), None);
        assert_eq!(p.alloc_run(10), Some(1006));
        assert_eq!(p.alloc_run(0), None);
        let _ = b;
    }
}
