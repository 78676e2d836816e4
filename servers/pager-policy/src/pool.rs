//! The frames the pager owns, and what each one is doing.
//!
//! The kernel does not tell a domain which frames it was given, so the
//! supervisor announces each `GiveFrame` batch with a `Grant { first, count }`
//! request. A grant is a claim, not proof: the pager checks ownership the
//! first time it binds a frame (the kernel refuses `map` of a frame the
//! caller does not own), and a frame the kernel refuses is marked lost and
//! never handed out again.
//!
//! Each frame is in exactly one state: free (on the free stack), taken (handed
//! to a fault in progress), bound to a domain, or lost. Memory: 12 bytes of
//! slot plus 4 bytes of free stack per frame, reserved with `try_reserve`
//! for the pool's whole capacity at the first grant.

use alloc::vec::Vec;
use serac_protocol::DomainId;

/// Most separate grants the pool records.
pub const MAX_RANGES: usize = 64;
/// Frames a pool made with [`FramePool::new`] manages (48 MiB of 4 KiB
/// pages, 192 KiB of bookkeeping); the swapper sizes its pool from its heap
/// with [`FramePool::with_capacity`]. A grant past it is cut, not fatal.
pub const DEFAULT_FRAMES: u64 = 12 * 1024;
/// Frame numbers at or above this are not physical memory on any x86_64
/// (52-bit physical addresses).
pub const FRAME_LIMIT: u64 = 1 << 40;

/// Why a grant was refused (nothing of it was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// `count` is 0.
    Empty,
    /// The range wraps or reaches past [`FRAME_LIMIT`].
    BadRange,
    /// It overlaps a frame already granted.
    Overlap,
    /// [`MAX_RANGES`] or the capacity would be exceeded.
    TooMany,
    /// The pager's heap cannot hold the bookkeeping.
    NoMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Taken,
    Bound(DomainId),
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Range {
    first: u64,
    count: u64,
    /// Index of `first`'s slot.
    base: usize,
}

/// The frame pool.
#[derive(Debug)]
pub struct FramePool {
    ranges: Vec<Range>,
    slots: Vec<Slot>,
    /// Slot indices of free frames; the next one handed out is at the end.
    free: Vec<u32>,
    bound: usize,
    lost: usize,
    /// Most frames it manages.
    cap: u64,
}

impl Default for FramePool {
    fn default() -> FramePool {
        FramePool::new()
    }
}

impl FramePool {
    /// An empty pool for [`DEFAULT_FRAMES`] frames.
    pub const fn new() -> FramePool {
        FramePool::with_capacity(DEFAULT_FRAMES as usize)
    }

    /// An empty pool for at most `frames` frames (its tables are reserved
    /// at the first grant).
    pub const fn with_capacity(frames: usize) -> FramePool {
        FramePool {
            ranges: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            bound: 0,
            lost: 0,
            cap: if frames as u64 > u32::MAX as u64 {
                u32::MAX as u64
            } else {
                frames as u64
            },
        }
    }

