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
//! Two kinds of swapped page. A domain swapped out whole is one *run* of
//! consecutive slots named by its record; in memory each of its pages is
//! one bit of the slot map, and its descriptors (page, CRC) are read back
//! from disk when the run comes back. A page paged out alone under
//! pressure is *loose*: an entry (page, CRC, slot) in a hashed table.
//!
//! Every table is reserved when the engine is built (sized by [`Sizing`]
//! from the heap) or when the area opens (the slot map, from the area's
//! length), and never grows.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::size_of;
use serac_protocol::syscall::{
    FrameRecord, FRAMES_IF_CLEAN, FRAMES_MAX, FRAMES_TAKE, FRAMES_UNBIND, STATUS_ACCESSED,
    STATUS_BOUND, STATUS_DIRTY, STATUS_UNBOUND,
};
use serac_protocol::{DomainId, Handle, SysError};

pub mod format;
mod sizing;
mod slots;
#[cfg(test)]
mod tests;

use crate::pager::Mmu;
use crate::pool::FramePool;
use crate::replace::index::{mix, Index};
use crate::replace::{Bits, Config, Page, ReplaceError, Replacement, Victims};
use format::{crc32c, Desc, Geometry, Header, DESC_LEN, DESC_PER_BLOCK};
pub use format::{Block, BLOCK};
pub use sizing::{Sizing, MAX_GRANT};
use slots::SlotMap;

/// Most pages of one whole-domain swap-out (one `Frames` call).
pub const RUN_MAX: usize = FRAMES_MAX;
/// Victims asked for per eviction round.
const BATCH: usize = 32;
/// Eviction rounds per reclaim (a write-back round, then a freeing one).
const ROUNDS: usize = 4;
/// Faults served without trying to page out after a try that freed nothing.
const FUTILE_BACKOFF: u32 = 64;
/// Idle checks to harvest the whole resident set once, without
/// `idle_always`.
const HARVEST_SLICES: usize = 8;
/// Idle domains considered per idle check.
const IDLE_PER_CHECK: usize = 256;
/// Idle domains swapped out per idle check (without `idle_always`): each
/// is a run written (tens of ms under TCG), and no fault is served
/// meanwhile, so 256 at once stalled every swap-in for 10 s. 32 every
/// `idle_after / 4` still outruns the swap-ins the disk allows.
const IDLE_BURST: usize = 32;
/// Free slots a recovered run may skip between two of its pages (one
/// descriptor block: the pages of a resident page left holes).
const RUN_GAP: u32 = DESC_PER_BLOCK;

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
    /// Written, descriptor not yet flushed.
    Pending,
    /// The page's only copy: it is not resident.
    Swapped,
    /// A clean copy of a resident page.
    Copy,
}

/// A loose page's entry, 24 bytes: its descriptor but the sequence, with
/// the state in the top bits of the vpn (user pages are below 2^36).
#[derive(Debug, Clone, Copy)]
struct Loose {
    owner: u64,
    vpn_state: u64,
    crc: u32,
    slot: u32,
}

const STATE_SHIFT: u32 = 60;
const VPN_MASK: u64 = (1 << STATE_SHIFT) - 1;

impl Loose {
    fn new(page: Page, crc: u32, slot: u32, state: State) -> Loose {
        let mut m = Loose {
            owner: page.domain.to_raw(),
            vpn_state: page.vpn & VPN_MASK,
            crc,
            slot,
        };
        m.set_state(state);
        m
    }
    fn vpn(&self) -> u64 {
        self.vpn_state & VPN_MASK
    }
    fn page(&self) -> Page {
        Page::new(DomainId::from_raw(self.owner), self.vpn())
    }
    fn state(&self) -> State {
        match self.vpn_state >> STATE_SHIFT {
            0 => State::Pending,
            1 => State::Swapped,
            _ => State::Copy,
        }
    }
    fn set_state(&mut self, s: State) {
        let code: u64 = match s {
            State::Pending => 0,
            State::Swapped => 1,
            State::Copy => 2,
        };
        self.vpn_state = self.vpn() | code << STATE_SHIFT;
    }
}

#[derive(Debug, Clone, Copy)]
struct Res {
    page: Page,
    frame: u64,
    /// Holds data not in its backing (zeros, or its loose copy).
    dirty: bool,
    /// The loose entry holding its clean copy (`NO`: none).
    slot: u32,
}

/// Per-domain record, 32 bytes: counters and its run (the slots of its
/// last whole swap-out, while any of them is still its page's copy).
#[derive(Debug, Clone, Copy)]
struct DomRec {
    id: DomainId,
    /// Every descriptor of the run was written at this sequence or later:
    /// an older one in its slots is a lost write, not its page.
    seq: u64,
    run_first: u32,
    /// Slots the run spans (0: no run).
    run_len: u16,
    /// Valid descriptors it holds (fewer found means one rotted).
    run_pages: u16,
    /// Of those, pages whose only copy it is (the rest are resident or
    /// have a newer loose copy).
    live: u16,
    swap_ins: u16,
    swap_outs: u16,
    /// Swapped out whole (nothing resident, tables given back).
    out: bool,
}

impl DomRec {
    fn new(id: DomainId) -> DomRec {
        DomRec {
            id,
            seq: 0,
            run_first: 0,
            run_len: 0,
            run_pages: 0,
            live: 0,
            swap_ins: 0,
            swap_outs: 0,
            out: false,
        }
    }
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
    /// Pages of whole swap-outs that were all zeros: in `page_outs`, but
    /// only their descriptor was written (and no read brings them back).
    pub zero_pages: u64,
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

/// Whether `b` is all zeros.
fn is_zero(b: &Block) -> bool {
    b.chunks_exact(8).all(|w| w == [0; 8])
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

fn free_list(n: usize) -> Result<Vec<u32>, NoMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| NoMemory)?;
    // Lowest id handed out first.
    for i in (0..n).rev() {
        v.push(u32::try_from(i).map_err(|_| NoMemory)?);
    }
    Ok(v)
}

