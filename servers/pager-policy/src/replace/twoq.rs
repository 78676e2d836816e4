//! 2Q (Johnson and Shasha, 1994), with a clock for its hot queue, since the
//! swapper sees harvested reference bits rather than every access.
//!
//! - `A1in`: a FIFO of pages faulted in for the first time. A reference
//!   while a page sits here does not promote it (a burst of correlated
//!   references is one use).
//! - `A1out`: a bounded FIFO of *ghosts*, the keys (no data) of pages freed
//!   from `A1in`.
//! - `Am`: the hot pages, those faulted in again while their ghost was in
//!   `A1out`; a second-chance clock over them.
//!
//! Eviction frees from `A1in` while it holds more than `kin` pages, else
//! from `Am`'s clock. A scan of pages used once only flows through `A1in`
//! and `A1out` and never displaces the hot set. Sizes as the paper
//! recommends: `kin` a quarter of the frames, `A1out` half as many ghosts
//! as frames.
//!
//! Metadata: per frame one slot (page, flags, last use, two links and the
//! queue; 40 bytes) and two index buckets; per ghost 24 bytes and two
//! buckets; the per-domain record.

use alloc::vec::Vec;
use serac_protocol::DomainId;

use super::index::Index;
use super::resident::{page_hash, Resident, DIRTY, REF, WRITING};
use super::{Bits, Config, Page, ReplaceError, Replacement, Victims};

const NIL: u32 = u32::MAX;

/// Which queue a resident page is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    A1in,
    Am,
}

#[derive(Debug, Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
    queue: Queue,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

fn links(r: &Resident<Links>, id: u32) -> Option<Links> {
    r.get(id).map(|s| s.x)
}

fn set_prev(r: &mut Resident<Links>, id: u32, prev: u32) {
    if let Some(s) = r.get_mut(id) {
        s.x.prev = prev;
    }
}

fn set_next(r: &mut Resident<Links>, id: u32, next: u32) {
    if let Some(s) = r.get_mut(id) {
        s.x.next = next;
    }
}

fn push_back(r: &mut Resident<Links>, l: &mut List, id: u32, queue: Queue) {
    if let Some(s) = r.get_mut(id) {
        s.x = Links {
            prev: l.tail,
            next: NIL,
            queue,
        };
    } else {
        return;
    }
    if l.tail == NIL {
        l.head = id;
    } else {
        set_next(r, l.tail, id);
    }
    l.tail = id;
    l.len += 1;
}

fn unlink(r: &mut Resident<Links>, l: &mut List, id: u32) {
    let Some(x) = links(r, id) else { return };
    if x.prev == NIL {
        l.head = x.next;
    } else {
        set_next(r, x.prev, x.next);
    }
    if x.next == NIL {
        l.tail = x.prev;
    } else {
        set_prev(r, x.next, x.prev);
    }
    l.len = l.len.saturating_sub(1);
}

/// The ghosts: a ring of keys, newest at `next - 1`, and an index to them.
#[derive(Debug)]
struct Ghosts {
    ring: Vec<Option<Page>>,
    next: usize,
    index: Index,
}

impl Ghosts {
    fn new(n: usize) -> Result<Ghosts, ReplaceError> {
        let mut ring = Vec::new();
        ring.try_reserve_exact(n)
            .map_err(|_| ReplaceError::NoMemory)?;
        ring.resize(n, None);
        Ok(Ghosts {
            ring,
            next: 0,
            index: Index::new(n)?,
        })
    }

    fn bytes(&self) -> usize {
        self.ring.capacity() * core::mem::size_of::<Option<Page>>() + self.index.bytes()
    }

    fn find(&self, page: Page) -> Option<u32> {
        self.index.find(page_hash(page), |i| {
            self.ring.get(i as usize).copied().flatten() == Some(page)
        })
    }

    fn clear_at(&mut self, i: u32) {
        let Some(Some(p)) = self.ring.get(i as usize).copied() else {
            return;
        };
        let ring = &self.ring;
        self.index.remove(page_hash(p), i, |j| {
            ring.get(j as usize).copied().flatten().map_or(0, page_hash)
        });
        if let Some(slot) = self.ring.get_mut(i as usize) {
            *slot = None;
        }
    }

    /// Records `page`, pushing out the oldest ghost when the ring is full.
    fn add(&mut self, page: Page) {
        if self.ring.is_empty() || self.find(page).is_some() {
            return;
        }
        let Ok(i) = u32::try_from(self.next) else {
            return;
        };
        self.clear_at(i);
        if let Some(slot) = self.ring.get_mut(self.next) {
            *slot = Some(page);
        }
        self.index.insert(page_hash(page), i);
        self.next = (self.next + 1) % self.ring.len();
    }

    /// Whether `page` had a ghost (which is gone now).
    fn take(&mut self, page: Page) -> bool {
        match self.find(page) {
            Some(i) => {
                self.clear_at(i);
                true
            }
            None => false,
        }
    }
}

/// The 2Q policy.
#[derive(Debug)]
pub struct TwoQ {
    r: Resident<Links>,
    a1in: List,
    am: List,
    ghosts: Ghosts,
    kin: usize,
}

impl TwoQ {
    /// 2Q over `cfg.frames` frames with the paper's sizes.
    pub fn new(cfg: Config) -> Result<TwoQ, ReplaceError> {
        TwoQ::with_sizes(cfg, (cfg.frames / 4).max(1), cfg.frames / 2)
    }

