//! Swapping: page-out to one swap area on the disk server, page-in with a
//! checksum, whole idle domains swapped out and prefetched back (REAP),
//! and recovery after a swapper crash.
//!
//! The engine is driven by the [`Pager`](crate::Pager) and does its I/O
//! through two traits the swapper implements with syscalls: the
//! [`Mmu`](crate::Mmu) (frames, bindings, use bits) and [`SwapDisk`] (4 KiB
//! blocks of the area). The order that makes a crash lose nothing: a frame
//! is unbound only after its page's copy and descriptor are flushed, and
//! only with `FRAMES_IF_CLEAN`, so a page written after its copy stays
//! bound. The on-disk format is in [`format`] and docs/disk-format.md.
//!
//! Every table is reserved when the engine is built and never grows:
//! [`MAX_RESIDENT`] resident pages, [`MAX_SLOTS`] slots, [`MAX_DOMS`]
//! per-domain records.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::size_of;
use serac_protocol::syscall::{
    FrameRecord, FRAMES_IF_CLEAN, FRAMES_MAX, FRAMES_TAKE, FRAMES_UNBIND, STATUS_ACCESSED,
    STATUS_BOUND, STATUS_DIRTY, STATUS_UNBOUND,
};
use serac_protocol::{DomainId, Handle, SysError};

pub mod format;
#[cfg(test)]
mod tests;

use crate::pager::Mmu;
use crate::pool::FramePool;
use crate::replace::index::{mix, Index};
use crate::replace::{Bits, Config, Page, ReplaceError, Replacement, Victims};
use format::{crc32c, Desc, Geometry, Header, DESC_LEN, DESC_PER_BLOCK};
pub use format::{Block, BLOCK};

/// Resident pages the engine tracks (its share of the swapper's 1 MiB
/// heap). Beyond it a fault first pages something out.
pub const MAX_RESIDENT: usize = 2048;
/// Most slots used in the swap area (48 MiB of pages; fewer if the heap
/// cannot hold their table when the area opens).
pub const MAX_SLOTS: u32 = 12_288;
/// Domains with a swap-out record (a run to prefetch, counters).
pub const MAX_DOMS: usize = 256;
/// Most pages of one whole-domain swap-out (one `Frames` call).
pub const RUN_MAX: usize = FRAMES_MAX;
/// Victims asked for per eviction round.
const BATCH: usize = 32;
/// Eviction rounds per reclaim (a write-back round, then a freeing one).
const ROUNDS: usize = 4;
/// Faults served without trying to page out after a try that freed nothing.
const FUTILE_BACKOFF: u32 = 64;
/// Idle domains swapped out per idle check.
const IDLE_PER_CHECK: usize = 32;

const NO: u32 = u32::MAX;

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// There is no swap area for this swapper (or no disk server).
    NotFound,
    /// The device or the server failed; nothing was claimed to succeed.
    Io,
}

/// The swap area: 4 KiB blocks on the disk server.
pub trait SwapDisk {
    /// Opens the area (the first call; later calls may return at once) and
    /// returns its length in blocks.
    fn open(&mut self) -> Result<u64, DiskError>;
    /// Reads block `n`.
    fn read(&mut self, n: u64, buf: &mut Block) -> Result<(), DiskError>;
    /// Writes block `n` (not atomic: a crash may leave half of it).
    fn write(&mut self, n: u64, buf: &Block) -> Result<(), DiskError>;
    /// Returns once every write before it is durable.
    fn flush(&mut self) -> Result<(), DiskError>;
}

/// No swap area: the pager only zero-fills.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDisk;

impl SwapDisk for NoDisk {
    fn open(&mut self) -> Result<u64, DiskError> {
        Err(DiskError::NotFound)
    }
    fn read(&mut self, _: u64, _: &mut Block) -> Result<(), DiskError> {
        Err(DiskError::NotFound)
    }
    fn write(&mut self, _: u64, _: &Block) -> Result<(), DiskError> {
        Err(DiskError::NotFound)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        Err(DiskError::NotFound)
    }
}

/// Why a page's swap copy could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The read failed.
    ReadError,
    /// The data does not match the descriptor's CRC.
    ChecksumMismatch,
    /// The area could not be opened or recovered, so whether the page is
    /// in swap is unknown.
    AreaUnreadable,
    /// No frame could take it (the copy stays in swap; the domain is
    /// killed as out of frames).
    NoFrame,
}

/// Why a domain was not swapped out whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapOutError {
    /// No swap area.
    NoArea,
    /// The write failed; its pages stay resident.
    Io,
    /// Pages were used meanwhile (some stay resident).
    Busy,
    /// No run of free slots (or no record) for it.
    Full,
    /// More pages than one run holds.
    TooBig,
    /// It has no resident page the swapper tracks.
    NothingResident,
}

/// What the swapper was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapConfig {
    /// This boot (the clock page's boot TSC): an area from another boot
    /// starts empty.
    pub boot_id: u64,
    /// Whether an earlier incarnation of this swapper ran this boot (its
    /// pages may be in the area, so it is opened before any fault).
    pub restarted: bool,
    /// A domain with no fault and no reference for this long (clock units)
    /// is swapped out whole; 0: never.
    pub idle_after: u64,
    /// WSClock's working-set window (clock units).
    pub tau: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Written, descriptor not yet flushed.
    Pending,
    /// The page's only copy: it is not resident.
    Swapped,
    /// A clean copy of a resident page.
    Copy,
    /// A write to it failed: not used again by this incarnation.
    Bad,
}

/// One slot, 24 bytes: the descriptor's fields but its sequence (a block
/// rewrite gives every live descriptor in it a new one), with the state in
/// the top bits of the vpn (user pages are below 2^36).
#[derive(Debug, Clone, Copy)]
struct SlotMeta {
    owner: u64,
    vpn_state: u64,
    crc: u32,
    /// The low bits of the sequence read at recovery (only compared there).
    seq: u32,
}

const STATE_SHIFT: u32 = 60;
const VPN_MASK: u64 = (1 << STATE_SHIFT) - 1;

