//! A domain's handle table: bounded slots with generations.
//!
//! A [`Handle`] resolves only while its slot is live *and* its generation
//! equals the slot's. Revoking bumps the generation, so a revoked handle
//! never resolves again, even after the slot is reused; a slot whose
//! generation would wrap is retired for good rather than risk a repeat.
//! Allocation and revocation are O(1) through an intrusive free list.
//! Generation 0 is never issued, so [`Handle::NONE`] never resolves; slot 0
//! is never used, so a table of `N` slots holds `N - 1` handles.

use serac_protocol::{Handle, HandleKind, HandleRights, SysError};

/// What a live handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleEntry {
    /// What kind of object.
    pub kind: HandleKind,
    /// What the holder may do with it.
    pub rights: HandleRights,
    /// The object, in the kernel's own encoding for `kind` (e.g. a packed
    /// `DomainId` for `DomainCtl`, a frame number for `Frame`).
    pub object: u64,
    /// Delivered to the receiver with every message sent through it.
    pub badge: u64,
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    gen: u32,
    entry: Option<HandleEntry>,
    next_free: u32,
}

/// A handle table of `N` slots (`N` < 2³²−1).
#[derive(Debug, Clone)]
pub struct HandleTable<const N: usize> {
    slots: [Slot; N],
    free_head: u32,
    live: usize,
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(NIL)
}

impl<const N: usize> HandleTable<N> {
    /// An empty table.
    pub const fn new() -> Self {
        Self::with_first_gen(1)
    }

    /// An empty table whose slots start at generation `gen` (at least 1):
    /// a table that replaces an older one issues no handle the old one did.
    #[allow(clippy::cast_possible_truncation, reason = "guarded: i + 1 < NIL")]
    pub const fn with_first_gen(gen: u32) -> Self {
        let gen = if gen == 0 { 1 } else { gen };
        let mut slots = [Slot {
            gen,
            entry: None,
            next_free: NIL,
        }; N];
        let mut i = 0;
        while i < N {
            // Each free slot links to the next; the last to NIL.
            slots[i].next_free = if i + 1 < N && i + 1 < NIL as usize {
                (i + 1) as u32
            } else {
                NIL
            };
            i += 1;
        }
        // Slot 0 is never handed out, so a handle's index is never 0 and the
        // first handle of a fresh table is always `Handle::new(1, 1)`.
        if N > 0 {
            slots[0].next_free = NIL;
        }
        HandleTable {
            slots,
            free_head: if N > 1 { 1 } else { NIL },
            live: 0,
        }
    }

    /// Live handles.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no handle is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots in the table.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Stores `entry` in a free slot; `TableFull` if none is left.
    pub fn allocate(&mut self, entry: HandleEntry) -> Result<Handle, SysError> {
        let i = self.free_head;
        let slot = self.slots.get_mut(i as usize).ok_or(SysError::TableFull)?;
        self.free_head = slot.next_free;
        slot.next_free = NIL;
        slot.entry = Some(entry);
        self.live += 1;
        Ok(Handle::new(i, slot.gen))
    }

    /// Resolves `h`: `BadHandle` if it names no live slot (or is `NONE`),
    /// `StaleHandle` if the slot's generation moved on.
    pub fn lookup(&self, h: Handle) -> Result<&HandleEntry, SysError> {
        let slot = self
            .slots
            .get(h.index as usize)
            .ok_or(SysError::BadHandle)?;
        if h.is_none() {
            return Err(SysError::BadHandle);
        }
        if slot.gen != h.gen {
            return Err(SysError::StaleHandle);
        }
        slot.entry.as_ref().ok_or(SysError::BadHandle)
    }

    /// Like [`lookup`](Self::lookup), for updating the entry in place (the
    /// kernel refreshes an endpoint's generation after `ServerRestarted`).
    pub fn lookup_mut(&mut self, h: Handle) -> Result<&mut HandleEntry, SysError> {
        self.lookup(h)?;
        self.slots
            .get_mut(h.index as usize)
            .and_then(|s| s.entry.as_mut())
            .ok_or(SysError::BadHandle)
    }

    /// Resolves `h` and checks its kind (`WrongHandleKind`) and that it
    /// carries every right in `need` (`NoRights`).
    pub fn lookup_as(
        &self,
        h: Handle,
        kind: HandleKind,
        need: HandleRights,
    ) -> Result<&HandleEntry, SysError> {
        let e = self.lookup(h)?;
        if e.kind != kind {
            return Err(SysError::WrongHandleKind);
        }
        if !e.rights.contains(need) {
            return Err(SysError::NoRights);
        }
        Ok(e)
    }