    /// 2Q with `kin` pages kept in `A1in` and `kout` ghosts.
    pub fn with_sizes(cfg: Config, kin: usize, kout: usize) -> Result<TwoQ, ReplaceError> {
        Ok(TwoQ {
            r: Resident::new(cfg)?,
            a1in: EMPTY_LIST,
            am: EMPTY_LIST,
            ghosts: Ghosts::new(kout)?,
            kin,
        })
    }

    /// Whether `page` is resident on the hot queue.
    pub fn is_hot(&self, page: Page) -> bool {
        self.r
            .find(page)
            .and_then(|id| links(&self.r, id))
            .is_some_and(|x| x.queue == Queue::Am)
    }

    /// Frees or writes back from `A1in`'s head while it is longer than
    /// `keep`. Returns (freed, writes scheduled).
    fn take_a1in(&mut self, keep: usize, need: usize, out: &mut Victims) -> (usize, usize) {
        let (mut freed, mut wrote) = (0, 0);
        let mut cur = self.a1in.head;
        for _ in 0..self.r.capacity() {
            if cur == NIL || freed >= need || !out.has_room() || self.a1in.len <= keep {
                break;
            }
            let Some(s) = self.r.get(cur).copied() else {
                break;
            };
            let next = s.x.next;
            if s.has(WRITING) {
            } else if s.has(DIRTY) {
                wrote += usize::from(self.r.schedule_write(cur, out));
            } else {
                let a1in = &mut self.a1in;
                if self.r.free_with(cur, out, |r, id| {
                    unlink(r, a1in, id);
                    r.remove(id);
                }) {
                    self.ghosts.add(s.page);
                    freed += 1;
                }
            }
            cur = next;
        }
        (freed, wrote)
    }

    /// The hot queue's second-chance clock. Returns (freed, writes).
    fn take_am(&mut self, need: usize, out: &mut Victims) -> (usize, usize) {
        let (mut freed, mut wrote) = (0, 0);
        for _ in 0..2 * self.am.len {
            let id = self.am.head;
            if id == NIL || freed >= need || !out.has_room() {
                break;
            }
            let Some(s) = self.r.get_mut(id) else { break };
            if s.has(WRITING) {
            } else if s.has(REF) {
                s.flags &= !REF;
            } else if s.has(DIRTY) {
                wrote += usize::from(self.r.schedule_write(id, out));
            } else {
                let am = &mut self.am;
                if self.r.free_with(id, out, |r, i| {
                    unlink(r, am, i);
                    r.remove(i);
                }) {
                    freed += 1;
                    continue;
                }
            }
            // Passed over: to the back of the clock.
            unlink(&mut self.r, &mut self.am, id);
            push_back(&mut self.r, &mut self.am, id, Queue::Am);
        }
        (freed, wrote)
    }
}

impl Replacement for TwoQ {
    fn name(&self) -> &'static str {
        "2q"
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
        if self.r.count() >= self.r.capacity() {
            return Err(ReplaceError::Full);
        }
        let hot = self.ghosts.take(page);
        let x = Links {
            prev: NIL,
            next: NIL,
            queue: Queue::A1in,
        };
        let id = self.r.insert(page, write, x)?;
        if hot {
            push_back(&mut self.r, &mut self.am, id, Queue::Am);
        } else {
            push_back(&mut self.r, &mut self.a1in, id, Queue::A1in);
        }
        Ok(())
    }

    fn harvest(&mut self, page: Page, bits: Bits) {
        self.r.harvest(page, bits);
    }

    fn written(&mut self, page: Page) {
        self.r.written(page);
    }

    fn evict(&mut self, need: usize, out: &mut Victims) {
        let (mut freed, mut wrote) = self.take_a1in(self.kin, need, out);
        if freed < need {
            let (f, w) = self.take_am(need - freed, out);
            freed += f;
            wrote += w;
        }
        // Am had nothing to give (empty, or all in flight): A1in, whatever
        // its length.
        if freed < need && wrote == 0 {
            self.take_a1in(0, need - freed, out);
        }
    }

    fn idle_domains(&self, out: &mut Vec<DomainId>) -> usize {
        self.r.idle_domains(out)
    }

    fn swap_out(&mut self, domain: DomainId, out: &mut Victims) {
        let (a1in, am) = (&mut self.a1in, &mut self.am);
        self.r.swap_out_with(domain, out, |r, id| {
            unlink_any(r, a1in, am, id);
            r.remove(id);
        });
    }

    fn forget(&mut self, domain: DomainId) -> usize {
        let (a1in, am) = (&mut self.a1in, &mut self.am);
        self.r.forget_with(domain, |r, id| {
            unlink_any(r, a1in, am, id);
            r.remove(id);
        })
    }

    fn remove(&mut self, page: Page) -> bool {
        let Some(id) = self.r.find(page) else {
            return false;
        };
        unlink_any(&mut self.r, &mut self.a1in, &mut self.am, id);
        self.r.remove(id);
        true
    }

    fn metadata_bytes(&self) -> usize {
        self.r.bytes() + self.ghosts.bytes()
    }
}

fn unlink_any(r: &mut Resident<Links>, a1in: &mut List, am: &mut List, id: u32) {
    match links(r, id).map(|x| x.queue) {
        Some(Queue::A1in) => unlink(r, a1in, id),
        Some(Queue::Am) => unlink(r, am, id),
        None => {}
    }
}
