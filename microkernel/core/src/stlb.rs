//! The software TLB: the kernel's only record of translations.
//!
//! A bounded, global hash of (domain, virtual page) → (frame, rights): the
//! Exokernel's secure bindings. x86 page tables are a cache rebuilt from it.
//!
//! Invariants (checked by the proptests against a `HashMap` model):
//! - a (domain, page) has at most one binding;
//! - a frame is bound at most once, in one domain: a second binding is
//!   refused with `FrameInUse`, so no two domains ever share a frame;
//! - the table never holds more than [`Stlb::capacity`] bindings;
//! - every operation takes at most `slots.len()` probes.
//!
//! Storage is caller-provided (sized at boot). Each slot holds one entry of
//! two independent linear-probing tables: forward (domain, vpn) → binding,
//! and reverse frame → (domain, vpn). Deletion shifts entries back instead of
//! leaving tombstones, so lookups stay short under any insert/remove mix.
//! Hashes are keyed with a per-boot seed, so a domain cannot choose pages
//! that collide on purpose to slow other domains' lookups.

use serac_protocol::{DomainId, PageRights, SysError};

/// One binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The domain the page belongs to.
    pub domain: DomainId,
    /// Virtual page number in that domain.
    pub vpn: u64,
    /// Physical frame number.
    pub frame: u64,
    /// Access rights.
    pub rights: PageRights,
    /// Use bits (`USED_ACCESSED`, `USED_DIRTY`) harvested from page tables
    /// the kernel dropped, until the frame's owner takes them.
    pub used: u8,
}

/// Backing storage for one forward and one reverse entry.
#[derive(Debug, Clone, Copy, Default)]
pub struct StlbSlot {
    fwd: Option<Mapping>,
    rev: Option<(u64, DomainId, u64)>,
}

impl StlbSlot {
    /// An empty slot (to initialise storage).
    pub const EMPTY: StlbSlot = StlbSlot {
        fwd: None,
        rev: None,
    };
}

/// The software TLB over caller-provided slots.
#[derive(Debug)]
pub struct Stlb<'a> {
    slots: &'a mut [StlbSlot],
    len: usize,
    seed: u64,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: cheap and every input bit affects every output bit.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn reduce(h: u64, n: usize) -> usize {
    // n > 0 is checked by the callers; the result is < n, so it fits.
    usize::try_from(h % n.max(1) as u64).unwrap_or(0)
}

/// Whether `h` lies cyclically in `(hole, j]`, i.e. the entry at `j` whose
/// home is `h` may not move back to `hole`.
fn between(hole: usize, h: usize, j: usize) -> bool {
    if hole <= j {
        hole < h && h <= j
    } else {
        hole < h || h <= j
    }
}

impl<'a> Stlb<'a> {
    /// A table over `slots` (all cleared). `seed` should differ per boot.
    pub fn new(slots: &'a mut [StlbSlot], seed: u64) -> Self {
        slots.fill(StlbSlot::EMPTY);
        Stlb {
            slots,
            len: 0,
            seed,
        }
    }