const FREE_SLOT: SlotMeta = SlotMeta {
    owner: 0,
    vpn_state: 0,
    crc: 0,
    seq: 0,
};

impl SlotMeta {
    fn new(d: &Desc, state: State) -> SlotMeta {
        let mut m = SlotMeta {
            owner: d.owner,
            vpn_state: d.vpn & VPN_MASK,
            crc: d.data_crc,
            seq: d.seq as u32,
        };
        m.set_state(state);
        m
    }
    fn vpn(&self) -> u64 {
        self.vpn_state & VPN_MASK
    }
    fn state(&self) -> State {
        match self.vpn_state >> STATE_SHIFT {
            0 => State::Free,
            1 => State::Pending,
            2 => State::Swapped,
            3 => State::Copy,
            _ => State::Bad,
        }
    }
    fn set_state(&mut self, s: State) {
        let code: u64 = match s {
            State::Free => 0,
            State::Pending => 1,
            State::Swapped => 2,
            State::Copy => 3,
            State::Bad => 4,
        };
        self.vpn_state = self.vpn() | code << STATE_SHIFT;
    }
    /// The descriptor as written with sequence `seq`.
    fn desc(&self, seq: u64) -> Desc {
        Desc {
            owner: self.owner,
            vpn: self.vpn(),
            seq,
            data_crc: self.crc,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Res {
    page: Page,
    frame: u64,
    /// Holds data not in its backing (zeros, or its `slot`'s copy).
    dirty: bool,
    /// The slot holding its clean copy (`NO`: none).
    slot: u32,
}

/// Per-domain record: counters and the run of its last whole swap-out.
#[derive(Debug, Clone, Copy)]
struct DomRec {
    id: DomainId,
    run_first: u32,
    run_len: u32,
    swap_ins: u32,
    swap_outs: u32,
    /// Swapped out whole (nothing resident, tables given back).
    out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Closed,
    Open,
    /// No area (not configured): never swap.
    Absent,
}

/// Counters, as `Stats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Pages whose only copy is in swap.
    pub swapped: u32,
    /// Pages read from swap.
    pub page_ins: u64,
    /// Pages written to swap.
    pub page_outs: u64,
    /// Whole domains swapped out.
    pub swap_outs: u64,
    /// Whole domains brought back.
    pub swap_ins: u64,
    /// I/O errors met.
    pub io_errors: u64,
}

/// One domain's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DomMem {
    /// Resident pages the engine tracks.
    pub resident: u32,
    /// Pages in swap only.
    pub swapped: u32,
    /// Swap-ins.
    pub swap_ins: u32,
    /// Swap-outs.
    pub swap_outs: u32,
    /// Swapped out whole now.
    pub swapped_out: bool,
}

/// Why the engine could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMemory;

impl From<ReplaceError> for NoMemory {
    fn from(_: ReplaceError) -> Self {
        NoMemory
    }
}

fn page_hash(p: Page) -> u64 {
    mix(p.domain.to_raw() ^ mix(p.vpn))
}

fn vec_of<T: Clone>(n: usize, fill: T) -> Result<Vec<T>, NoMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| NoMemory)?;
    v.resize(n, fill);
    Ok(v)
}

fn block() -> Result<Box<Block>, NoMemory> {
    let v = vec_of(BLOCK, 0u8)?;
    v.into_boxed_slice().try_into().map_err(|_| NoMemory)
}

/// The swapping engine.
pub struct Swap<R> {
    cfg: SwapConfig,
    repl: R,
    area: Area,
    geo: Geometry,
    slots: Vec<SlotMeta>,
    slot_index: Index,
    res: Vec<Option<Res>>,
    res_free: Vec<u32>,
    res_index: Index,
    doms: Vec<DomRec>,
    seq: u64,
    victims: Victims,
    buf: Box<Block>,
    dbuf: Box<Block>,
    ids: Vec<u32>,
    fr: Vec<u64>,
    recs: Vec<FrameRecord>,
    idle: Vec<DomainId>,
    last_idle_check: u64,
    now: u64,
    futile: u32,
    counters: Counters,
}

impl<R> core::fmt::Debug for Swap<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Swap")
            .field("area", &self.area)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// What a fault needs from the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPlan {
    /// Not in swap: zero-fill it.
    ZeroFill,
    /// Bound (from swap) through the reply handle: resume.
    Bound {
        /// The frame now backing the faulting page.
        frame: u64,
    },
    /// The copy is lost: kill the domain with `FAULT_KILL_LOST`.
    Lost(Lost),
}

