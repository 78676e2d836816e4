//! FIFO: the page resident longest leaves first. The worked example of
//! `docs/swap-server.md` (how to write a policy), kept in the build so
//! the example is the code.
//!
//! Each slot's own field is its arrival number; `evict` frees the oldest
//! clean page, or schedules the oldest dirty one for write-back. One scan
//! of the frames per victim: simple, not fast.

use alloc::vec::Vec;
use serac_protocol::DomainId;

use super::resident::{Resident, DIRTY, WRITING};
use super::{Bits, Config, Page, ReplaceError, Replacement, Victims};

/// The FIFO policy.
#[derive(Debug)]
pub struct Fifo {
    /// Each slot's field: when the page arrived.
    r: Resident<u64>,
    arrivals: u64,
}

impl Fifo {
    /// FIFO over `cfg.frames` frames.
    pub fn new(cfg: Config) -> Result<Fifo, ReplaceError> {
        Ok(Fifo {
            r: Resident::new(cfg)?,
            arrivals: 0,
        })
    }

    /// The earliest arrival that is not being written back.
    fn oldest(&self) -> Option<u32> {
        let mut best: Option<(u64, u32)> = None;
        for id in 0..self.r.capacity() {
            let Ok(id) = u32::try_from(id) else { break };
            match self.r.get(id) {
                Some(s) if !s.has(WRITING) && best.is_none_or(|(a, _)| s.x < a) => {
                    best = Some((s.x, id));
                }
                _ => {}
            }
        }
        best.map(|(_, id)| id)
    }
}

fn drop_slot(r: &mut Resident<u64>, id: u32) {
    r.remove(id);
}

impl Replacement for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
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
        if let Some(id) = self.r.find(page) {
            self.r.touch(id, write);
            return Ok(());
        }
        self.r.insert(page, write, self.arrivals)?;
        self.arrivals += 1;
        Ok(())
    }

    fn harvest(&mut self, page: Page, bits: Bits) {
        self.r.harvest(page, bits);
    }

    fn written(&mut self, page: Page) {
        self.r.written(page);
    }

    fn evict(&mut self, need: usize, out: &mut Victims) {
        let mut freed = 0;
        while freed < need && out.has_room() {
            let Some(id) = self.oldest() else { break };
            let dirty = self.r.get(id).is_some_and(|s| s.has(DIRTY));
            if dirty {
                // Written back now, freed by a later call once clean.
                self.r.schedule_write(id, out);
            } else if self.r.free_with(id, out, drop_slot) {
                freed += 1;
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