/// Rewrites descriptor block `b`: reads it into `buf`, applies `patch` to
/// each of its slots, writes it (not flushed). A run's descriptors live
/// only on disk, so a block is never rebuilt from memory.
fn patch_block(
    disk: &mut impl SwapDisk,
    buf: &mut Block,
    boot_id: u64,
    b: u32,
    patch: impl Fn(u32) -> Patch,
) -> Result<(), DiskError> {
    disk.read(1 + u64::from(b), buf)?;
    for k in 0..DESC_PER_BLOCK {
        let s = b * DESC_PER_BLOCK + k;
        let off = (k as usize) * DESC_LEN;
        let Some(out) = buf.get_mut(off..off + DESC_LEN) else {
            break;
        };
        match patch(s) {
            Patch::Keep => {}
            Patch::Clear => out.fill(0),
            Patch::Set(d) => d.encode(boot_id, out),
        }
    }
    disk.write(1 + u64::from(b), buf)
}

fn dom_hash(d: DomainId) -> u64 {
    mix(d.to_raw())
}

/// The swapping engine.
pub struct Swap<R> {
    cfg: SwapConfig,
    size: Sizing,
    repl: R,
    area: Area,
    geo: Geometry,
    /// Every slot of the area: taken or free.
    map: SlotMap,
    loose: Vec<Option<Loose>>,
    loose_free: Vec<u32>,
    loose_index: Index,
    res: Vec<Option<Res>>,
    res_free: Vec<u32>,
    res_index: Index,
    doms: Vec<DomRec>,
    dom_index: Index,
    seq: u64,
    victims: Victims,
    buf: Box<Block>,
    dbuf: Box<Block>,
    /// CRC-32C of a zero block (a zero page's descriptor carries it).
    zero_crc: u32,
    ids: Vec<u32>,
    fr: Vec<u64>,
    /// A batch's slots, and its descriptors (written together).
    batch: Vec<u32>,
    descs: Vec<Desc>,
    /// A run's descriptors as read back (slot in `owner`).
    run_descs: Vec<Desc>,
    recs: Vec<FrameRecord>,
    idle: Vec<DomainId>,
    last_idle_check: u64,
    /// Swap idle domains out with memory free too (`Request::SwapIdle`).
    idle_always: bool,
    /// Free frames fell below [`idle_watermark`] and have not reached
    /// [`idle_target`] since: the idle checks go on swapping out.
    idle_drain: bool,
    /// When a fault last swapped idle domains out to make room.
    last_pressed: u64,
    /// Where the next partial harvest starts in the resident table.
    harvest_at: usize,
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

/// What to do with one descriptor of a block being rewritten.
#[derive(Clone, Copy)]
enum Patch {
    Keep,
    Clear,
    Set(Desc),
}

impl<R: Replacement> Swap<R> {
    /// An engine with the tables `size` gives (resident pages, domain
    /// records, loose pages) and a replacement policy `make` builds for
    /// `size.frames`; every table is reserved now but the slot map, which
    /// the area's length sizes when it opens.
    pub fn new(
        cfg: SwapConfig,
        size: Sizing,
        make: impl FnOnce(Config) -> Result<R, ReplaceError>,
    ) -> Result<Swap<R>, NoMemory> {
        let frames = size.frames.max(1);
        let repl = make(Config {
            frames,
            idle_after: cfg.idle_after,
        })?;
        let loose_n = size.loose.max(1);
        let doms_n = size.domains.max(1);
        let mut doms = Vec::new();
        doms.try_reserve_exact(doms_n).map_err(|_| NoMemory)?;
        let mut ids = Vec::new();
        ids.try_reserve_exact(RUN_MAX.max(BATCH * 2))
            .map_err(|_| NoMemory)?;
        let mut fr = Vec::new();
        fr.try_reserve_exact(FRAMES_MAX).map_err(|_| NoMemory)?;
        let mut batch = Vec::new();
        batch
            .try_reserve_exact(RUN_MAX.max(BATCH * 2))
            .map_err(|_| NoMemory)?;
        let mut descs = Vec::new();
        descs
            .try_reserve_exact(RUN_MAX.max(BATCH * 2))
            .map_err(|_| NoMemory)?;
        let mut run_descs = Vec::new();
        run_descs.try_reserve_exact(RUN_MAX).map_err(|_| NoMemory)?;
        let mut idle = Vec::new();
        idle.try_reserve_exact(IDLE_PER_CHECK)
            .map_err(|_| NoMemory)?;
        Ok(Swap {
            cfg,
            size: Sizing {
                frames,
                domains: doms_n,
                loose: loose_n,
                ..size
            },
            repl,
            area: Area::Closed,
            geo: Geometry {
                slots: 0,
                desc_blocks: 0,
            },
            map: SlotMap::default(),
            loose: vec_of(loose_n, None)?,
            loose_free: free_list(loose_n)?,
            loose_index: Index::new(loose_n)?,
            res: vec_of(frames, None)?,
            res_free: free_list(frames)?,
            res_index: Index::new(frames)?,
            doms,
            dom_index: Index::new(doms_n)?,
            seq: 1,
            victims: Victims::with_capacity(BATCH)?,
            buf: block()?,
            zero_crc: crc32c(&[0; BLOCK]),
            dbuf: block()?,
            ids,
            fr,
            batch,
            descs,
            run_descs,
            recs: vec_of(FRAMES_MAX, FrameRecord::default())?,
            idle,
            last_idle_check: 0,
            idle_always: false,
            idle_drain: false,
            last_pressed: 0,
            harvest_at: 0,
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

    /// The tables' sizes (the slot map's once the area is open).
    pub fn sizing(&self) -> Sizing {
        self.size
    }

    /// Slots of the open area (0 when closed).
    /// The area's layout (for tests).
    #[cfg(test)]
    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn slots(&self) -> u32 {
        self.geo.slots
    }

    /// Domains swapped out whole now (a scan of the records).
    pub fn domains_out(&self) -> usize {
        self.doms.iter().filter(|r| r.out).count()
    }

    /// Whether the area is open.
    pub fn is_open(&self) -> bool {
        self.area == Area::Open
    }

    /// Bytes of metadata: the tables as reserved.
    pub fn metadata_bytes(&self) -> usize {
        self.repl.metadata_bytes()
            + self.map.bytes()
            + self.loose.capacity() * size_of::<Option<Loose>>()
            + self.loose_free.capacity() * size_of::<u32>()
            + self.loose_index.bytes()
            + self.res.capacity() * size_of::<Option<Res>>()
            + self.res_free.capacity() * size_of::<u32>()
            + self.res_index.bytes()
            + self.doms.capacity() * size_of::<DomRec>()
            + self.dom_index.bytes()
    }

    /// Bytes the engine keeps for one domain record (with its share of the
    /// record index).
    pub const fn record_bytes() -> usize {
        size_of::<DomRec>() + sizing::INDEX_BYTES
    }

    /// Bits the engine keeps for one page of a domain swapped out whole
    /// (its slot's bit; the rest is on disk).
    pub const fn bits_per_run_page() -> usize {
        1
    }

    /// Bytes the engine keeps for one page paged out alone (its entry,
    /// free-list word and index share).
    pub const fn loose_page_bytes() -> usize {
        size_of::<Option<Loose>>() + size_of::<u32>() + sizing::INDEX_BYTES
    }

    /// Bytes the engine keeps for one domain swapped out whole with
    /// `pages` pages: its record and a bit a page, rounded up.
    pub const fn bytes_per_swapped_domain(pages: usize) -> usize {
        Self::record_bytes() + pages.div_ceil(8)
    }

    // ---- tables ------------------------------------------------------

    fn find_loose(&self, page: Page) -> Option<u32> {
        let loose = &self.loose;
        self.loose_index.find(page_hash(page), |i| {
            loose
                .get(i as usize)
                .copied()
                .flatten()
                .is_some_and(|m| m.state() != State::Pending && m.page() == page)
        })
    }

    fn loose_get(&self, i: u32) -> Option<Loose> {
        self.loose.get(i as usize).copied().flatten()
    }

    /// A new Pending entry (not indexed yet).
    fn loose_alloc(&mut self, m: Loose) -> Option<u32> {
        let i = self.loose_free.pop()?;
        if let Some(e) = self.loose.get_mut(i as usize) {
            *e = Some(m);
        }
        Some(i)
    }

    /// Drops loose entry `i` and frees its slot.
    fn free_loose(&mut self, i: u32) {
        let Some(m) = self.loose_get(i) else { return };
        if m.state() != State::Pending {
            let loose = &self.loose;
            self.loose_index.remove(page_hash(m.page()), i, |j| {
                loose
                    .get(j as usize)
                    .copied()
                    .flatten()
                    .map_or(0, |m| page_hash(m.page()))
            });
            if m.state() == State::Swapped {
                self.counters.swapped = self.counters.swapped.saturating_sub(1);
            }
        }
        self.map.clear(m.slot);
        if let Some(e) = self.loose.get_mut(i as usize) {
            *e = None;
        }
        self.loose_free.push(i);
    }

    /// Indexes Pending entry `i` as `state`.
    fn commit_loose(&mut self, i: u32, state: State) {
        let Some(m) = self.loose_get(i) else { return };
        if let Some(Some(e)) = self.loose.get_mut(i as usize) {
            e.set_state(state);
        }
        if state == State::Swapped {
            self.counters.swapped += 1;
        }
        self.loose_index.insert(page_hash(m.page()), i);
    }

    fn set_loose_state(&mut self, i: u32, state: State) {
        if let Some(Some(e)) = self.loose.get_mut(i as usize) {
            e.set_state(state);
        }
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
            self.free_loose(r.slot);
        }
        if let Some(r) = self.res_mut(id) {
            r.dirty = true;
            r.slot = NO;
        }
    }

    fn dom(&self, d: DomainId) -> Option<usize> {
        let doms = &self.doms;
        self.dom_index
            .find(dom_hash(d), |i| {
                doms.get(i as usize).is_some_and(|r| r.id == d)
            })
            .map(|i| i as usize)
    }

    fn rec(&self, d: DomainId) -> Option<DomRec> {
        self.dom(d).and_then(|i| self.doms.get(i)).copied()
    }

    fn rec_mut(&mut self, d: DomainId) -> Option<&mut DomRec> {
        let i = self.dom(d)?;
        self.doms.get_mut(i)
    }

    /// Removes record `i`; the last one moves into its place.
    fn dom_remove(&mut self, i: usize) {
        let Some(r) = self.doms.get(i).copied() else {
            return;
        };
        let last = self.doms.len() - 1;
        let doms = &self.doms;
        let hash_of = |j: u32| doms.get(j as usize).map_or(0, |r| dom_hash(r.id));
        self.dom_index.remove(dom_hash(r.id), i as u32, hash_of);
        if i != last {
            if let Some(moved) = self.doms.get(last).copied() {
                let doms = &self.doms;
                self.dom_index.remove(dom_hash(moved.id), last as u32, |j| {
                    doms.get(j as usize).map_or(0, |r| dom_hash(r.id))
                });
                self.dom_index.insert(dom_hash(moved.id), i as u32);
            }
        }
        self.doms.swap_remove(i);
    }

    /// The record of `d`, made if need be: when the table is full, one
    /// without a run (only counters) gives way.
    fn dom_or_new(&mut self, d: DomainId) -> Option<usize> {
        if let Some(i) = self.dom(d) {
            return Some(i);
        }
        if self.doms.len() >= self.size.domains {
            let i = self.doms.iter().position(|r| r.run_len == 0)?;
            self.dom_remove(i);
        }
        self.doms.push(DomRec::new(d));
        let i = self.doms.len() - 1;
        self.dom_index.insert(dom_hash(d), i as u32);
        Some(i)
    }

    // ---- the area ----------------------------------------------------

    /// Opens the area on first need: reads its header and descriptors
    /// (same boot: rebuilds which page is in which slot, resident pages
    /// winning), or formats it for this boot. `Err` when it exists but
    /// could not be read, or its pages do not fit the tables.
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
        // As many slots as the area holds, but no more than the map's
        // share of the heap (its bitmap is reserved last).
        let max = u32::try_from(self.size.slot_bytes.saturating_mul(8)).unwrap_or(u32::MAX);
        let Some(geo) = Geometry::fit(blocks, max) else {
            self.area = Area::Absent;
            return Ok(false);
        };
        let Ok(map) = SlotMap::new(geo.slots) else {
            self.area = Area::Absent;
            return Ok(false);
        };
        self.geo = geo;
        self.map = map;
        let r = self.recover(disk);
        if r.is_err() {
            // Nothing of a half-read area is kept: the next need reads it
            // again from the start.
            self.counters.io_errors += 1;
            self.forget_area();
            return r.map(|()| false);
        }
        self.area = Area::Open;
        Ok(true)
    }

    /// Drops what a failed recovery read.
    fn forget_area(&mut self) {
        self.counters.swapped = 0;
        self.map = SlotMap::default();
        for i in 0..self.loose.len() as u32 {
            if self.loose_get(i).is_some() {
                self.free_loose(i);
            }
        }
        for r in &mut self.doms {
            r.run_len = 0;
            r.run_pages = 0;
            r.live = 0;
        }
        self.counters.swapped = 0;
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
        // Each loose entry's sequence, to keep the newest of two copies.
        let mut lseq: Vec<u64> = Vec::new();
        lseq.try_reserve_exact(self.loose.len())
            .map_err(|_| DiskError::Io)?;
        lseq.resize(self.loose.len(), 0);
        // Pass 1: each domain's first stretch of slots becomes its run,
        // other pages loose entries.
        let mut runs = false;
        let mut zeros = false;
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
                if self.recover_run(page.domain, s, d.seq) {
                    runs = true;
                    continue;
                }
                if let Some(old) = self.find_loose(page) {
                    if lseq.get(old as usize).copied().unwrap_or(0) >= d.seq {
                        continue;
                    }
                    self.free_loose(old);
                }
                if d.zero {
                    // A loose entry is read back: its slot must hold the
                    // zeros its descriptor describes.
                    self.buf.fill(0);
                    disk.write(self.geo.data_block(s), &self.buf)?;
                    zeros = true;
                }
                let i = self
                    .loose_alloc(Loose::new(page, d.data_crc, s, State::Pending))
                    .ok_or(DiskError::Io)?;
                self.map.set(s);
                self.commit_loose(i, State::Swapped);
                if let Some(q) = lseq.get_mut(i as usize) {
                    *q = d.seq;
                }
            }
        }
        // Pass 2: each page of a run counted once, and one both in a run
        // and loose keeps its newer copy.
        if runs {
            for i in 0..self.doms.len() {
                self.recheck_run(disk, i, &lseq)?;
            }
        }
        for r in 0..self.res.len() as u32 {
            if let Some(d) = self.res_get(r).map(|r| r.page.domain) {
                if let Some(rec) = self.rec_mut(d) {
                    rec.out = false;
                }
            }
        }
        if h != Some(want) {
            disk.write(0, &want.encode())?;
            disk.flush()?;
        } else if zeros {
            disk.flush()?;
        }
        Ok(())
    }