    /// Revokes `h` and returns what it named (also how a handle is taken out
    /// for transfer). The slot's generation moves on, so `h` is dead for good.
    pub fn revoke(&mut self, h: Handle) -> Result<HandleEntry, SysError> {
        let e = *self.lookup(h)?;
        self.free_slot(h.index);
        Ok(e)
    }

    fn free_slot(&mut self, i: u32) {
        let head = self.free_head;
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        slot.entry = None;
        self.live -= 1;
        match slot.gen.checked_add(1) {
            Some(g) => {
                slot.gen = g;
                slot.next_free = head;
                self.free_head = i;
            }
            // Generation space exhausted: retire the slot, never reuse it.
            None => slot.next_free = NIL,
        }
    }

    /// Revokes every live handle, handing each entry to `f` (domain death).
    pub fn revoke_all(&mut self, mut f: impl FnMut(HandleEntry)) -> usize {
        let mut n = 0;
        for i in 0..N {
            if let Some(e) = self.slots.get(i).and_then(|s| s.entry) {
                self.free_slot(index_u32(i));
                f(e);
                n += 1;
            }
        }
        n
    }

    /// The live handles as (slot index, generation, entry), to pack them.
    pub fn live_entries(&self) -> impl Iterator<Item = (u32, u32, HandleEntry)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((index_u32(i), s.gen, s.entry?)))
    }

    /// A table holding exactly `live` (slot index, generation, entry), every
    /// other slot free at generation `gen`: unpacks [`live_entries`]. With
    /// `gen` above every generation the packed table had, a handle it had
    /// revoked stays stale. Indices out of range or 0 are skipped.
    ///
    /// [`live_entries`]: Self::live_entries
    pub fn restore(gen: u32, live: &[(u32, u32, HandleEntry)]) -> Self {
        let mut t = Self::with_first_gen(gen);
        for &(i, g, e) in live {
            if i == 0 {
                continue;
            }
            if let Some(s) = t.slots.get_mut(i as usize) {
                if s.entry.is_none() {
                    s.gen = g;
                    s.entry = Some(e);
                    t.live += 1;
                }
            }
        }
        // The free list: every free slot but 0, lowest first.
        t.free_head = NIL;
        for i in (1..N).rev() {
            let head = t.free_head;
            if let Some(s) = t.slots.get_mut(i) {
                if s.entry.is_none() {
                    s.next_free = head;
                    t.free_head = index_u32(i);
                }
            }
        }
        t
    }

    /// The highest generation any slot has reached (the next table for the
    /// same handle space should start above it).
    pub fn max_gen(&self) -> u32 {
        self.slots.iter().map(|s| s.gen).max().unwrap_or(1)
    }

    /// Live handles and their entries.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &HandleEntry)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((Handle::new(index_u32(i), s.gen), s.entry.as_ref()?)))
    }

    #[cfg(test)]
    fn force_gen(&mut self, i: usize, gen: u32) {
        self.slots[i].gen = gen;
    }
}

