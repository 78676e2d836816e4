//! What every policy keeps per resident page and per domain, and the
//! bookkeeping they share (flags, write-back states, idle domains).
//!
//! Slots are numbered `0 .. frames`, like frames: a clock hand can walk them
//! in order. A slot holds the page, its flags, when it was last used and a
//! policy's own field `X` (list links for 2Q, nothing for WSClock). A domain
//! has a record only while it has a resident page, so there are never more
//! records than frames.

use alloc::vec::Vec;
use core::mem::size_of;
use serac_protocol::DomainId;

use super::index::{mix, Index};
use super::{Action, Bits, Config, Page, ReplaceError, Victim, Victims};

/// Referenced since the policy last looked.
pub(crate) const REF: u8 = 1;
/// Holds data not on disk.
pub(crate) const DIRTY: u8 = 2;
/// A write-back is in flight.
pub(crate) const WRITING: u8 = 4;
/// Stored to while its write-back was in flight (still dirty after it).
pub(crate) const REDIRTY: u8 = 8;

/// One resident page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<X> {
    pub(crate) page: Page,
    pub(crate) flags: u8,
    /// Clock time of the last fault or harvested reference.
    pub(crate) last_use: u64,
    pub(crate) x: X,
}

impl<X> Slot<X> {
    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

#[derive(Debug, Clone, Copy)]
struct Dom {
    id: DomainId,
    resident: u32,
    last_active: u64,
}

/// Most idle domains [`Resident::idle_domains`] picks at once.
const IDLE_PICK: usize = 256;

/// The resident set of one policy.
#[derive(Debug)]
pub(crate) struct Resident<X> {
    slots: Vec<Option<Slot<X>>>,
    free: Vec<u32>,
    index: Index,
    doms: Vec<Option<Dom>>,
    dom_free: Vec<u32>,
    dom_index: Index,
    count: usize,
    pub(crate) now: u64,
    idle_after: u64,
}

pub(crate) fn page_hash(p: Page) -> u64 {
    mix(p.domain.to_raw() ^ mix(p.vpn))
}

fn dom_hash(d: DomainId) -> u64 {
    mix(d.to_raw())
}

fn reserve<T: Clone>(v: &mut Vec<T>, n: usize, fill: T) -> Result<(), ReplaceError> {
    v.try_reserve_exact(n).map_err(|_| ReplaceError::NoMemory)?;
    v.resize(n, fill);
    Ok(())
}

fn free_list(n: usize) -> Result<Vec<u32>, ReplaceError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| ReplaceError::NoMemory)?;
    // Lowest slot handed out first.
    for i in (0..n).rev() {
        v.push(u32::try_from(i).map_err(|_| ReplaceError::NoMemory)?);
    }
    Ok(v)
}