    /// Most bindings held at once: 7/8 of the slots, so probe runs stay short.
    pub fn capacity(&self) -> usize {
        self.slots.len() - self.slots.len() / 8
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no binding is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn fwd_home(&self, domain: DomainId, vpn: u64) -> usize {
        reduce(
            mix(vpn ^ mix(domain.to_raw() ^ self.seed)),
            self.slots.len(),
        )
    }

    fn rev_home(&self, frame: u64) -> usize {
        reduce(mix(frame ^ self.seed.rotate_left(32)), self.slots.len())
    }

    fn fwd_find(&self, domain: DomainId, vpn: u64) -> Option<usize> {
        let n = self.slots.len();
        let mut i = self.fwd_home(domain, vpn);
        for _ in 0..n {
            match self.slots.get(i)?.fwd {
                None => return None,
                Some(m) if m.domain == domain && m.vpn == vpn => return Some(i),
                Some(_) => i = (i + 1) % n,
            }
        }
        None
    }

    fn rev_find(&self, frame: u64) -> Option<usize> {
        let n = self.slots.len();
        let mut i = self.rev_home(frame);
        for _ in 0..n {
            match self.slots.get(i)?.rev {
                None => return None,
                Some((f, _, _)) if f == frame => return Some(i),
                Some(_) => i = (i + 1) % n,
            }
        }
        None
    }

    /// Removes forward entry `i`, shifting later entries of its run back.
    fn fwd_remove_at(&mut self, mut hole: usize) {
        let n = self.slots.len();
        if let Some(s) = self.slots.get_mut(hole) {
            s.fwd = None;
        }
        let mut j = hole;
        for _ in 0..n {
            j = (j + 1) % n;
            let Some(m) = self.slots.get(j).and_then(|s| s.fwd) else {
                return;
            };
            if !between(hole, self.fwd_home(m.domain, m.vpn), j) {
                if let Some(s) = self.slots.get_mut(hole) {
                    s.fwd = Some(m);
                }
                if let Some(s) = self.slots.get_mut(j) {
                    s.fwd = None;
                }
                hole = j;
            }
        }
    }

    fn rev_remove_at(&mut self, mut hole: usize) {
        let n = self.slots.len();
        if let Some(s) = self.slots.get_mut(hole) {
            s.rev = None;
        }
        let mut j = hole;
        for _ in 0..n {
            j = (j + 1) % n;
            let Some(r) = self.slots.get(j).and_then(|s| s.rev) else {
                return;
            };
            if !between(hole, self.rev_home(r.0), j) {
                if let Some(s) = self.slots.get_mut(hole) {
                    s.rev = Some(r);
                }
                if let Some(s) = self.slots.get_mut(j) {
                    s.rev = None;
                }
                hole = j;
            }
        }
    }

    /// The binding of `vpn` in `domain`.
    pub fn lookup(&self, domain: DomainId, vpn: u64) -> Option<Mapping> {
        self.slots.get(self.fwd_find(domain, vpn)?)?.fwd
    }

    /// The use bits of `vpn` in `domain`, to OR harvested bits into or
    /// take them out.
    pub fn used_mut(&mut self, domain: DomainId, vpn: u64) -> Option<&mut u8> {
        let i = self.fwd_find(domain, vpn)?;
        self.slots.get_mut(i)?.fwd.as_mut().map(|m| &mut m.used)
    }

    /// Where `frame` is bound, if anywhere.
    pub fn frame_binding(&self, frame: u64) -> Option<(DomainId, u64)> {
        let (_, d, v) = self.slots.get(self.rev_find(frame)?)?.rev?;
        Some((d, v))
    }

    /// Inserts a binding. Fails with `AlreadyMapped` if the page is bound,
    /// `FrameInUse` if the frame is bound anywhere, `TableFull` at capacity.
    /// Ownership (may this frame be bound at all?) is checked by the caller,
    /// see [`crate::owner::map`].
    pub fn insert(&mut self, m: Mapping) -> Result<(), SysError> {
        if self.fwd_find(m.domain, m.vpn).is_some() {
            return Err(SysError::AlreadyMapped);
        }
        if self.rev_find(m.frame).is_some() {
            return Err(SysError::FrameInUse);
        }
        if self.len >= self.capacity() {
            return Err(SysError::TableFull);
        }
        self.place(m)
    }

    /// Places a new binding known to be absent, with room to spare.
    fn place(&mut self, m: Mapping) -> Result<(), SysError> {
        let n = self.slots.len();
        let (mut i, mut k) = (self.fwd_home(m.domain, m.vpn), self.rev_home(m.frame));
        // Find both free slots before writing, so a failure leaves no half entry.
        let mut fi = None;
        let mut ri = None;
        for _ in 0..n {
            if fi.is_some() && ri.is_some() {
                break;
            }
            if fi.is_none() {
                if self.slots.get(i).is_some_and(|s| s.fwd.is_none()) {
                    fi = Some(i);
                }
                i = (i + 1) % n;
            }
            if ri.is_none() {
                if self.slots.get(k).is_some_and(|s| s.rev.is_none()) {
                    ri = Some(k);
                }
                k = (k + 1) % n;
            }
        }
        let (Some(fi), Some(ri)) = (fi, ri) else {
            return Err(SysError::TableFull);
        };
        if let Some(s) = self.slots.get_mut(fi) {
            s.fwd = Some(m);
        }
        if let Some(s) = self.slots.get_mut(ri) {
            s.rev = Some((m.frame, m.domain, m.vpn));
        }
        self.len += 1;
        Ok(())
    }

    /// Like [`Stlb::insert`], but when the table is full evicts one binding
    /// of the same domain (never another domain's) and returns it, so the
    /// kernel can invalidate its page-table entry. `TableFull` if the domain
    /// has nothing to evict.
    pub fn insert_evicting(&mut self, m: Mapping) -> Result<Option<Mapping>, SysError> {
        match self.insert(m) {
            Err(SysError::TableFull) => {}
            other => return other.map(|()| None),
        }
        let n = self.slots.len();
        let start = self.fwd_home(m.domain, m.vpn);
        let victim = (0..n)
            .map(|o| (start + o) % n)
            .find_map(|i| self.slots.get(i)?.fwd.filter(|v| v.domain == m.domain))
            .ok_or(SysError::TableFull)?;
        self.remove(victim.domain, victim.vpn)?;
        self.place(m)?;
        Ok(Some(victim))
    }

    /// Removes the binding of `vpn` in `domain`; `NotMapped` if none.
    pub fn remove(&mut self, domain: DomainId, vpn: u64) -> Result<Mapping, SysError> {
        let i = self.fwd_find(domain, vpn).ok_or(SysError::NotMapped)?;
        let m = self
            .slots
            .get(i)
            .and_then(|s| s.fwd)
            .ok_or(SysError::NotMapped)?;
        self.fwd_remove_at(i);
        if let Some(r) = self.rev_find(m.frame) {
            self.rev_remove_at(r);
        }
        self.len -= 1;
        Ok(m)
    }

    /// Removes every binding of `domain` (death, swap-out), handing each to
    /// `f` so the caller can invalidate page tables and reclaim frames.
    /// Returns how many were removed. O(slots).
    pub fn remove_all_for_domain(&mut self, domain: DomainId, mut f: impl FnMut(Mapping)) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            // Backward shift only moves entries into the hole at `i` or
            // later, so re-examining `i` after a removal visits every entry.
            match self.slots.get(i).and_then(|s| s.fwd) {
                Some(m) if m.domain == domain => {
                    self.fwd_remove_at(i);
                    if let Some(r) = self.rev_find(m.frame) {
                        self.rev_remove_at(r);
                    }
                    self.len -= 1;
                    removed += 1;
                    f(m);
                }
                _ => i += 1,
            }
        }
        removed
    }

    /// The bindings of `domain`, in table order. O(slots).
    pub fn entries_of(&self, domain: DomainId) -> impl Iterator<Item = Mapping> + '_ {
        self.slots
            .iter()
            .filter_map(move |s| s.fwd.filter(|m| m.domain == domain))
    }

    /// Every binding, in table order. O(slots).
    pub fn iter(&self) -> impl Iterator<Item = Mapping> + '_ {
        self.slots.iter().filter_map(|s| s.fwd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    use std::vec::Vec;

    fn d(i: u32) -> DomainId {
        DomainId::new(i, 1)
    }

    fn m(dom: u32, vpn: u64, frame: u64) -> Mapping {
        Mapping {
            domain: d(dom),
            vpn,
            frame,
            rights: PageRights::READ_WRITE,
            used: 0,
        }
    }

    #[test]
    fn basic_binding_rules() {
        let mut slots = [StlbSlot::EMPTY; 16];
        let mut t = Stlb::new(&mut slots, 7);
        assert_eq!(t.capacity(), 14);
        t.insert(m(1, 10, 100)).unwrap();
        assert_eq!(t.insert(m(1, 10, 101)), Err(SysError::AlreadyMapped));
        assert_eq!(t.insert(m(2, 10, 100)), Err(SysError::FrameInUse));
        assert_eq!(t.lookup(d(1), 10), Some(m(1, 10, 100)));
        assert_eq!(t.lookup(DomainId::new(1, 2), 10), None);
        assert_eq!(t.frame_binding(100), Some((d(1), 10)));
        assert_eq!(t.remove(d(1), 11), Err(SysError::NotMapped));
        assert_eq!(t.remove(d(1), 10), Ok(m(1, 10, 100)));
        t.insert(m(2, 10, 100)).unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn eviction_stays_within_the_domain() {
        let mut slots = [StlbSlot::EMPTY; 8];
        let mut t = Stlb::new(&mut slots, 1);
        for v in 0..7 {
            t.insert(m(if v < 6 { 1 } else { 2 }, v, v)).unwrap();
        }
        assert_eq!(t.insert(m(1, 50, 50)), Err(SysError::TableFull));
        let ev = t.insert_evicting(m(2, 50, 50)).unwrap().unwrap();
        assert_eq!((ev.domain, ev.vpn), (d(2), 6));
        assert_eq!(t.insert_evicting(m(3, 0, 99)), Err(SysError::TableFull));
        assert_eq!(t.len(), 7);
        assert_eq!(t.remove_all_for_domain(d(1), |_| {}), 6);
        assert_eq!(t.entries_of(d(2)).count(), 1);
    }

    #[test]
    fn zero_slots_refuse_everything() {
        let mut slots: [StlbSlot; 0] = [];
        let mut t = Stlb::new(&mut slots, 0);
        assert_eq!(t.insert(m(1, 1, 1)), Err(SysError::TableFull));
        assert_eq!(t.lookup(d(1), 1), None);
        assert_eq!(t.remove_all_for_domain(d(1), |_| {}), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u64, u64),
        Evicting(u32, u64, u64),
        Remove(u32, u64),
        RemoveAll(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..3, 0u64..12, 0u64..20).prop_map(|(a, b, c)| Op::Insert(a, b, c)),
            1 => (0u32..3, 0u64..12, 0u64..20).prop_map(|(a, b, c)| Op::Evicting(a, b, c)),
            3 => (0u32..3, 0u64..12).prop_map(|(a, b)| Op::Remove(a, b)),
            1 => (0u32..3).prop_map(Op::RemoveAll),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_hashmap_model(size in 1usize..24, seed in any::<u64>(), ops in proptest::collection::vec(op(), 0..200)) {
            let mut slots = std::vec![StlbSlot::EMPTY; size];
            let mut t = Stlb::new(&mut slots, seed);
            let cap = t.capacity();
            let mut model: HashMap<(u32, u64), u64> = HashMap::new();
            for op in ops {
                let frames: HashSet<u64> = model.values().copied().collect();
                match op {
                    Op::Insert(dom, vpn, frame) | Op::Evicting(dom, vpn, frame) => {
                        let evicting = matches!(op, Op::Evicting(..));
                        let expect = if model.contains_key(&(dom, vpn)) {
                            Err(SysError::AlreadyMapped)
                        } else if frames.contains(&frame) {
                            Err(SysError::FrameInUse)
                        } else if model.len() >= cap && !(evicting && model.keys().any(|k| k.0 == dom)) {
                            Err(SysError::TableFull)
                        } else {
                            Ok(())
                        };
                        let got = if evicting {
                            t.insert_evicting(m(dom, vpn, frame)).map(|ev| {
                                if let Some(ev) = ev {
                                    assert_eq!(ev.domain, d(dom));
                                    assert_eq!(model.remove(&(dom, ev.vpn)), Some(ev.frame));
                                }
                            })
                        } else {
                            t.insert(m(dom, vpn, frame))
                        };
                        prop_assert_eq!(got, expect);
                        if got.is_ok() {
                            model.insert((dom, vpn), frame);
                        }
                    }
                    Op::Remove(dom, vpn) => {
                        let got = t.remove(d(dom), vpn).map(|x| x.frame);
                        prop_assert_eq!(got, model.remove(&(dom, vpn)).ok_or(SysError::NotMapped));
                    }
                    Op::RemoveAll(dom) => {
                        let mut seen = Vec::new();
                        let n = t.remove_all_for_domain(d(dom), |x| seen.push((x.vpn, x.frame)));
                        let mut want: Vec<(u64, u64)> = model.iter().filter(|(k, _)| k.0 == dom).map(|(k, f)| (k.1, *f)).collect();
                        model.retain(|k, _| k.0 != dom);
                        seen.sort_unstable();
                        want.sort_unstable();
                        prop_assert_eq!(n, want.len());
                        prop_assert_eq!(seen, want);
                    }
                }
                // Whole-table invariants after every step.
                prop_assert_eq!(t.len(), model.len());
                prop_assert!(t.len() <= cap);
                let mut frames_seen = HashSet::new();
                for e in t.iter() {
                    prop_assert!(frames_seen.insert(e.frame), "frame bound twice");
                    prop_assert_eq!(t.frame_binding(e.frame), Some((e.domain, e.vpn)));
                }
                for dom in 0..3 {
                    for vpn in 0..12 {
                        prop_assert_eq!(t.lookup(d(dom), vpn).map(|x| x.frame), model.get(&(dom, vpn)).copied());
                    }
                }
                for frame in 0..20 {
                    let want = model.iter().find(|(_, f)| **f == frame).map(|(k, _)| (d(k.0), k.1));
                    prop_assert_eq!(t.frame_binding(frame), want);
                }
            }
        }
    }
}
