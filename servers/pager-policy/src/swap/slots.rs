//! Which slots of the swap area are taken: one bit a slot, so a page in a
//! whole-domain run costs nothing else in memory (its descriptor on disk
//! says whose page it is and its CRC).

use alloc::vec::Vec;

use super::NoMemory;

/// A bitmap of taken slots with a next-fit cursor.
#[derive(Debug, Default)]
pub(crate) struct SlotMap {
    words: Vec<u64>,
    len: u32,
    used: u32,
    /// Where the next search starts (just past the last allocation).
    cursor: u32,
}

impl SlotMap {
    /// `len` slots, all free.
    pub(crate) fn new(len: u32) -> Result<SlotMap, NoMemory> {
        let n = len.div_ceil(64) as usize;
        let mut words = Vec::new();
        words.try_reserve_exact(n).map_err(|_| NoMemory)?;
        words.resize(n, 0);
        Ok(SlotMap {
            words,
            len,
            used: 0,
            cursor: 0,
        })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }

    /// Slots taken.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u32 {
        self.used
    }

    pub(crate) fn is_used(&self, s: u32) -> bool {
        s >= self.len
            || self
                .words
                .get((s / 64) as usize)
                .is_some_and(|w| w >> (s % 64) & 1 == 1)
    }

    /// Marks `s` taken (nothing if it is out of range).
    pub(crate) fn set(&mut self, s: u32) {
        if s >= self.len {
            return;
        }
        if let Some(w) = self.words.get_mut((s / 64) as usize) {
            if *w >> (s % 64) & 1 == 0 {
                *w |= 1 << (s % 64);
                self.used += 1;
            }
        }
    }

    /// Marks `s` free.
    pub(crate) fn clear(&mut self, s: u32) {
        if let Some(w) = self.words.get_mut((s / 64) as usize) {
            if *w >> (s % 64) & 1 == 1 {
                *w &= !(1 << (s % 64));
                self.used -= 1;
            }
        }
    }

    /// Whether every slot of `first .. first + n` is free (and in range).
    pub(crate) fn all_free(&self, first: u32, n: u32) -> bool {
        let Some(end) = first.checked_add(n) else {
            return false;
        };
        end <= self.len && (first..end).all(|s| !self.is_used(s))
    }

    /// The first slot of `n` consecutive free ones found from `from` (not
    /// wrapping), skipping whole taken words.
    fn find_run(&self, from: u32, to: u32, n: u32) -> Option<u32> {
        let mut s = from;
        let mut start = from;
        let mut len = 0;
        while s < to {
            if s.is_multiple_of(64)
                && len == 0
                && self.words.get((s / 64) as usize) == Some(&u64::MAX)
            {
                s += 64;
                start = s;
                continue;
            }
            if self.is_used(s) {
                len = 0;
                start = s + 1;
            } else {
                len += 1;
                if len == n {
                    return Some(start);
                }
            }
            s += 1;
        }
        None
    }

    /// Takes `n` consecutive free slots, searching from the cursor and then
    /// from the start; returns the first.
    pub(crate) fn alloc_run(&mut self, n: u32) -> Option<u32> {
        if n == 0 || n > self.len - self.used.min(self.len) {
            return None;
        }
        let c = self.cursor.min(self.len);
        let first = self
            .find_run(c, self.len, n)
            .or_else(|| self.find_run(0, c.saturating_add(n).min(self.len), n))?;
        for s in first..first + n {
            self.set(s);
        }
        self.cursor = first + n;
        Some(first)
    }

    /// Takes `n` free slots, consecutive if it can (one descriptor block,
    /// sequential I/O); pushes them into `out`, ascending. Nothing is taken
    /// unless all are.
    pub(crate) fn alloc_any(&mut self, n: usize, out: &mut Vec<u32>) -> bool {
        out.clear();
        let Ok(n32) = u32::try_from(n) else {
            return false;
        };
        if n == 0 {
            return true;
        }
        if n32 > self.len - self.used.min(self.len) || out.try_reserve(n).is_err() {
            return false;
        }
        if let Some(first) = self.alloc_run(n32) {
            out.extend(first..first + n32);
            return true;
        }
        let mut s = 0;
        while out.len() < n && s < self.len {
            if !self.is_used(s) {
                out.push(s);
            }
            s += 1;
        }
        if out.len() < n {
            out.clear();
            return false;
        }
        for &s in out.iter() {
            self.set(s);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_come_from_the_cursor_and_wrap() {
        let mut m = SlotMap::new(200).unwrap();
        assert_eq!(m.alloc_run(100), Some(0));
        assert_eq!(m.alloc_run(100), Some(100));
        assert_eq!(m.alloc_run(1), None);
        for s in 10..20 {
            m.clear(s);
        }
        assert_eq!(m.alloc_run(11), None);
        assert_eq!(m.alloc_run(10), Some(10));
        assert_eq!(m.used(), 200);
        let mut out = Vec::new();
        m.clear(3);
        m.clear(150);
        assert!(m.alloc_any(2, &mut out));
        assert_eq!(out, [3, 150]);
        assert!(!m.alloc_any(1, &mut out));
    }

    proptest! {
        /// Allocations never hand out a taken slot; the count is exact.
        #[test]
        fn never_twice(ops in proptest::collection::vec((0u32..3, 1u32..70), 1..200)) {
            let mut m = SlotMap::new(300).unwrap();
            let mut model = std::collections::BTreeSet::new();
            for (op, n) in ops {
                match op {
                    0 => if let Some(f) = m.alloc_run(n) {
                        for s in f..f + n { prop_assert!(model.insert(s)); }
                    },
                    1 => {
                        let mut out = Vec::new();
                        if m.alloc_any(n as usize, &mut out) {
                            prop_assert_eq!(out.len(), n as usize);
                            for s in out { prop_assert!(model.insert(s)); }
                        }
                    }
                    _ => {
                        let s = (n * 7) % 300;
                        m.clear(s);
                        model.remove(&s);
                    }
                }
                prop_assert_eq!(m.used() as usize, model.len());
            }
        }
    }
}