    /// Adds the page in slot `s` to `d`'s run being rebuilt: a new run, or
    /// the one it extends over free slots. False: it is loose.
    fn recover_run(&mut self, d: DomainId, s: u32, seq: u64) -> bool {
        match self.rec(d) {
            Some(r) if r.run_len > 0 => {
                let end = r.run_first + u32::from(r.run_len);
                let span = s + 1 - r.run_first;
                if s < end
                    || s - end > RUN_GAP
                    || span > u32::from(u16::MAX)
                    || usize::from(r.run_pages) >= RUN_MAX
                    || !self.map.all_free(end, s - end)
                {
                    return false;
                }
                for t in end..=s {
                    self.map.set(t);
                }
                if let Some(r) = self.rec_mut(d) {
                    r.run_len = span as u16;
                    r.run_pages = r.run_pages.saturating_add(1);
                    r.live = r.live.saturating_add(1);
                    r.seq = r.seq.min(seq);
                }
            }
            _ => {
                let Some(i) = self.dom_or_new(d) else {
                    return false;
                };
                if let Some(r) = self.doms.get_mut(i) {
                    r.run_first = s;
                    r.run_len = 1;
                    r.run_pages = 1;
                    r.live = 1;
                    r.seq = seq;
                    r.out = true;
                }
                self.map.set(s);
            }
        }
        self.counters.swapped += 1;
        true
    }