    /// Most frames it manages.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Bytes of bookkeeping held.
    pub fn metadata_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<Slot>()
            + self.free.capacity() * core::mem::size_of::<u32>()
            + self.ranges.capacity() * core::mem::size_of::<Range>()
    }

    /// Records frames `first .. first + count` as owned and free, or as
    /// many of the first of them as the capacity leaves room for; returns
    /// how many. Lower frames are handed out first. A refused grant records
    /// nothing.
    pub fn grant(&mut self, first: u64, count: u64) -> Result<u64, GrantError> {
        if count == 0 {
            return Err(GrantError::Empty);
        }
        let end = first.checked_add(count).ok_or(GrantError::BadRange)?;
        if end > FRAME_LIMIT {
            return Err(GrantError::BadRange);
        }
        if self
            .ranges
            .iter()
            .any(|r| first < r.first + r.count && r.first < end)
        {
            return Err(GrantError::Overlap);
        }
        let room = self.cap.saturating_sub(self.slots.len() as u64);
        if self.ranges.len() >= MAX_RANGES || room == 0 {
            return Err(GrantError::TooMany);
        }
        let count = count.min(room);
        // Fits in usize and u32: the total stays <= the capacity.
        let n = usize::try_from(count).map_err(|_| GrantError::TooMany)?;
        if self.slots.capacity() == 0 {
            // Room for every frame at once, so later grants never move the
            // tables (a move needs the old and the new copy at once); a
            // heap too small for that reserves only this grant.
            let all = usize::try_from(self.cap).unwrap_or(0);
            if self.slots.try_reserve_exact(all).is_err()
                || self.free.try_reserve_exact(all).is_err()
            {
                self.slots = Vec::new();
                self.free = Vec::new();
            }
        }
        self.ranges
            .try_reserve(1)
            .and_then(|()| self.slots.try_reserve_exact(n))
            .and_then(|()| self.free.try_reserve_exact(n))
            .map_err(|_| GrantError::NoMemory)?;
        let base = self.slots.len();
        self.ranges.push(Range { first, count, base });
        self.slots.resize(base + n, Slot::Free);
        for i in (base..base + n).rev() {
            self.free
                .push(u32::try_from(i).map_err(|_| GrantError::TooMany)?);
        }
        Ok(count)
    }

    /// The slot index of `frame`, if it was granted.
    fn index_of(&self, frame: u64) -> Option<usize> {
        let r = self
            .ranges
            .iter()
            .find(|r| frame >= r.first && frame - r.first < r.count)?;
        Some(r.base + usize::try_from(frame - r.first).ok()?)
    }

    /// The frame in slot `i`.
    fn frame_at(&self, i: usize) -> Option<u64> {
        let r = self
            .ranges
            .iter()
            .find(|r| i >= r.base && ((i - r.base) as u64) < r.count)?;
        Some(r.first + (i - r.base) as u64)
    }

    /// Takes a free frame (it must then be bound, put back or lost).
    pub fn take(&mut self) -> Option<u64> {
        let i = self.free.pop()? as usize;
        let f = self.frame_at(i)?;
        self.slots[i] = Slot::Taken;
        Some(f)
    }

    fn set(&mut self, frame: u64, from_taken_to: Slot) -> bool {
        match self.index_of(frame) {
            Some(i) if self.slots[i] == Slot::Taken => {
                self.slots[i] = from_taken_to;
                true
            }
            _ => false,
        }
    }

    /// A taken frame is now bound in `domain`. False if it was not taken.
    pub fn bind(&mut self, frame: u64, domain: DomainId) -> bool {
        let ok = self.set(frame, Slot::Bound(domain));
        self.bound += usize::from(ok);
        ok
    }

    /// A taken frame goes back on the free stack (next to be handed out).
    pub fn put_back(&mut self, frame: u64) -> bool {
        let Some(i) = self.index_of(frame) else {
            return false;
        };
        if self.slots[i] != Slot::Taken {
            return false;
        }
        self.slots[i] = Slot::Free;
        // Cannot fail: the free stack has room for every slot.
        self.free.push(i as u32);
        true
    }

    /// A taken frame turned out unusable (the kernel refused it): never
    /// hand it out again.
    pub fn lose(&mut self, frame: u64) -> bool {
        let ok = self.set(frame, Slot::Lost);
        self.lost += usize::from(ok);
        ok
    }

    /// `domain` is gone (its bindings went with it): its frames are free
    /// again. Returns how many.
    pub fn release_domain(&mut self, domain: DomainId) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            if self.slots[i] == Slot::Bound(domain) {
                self.slots[i] = Slot::Free;
                self.free.push(i as u32);
                n += 1;
            }
        }
        self.bound -= n;
        n
    }

    /// A bound frame is unbound again (the swapper paged it out): back on
    /// the free stack. False if it was not bound.
    pub fn release(&mut self, frame: u64) -> bool {
        let Some(i) = self.index_of(frame) else {
            return false;
        };
        if !matches!(self.slots[i], Slot::Bound(_)) {
            return false;
        }
        self.slots[i] = Slot::Free;
        self.free.push(i as u32);
        self.bound -= 1;
        true
    }

    /// Free frames the kernel says are still bound (a restarted pager's
    /// frames, bound by its previous incarnation) become bound to their
    /// domains. Returns how many were adopted.
    pub fn adopt(&mut self, frames: &[(u64, DomainId)]) -> usize {
        let mut n = 0;
        for &(frame, d) in frames {
            if let Some(i) = self.index_of(frame) {
                if self.slots[i] == Slot::Free && !d.is_none() {
                    self.slots[i] = Slot::Bound(d);
                    n += 1;
                }
            }
        }
        if n > 0 {
            let slots = &self.slots;
            self.free
                .retain(|&i| slots.get(i as usize) == Some(&Slot::Free));
            self.bound += n;
        }
        n
    }

    /// Whether `frame` is bound to `domain` as far as the pool knows.
    pub fn is_bound_to(&self, frame: u64, domain: DomainId) -> bool {
        self.index_of(frame)
            .is_some_and(|i| self.slots[i] == Slot::Bound(domain))
    }

    /// Frames bound to `domain`.
    pub fn bound_to(&self, domain: DomainId) -> usize {
        self.slots
            .iter()
            .filter(|s| **s == Slot::Bound(domain))
            .count()
    }

    /// Frames granted, in any state.
    pub fn total(&self) -> usize {
        self.slots.len()
    }
    /// Frames free.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
    /// Frames bound to domains.
    pub fn bound_count(&self) -> usize {
        self.bound
    }
    /// Frames the kernel refused.
    pub fn lost_count(&self) -> usize {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const D1: DomainId = DomainId::new(1, 1);
    const D2: DomainId = DomainId::new(2, 1);

    #[test]
    fn grants_are_checked() {
        let mut p = FramePool::new();
        assert_eq!(p.grant(10, 0), Err(GrantError::Empty));
        assert_eq!(p.grant(u64::MAX, 2), Err(GrantError::BadRange));
        assert_eq!(p.grant(FRAME_LIMIT - 1, 2), Err(GrantError::BadRange));
        p.grant(100, 10).unwrap();
        assert_eq!(p.grant(105, 10), Err(GrantError::Overlap));
        assert_eq!(p.grant(95, 6), Err(GrantError::Overlap));
        p.grant(110, 1).unwrap();
        p.grant(90, 10).unwrap();
        assert_eq!(p.total(), 21);
        assert_eq!(p.free_count(), 21);
        for i in 0..MAX_RANGES as u64 - 3 {
            p.grant(1000 + i * 2, 1).unwrap();
        }
        assert_eq!(p.grant(5000, 1), Err(GrantError::TooMany));
    }

    #[test]
    fn oversized_grants_are_cut_to_the_capacity() {
        let mut p = FramePool::new();
        assert_eq!(p.grant(0, DEFAULT_FRAMES - 10), Ok(DEFAULT_FRAMES - 10));
        assert_eq!(p.grant(1 << 20, 1000), Ok(10));
        assert_eq!(p.grant(1 << 21, 1), Err(GrantError::TooMany));
        assert_eq!(p.total() as u64, DEFAULT_FRAMES);
    }

    #[test]
    fn hands_out_low_frames_first_and_recycles() {
        let mut p = FramePool::new();
        p.grant(100, 3).unwrap();
        assert_eq!(p.take(), Some(100));
        assert_eq!(p.take(), Some(101));
        assert!(p.bind(100, D1));
        assert!(!p.bind(100, D1), "already bound");
        assert!(p.put_back(101));
        assert!(!p.put_back(101), "already free");
        assert_eq!(p.take(), Some(101));
        assert!(p.bind(101, D2));
        assert_eq!(p.take(), Some(102));
        assert!(p.lose(102));
        assert_eq!(p.take(), None);
        assert_eq!((p.bound_count(), p.lost_count(), p.free_count()), (2, 1, 0));
        assert_eq!(p.release_domain(D1), 1);
        assert_eq!(p.release_domain(D1), 0);
        assert_eq!(p.bound_to(D2), 1);
        assert_eq!(p.take(), Some(100));
        assert_eq!(p.take(), None);
        assert!(!p.bind(7, D1), "never granted");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take,
        Bind(u8),
        PutBack,
        Lose,
        Release(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Take),
            (0u8..3).prop_map(Op::Bind),
            Just(Op::PutBack),
            Just(Op::Lose),
            (0u8..3).prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a model: no frame is ever handed out twice while in
        /// use, and the counts always add up.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut p = FramePool::new();
            p.grant(50, 8).unwrap();
            p.grant(10, 4).unwrap();
            let mut taken: Vec<u64> = Vec::new();
            let mut bound: Vec<(u64, u8)> = Vec::new();
            let mut lost = 0usize;
            for o in ops {
                match o {
                    Op::Take => {
                        if let Some(f) = p.take() {
                            prop_assert!(!taken.contains(&f));
                            prop_assert!(!bound.iter().any(|(b, _)| *b == f));
                            taken.push(f);
                        }
                    }
                    Op::Bind(d) => if let Some(f) = taken.pop() {
                        prop_assert!(p.bind(f, DomainId::new(u32::from(d), 1)));
                        bound.push((f, d));
                    },
                    Op::PutBack => if let Some(f) = taken.pop() {
                        prop_assert!(p.put_back(f));
                    },
                    Op::Lose => if let Some(f) = taken.pop() {
                        prop_assert!(p.lose(f));
                        lost += 1;
                    },
                    Op::Release(d) => {
                        let n = bound.iter().filter(|(_, x)| *x == d).count();
                        bound.retain(|(_, x)| *x != d);
                        prop_assert_eq!(p.release_domain(DomainId::new(u32::from(d), 1)), n);
                    }
                }
                prop_assert_eq!(p.bound_count(), bound.len());
                prop_assert_eq!(p.lost_count(), lost);
                prop_assert_eq!(p.free_count() + taken.len() + bound.len() + lost, 12);
                let uniq: BTreeSet<u64> = taken.iter().chain(bound.iter().map(|(f, _)| f)).copied().collect();
                prop_assert_eq!(uniq.len(), taken.len() + bound.len());
            }
        }
    }
}