impl<R: Replacement> Swap<R> {
    /// An engine whose replacement policy `make` builds (for
    /// [`MAX_RESIDENT`] frames); every table is reserved now.
    pub fn new(
        cfg: SwapConfig,
        make: impl FnOnce(Config) -> Result<R, ReplaceError>,
    ) -> Result<Swap<R>, NoMemory> {
        let repl = make(Config {
            frames: MAX_RESIDENT,
            idle_after: cfg.idle_after,
        })?;
        let mut res_free = Vec::new();
        res_free
            .try_reserve_exact(MAX_RESIDENT)
            .map_err(|_| NoMemory)?;
        for i in (0..MAX_RESIDENT as u32).rev() {
            res_free.push(i);
        }
        let mut doms = Vec::new();
        doms.try_reserve_exact(MAX_DOMS).map_err(|_| NoMemory)?;
        let mut ids = Vec::new();
        ids.try_reserve_exact(RUN_MAX.max(BATCH * 2))
            .map_err(|_| NoMemory)?;
        let mut fr = Vec::new();
        fr.try_reserve_exact(FRAMES_MAX).map_err(|_| NoMemory)?;
        let mut idle = Vec::new();
        idle.try_reserve_exact(IDLE_PER_CHECK)
            .map_err(|_| NoMemory)?;
        // The slot table is reserved when the area opens, sized by it.
        let slots = Vec::new();
        Ok(Swap {
            cfg,
            repl,
            area: Area::Closed,
            geo: Geometry {
                slots: 0,
                desc_blocks: 0,
            },
            slots,
            slot_index: Index::default(),
            res: vec_of(MAX_RESIDENT, None)?,
            res_free,
            res_index: Index::new(MAX_RESIDENT)?,
            doms,
            seq: 1,
            victims: Victims::with_capacity(BATCH)?,
            buf: block()?,
            dbuf: block()?,
            ids,
            fr,
            recs: vec_of(FRAMES_MAX, FrameRecord::default())?,
            idle,
            last_idle_check: 0,
            now: 0,
            futile: 0,
            counters: Counters::default(),
        })
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The replacement policy.
    pub fn policy(&self) -> &R {
        &self.repl
    }

    /// Whether the area is open.
    pub fn is_open(&self) -> bool {
        self.area == Area::Open
    }

    /// Bytes of metadata: the tables as reserved.
    pub fn metadata_bytes(&self) -> usize {
        self.repl.metadata_bytes()
            + self.slots.capacity() * size_of::<SlotMeta>()
            + self.slot_index.bytes()
            + self.res.capacity() * size_of::<Option<Res>>()
            + self.res_free.capacity() * size_of::<u32>()
            + self.res_index.bytes()
            + self.doms.capacity() * size_of::<DomRec>()
    }

    /// Bytes the engine keeps for one domain swapped out whole with
    /// `pages` pages: its record, and per page a slot and its index share.
    pub fn bytes_per_swapped_domain(pages: usize) -> usize {
        size_of::<DomRec>() + pages * (size_of::<SlotMeta>() + 2 * size_of::<u32>())
    }

    // ---- tables ------------------------------------------------------

    fn find_slot(&self, page: Page) -> Option<u32> {
        let slots = &self.slots;
        self.slot_index.find(page_hash(page), |s| {
            slots.get(s as usize).is_some_and(|m| {
                matches!(m.state(), State::Swapped | State::Copy)
                    && m.owner == page.domain.to_raw()
                    && m.vpn() == page.vpn
            })
        })
    }

    fn slot_page(&self, s: u32) -> Option<Page> {
        let m = self.slots.get(s as usize)?;
        Some(Page::new(DomainId::from_raw(m.owner), m.vpn()))
    }

    /// Makes slot `s` (Swapped or Copy, indexed) free.
    fn free_slot(&mut self, s: u32) {
        let Some(m) = self.slots.get(s as usize).copied() else {
            return;
        };
        if matches!(m.state(), State::Swapped | State::Copy) {
            if let Some(p) = self.slot_page(s) {
                let slots = &self.slots;
                self.slot_index.remove(page_hash(p), s, |i| {
                    slots.get(i as usize).map_or(0, |m| {
                        page_hash(Page::new(DomainId::from_raw(m.owner), m.vpn()))
                    })
                });
            }
            if m.state() == State::Swapped {
                self.counters.swapped = self.counters.swapped.saturating_sub(1);
            }
        }
        if let Some(m) = self.slots.get_mut(s as usize) {
            *m = FREE_SLOT;
        }
    }

    /// Indexes slot `s` (Pending) as `state`.
    fn commit_slot(&mut self, s: u32, state: State) {
        let Some(p) = self.slot_page(s) else { return };
        if let Some(m) = self.slots.get_mut(s as usize) {
            m.set_state(state);
        }
        if state == State::Swapped {
            self.counters.swapped += 1;
        }
        self.slot_index.insert(page_hash(p), s);
    }

    fn find_res(&self, page: Page) -> Option<u32> {
        let res = &self.res;
        self.res_index.find(page_hash(page), |i| {
            res.get(i as usize)
                .and_then(Option::as_ref)
                .is_some_and(|r| r.page == page)
        })
    }

    fn res_get(&self, id: u32) -> Option<Res> {
        self.res.get(id as usize).copied().flatten()
    }

    fn res_mut(&mut self, id: u32) -> Option<&mut Res> {
        self.res.get_mut(id as usize)?.as_mut()
    }

    /// Records a resident page; false when the table is full.
    fn res_insert(&mut self, r: Res) -> bool {
        let Some(id) = self.res_free.pop() else {
            return false;
        };
        if let Some(e) = self.res.get_mut(id as usize) {
            *e = Some(r);
        }
        self.res_index.insert(page_hash(r.page), id);
        true
    }

    fn res_remove(&mut self, id: u32) -> Option<Res> {
        let r = self.res_get(id)?;
        let res = &self.res;
        self.res_index.remove(page_hash(r.page), id, |i| {
            res.get(i as usize)
                .copied()
                .flatten()
                .map_or(0, |r| page_hash(r.page))
        });
        if let Some(e) = self.res.get_mut(id as usize) {
            *e = None;
        }
        self.res_free.push(id);
        Some(r)
    }

    /// The page's content no longer matches its backing: its copy (if
    /// any) is stale.
    fn mark_dirty(&mut self, id: u32) {
        let Some(r) = self.res_get(id) else { return };
        if r.slot != NO {
            self.free_slot(r.slot);
        }
        if let Some(r) = self.res_mut(id) {
            r.dirty = true;
            r.slot = NO;
        }
    }

    fn dom(&self, d: DomainId) -> Option<usize> {
        self.doms.iter().position(|r| r.id == d)
    }

    fn dom_or_new(&mut self, d: DomainId) -> Option<usize> {
        if let Some(i) = self.dom(d) {
            return Some(i);
        }
        if self.doms.len() >= MAX_DOMS {
            // Drop a record of a domain that is not swapped out.
            let i = self.doms.iter().position(|r| !r.out)?;
            self.doms.swap_remove(i);
        }
        self.doms.push(DomRec {
            id: d,
            run_first: 0,
            run_len: 0,
            swap_ins: 0,
            swap_outs: 0,
            out: false,
        });
        Some(self.doms.len() - 1)
    }

    // ---- the area ----------------------------------------------------

    /// Opens the area on first need: reads its header and descriptors
    /// (same boot: rebuilds which page is in which slot, resident pages
    /// winning), or formats it for this boot. `Err` when it exists but
    /// could not be read.
    pub fn ensure_open(&mut self, disk: &mut impl SwapDisk) -> Result<bool, DiskError> {
        match self.area {
            Area::Open => return Ok(true),
            Area::Absent => return Ok(false),
            Area::Closed => {}
        }
        let blocks = match disk.open() {
            Ok(b) => b,
            Err(DiskError::NotFound) => {
                self.area = Area::Absent;
                return Ok(false);
            }
            Err(e) => {
                self.counters.io_errors += 1;
                return Err(e);
            }
        };
        // As many slots as the area and the heap hold (halving on a
        // refusal: the frame pool was reserved first).
        let mut max = MAX_SLOTS;
        let geo = loop {
            let Some(geo) = Geometry::fit(blocks, max) else {
                self.area = Area::Absent;
                return Ok(false);
            };
            let n = geo.slots as usize;
            let fits = self.slots.try_reserve_exact(n).is_ok();
            match Index::new(n) {
                Ok(ix) if fits => {
                    self.slot_index = ix;
                    break geo;
                }
                _ if max > 128 => {
                    self.slots = Vec::new();
                    max /= 2;
                }
                _ => {
                    self.area = Area::Absent;
                    return Ok(false);
                }
            }
        };
        self.geo = geo;
        self.slots.clear();
        self.slots.resize(geo.slots as usize, FREE_SLOT);
        let r = self.recover(disk);
        if r.is_err() {
            // Nothing of a half-read area is kept: the next need reads it
            // again from the start.
            self.counters.io_errors += 1;
            self.counters.swapped = 0;
            self.slots = Vec::new();
            self.slot_index = Index::default();
            return r.map(|()| false);
        }
        self.area = Area::Open;
        Ok(true)
    }

    fn recover(&mut self, disk: &mut impl SwapDisk) -> Result<(), DiskError> {
        disk.read(0, &mut self.dbuf)?;
        let want = Header {
            boot_id: self.cfg.boot_id,
            geo: self.geo,
        };
        let h = Header::decode(&self.dbuf);
        // The first incarnation this boot starts empty. A restarted one
        // trusts the descriptors whatever the header says: each carries
        // the boot in its CRC, so a rotted header loses nothing.
        if !self.cfg.restarted {
            return self.format(disk);
        }
        for b in 0..self.geo.desc_blocks {
            disk.read(1 + u64::from(b), &mut self.dbuf)?;
            for k in 0..DESC_PER_BLOCK {
                let s = b * DESC_PER_BLOCK + k;
                if s >= self.geo.slots {
                    break;
                }
                let off = (k as usize) * DESC_LEN;
                let Some(d) = self
                    .dbuf
                    .get(off..off + DESC_LEN)
                    .and_then(|b| Desc::decode(self.cfg.boot_id, b))
                else {
                    continue;
                };
                self.seq = self.seq.max(d.seq.saturating_add(1));
                let page = Page::new(DomainId::from_raw(d.owner), d.vpn);
                if page.domain.is_none() || self.find_res(page).is_some() {
                    continue; // resident wins: the copy may be stale
                }
                if let Some(old) = self.find_slot(page) {
                    let older = self.slots.get(old as usize).map_or(0, |m| m.seq);
                    if older >= d.seq as u32 {
                        continue;
                    }
                    self.free_slot(old);
                }
                if let Some(m) = self.slots.get_mut(s as usize) {
                    *m = SlotMeta::new(&d, State::Pending);
                }
                self.commit_slot(s, State::Swapped);
            }
        }
        if h != Some(want) {
            disk.write(0, &want.encode())?;
            disk.flush()?;
        }
        Ok(())
    }

    fn format(&mut self, disk: &mut impl SwapDisk) -> Result<(), DiskError> {
        // Descriptors first, header last: a crash in between leaves the
        // old boot's header, which the next open formats again.
        self.dbuf.fill(0);
        for b in 0..self.geo.desc_blocks {
            disk.write(1 + u64::from(b), &self.dbuf)?;
        }
        disk.flush()?;
        let h = Header {
            boot_id: self.cfg.boot_id,
            geo: self.geo,
        };
        disk.write(0, &h.encode())?;
        disk.flush()
    }

    /// Writes descriptor block `b` from the table.
    /// Every live descriptor in it gets the next sequence number: newer
    /// than any stale descriptor of the same page elsewhere on disk.
    fn write_desc_block(&mut self, disk: &mut impl SwapDisk, b: u32) -> Result<(), DiskError> {
        let seq = self.seq;
        self.seq += 1;
        for k in 0..DESC_PER_BLOCK {
            let s = b * DESC_PER_BLOCK + k;
            let off = (k as usize) * DESC_LEN;
            let d = match self.slots.get(s as usize) {
                Some(m) if matches!(m.state(), State::Pending | State::Swapped | State::Copy) => {
                    m.desc(seq)
                }
                _ => Desc::default(),
            };
            if let Some(out) = self.dbuf.get_mut(off..off + DESC_LEN) {
                d.encode(self.cfg.boot_id, out);
            }
        }
        disk.write(1 + u64::from(b), &self.dbuf)
    }

    // ---- grants and recovery ---------------------------------------------

    /// A granted frame the kernel says is bound at `vaddr` in `d`: a
    /// resident page of an earlier incarnation, treated as dirty (its disk
    /// copy, if any, may be stale).
    pub fn adopt(&mut self, frame: u64, d: DomainId, vaddr: u64) {
        let page = Page::new(d, vaddr / BLOCK as u64);
        if let Some(s) = self.find_slot(page) {
            self.free_slot(s); // resident wins
        }
        if self.find_res(page).is_none()
            && self.res_insert(Res {
                page,
                frame,
                dirty: true,
                slot: NO,
            })
        {
            let _ = self.repl.fault(page, true);
        }
    }

    // ---- page-out ------------------------------------------------------

    /// Copies the pages `self.ids` (resident ids) into slots `slots`
    /// (same length), writes their descriptors and flushes. On success
    /// each page is clean with its copy in its new slot; on an error none
    /// is, and each is dirty (the copy took the kernel's bits).
    fn write_batch(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        slots: &[u32],
    ) -> Result<(), DiskError> {
        let ok = self.write_batch_inner(mmu, disk, slots);
        let n = self.ids.len().min(slots.len());
        for i in 0..n {
            let (Some(&id), Some(&s)) = (self.ids.get(i), slots.get(i)) else {
                break;
            };
            if ok.is_ok() {
                if let Some(old) = self.res_get(id).map(|r| r.slot) {
                    if old != NO {
                        self.free_slot(old);
                    }
                }
                self.commit_slot(s, State::Copy);
                if let Some(r) = self.res_mut(id) {
                    r.dirty = false;
                    r.slot = s;
                }
                self.counters.page_outs += 1;
            } else {
                if let Some(m) = self.slots.get_mut(s as usize) {
                    if m.state() == State::Pending {
                        *m = FREE_SLOT;
                    }
                }
                self.mark_dirty(id);
            }
        }
        if ok.is_err() {
            self.counters.io_errors += 1;
        }
        ok
    }

    fn write_batch_inner(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        slots: &[u32],
    ) -> Result<(), DiskError> {
        let n = self.ids.len().min(slots.len());
        for i in 0..n {
            let (Some(&id), Some(&s)) = (self.ids.get(i), slots.get(i)) else {
                break;
            };
            let r = self.res_get(id).ok_or(DiskError::Io)?;
            mmu.copy_frame(r.frame, &mut self.buf)
                .map_err(|_| DiskError::Io)?;
            let desc = Desc {
                owner: r.page.domain.to_raw(),
                vpn: r.page.vpn,
                seq: self.seq,
                data_crc: crc32c(&self.buf[..]),
            };
            self.seq += 1;
            if let Some(m) = self.slots.get_mut(s as usize) {
                *m = SlotMeta::new(&desc, State::Pending);
            }
            if let Err(e) = disk.write(self.geo.data_block(s), &self.buf) {
                self.mark_bad(s);
                return Err(e);
            }
        }
        // Each descriptor block touched, once (slots come sorted or as a run).
        let mut last = NO;
        for &s in slots.iter().take(n) {
            let b = s / DESC_PER_BLOCK;
            if b != last {
                if let Err(e) = self.write_desc_block(disk, b) {
                    for &t in slots.iter().take(n) {
                        if t / DESC_PER_BLOCK == b {
                            self.mark_bad(t);
                        }
                    }
                    return Err(e);
                }
                last = b;
            }
        }
        disk.flush()
    }

    /// A write to slot `s` failed (a bad sector, say): later batches use
    /// other slots.
    fn mark_bad(&mut self, s: u32) {
        if let Some(m) = self.slots.get_mut(s as usize) {
            if matches!(m.state(), State::Free | State::Pending) {
                *m = FREE_SLOT;
                m.set_state(State::Bad);
            }
        }
    }

    /// Unbinds the pages `self.ids` if clean. Returns how many frames went
    /// free; the others stay resident and dirty.
    fn unbind_batch(&mut self, mmu: &mut impl Mmu, pool: &mut FramePool) -> usize {
        let n = self.ids.len().min(FRAMES_MAX);
        self.fr.clear();
        for i in 0..n {
            let f = self
                .ids
                .get(i)
                .and_then(|&id| self.res_get(id))
                .map_or(0, |r| r.frame);
            self.fr.push(f);
        }
        let Some(out) = self.recs.get_mut(..n) else {
            return 0;
        };
        if mmu
            .frames(&self.fr, FRAMES_UNBIND | FRAMES_IF_CLEAN, out)
            .is_err()
        {
            return 0;
        }
        let mut freed = 0;
        for i in 0..n {
            let (Some(&id), Some(rec)) = (self.ids.get(i), self.recs.get(i).copied()) else {
                break;
            };
            let Some(r) = self.res_get(id) else { continue };
            if rec.error().is_some() {
                continue;
            }
            if rec.has(STATUS_UNBOUND) {
                pool.release(r.frame);
                self.repl.remove(r.page);
                self.res_remove(id);
                if r.slot != NO {
                    if let Some(m) = self.slots.get_mut(r.slot as usize) {
                        m.set_state(State::Swapped);
                    }
                    self.counters.swapped += 1;
                }
                freed += 1;
            } else if rec.has(STATUS_BOUND) {
                self.mark_dirty(id);
                if self.repl.is_resident(r.page) {
                    self.repl.harvest(
                        r.page,
                        Bits {
                            referenced: true,
                            dirty: true,
                        },
                    );
                } else {
                    let _ = self.repl.fault(r.page, true);
                }
            }
        }
        freed
    }

    /// Takes the use bits of every tracked page into the policy; a dirty
    /// bit makes the page's copy stale.
    fn harvest_all(&mut self, mmu: &mut impl Mmu) -> Result<(), SysError> {
        let mut i = 0usize;
        while i < MAX_RESIDENT {
            self.ids.clear();
            self.fr.clear();
            while i < MAX_RESIDENT && self.fr.len() < FRAMES_MAX {
                if let Some(r) = self.res_get(i as u32) {
                    self.ids.push(i as u32);
                    self.fr.push(r.frame);
                }
                i += 1;
            }
            self.harvest_ids(mmu)?;
        }
        Ok(())
    }

    /// Harvests `self.ids`/`self.fr`; returns whether any was referenced.
    fn harvest_ids(&mut self, mmu: &mut impl Mmu) -> Result<bool, SysError> {
        let n = self.fr.len();
        if n == 0 {
            return Ok(false);
        }
        let out = self.recs.get_mut(..n).ok_or(SysError::BadArgument)?;
        mmu.frames(&self.fr, FRAMES_TAKE, out)?;
        let mut any = false;
        for k in 0..n {
            let (Some(&id), Some(rec)) = (self.ids.get(k), self.recs.get(k).copied()) else {
                break;
            };
            let Some(r) = self.res_get(id) else { continue };
            if rec.error().is_some() || !rec.has(STATUS_BOUND) {
                continue;
            }
            let bits = Bits {
                referenced: rec.has(STATUS_ACCESSED),
                dirty: rec.has(STATUS_DIRTY),
            };
            any |= bits.referenced;
            self.repl.harvest(r.page, bits);
            if bits.dirty {
                self.mark_dirty(id);
            }
        }
        Ok(any)
    }

    /// Free slots for `n` pages: a consecutive run when there is one (one
    /// descriptor block, sequential I/O), else any. Pushed into `out`.
    fn alloc_slots(&self, n: usize, run_only: bool, out: &mut Vec<u32>) -> bool {
        out.clear();
        if n == 0 {
            return true;
        }
        let mut start = 0usize;
        let mut len = 0usize;
        for (i, m) in self.slots.iter().enumerate() {
            if m.state() == State::Free {
                if len == 0 {
                    start = i;
                }
                len += 1;
                if len == n {
                    out.extend((start..start + n).map(|s| s as u32));
                    return true;
                }
            } else {
                len = 0;
            }
        }
        if run_only {
            return false;
        }
        for (i, m) in self.slots.iter().enumerate() {
            if out.len() == n {
                break;
            }
            if m.state() == State::Free {
                out.push(i as u32);
            }
        }
        out.len() == n
    }

    /// Frees at least `need` frames if it can: victims from the policy,
    /// dirty ones written (batched, one flush), then unbound if clean.
    /// Returns how many went free.
    pub fn reclaim(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        need: usize,
    ) -> usize {
        if !matches!(self.ensure_open(disk), Ok(true)) {
            return 0;
        }
        if self.harvest_all(mmu).is_err() {
            return 0; // a kernel without Frames cannot swap
        }
        let mut freed = 0;
        let mut slots: Vec<u32> = Vec::new();
        if slots.try_reserve_exact(BATCH).is_err() {
            return 0;
        }
        for _ in 0..ROUNDS {
            if freed >= need {
                break;
            }
            self.victims.clear();
            self.repl.evict(need - freed, &mut self.victims);
            if self.victims.is_empty() {
                break;
            }
            // Pages to write first (dirty, or with no copy and not zero).
            self.ids.clear();
            let mut clean: Vec<u32> = Vec::new();
            if clean.try_reserve_exact(BATCH).is_err() {
                break;
            }
            for v in self.victims.as_slice() {
                let Some(id) = self.find_res(v.page) else {
                    // Not ours (adopted beyond the table): nothing to do.
                    continue;
                };
                let r = self.res_get(id);
                if r.is_some_and(|r| r.dirty) {
                    self.ids.push(id);
                } else {
                    clean.push(id);
                }
            }
            if !self.ids.is_empty() {
                let n = self.ids.len();
                if self.alloc_slots(n, false, &mut slots) {
                    let wrote = self.write_batch(mmu, disk, &slots).is_ok();
                    for k in 0..n {
                        let Some(p) = self
                            .ids
                            .get(k)
                            .and_then(|&id| self.res_get(id))
                            .map(|r| r.page)
                        else {
                            continue;
                        };
                        if wrote {
                            self.repl.written(p);
                        } else {
                            self.requeue(p);
                        }
                    }
                    if wrote {
                        let _ = clean.try_reserve(n);
                        clean.extend_from_slice(&self.ids);
                    }
                } else {
                    // Swap is full: these stay resident.
                    for k in 0..n {
                        if let Some(p) = self
                            .ids
                            .get(k)
                            .and_then(|&id| self.res_get(id))
                            .map(|r| r.page)
                        {
                            self.requeue(p);
                        }
                    }
                }
            }
            self.ids.clear();
            self.ids.extend_from_slice(&clean);
            freed += self.unbind_batch(mmu, pool);
        }
        freed
    }

    /// A victim that stays resident and dirty goes back into the policy.
    fn requeue(&mut self, p: Page) {
        if self.repl.is_resident(p) {
            self.repl.written(p);
            self.repl.harvest(
                p,
                Bits {
                    referenced: true,
                    dirty: true,
                },
            );
        } else {
            let _ = self.repl.fault(p, true);
        }
    }

    /// Whether a new page can be made resident without paging out first.
    pub fn has_room(&self, pool: &FramePool) -> bool {
        !self.res_free.is_empty()
            && self.repl.resident() < self.repl.capacity()
            && pool.free_count() > low_watermark(pool)
    }

    // ---- faults ----------------------------------------------------------

    /// Before serving a fault of `page`: brings `page.domain` back if it is
    /// swapped out whole (its run, through `reply`), or reads `page` from
    /// swap. `take` gives a free frame (the pool through the policy).
    #[allow(clippy::too_many_arguments)]
    pub fn fault(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        reply: Handle,
        page: Page,
        write: bool,
        take: &mut dyn FnMut(&mut FramePool) -> Option<u64>,
    ) -> FaultPlan {
        if self.area == Area::Absent {
            return FaultPlan::ZeroFill;
        }
        if self.area == Area::Closed && self.cfg.restarted {
            // An earlier incarnation may have swapped this page out: the
            // area must be read before anything is zero-filled.
            if self.ensure_open(disk).is_err() {
                return FaultPlan::Lost(Lost::AreaUnreadable);
            }
        }
        let _ = write;
        let mut bound = None;
        if let Some(i) = self.dom(page.domain) {
            if self.doms.get(i).is_some_and(|r| r.out) {
                match self.swap_in(mmu, disk, pool, reply, i, page, take) {
                    Ok(Some(frame)) => bound = Some(frame),
                    Ok(None) => {}
                    Err(l) => return FaultPlan::Lost(l),
                }
            }
        }
        if let Some(frame) = bound {
            return FaultPlan::Bound { frame };
        }
        let Some(s) = self.find_slot(page) else {
            return FaultPlan::ZeroFill;
        };
        if !self.has_room(pool) {
            self.reclaim(mmu, disk, pool, BATCH);
        }
        match self.page_in(mmu, disk, pool, reply, page, s, take) {
            Ok(frame) => FaultPlan::Bound { frame },
            Err(l) => FaultPlan::Lost(l),
        }
    }

    /// A zero-filled frame was bound at `page`.
    pub fn zero_filled(&mut self, page: Page, frame: u64, write: bool) {
        // The policy names only pages the table can find a frame for.
        let tracked = self.find_res(page).is_some()
            || self.res_insert(Res {
                page,
                frame,
                dirty: write,
                slot: NO,
            });
        if tracked {
            let _ = self.repl.fault(page, write);
        }
    }

    /// Makes room for one more resident page before a zero-fill.
    pub fn make_room(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
    ) {
        if self.futile > 0 {
            // The last try freed nothing (swap full, all pages in use):
            // a harvest of every page per fault would only burn time.
            self.futile -= 1;
            return;
        }
        if self.area != Area::Absent && !self.has_room(pool) {
            let need = low_watermark(pool)
                .saturating_sub(pool.free_count())
                .max(BATCH / 4);
            if self.reclaim(mmu, disk, pool, need) == 0 {
                self.futile = FUTILE_BACKOFF;
            }
        }
    }

    /// Reads slot `s` into a free frame, verifies it and binds it at
    /// `page` through `reply`.
    #[allow(clippy::too_many_arguments)]
    fn page_in(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        reply: Handle,
        page: Page,
        s: u32,
        take: &mut dyn FnMut(&mut FramePool) -> Option<u64>,
    ) -> Result<u64, Lost> {
        let Some(m) = self.slots.get(s as usize).copied() else {
            return Err(Lost::ReadError);
        };
        if disk.read(self.geo.data_block(s), &mut self.buf).is_err() {
            self.counters.io_errors += 1;
            return Err(Lost::ReadError);
        }
        if crc32c(&self.buf[..]) != m.crc {
            return Err(Lost::ChecksumMismatch);
        }
        // A frame only once the copy is known good: a lost page costs none.
        let mut frame = None;
        for _ in 0..4 {
            let Some(f) = take(pool) else { break };
            match mmu.write_frame(f, &self.buf) {
                Ok(()) => {
                    frame = Some(f);
                    break;
                }
                // A grant that lied: never use it again.
                Err(SysError::FrameNotOwned | SysError::FrameInUse) => {
                    pool.lose(f);
                }
                Err(_) => {
                    pool.put_back(f);
                    break;
                }
            }
        }
        let Some(frame) = frame else {
            return Err(Lost::NoFrame);
        };
        if mmu.bind(reply, page.vpn * BLOCK as u64, frame).is_err() {
            pool.put_back(frame);
            return Err(Lost::NoFrame);
        }
        pool.bind(frame, page.domain);
        if let Some(m) = self.slots.get_mut(s as usize) {
            m.set_state(State::Copy);
        }
        self.counters.swapped = self.counters.swapped.saturating_sub(1);
        self.counters.page_ins += 1;
        if !self.res_insert(Res {
            page,
            frame,
            dirty: false,
            slot: s,
        }) {
            // Untracked: its copy cannot be kept in step with it.
            self.free_slot(s);
        }
        let _ = self.repl.fault(page, false);
        Ok(frame)
    }

    /// Brings domain record `i`'s run back, every page through `reply`;
    /// returns the faulting page's frame if the run held it.
    #[allow(clippy::too_many_arguments)]
    fn swap_in(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        reply: Handle,
        i: usize,
        fault: Page,
        take: &mut dyn FnMut(&mut FramePool) -> Option<u64>,
    ) -> Result<Option<u64>, Lost> {
        let Some(rec) = self.doms.get(i).copied() else {
            return Ok(None);
        };
        if let Some(r) = self.doms.get_mut(i) {
            r.out = false;
            r.swap_ins += 1;
        }
        self.counters.swap_ins += 1;
        let want = rec.run_len as usize;
        if pool.free_count() < want + low_watermark(pool) || self.res_free.len() < want {
            let need = (want + low_watermark(pool)).saturating_sub(pool.free_count());
            self.reclaim(mmu, disk, pool, need.max(want));
        }
        let mut got = None;
        let mut lost = None;
        for s in rec.run_first..rec.run_first.saturating_add(rec.run_len) {
            let Some(m) = self.slots.get(s as usize).copied() else {
                break;
            };
            if m.state() != State::Swapped || m.owner != rec.id.to_raw() {
                continue; // left the run since (paged in, or stale)
            }
            let page = Page::new(rec.id, m.vpn());
            match self.page_in(mmu, disk, pool, reply, page, s, take) {
                Ok(f) if page == fault => got = Some(f),
                Ok(_) => {}
                // Left in swap: a later fault on it reads it again.
                Err(l) if page == fault => lost = Some(l),
                Err(_) => {}
            }
        }
        if let Some(l) = lost {
            return Err(l);
        }
        Ok(got)
    }

    // ---- idle domains ----------------------------------------------------

    /// The clock moved to `now`: every `idle_after / 4`, swaps out whole a
    /// few domains idle for `idle_after`.
    pub fn tick(
        &mut self,
        now: u64,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
    ) {
        self.now = self.now.max(now);
        self.repl.tick(self.now);
        let every = self.cfg.idle_after / 4;
        if self.cfg.idle_after == 0 || self.now.saturating_sub(self.last_idle_check) < every {
            return;
        }
        self.last_idle_check = self.now;
        if self.area == Area::Absent {
            return;
        }
        // References seen only by the hardware (no fault) must count, or a
        // busy domain with all its pages resident would look idle.
        let _ = self.harvest_all(mmu);
        self.idle.clear();
        self.repl.idle_domains(&mut self.idle);
        for k in 0..self.idle.len() {
            let Some(&d) = self.idle.get(k) else { break };
            let _ = self.swap_out(mmu, disk, pool, d, false);
        }
    }

    /// Swaps `domain` out whole: all its resident pages into one run of
    /// consecutive slots, unbound, then its tables given back. Returns
    /// whether it is now out. Unless `force`, a domain that touched a page
    /// since the last look is left alone.
    pub fn swap_out(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        domain: DomainId,
        force: bool,
    ) -> Result<(), SwapOutError> {
        match self.ensure_open(disk) {
            Ok(true) => {}
            Ok(false) => return Err(SwapOutError::NoArea),
            Err(_) => return Err(SwapOutError::Io),
        }
        self.ids.clear();
        self.fr.clear();
        for i in 0..MAX_RESIDENT as u32 {
            if let Some(r) = self.res_get(i) {
                if r.page.domain == domain {
                    if self.ids.len() >= RUN_MAX {
                        return Err(SwapOutError::TooBig);
                    }
                    self.ids.push(i);
                    self.fr.push(r.frame);
                }
            }
        }
        let n = self.ids.len();
        if n == 0 {
            return if self
                .dom(domain)
                .and_then(|i| self.doms.get(i))
                .is_some_and(|r| r.out)
            {
                Ok(())
            } else {
                Err(SwapOutError::NothingResident)
            };
        }
        match self.harvest_ids(mmu) {
            Ok(false) => {}
            Ok(true) if force => {}
            Ok(true) => return Err(SwapOutError::Busy),
            Err(_) => return Err(SwapOutError::Io),
        }
        let mut slots: Vec<u32> = Vec::new();
        if slots.try_reserve_exact(n).is_err() || !self.alloc_slots(n, true, &mut slots) {
            return Err(SwapOutError::Full);
        }
        if self.write_batch(mmu, disk, &slots).is_err() {
            return Err(SwapOutError::Io);
        }
        for k in 0..n {
            if let Some(p) = self
                .ids
                .get(k)
                .and_then(|&id| self.res_get(id))
                .map(|r| r.page)
            {
                self.repl.written(p);
            }
        }
        let freed = self.unbind_batch(mmu, pool);
        let Some(i) = self.dom_or_new(domain) else {
            return Err(SwapOutError::Full);
        };
        let first = slots.first().copied().unwrap_or(0);
        if let Some(r) = self.doms.get_mut(i) {
            r.run_first = first;
            r.run_len = n as u32;
            r.out = freed == n;
            r.swap_outs += 1;
        }
        self.counters.swap_outs += 1;
        if freed == n {
            // Not waiting (WouldBlock) is fine: its tables stay.
            let _ = mmu.shrink(domain);
            Ok(())
        } else {
            Err(SwapOutError::Busy)
        }
    }

    // ---- death -----------------------------------------------------------

    /// `domain` is gone (its frames are back in the pool): drops its
    /// resident pages and swap slots, and clears their descriptors (best
    /// effort: a descriptor left behind names a dead domain).
    pub fn revoke(&mut self, disk: &mut impl SwapDisk, domain: DomainId) {
        self.futile = 0;
        self.repl.forget(domain);
        for i in 0..MAX_RESIDENT as u32 {
            if self.res_get(i).is_some_and(|r| r.page.domain == domain) {
                if let Some(r) = self.res_remove(i) {
                    if r.slot != NO {
                        self.free_slot(r.slot);
                    }
                }
            }
        }
        let mut last = NO;
        let mut touched = false;
        for s in 0..self.slots.len() as u32 {
            let owner = self.slots.get(s as usize).map_or(0, |m| m.owner);
            if owner == domain.to_raw() && owner != 0 {
                self.free_slot(s);
                let b = s / DESC_PER_BLOCK;
                if b != last {
                    if last != NO && self.area == Area::Open {
                        let _ = self.write_desc_block(disk, last);
                    }
                    last = b;
                    touched = true;
                }
            }
        }
        if touched && last != NO && self.area == Area::Open {
            let _ = self.write_desc_block(disk, last);
        }
        if let Some(i) = self.dom(domain) {
            self.doms.swap_remove(i);
        }
    }

    /// One domain's memory.
    pub fn domain_mem(&self, domain: DomainId) -> DomMem {
        let resident = self
            .res
            .iter()
            .flatten()
            .filter(|r| r.page.domain == domain)
            .count();
        let swapped = self
            .slots
            .iter()
            .filter(|m| m.state() == State::Swapped && m.owner == domain.to_raw())
            .count();
        let rec = self.dom(domain).and_then(|i| self.doms.get(i)).copied();
        DomMem {
            resident: resident as u32,
            swapped: swapped as u32,
            swap_ins: rec.map_or(0, |r| r.swap_ins),
            swap_outs: rec.map_or(0, |r| r.swap_outs),
            swapped_out: rec.is_some_and(|r| r.out),
        }
    }

    /// Every slot's page and state, for tests: (page, swapped?).
    #[cfg(test)]
    pub(crate) fn slot_pages(&self) -> Vec<(Page, bool)> {
        self.slots
            .iter()
            .filter(|m| matches!(m.state(), State::Swapped | State::Copy))
            .map(|m| {
                (
                    Page::new(DomainId::from_raw(m.owner), m.vpn()),
                    m.state() == State::Swapped,
                )
            })
            .collect()
    }

    /// Resident pages the engine tracks, for tests: (page, frame, dirty).
    #[cfg(test)]
    pub(crate) fn resident_pages(&self) -> Vec<(Page, u64, bool)> {
        self.res
            .iter()
            .flatten()
            .map(|r| (r.page, r.frame, r.dirty))
            .collect()
    }
}

/// Asks the kernel about frames `first .. first + count` (`Frames`, no
/// flags) and hands each answered batch to `f`. Nothing on a kernel
/// without `Frames`.
pub fn query(mmu: &mut impl Mmu, first: u64, count: u64, mut f: impl FnMut(&[FrameRecord])) {
    const CHUNK: usize = FRAMES_MAX;
    let mut fr = [0u64; CHUNK];
    let mut out = [FrameRecord::default(); CHUNK];
    let end = first.saturating_add(count);
    let mut at = first;
    while at < end {
        let k = usize::try_from((end - at).min(CHUNK as u64)).unwrap_or(CHUNK);
        for (i, slot) in fr.iter_mut().take(k).enumerate() {
            *slot = at + i as u64;
        }
        let (Some(fr), Some(out)) = (fr.get(..k), out.get_mut(..k)) else {
            return;
        };
        if mmu.frames(fr, 0, out).is_err() {
            return;
        }
        for (r, &frame) in out.iter_mut().zip(fr) {
            r.frame = frame;
        }
        f(out);
        at += k as u64;
    }
}

/// Free frames below which the swapper pages out: 1/32 of the pool, at
/// least 8.
pub fn low_watermark(pool: &FramePool) -> usize {
    (pool.total() / 32).max(8)
}
