//! WSClock (Carr and Hennessy, 1981): a clock hand over the frames that
//! frees pages outside their domain's working set.
//!
//! A page is in the working set if it was used within the last `tau` clock
//! units. The hand walks the resident pages in slot (frame) order: a page
//! referenced since the hand last passed has its bit cleared and its time
//! refreshed; an unreferenced page older than `tau` is freed if clean or
//! has its write-back scheduled if dirty (the hand moves on, and frees it
//! on a later pass once it is clean). After one revolution with nothing
//! old and no write under way, the working sets exceed memory: the least
//! recently used clean page goes, or else the least recently used dirty
//! page is written back.
//!
//! Metadata: per frame one slot (page, flags, last use; 32 bytes) and two
//! index buckets, plus the per-domain record; nothing per swapped-out page.

use alloc::vec::Vec;
use serac_protocol::DomainId;

use super::resident::{Resident, DIRTY, REF, WRITING};
use super::{Bits, Config, Page, ReplaceError, Replacement, Victims};

/// The WSClock policy.
#[derive(Debug)]
pub struct WsClock {
    r: Resident<()>,
    hand: usize,
    tau: u64,
}

impl WsClock {
    /// WSClock over `cfg.frames` frames with working-set window `tau`.
    pub fn new(cfg: Config, tau: u64) -> Result<WsClock, ReplaceError> {
        Ok(WsClock {
            r: Resident::new(cfg)?,
            hand: 0,
            tau,
        })
    }

    /// The least recently used page that is not being written back and is
    /// dirty (`dirty`) or clean.
    fn oldest(&self, dirty: bool) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for id in 0..self.r.capacity() {
            let Ok(id) = u32::try_from(id) else { break };
            let Some(s) = self.r.get(id) else { continue };
            if s.has(WRITING) || s.has(DIRTY) != dirty {
                continue;
            }
            if best.is_none_or(|(t, _)| s.last_use < t) {
                best = Some((s.last_use, id));
            }
        }
        best.map(|(_, id)| id)
    }
}

/// Write-backs one sweep schedules at most.
const MAX_WRITES: usize = 32;

fn drop_slot(r: &mut Resident<()>, id: u32) {
    r.remove(id);
}

impl Replacement for WsClock {
    fn name(&self) -> &'static str {
        "wsclock"
    }
    fn capacity(&self) -> usize {
        self.r.capacity()
    }
    fn resident(&self) -> usize {
        self.r.count()
    }
    fn is_resident(&self, page: Page) -> bool {
        self.r.find(page).is_some()
    }
    fn is_dirty(&self, page: Page) -> bool {
        self.r.is_dirty(page)
    }
    fn tick(&mut self, now: u64) {
        self.r.tick(now);
    }

    fn fault(&mut self, page: Page, write: bool) -> Result<(), ReplaceError> {
        match self.r.find(page) {
            Some(id) => {
                self.r.touch(id, write);
                Ok(())
            }
            None => self.r.insert(page, write, ()).map(|_| ()),
        }
    }

    fn harvest(&mut self, page: Page, bits: Bits) {
        self.r.harvest(page, bits);
    }

    fn written(&mut self, page: Page) {
        self.r.written(page);
    }

    fn evict(&mut self, need: usize, out: &mut Victims) {
        let cap = self.r.capacity();
        if cap == 0 {
            return;
        }
        let now = self.r.now;
        let (mut freed, mut wrote) = (0, 0);
        for _ in 0..cap {
            if freed >= need || !out.has_room() {
                break;
            }
            self.hand %= cap;
            let Ok(id) = u32::try_from(self.hand) else {
                break;
            };
            self.hand += 1;
            let Some(s) = self.r.get_mut(id) else {
                continue;
            };
            if s.has(WRITING) {
                continue;
            }
            if s.has(REF) {
                s.flags &= !REF;
                s.last_use = now;
                continue;
            }
            if now.saturating_sub(s.last_use) <= self.tau {
                continue;
            }
            if s.has(DIRTY) {
                // Half the batch at most: room stays for a page to free.
                if wrote < MAX_WRITES {
                    wrote += usize::from(self.r.schedule_write(id, out));
                }
            } else if self.r.free_with(id, out, drop_slot) {
                freed += 1;
            }
        }
        // Nothing old enough: the oldest clean page (one written back since
        // the hand passed it, say), else the oldest dirty one is written.
        while freed < need && out.has_room() {
            if let Some(id) = self.oldest(false) {
                freed += usize::from(self.r.free_with(id, out, drop_slot));
            } else if wrote == 0 {
                match self.oldest(true) {
                    Some(id) => wrote += usize::from(self.r.schedule_write(id, out)),
                    None => break,
                }
            } else {
                break;
            }
        }
    }

    fn idle_domains(&self, out: &mut Vec<DomainId>) -> usize {
        self.r.idle_domains(out)
    }
    fn swap_out(&mut self, domain: DomainId, out: &mut Victims) {
        self.r.swap_out_with(domain, out, drop_slot);
    }
    fn forget(&mut self, domain: DomainId) -> usize {
        self.r.forget_with(domain, drop_slot)
    }
    fn remove(&mut self, page: Page) -> bool {
        self.r.find(page).is_some_and(|id| {
            drop_slot(&mut self.r, id);
            true
        })
    }
    fn metadata_bytes(&self) -> usize {
        self.r.bytes()
    }
}