impl<const N: usize> Default for HandleTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn ep(badge: u64) -> HandleEntry {
        HandleEntry {
            kind: HandleKind::Endpoint,
            rights: HandleRights::SEND,
            object: 7,
            badge,
        }
    }

    #[test]
    fn lookup_errors() {
        let mut t = HandleTable::<3>::new();
        let h = t.allocate(ep(1)).unwrap();
        assert_eq!(h, Handle::new(1, 1), "the first handle is slot 1");
        assert_eq!(t.lookup(h).unwrap().badge, 1);
        assert_eq!(t.lookup(Handle::NONE), Err(SysError::BadHandle));
        assert_eq!(t.lookup(Handle::new(5, 1)), Err(SysError::BadHandle));
        assert_eq!(t.lookup(Handle::new(0, 1)), Err(SysError::BadHandle));
        assert_eq!(t.lookup(Handle::new(2, 1)), Err(SysError::BadHandle));
        assert_eq!(
            t.lookup(Handle::new(h.index, h.gen + 1)),
            Err(SysError::StaleHandle)
        );
        assert_eq!(
            t.lookup_as(h, HandleKind::Irq, HandleRights::default()),
            Err(SysError::WrongHandleKind)
        );
        assert_eq!(
            t.lookup_as(h, HandleKind::Endpoint, HandleRights::MAP),
            Err(SysError::NoRights)
        );
        assert!(t
            .lookup_as(h, HandleKind::Endpoint, HandleRights::SEND)
            .is_ok());
        t.allocate(ep(2)).unwrap();
        assert_eq!(t.allocate(ep(3)), Err(SysError::TableFull));
        assert_eq!(t.revoke(h).unwrap().badge, 1);
        assert_eq!(t.lookup(h), Err(SysError::StaleHandle));
        let h2 = t.allocate(ep(4)).unwrap();
        assert_eq!(h2.index, h.index);
        assert_ne!(h2, h);
        assert_eq!(t.revoke_all(|_| {}), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn a_successor_table_never_repeats_a_handle() {
        let mut t: HandleTable<4> = HandleTable::new();
        let e = HandleEntry {
            kind: HandleKind::Endpoint,
            rights: HandleRights::SEND,
            object: 1,
            badge: 0,
        };
        let old: std::vec::Vec<Handle> = (0..3).map(|_| t.allocate(e).unwrap()).collect();
        t.revoke_all(|_| {});
        let mut next: HandleTable<4> = HandleTable::with_first_gen(t.max_gen() + 1);
        for _ in 0..3 {
            let h = next.allocate(e).unwrap();
            assert!(old.iter().all(|o| o.gen < h.gen), "{h:?} vs {old:?}");
        }
    }

    #[test]
    fn exhausted_generation_retires_the_slot() {
        let mut t = HandleTable::<2>::new();
        t.force_gen(1, u32::MAX);
        let h = t.allocate(ep(0)).unwrap();
        assert_eq!(h.gen, u32::MAX);
        t.revoke(h).unwrap();
        assert_eq!(t.allocate(ep(0)), Err(SysError::TableFull));
        assert_eq!(t.lookup(h), Err(SysError::BadHandle));
    }

    #[test]
    fn zero_capacity() {
        let mut t = HandleTable::<0>::new();
        assert_eq!(t.allocate(ep(0)), Err(SysError::TableFull));
        assert_eq!(t.lookup(Handle::new(0, 1)), Err(SysError::BadHandle));
    }

    proptest! {
        #[test]
        fn revoked_handles_never_resolve_again(ops in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>()), 0..300)) {
            let mut t = HandleTable::<5>::new();
            let mut live: Vec<(Handle, u64)> = Vec::new();
            let mut dead: Vec<Handle> = Vec::new();
            for (n, (alloc, pick)) in ops.into_iter().enumerate() {
                let badge = n as u64;
                if alloc {
                    match t.allocate(ep(badge)) {
                        Ok(h) => {
                            prop_assert!(live.len() < 4);
                            prop_assert!(!dead.contains(&h));
                            live.push((h, badge));
                        }
                        Err(e) => {
                            prop_assert_eq!(e, SysError::TableFull);
                            prop_assert_eq!(live.len(), 4);
                        }
                    }
                } else if !live.is_empty() {
                    let (h, b) = live.swap_remove(pick.index(live.len()));
                    prop_assert_eq!(t.revoke(h).map(|e| e.badge), Ok(b));
                    prop_assert_eq!(t.revoke(h), Err(SysError::StaleHandle));
                    dead.push(h);
                }
                prop_assert_eq!(t.len(), live.len());
                for (h, b) in &live {
                    prop_assert_eq!(t.lookup(*h).map(|e| e.badge), Ok(*b));
                }
                for h in &dead {
                    prop_assert!(t.lookup(*h).is_err());
                }
            }
        }

        /// Packing a table and restoring it (what the kernel does to a
        /// swapped-out domain's handles) keeps every live handle and every
        /// revoked one dead, whatever came before and after.
        #[test]
        fn packing_keeps_live_handles_and_dead_ones_dead(ops in proptest::collection::vec((0u8..3, any::<prop::sample::Index>()), 0..300)) {
            let mut t = HandleTable::<5>::new();
            let mut live: Vec<(Handle, u64)> = Vec::new();
            let mut dead: Vec<Handle> = Vec::new();
            for (n, (op, pick)) in ops.into_iter().enumerate() {
                match op {
                    0 => {
                        if let Ok(h) = t.allocate(ep(n as u64)) {
                            prop_assert!(!dead.contains(&h));
                            live.push((h, n as u64));
                        }
                    }
                    1 if !live.is_empty() => {
                        let (h, _) = live.swap_remove(pick.index(live.len()));
                        t.revoke(h).unwrap();
                        dead.push(h);
                    }
                    _ => {
                        let packed: Vec<_> = t.live_entries().collect();
                        t = HandleTable::restore(t.max_gen().saturating_add(1), &packed);
                    }
                }
                prop_assert_eq!(t.len(), live.len());
                for (h, b) in &live {
                    prop_assert_eq!(t.lookup(*h).map(|e| e.badge), Ok(*b));
                }
                for h in &dead {
                    prop_assert!(t.lookup(*h).is_err());
                }
            }
        }
    }
}