    /// Pass 2 of recovery for record `i`: its pages counted once, and of
    /// a page in its run and loose too, the older copy goes.
    fn recheck_run(
        &mut self,
        disk: &mut impl SwapDisk,
        i: usize,
        lseq: &[u64],
    ) -> Result<(), DiskError> {
        let Some(rec) = self.doms.get(i).copied() else {
            return Ok(());
        };
        if rec.run_len == 0 {
            return Ok(());
        }
        self.read_run(disk, &rec)?;
        let mut live = 0u16;
        for k in 0..self.run_descs.len() {
            let Some(d) = self.run_descs.get(k).copied() else {
                break;
            };
            let page = Page::new(rec.id, d.vpn);
            if self.find_res(page).is_some() {
                continue; // resident wins
            }
            match self.find_loose(page) {
                Some(l) if lseq.get(l as usize).copied().unwrap_or(0) < d.seq => {
                    self.free_loose(l);
                    live += 1;
                }
                Some(_) => {}
                None => live += 1,
            }
        }
        self.counters.swapped = self
            .counters
            .swapped
            .saturating_sub(u32::from(rec.live))
            .saturating_add(u32::from(live));
        if let Some(r) = self.doms.get_mut(i) {
            r.live = live;
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

    /// Clears the descriptors of slots `first .. first + n` (best effort:
    /// what is left names pages that are resident, newer elsewhere, or of
    /// a dead domain).
    fn clear_descs(&mut self, disk: &mut impl SwapDisk, first: u32, n: u32) {
        let end = first.saturating_add(n);
        let mut s = first;
        while s < end {
            let b = s / DESC_PER_BLOCK;
            let _ = patch_block(disk, &mut self.dbuf, self.cfg.boot_id, b, |t| {
                if (first..end).contains(&t) {
                    Patch::Clear
                } else {
                    Patch::Keep
                }
            });
            s = (b + 1) * DESC_PER_BLOCK;
        }
    }

    // ---- grants and recovery ---------------------------------------------

    /// A granted frame the kernel says is bound at `vaddr` in `d`: a
    /// resident page of an earlier incarnation, treated as dirty (its disk
    /// copy, if any, may be stale).
    pub fn adopt(&mut self, frame: u64, d: DomainId, vaddr: u64) {
        let page = Page::new(d, vaddr / BLOCK as u64);
        if let Some(s) = self.find_loose(page) {
            self.free_loose(s); // resident wins
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

    /// Copies the pages `self.ids` (resident ids) into slots `self.batch`
    /// (taken in the map, same length, ascending), writes their
    /// descriptors and flushes. `loose`: each gets a loose entry (the
    /// caller made room) and on success is clean with its copy there; else
    /// (a run) its copy is known only to the run's record. On an error
    /// none is written, each is dirty and the slots are free again but one
    /// whose data write failed (a bad sector is not used again).
    fn write_batch(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        loose: bool,
    ) -> Result<(), DiskError> {
        // A run's zero pages are only described; a loose entry always has
        // its data (page_in reads it).
        let ok = self.write_batch_inner(mmu, disk, !loose);
        let n = self.ids.len().min(self.batch.len());
        for i in 0..n {
            let (Some(&id), Some(&s)) = (self.ids.get(i), self.batch.get(i)) else {
                break;
            };
            match ok {
                Ok(()) => {
                    if let Some(old) = self.res_get(id).map(|r| r.slot) {
                        if old != NO {
                            self.free_loose(old);
                        }
                    }
                    let mut slot = NO;
                    if let (true, Some(d)) = (loose, self.descs.get(i).copied()) {
                        let page = Page::new(DomainId::from_raw(d.owner), d.vpn);
                        let m = Loose::new(page, d.data_crc, s, State::Pending);
                        if let Some(l) = self.loose_alloc(m) {
                            self.commit_loose(l, State::Copy);
                            slot = l;
                        }
                    }
                    if let Some(r) = self.res_mut(id) {
                        r.dirty = false;
                        r.slot = slot;
                    }
                    self.counters.page_outs += 1;
                }
                Err((_, bad)) => {
                    if bad != Some(s) {
                        self.map.clear(s);
                    }
                    self.mark_dirty(id);
                }
            }
        }
        ok.map_err(|(e, _)| {
            self.counters.io_errors += 1;
            e
        })
    }

    /// The writes of [`Swap::write_batch`]; an error names the slot whose
    /// data write failed, if one did.
    fn write_batch_inner(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        elide_zero: bool,
    ) -> Result<(), (DiskError, Option<u32>)> {
        let n = self.ids.len().min(self.batch.len());
        self.descs.clear();
        for i in 0..n {
            let (Some(&id), Some(&s)) = (self.ids.get(i), self.batch.get(i)) else {
                break;
            };
            let r = self.res_get(id).ok_or((DiskError::Io, None))?;
            mmu.copy_frame(r.frame, &mut self.buf)
                .map_err(|_| (DiskError::Io, None))?;
            // About half an httpd's pages are zeros at its swap-outs.
            let zero = elide_zero && is_zero(&self.buf);
            self.descs.push(Desc {
                owner: r.page.domain.to_raw(),
                vpn: r.page.vpn,
                seq: self.seq,
                data_crc: if zero {
                    self.zero_crc
                } else {
                    crc32c(&self.buf[..])
                },
                zero,
            });
            self.seq += 1;
            if zero {
                self.counters.zero_pages += 1;
            } else {
                disk.write(self.geo.data_block(s), &self.buf)
                    .map_err(|e| (e, Some(s)))?;
            }
        }
        // Each descriptor block touched, once (slots come sorted).
        let mut k = 0;
        while k < n {
            let Some(b) = self.batch.get(k).map(|s| s / DESC_PER_BLOCK) else {
                break;
            };
            let mut end = k;
            while end < n
                && self
                    .batch
                    .get(end)
                    .is_some_and(|&s| s / DESC_PER_BLOCK == b)
            {
                end += 1;
            }
            let slots = self.batch.get(k..end).unwrap_or(&[]);
            let descs = self.descs.get(k..end).unwrap_or(&[]);
            patch_block(disk, &mut self.dbuf, self.cfg.boot_id, b, |t| {
                slots
                    .iter()
                    .position(|&x| x == t)
                    .and_then(|j| descs.get(j).copied())
                    .map_or(Patch::Keep, Patch::Set)
            })
            .map_err(|e| (e, None))?;
            k = end;
        }
        disk.flush().map_err(|e| (e, None))
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
                    self.set_loose_state(r.slot, State::Swapped);
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
        let n = self.res.len();
        while i < n {
            self.ids.clear();
            self.fr.clear();
            while i < n && self.fr.len() < FRAMES_MAX {
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

    /// Harvests the next `n` entries of the resident table from where the
    /// last call stopped (round and round).
    fn harvest_some(&mut self, mmu: &mut impl Mmu, n: usize) -> Result<(), SysError> {
        let len = self.res.len();
        if len == 0 {
            return Ok(());
        }
        let mut left = n.min(len);
        while left > 0 {
            self.ids.clear();
            self.fr.clear();
            while left > 0 && self.fr.len() < FRAMES_MAX {
                let i = self.harvest_at % len;
                self.harvest_at = (i + 1) % len;
                left -= 1;
                if let Some(r) = self.res_get(i as u32) {
                    self.ids.push(i as u32);
                    self.fr.push(r.frame);
                }
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
                if self.loose_free.len() >= n && self.map.alloc_any(n, &mut self.batch) {
                    let wrote = self.write_batch(mmu, disk, true).is_ok();
                    if wrote {
                        self.tell_written(n);
                        let _ = clean.try_reserve(n);
                        clean.extend_from_slice(&self.ids);
                    } else {
                        self.requeue_ids(n);
                    }
                } else {
                    // Swap is full: these stay resident.
                    self.requeue_ids(n);
                }
            }
            self.ids.clear();
            self.ids.extend_from_slice(&clean);
            freed += self.unbind_batch(mmu, pool);
        }
        freed
    }

    /// The page of `self.ids[k]`, if that entry is still in the table.
    fn ids_page(&self, k: usize) -> Option<Page> {
        self.ids
            .get(k)
            .and_then(|&id| self.res_get(id))
            .map(|r| r.page)
    }

    /// Tells the policy the first `n` pages of `self.ids` were written.
    fn tell_written(&mut self, n: usize) {
        for k in 0..n {
            if let Some(p) = self.ids_page(k) {
                self.repl.written(p);
            }
        }
    }

    /// The first `n` pages of `self.ids` stay resident and dirty.
    fn requeue_ids(&mut self, n: usize) {
        for k in 0..n {
            if let Some(p) = self.ids_page(k) {
                self.requeue(p);
            }
        }
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
        // A run is found only through its record: any fault of its domain
        // brings the whole run back.
        if self.rec(page.domain).is_some_and(|r| r.run_len > 0) {
            match self.swap_in(mmu, disk, pool, reply, page, take) {
                Ok(Some(frame)) => return FaultPlan::Bound { frame },
                Ok(None) => {}
                Err(l) => return FaultPlan::Lost(l),
            }
        }
        let Some(s) = self.find_loose(page) else {
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

    /// Makes room for one more resident page before a zero-fill of
    /// `faulting`'s (never swapped out here).
    pub fn make_room(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        faulting: DomainId,
    ) {
        if self.futile > 0 {
            // The last try freed nothing (swap full, all pages in use):
            // a harvest of every page per fault would only burn time.
            self.futile -= 1;
            return;
        }
        if self.area != Area::Absent && !self.has_room(pool) {
            // Whole idle domains first: one run written each, and they
            // are what memory caches least usefully. Not at every fault:
            // finding them visits every domain.
            // With `idle_always` the idle checks do that already (and
            // doing it here too churned: an overcommitted boot of 200
            // patterners swapped out for ever).
            if self.cfg.idle_after > 0
                && !self.idle_always
                && self.now.saturating_sub(self.last_pressed) >= self.cfg.idle_after / 16
            {
                self.last_pressed = self.now;
                if self.swap_out_idle(mmu, disk, pool, Some(faulting)) > 0 && self.has_room(pool) {
                    return;
                }
            }
            let need = low_watermark(pool)
                .saturating_sub(pool.free_count())
                .max(BATCH / 4);
            if self.reclaim(mmu, disk, pool, need) == 0 {
                self.futile = FUTILE_BACKOFF;
            }
        }
    }

    /// Reads loose entry `s` into a free frame, verifies it and binds it
    /// at `page` through `reply`; the entry stays as its clean copy.
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
        let Some(m) = self.loose_get(s) else {
            return Err(Lost::ReadError);
        };
        let frame = self.read_and_bind(mmu, disk, pool, reply, page, Some(m.slot), m.crc, take)?;
        self.set_loose_state(s, State::Copy);
        self.counters.swapped = self.counters.swapped.saturating_sub(1);
        if !self.res_insert(Res {
            page,
            frame,
            dirty: false,
            slot: s,
        }) {
            // Untracked: its copy cannot be kept in step with it.
            self.free_loose(s);
        }
        let _ = self.repl.fault(page, false);
        Ok(frame)
    }

    /// Reads slot `slot`, checks it against `crc`, copies it into a free
    /// frame and binds that at `page` through `reply`.
    #[allow(clippy::too_many_arguments)]
    fn read_and_bind(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        reply: Handle,
        page: Page,
        slot: Option<u32>,
        crc: u32,
        take: &mut dyn FnMut(&mut FramePool) -> Option<u64>,
    ) -> Result<u64, Lost> {
        match slot {
            // A zero page: nothing to read.
            None => self.buf.fill(0),
            Some(slot) => {
                if disk.read(self.geo.data_block(slot), &mut self.buf).is_err() {
                    self.counters.io_errors += 1;
                    return Err(Lost::ReadError);
                }
                if crc32c(&self.buf[..]) != crc {
                    return Err(Lost::ChecksumMismatch);
                }
            }
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
        self.counters.page_ins += 1;
        Ok(frame)
    }

    /// Brings `fault.domain`'s run back, every page through `reply`, its
    /// pages and CRCs read from the run's descriptors; returns the faulting
    /// page's frame if the run held it. Once every page is back the run's
    /// slots are free (its pages resident and dirty); a page that could not
    /// be read keeps the run for a later fault.
    #[allow(clippy::too_many_arguments)]
    fn swap_in(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        reply: Handle,
        fault: Page,
        take: &mut dyn FnMut(&mut FramePool) -> Option<u64>,
    ) -> Result<Option<u64>, Lost> {
        let Some(rec) = self.rec(fault.domain) else {
            return Ok(None);
        };
        if let Some(r) = self.rec_mut(fault.domain) {
            r.out = false;
            r.swap_ins = r.swap_ins.saturating_add(1);
        }
        self.counters.swap_ins += 1;
        let want = usize::from(rec.live);
        if pool.free_count() < want + low_watermark(pool) || self.res_free.len() < want {
            let need = (want + low_watermark(pool)).saturating_sub(pool.free_count());
            self.reclaim(mmu, disk, pool, need.max(want));
        }
        // Its descriptors first: after a crash a run may hold two copies
        // of a page, and only the newest is its content.
        let found = match self.read_run(disk, &rec) {
            Ok(n) => n,
            Err(DiskError::NotFound) => return Err(Lost::ReadError),
            Err(DiskError::Io) => {
                self.counters.io_errors += 1;
                return Err(Lost::ReadError);
            }
        };
        let mut got = None;
        let mut lost = None;
        let mut failed = 0u16;
        for k in 0..self.run_descs.len() {
            let Some(d) = self.run_descs.get(k).copied() else {
                break;
            };
            let slot = d.owner as u32;
            let page = Page::new(rec.id, d.vpn);
            if self.find_res(page).is_some() || self.find_loose(page).is_some() {
                continue; // a newer copy is resident or loose
            }
            let from = (!d.zero).then_some(slot);
            match self.read_and_bind(mmu, disk, pool, reply, page, from, d.data_crc, take) {
                Ok(f) => {
                    let tracked = self.res_insert(Res {
                        page,
                        frame: f,
                        dirty: true,
                        slot: NO,
                    });
                    if tracked {
                        let _ = self.repl.fault(page, true);
                    }
                    if page == fault {
                        got = Some(f);
                    }
                }
                // Left in the run: a later fault reads it again.
                Err(l) => {
                    failed += 1;
                    if page == fault {
                        lost = Some(l);
                    }
                }
            }
        }
        // What is left in the run is what failed.
        self.counters.swapped = self
            .counters
            .swapped
            .saturating_sub(u32::from(rec.live))
            .saturating_add(u32::from(failed));
        if let Some(r) = self.rec_mut(rec.id) {
            r.live = failed;
        }
        if found < u32::from(rec.run_pages) {
            // A descriptor rotted: which page it held is unknown, so the
            // domain cannot be trusted to read back what it wrote.
            return Err(Lost::ChecksumMismatch);
        }
        if let Some(l) = lost {
            return Err(l);
        }
        if failed == 0 {
            self.drop_run(disk, rec.id);
        }
        Ok(got)
    }

    /// Reads `rec`'s run's descriptors into `run_descs` (the slot in
    /// `owner`): those it wrote, newest copy of each page only, by vpn.
    /// Returns how many it wrote were found (copies included).
    fn read_run(&mut self, disk: &mut impl SwapDisk, rec: &DomRec) -> Result<u32, DiskError> {
        self.run_descs.clear();
        let (first, end) = (rec.run_first, rec.run_first + u32::from(rec.run_len));
        let mut s = first;
        while s < end {
            let b = s / DESC_PER_BLOCK;
            disk.read(1 + u64::from(b), &mut self.dbuf)?;
            while s < end && s / DESC_PER_BLOCK == b {
                let off = ((s % DESC_PER_BLOCK) as usize) * DESC_LEN;
                let d = self
                    .dbuf
                    .get(off..off + DESC_LEN)
                    .and_then(|x| Desc::decode(self.cfg.boot_id, x))
                    .filter(|d| d.owner == rec.id.to_raw() && d.seq >= rec.seq);
                if let Some(d) = d {
                    if self.run_descs.len() == self.run_descs.capacity() {
                        return Err(DiskError::NotFound); // more than a run holds
                    }
                    self.run_descs.push(Desc {
                        owner: u64::from(s),
                        ..d
                    });
                }
                s += 1;
            }
        }
        let found = self.run_descs.len() as u32;
        self.run_descs
            .sort_unstable_by(|a, b| (a.vpn, b.seq).cmp(&(b.vpn, a.seq)));
        self.run_descs.dedup_by_key(|d| d.vpn);
        Ok(found)
    }

    /// Frees `d`'s run: its descriptors cleared, its slots free.
    fn drop_run(&mut self, disk: &mut impl SwapDisk, d: DomainId) {
        let Some(rec) = self.rec(d) else { return };
        if rec.run_len == 0 {
            return;
        }
        let n = u32::from(rec.run_len);
        if self.area == Area::Open {
            self.clear_descs(disk, rec.run_first, n);
        }
        for s in rec.run_first..rec.run_first + n {
            self.map.clear(s);
        }
        self.counters.swapped = self.counters.swapped.saturating_sub(u32::from(rec.live));
        if let Some(r) = self.rec_mut(d) {
            r.run_len = 0;
            r.run_pages = 0;
            r.live = 0;
        }
    }

    // ---- idle domains ----------------------------------------------------

    /// Whether domains idle for `idle_after` are swapped out with memory
    /// free too (else only below [`idle_watermark`]).
    pub fn set_idle_always(&mut self, always: bool) {
        self.idle_always = always;
    }

    /// The clock moved to `now`: every `idle_after / 4`, swaps out whole
    /// the domains idle for `idle_after` (up to [`IDLE_BURST`] a check):
    /// once free frames fell below [`idle_watermark`], until they reach
    /// [`idle_target`] (over as many checks as that takes), or all of them
    /// if `idle_always`.
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
        // busy domain with all its pages resident would look idle; and at
        // every check, so that an old reference does not make a domain
        // look busy at the first look under pressure. All of them with
        // `idle_always`; else an eighth a check, round the resident set in
        // 4 s: a harvest of every page at every check would be most of the
        // swapper's time at 100,000 resident pages. A domain that looks
        // idle for want of a fresh look is harvested whole before it goes
        // (`swap_out`).
        if self.idle_always {
            let _ = self.harvest_all(mmu);
        } else {
            let n = self.res.len() / HARVEST_SLICES + 1;
            let _ = self.harvest_some(mmu, n);
        }
        if pool.free_count() < idle_watermark(pool) {
            self.idle_drain = true;
        }
        if self.idle_always || self.idle_drain {
            self.swap_out_idle(mmu, disk, pool, None);
        }
        if pool.free_count() >= idle_target(pool) {
            self.idle_drain = false;
        }
    }

    /// Swaps out whole the domains idle for `idle_after` (up to 256), all
    /// of them if `idle_always`, else until free frames reach
    /// [`idle_target`] or [`IDLE_BURST`] went; never `except`. Returns how
    /// many.
    fn swap_out_idle(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        except: Option<DomainId>,
    ) -> usize {
        self.idle.clear();
        self.repl.idle_domains(&mut self.idle);
        let mut n = 0;
        for k in 0..self.idle.len() {
            if !self.idle_always && (pool.free_count() >= idle_target(pool) || n >= IDLE_BURST) {
                break;
            }
            let Some(&d) = self.idle.get(k) else { break };
            if Some(d) != except && self.swap_out(mmu, disk, pool, d, false).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Swaps `domain` out whole: all its resident pages into one run of
    /// consecutive slots, unbound, then its tables given back. Unless
    /// `force`, a domain that touched a page since the last look is left
    /// alone.
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
        for i in 0..self.res.len() as u32 {
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
        let rec = self.rec(domain);
        if n == 0 {
            return if rec.is_some_and(|r| r.out) {
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
        // The record before the write: a run nobody could find is lost.
        let Some(ri) = self.dom_or_new(domain) else {
            return Err(SwapOutError::Full);
        };
        if rec.is_some_and(|r| r.run_len > 0) {
            return self.swap_out_loose(mmu, disk, pool, domain);
        }
        let Some(first) = u32::try_from(n).ok().and_then(|k| self.map.alloc_run(k)) else {
            return Err(SwapOutError::Full);
        };
        self.batch.clear();
        self.batch.extend(first..first + n as u32);
        let seq = self.seq;
        if self.write_batch(mmu, disk, false).is_err() {
            return Err(SwapOutError::Io);
        }
        self.tell_written(n);
        let freed = self.unbind_batch(mmu, pool);
        // Any page still bound holds data only its frame has now.
        for k in 0..n {
            if let Some(&id) = self.ids.get(k) {
                if self.res_get(id).is_some_and(|r| r.page.domain == domain) {
                    self.mark_dirty(id);
                }
            }
        }
        let dom = self.doms.get(ri).map(|r| r.id);
        let ri = if dom == Some(domain) {
            ri
        } else {
            self.dom(domain).unwrap_or(ri)
        };
        if let Some(r) = self.doms.get_mut(ri) {
            r.seq = seq;
            r.run_first = first;
            r.run_len = n as u16;
            r.run_pages = n as u16;
            r.live = freed as u16;
            r.out = freed == n;
            r.swap_outs = r.swap_outs.saturating_add(1);
        }
        self.counters.swapped += freed as u32;
        self.counters.swap_outs += 1;
        if freed == n {
            // Not waiting (WouldBlock) is fine: its tables stay.
            let _ = mmu.shrink(domain);
            Ok(())
        } else {
            Err(SwapOutError::Busy)
        }
    }

    /// The rest of a swap-out of `domain` (its resident pages in
    /// `self.ids`) when it has a run already: one run a domain, so these
    /// (pages it touched during the last swap-out, say) go out loose, and
    /// come back one fault at a time after the run.
    fn swap_out_loose(
        &mut self,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        pool: &mut FramePool,
        domain: DomainId,
    ) -> Result<(), SwapOutError> {
        let n = self.ids.len();
        if self.loose_free.len() < n || !self.map.alloc_any(n, &mut self.batch) {
            return Err(SwapOutError::Full);
        }
        if self.write_batch(mmu, disk, true).is_err() {
            return Err(SwapOutError::Io);
        }
        self.tell_written(n);
        let freed = self.unbind_batch(mmu, pool);
        if let Some(r) = self.rec_mut(domain) {
            r.out = freed == n;
            r.swap_outs = r.swap_outs.saturating_add(1);
        }
        self.counters.swap_outs += 1;
        if freed == n {
            let _ = mmu.shrink(domain);
            Ok(())
        } else {
            Err(SwapOutError::Busy)
        }
    }

    // ---- death -----------------------------------------------------------

    /// `domain` is gone (its frames are back in the pool): drops its
    /// resident pages, loose pages and run, and clears their descriptors
    /// (best effort: a descriptor left behind names a dead domain).
    pub fn revoke(&mut self, disk: &mut impl SwapDisk, domain: DomainId) {
        self.futile = 0;
        self.repl.forget(domain);
        for i in 0..self.res.len() as u32 {
            if self.res_get(i).is_some_and(|r| r.page.domain == domain) {
                if let Some(r) = self.res_remove(i) {
                    if r.slot != NO {
                        self.free_loose(r.slot);
                    }
                }
            }
        }
        let mut last = NO;
        for i in 0..self.loose.len() as u32 {
            let Some(m) = self.loose_get(i) else { continue };
            if m.owner != domain.to_raw() {
                continue;
            }
            self.free_loose(i);
            // Loose pages of one domain are mostly in a few blocks.
            let b = m.slot / DESC_PER_BLOCK;
            if b != last && self.area == Area::Open {
                let map = &self.map;
                let _ = patch_block(disk, &mut self.dbuf, self.cfg.boot_id, b, |t| {
                    if map.is_used(t) {
                        Patch::Keep
                    } else {
                        Patch::Clear
                    }
                });
                last = b;
            }
        }
        self.drop_run(disk, domain);
        if let Some(i) = self.dom(domain) {
            self.dom_remove(i);
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
        let loose = self
            .loose
            .iter()
            .flatten()
            .filter(|m| m.state() == State::Swapped && m.owner == domain.to_raw())
            .count();
        let rec = self.rec(domain);
        DomMem {
            resident: resident as u32,
            swapped: loose as u32 + rec.map_or(0, |r| u32::from(r.live)),
            swap_ins: rec.map_or(0, |r| u32::from(r.swap_ins)),
            swap_outs: rec.map_or(0, |r| u32::from(r.swap_outs)),
            swapped_out: rec.is_some_and(|r| r.out),
        }
    }

    /// Every page with a copy in swap, for tests: (page, swapped?), the
    /// runs' read from their descriptors on `disk`.
    #[cfg(test)]
    pub(crate) fn slot_pages(&self, disk: &mut impl SwapDisk) -> Vec<(Page, bool)> {
        let mut out: Vec<(Page, bool)> = self
            .loose
            .iter()
            .flatten()
            .filter(|m| m.state() != State::Pending)
            .map(|m| (m.page(), m.state() == State::Swapped))
            .collect();
        let mut blk = [0u8; BLOCK];
        let mut newest: std::collections::BTreeMap<Page, u64> = Default::default();
        for r in self.doms.iter().filter(|r| r.run_len > 0) {
            for s in r.run_first..r.run_first + u32::from(r.run_len) {
                assert!(self.map.is_used(s), "a run's slot is free");
                if disk.read(self.geo.desc_block(s), &mut blk).is_err() {
                    continue;
                }
                let off = ((s % DESC_PER_BLOCK) as usize) * DESC_LEN;
                let Some(d) = Desc::decode(self.cfg.boot_id, &blk[off..off + DESC_LEN]) else {
                    continue;
                };
                let page = Page::new(r.id, d.vpn);
                if d.owner == r.id.to_raw()
                    && d.seq >= r.seq
                    && self.find_res(page).is_none()
                    && self.find_loose(page).is_none()
                {
                    let e = newest.entry(page).or_insert(0);
                    *e = (*e).max(d.seq);
                }
            }
        }
        out.extend(newest.into_keys().map(|p| (p, true)));
        out
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

/// Below this many free frames idle domains are swapped out whole (at the
/// idle checks), until [`idle_target`] are free: above it memory caches
/// them.
pub fn idle_watermark(pool: &FramePool) -> usize {
    (pool.total() / 8).max(16)
}

/// See [`idle_watermark`].
pub fn idle_target(pool: &FramePool) -> usize {
    (pool.total() / 4).max(32)
}