impl<X: Copy> Resident<X> {
    pub(crate) fn new(cfg: Config) -> Result<Resident<X>, ReplaceError> {
        let n = cfg.frames;
        if n >= u32::MAX as usize {
            return Err(ReplaceError::NoMemory);
        }
        let mut slots = Vec::new();
        reserve(&mut slots, n, None)?;
        let mut doms = Vec::new();
        reserve(&mut doms, n, None)?;
        Ok(Resident {
            slots,
            free: free_list(n)?,
            index: Index::new(n)?,
            doms,
            dom_free: free_list(n)?,
            dom_index: Index::new(n)?,
            count: 0,
            now: 0,
            idle_after: cfg.idle_after,
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Bytes held by the tables.
    pub(crate) fn bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Option<Slot<X>>>()
            + self.free.capacity() * size_of::<u32>()
            + self.index.bytes()
            + self.doms.capacity() * size_of::<Option<Dom>>()
            + self.dom_free.capacity() * size_of::<u32>()
            + self.dom_index.bytes()
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Slot<X>> {
        self.slots.get(id as usize)?.as_ref()
    }
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Slot<X>> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    pub(crate) fn find(&self, page: Page) -> Option<u32> {
        self.index.find(page_hash(page), |id| {
            self.get(id).is_some_and(|s| s.page == page)
        })
    }

    fn find_dom(&self, d: DomainId) -> Option<u32> {
        self.dom_index.find(dom_hash(d), |id| {
            self.doms
                .get(id as usize)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.id == d)
        })
    }

    fn dom_mut(&mut self, d: DomainId) -> Option<&mut Dom> {
        let id = self.find_dom(d)?;
        self.doms.get_mut(id as usize)?.as_mut()
    }

    fn activate(&mut self, d: DomainId) {
        let now = self.now;
        if let Some(r) = self.dom_mut(d) {
            r.last_active = now;
        }
    }

    pub(crate) fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    /// Makes `page` resident (it must not be); returns its slot.
    pub(crate) fn insert(&mut self, page: Page, write: bool, x: X) -> Result<u32, ReplaceError> {
        let Some(&id) = self.free.last() else {
            return Err(ReplaceError::Full);
        };
        if self.find_dom(page.domain).is_none() {
            // Cannot run dry: each record has a resident page, and one
            // slot is still free.
            let did = self.dom_free.pop().ok_or(ReplaceError::Full)?;
            if let Some(r) = self.doms.get_mut(did as usize) {
                *r = Some(Dom {
                    id: page.domain,
                    resident: 0,
                    last_active: self.now,
                });
            }
            self.dom_index.insert(dom_hash(page.domain), did);
        }
        let now = self.now;
        if let Some(r) = self.dom_mut(page.domain) {
            r.resident += 1;
            r.last_active = now;
        }
        self.free.pop();
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = Some(Slot {
                page,
                flags: if write { DIRTY } else { 0 },
                last_use: now,
                x,
            });
        }
        self.index.insert(page_hash(page), id);
        self.count += 1;
        Ok(id)
    }

    /// Forgets slot `id`; returns what it held.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Slot<X>> {
        let slot = self.get(id).copied()?;
        let slots = &self.slots;
        self.index.remove(page_hash(slot.page), id, |i| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| page_hash(s.page))
        });
        if let Some(s) = self.slots.get_mut(id as usize) {
            *s = None;
        }
        self.free.push(id);
        self.count -= 1;
        if let Some(did) = self.find_dom(slot.page.domain) {
            let left = self
                .doms
                .get_mut(did as usize)
                .and_then(Option::as_mut)
                .map(|r| {
                    r.resident = r.resident.saturating_sub(1);
                    r.resident
                });
            if left == Some(0) {
                let doms = &self.doms;
                self.dom_index.remove(dom_hash(slot.page.domain), did, |i| {
                    doms.get(i as usize)
                        .and_then(Option::as_ref)
                        .map_or(0, |r| dom_hash(r.id))
                });
                if let Some(r) = self.doms.get_mut(did as usize) {
                    *r = None;
                }
                self.dom_free.push(did);
            }
        }
        Some(slot)
    }

    /// A fault on a resident page: a reference, maybe a store.
    pub(crate) fn touch(&mut self, id: u32, write: bool) {
        let now = self.now;
        let Some(s) = self.get_mut(id) else { return };
        s.flags |= REF;
        s.last_use = now;
        if write {
            s.flags |= DIRTY;
            if s.has(WRITING) {
                s.flags |= REDIRTY;
            }
        }
        let d = s.page.domain;
        self.activate(d);
    }

    pub(crate) fn harvest(&mut self, page: Page, bits: Bits) {
        let Some(id) = self.find(page) else { return };
        let Some(s) = self.get_mut(id) else { return };
        if bits.dirty {
            s.flags |= DIRTY;
            if s.has(WRITING) {
                s.flags |= REDIRTY;
            }
        }
        if bits.referenced {
            s.flags |= REF;
            self.activate(page.domain);
        }
    }

    pub(crate) fn written(&mut self, page: Page) {
        let Some(id) = self.find(page) else { return };
        let Some(s) = self.get_mut(id) else { return };
        if s.has(WRITING) {
            let still = s.flags & REDIRTY != 0;
            s.flags &= !(WRITING | REDIRTY | DIRTY);
            if still {
                s.flags |= DIRTY;
            }
        }
    }

    /// Pushes a write-back of slot `id` and marks it in flight.
    pub(crate) fn schedule_write(&mut self, id: u32, out: &mut Victims) -> bool {
        let Some(s) = self.get_mut(id) else {
            return false;
        };
        let page = s.page;
        if !out.push(Victim {
            page,
            action: Action::WriteBack,
        }) {
            return false;
        }
        s.flags |= WRITING;
        s.flags &= !REDIRTY;
        true
    }

    pub(crate) fn is_dirty(&self, page: Page) -> bool {
        self.find(page)
            .and_then(|id| self.get(id))
            .is_some_and(|s| s.has(DIRTY))
    }

    /// The idle domains, longest idle first: when more are idle than `out`
    /// holds, the ones idle longest (a domain idle only just, say one
    /// waiting on a busy server while it starts, goes last). Returns how
    /// many are idle.
    pub(crate) fn idle_domains(&self, out: &mut Vec<DomainId>) -> usize {
        if self.idle_after == 0 {
            return 0;
        }
        let cap = out.capacity().saturating_sub(out.len()).min(IDLE_PICK);
        // The chosen ones and their last activity, and where the most
        // recent of them is (the next to give way).
        let mut pick = [(0u64, DomainId::from_raw(0)); IDLE_PICK];
        let (mut k, mut newest) = (0usize, 0usize);
        let mut n = 0;
        for r in self.doms.iter().flatten() {
            if self.now.saturating_sub(r.last_active) < self.idle_after {
                continue;
            }
            n += 1;
            let e = (r.last_active, r.id);
            if k < cap {
                if let Some(p) = pick.get_mut(k) {
                    *p = e;
                }
                if pick.get(newest).is_some_and(|p| e.0 > p.0) {
                    newest = k;
                }
                k += 1;
            } else if pick.get(newest).is_some_and(|p| e.0 < p.0) {
                if let Some(p) = pick.get_mut(newest) {
                    *p = e;
                }
                newest = pick
                    .iter()
                    .take(k)
                    .enumerate()
                    .max_by_key(|(_, p)| p.0)
                    .map_or(0, |(i, _)| i);
            }
        }
        let chosen = pick.get_mut(..k).unwrap_or_default();
        chosen.sort_unstable_by_key(|p| p.0);
        out.extend(chosen.iter().map(|p| p.1));
        n
    }

    /// The slot ids of `domain`'s pages, walked in slot order; `f` may
    /// remove the slot it is given.
    pub(crate) fn for_domain(
        &mut self,
        domain: DomainId,
        mut f: impl FnMut(&mut Resident<X>, u32) -> bool,
    ) {
        for i in 0..self.slots.len() {
            let Ok(id) = u32::try_from(i) else { return };
            if self.get(id).is_some_and(|s| s.page.domain == domain) && !f(self, id) {
                return;
            }
        }
    }

    /// The shared part of [`Replacement::swap_out`](super::Replacement):
    /// clean pages freed through `remove`, dirty ones written back.
    pub(crate) fn swap_out_with(
        &mut self,
        domain: DomainId,
        out: &mut Victims,
        mut remove: impl FnMut(&mut Resident<X>, u32),
    ) {
        self.for_domain(domain, |r, id| {
            if !out.has_room() {
                return false;
            }
            let Some(s) = r.get(id).copied() else {
                return true;
            };
            if s.has(WRITING) {
                return true;
            }
            if s.has(DIRTY) {
                r.schedule_write(id, out);
            } else {
                out.push(Victim {
                    page: s.page,
                    action: Action::Free,
                });
                remove(r, id);
            }
            true
        });
    }

    /// The shared part of [`Replacement::forget`](super::Replacement).
    pub(crate) fn forget_with(
        &mut self,
        domain: DomainId,
        mut remove: impl FnMut(&mut Resident<X>, u32),
    ) -> usize {
        let mut n = 0;
        self.for_domain(domain, |r, id| {
            remove(r, id);
            n += 1;
            true
        });
        n
    }

    /// Frees clean slot `id` into `out` through `remove`; false if `out` is
    /// full or the slot is not a clean, idle page.
    pub(crate) fn free_with(
        &mut self,
        id: u32,
        out: &mut Victims,
        mut remove: impl FnMut(&mut Resident<X>, u32),
    ) -> bool {
        let Some(s) = self.get(id).copied() else {
            return false;
        };
        if s.has(DIRTY) || s.has(WRITING) {
            return false;
        }
        if !out.push(Victim {
            page: s.page,
            action: Action::Free,
        }) {
            return false;
        }
        remove(self, id);
        true
    }
}
