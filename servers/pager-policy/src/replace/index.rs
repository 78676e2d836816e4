//! A fixed-capacity open-addressing index: hash → slot id.
//!
//! The index stores only `u32` slot ids; the caller's table holds the keys,
//! so lookups and removals take a closure that reads a slot's key (or hash).
//! Linear probing with backward-shift deletion, so there are no tombstones
//! and a probe never runs longer than the cluster it starts in. The bucket
//! array has at least twice as many buckets as ids it will ever hold, so an
//! empty bucket always ends a probe.

use alloc::vec::Vec;

use super::ReplaceError;

const EMPTY: u32 = u32::MAX;

/// Hash of a 64-bit value (splitmix64's finaliser: every bit mixes).
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    buckets: Vec<u32>,
    mask: usize,
}

impl Index {
    /// Room for `ids` ids (at most `u32::MAX - 1`).
    pub(crate) fn new(ids: usize) -> Result<Index, ReplaceError> {
        let n = ids
            .checked_mul(2)
            .and_then(usize::checked_next_power_of_two)
            .ok_or(ReplaceError::NoMemory)?
            .max(2);
        let mut buckets = Vec::new();
        buckets
            .try_reserve_exact(n)
            .map_err(|_| ReplaceError::NoMemory)?;
        buckets.resize(n, EMPTY);
        Ok(Index {
            buckets,
            mask: n - 1,
        })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<u32>()
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "the mask keeps the value below the bucket count"
    )]
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.mask
    }

    /// The id whose key `is` accepts, probing from `hash`.
    pub(crate) fn find(&self, hash: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mut i = self.home(hash);
        for _ in 0..self.buckets.len() {
            let id = *self.buckets.get(i)?;
            if id == EMPTY {
                return None;
            }
            if is(id) {
                return Some(id);
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Adds `id` under `hash`. The caller keeps the number of ids within
    /// the capacity given to [`Index::new`], so an empty bucket exists.
    pub(crate) fn insert(&mut self, hash: u64, id: u32) -> bool {
        let mut i = self.home(hash);
        for _ in 0..self.buckets.len() {
            match self.buckets.get_mut(i) {
                Some(b) if *b == EMPTY => {
                    *b = id;
                    return true;
                }
                Some(_) => i = (i + 1) & self.mask,
                None => return false,
            }
        }
        false
    }

    /// Removes `id` (stored under `hash`); `hash_of` gives any stored id's
    /// hash, to shift the rest of the cluster back.
    pub(crate) fn remove(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        let mut i = self.home(hash);
        let mut found = false;
        for _ in 0..self.buckets.len() {
            match self.buckets.get(i) {
                Some(&b) if b == id => {
                    found = true;
                    break;
                }
                Some(&b) if b != EMPTY => i = (i + 1) & self.mask,
                _ => return false,
            }
        }
        if !found {
            return false;
        }
        // Backward shift: walk the rest of the cluster; a member whose home
        // is not in (hole, its bucket] moves into the hole, which moves on.
        let mut j = i;
        for _ in 0..self.buckets.len() {
            j = (j + 1) & self.mask;
            let next = match self.buckets.get(j) {
                Some(&b) if b != EMPTY => b,
                _ => break,
            };
            let h = self.home(hash_of(next));
            if (j.wrapping_sub(h) & self.mask) >= (j.wrapping_sub(i) & self.mask) {
                if let Some(b) = self.buckets.get_mut(i) {
                    *b = next;
                }
                i = j;
            }
        }
        if let Some(b) = self.buckets.get_mut(i) {
            *b = EMPTY;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// The index agrees with a set under any insert/remove sequence,
        /// including keys that all collide.
        #[test]
        fn index_matches_a_set(ops in proptest::collection::vec((any::<bool>(), 0u32..40), 0..400),
                               collide in any::<bool>()) {
            let h = |id: u32| if collide { 7 } else { mix(u64::from(id)) };
            let mut ix = Index::new(40).unwrap();
            let mut set = BTreeSet::new();
            for (add, id) in ops {
                if add && !set.contains(&id) {
                    prop_assert!(ix.insert(h(id), id));
                    set.insert(id);
                } else if !add {
                    prop_assert_eq!(ix.remove(h(id), id, h), set.remove(&id));
                }
                for k in 0..40 {
                    prop_assert_eq!(ix.find(h(k), |x| x == k).is_some(), set.contains(&k));
                }
            }
        }
    }
}
