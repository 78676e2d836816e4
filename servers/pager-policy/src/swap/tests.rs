//! The swapper against a fake kernel (frames, bindings, use bits) and an
//! in-memory disk that fails, corrupts and "crashes" on demand.

use super::format::{Block, BLOCK};
use super::*;
use crate::pager::{Event, Incoming, KillReason, Mmu, Pager};
use crate::policy::ZeroFill;
use crate::replace::WsClock;
use proptest::prelude::*;
use serac_protocol::client::LABEL_PAGER;
use serac_protocol::codec::{decode, encode};
use serac_protocol::header::LABEL_FAULT;
use serac_protocol::layout::USER_START;
use serac_protocol::pager::{
    Access, Fault, Reply, Request, FAULT_KILL, FAULT_KILL_LOST, FAULT_RESUME,
};
use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

const SUP: u64 = 0x1_0000_0001;
const R: Handle = Handle::new(9, 1);
const FIRST: u64 = 0x800;
/// The first page number the tests use.
const BASE: u64 = USER_START / 4096;

fn pattern(stamp: u64) -> Block {
    let mut b = [0u8; BLOCK];
    for c in b.chunks_mut(8) {
        c.copy_from_slice(&stamp.to_le_bytes());
    }
    b
}

/// The kernel in miniature.
#[derive(Default)]
struct Kernel {
    owned: BTreeSet<u64>,
    /// frame -> (domain, vpn)
    bound: BTreeMap<u64, (DomainId, u64)>,
    at: BTreeMap<(DomainId, u64), u64>,
    /// frame -> content stamp (every page is one stamp repeated).
    data: BTreeMap<u64, u64>,
    /// frame -> (accessed, dirty)
    bits: BTreeMap<u64, (bool, bool)>,
    faulting: DomainId,
    /// A frame was filled with bytes that are no page ever written.
    corrupt_mapped: bool,
    shrunk: Vec<DomainId>,
    frames_calls: usize,
}

impl Kernel {
    fn unbind(&mut self, f: u64) {
        if let Some(p) = self.bound.remove(&f) {
            self.at.remove(&p);
        }
        self.bits.remove(&f);
    }
    fn kill(&mut self, d: DomainId) {
        let fs: Vec<u64> = self
            .bound
            .iter()
            .filter(|(_, p)| p.0 == d)
            .map(|(f, _)| *f)
            .collect();
        for f in fs {
            self.unbind(f);
        }
    }
}

impl Mmu for Kernel {
    fn zero(&mut self, frame: u64) -> Result<(), SysError> {
        if !self.owned.contains(&frame) {
            return Err(SysError::FrameNotOwned);
        }
        if self.bound.contains_key(&frame) {
            return Err(SysError::FrameInUse);
        }
        self.data.insert(frame, 0);
        Ok(())
    }
    fn bind(&mut self, reply: Handle, page: u64, frame: u64) -> Result<(), SysError> {
        assert_eq!(reply, R);
        if !self.owned.contains(&frame) {
            return Err(SysError::FrameNotOwned);
        }
        if self.bound.contains_key(&frame) {
            return Err(SysError::FrameInUse);
        }
        let key = (self.faulting, page / 4096);
        if self.at.contains_key(&key) {
            return Err(SysError::AlreadyMapped);
        }
        self.bound.insert(frame, key);
        self.at.insert(key, frame);
        self.bits.insert(frame, (false, false));
        Ok(())
    }
    fn write_frame(&mut self, frame: u64, data: &Block) -> Result<(), SysError> {
        if !self.owned.contains(&frame) {
            return Err(SysError::FrameNotOwned);
        }
        if self.bound.contains_key(&frame) {
            return Err(SysError::FrameInUse);
        }
        let stamp = u64::from_le_bytes(data[..8].try_into().unwrap());
        if *data != pattern(stamp) {
            self.corrupt_mapped = true;
        }
        self.data.insert(frame, stamp);
        Ok(())
    }
    fn copy_frame(&mut self, frame: u64, out: &mut Block) -> Result<u8, SysError> {
        if !self.owned.contains(&frame) {
            return Err(SysError::FrameNotOwned);
        }
        *out = pattern(*self.data.get(&frame).unwrap_or(&0));
        let (a, d) = self.bits.get(&frame).copied().unwrap_or_default();
        if let Some(b) = self.bits.get_mut(&frame) {
            *b = (false, false);
        }
        Ok(u8::from(a) | u8::from(d) << 1)
    }
    fn frames(
        &mut self,
        frames: &[u64],
        flags: u64,
        out: &mut [FrameRecord],
    ) -> Result<(), SysError> {
        assert!(frames.len() <= FRAMES_MAX && frames.len() == out.len());
        self.frames_calls += 1;
        for (f, o) in frames.iter().zip(out.iter_mut()) {
            *o = FrameRecord {
                frame: *f,
                ..FrameRecord::default()
            };
            if !self.owned.contains(f) {
                o.status = u64::from(SysError::FrameNotOwned.code()) << 8;
                continue;
            }
            let Some(&(d, vpn)) = self.bound.get(f) else {
                continue;
            };
            let (a, dirty) = self.bits.get(f).copied().unwrap_or_default();
            o.status = STATUS_BOUND
                | if a { STATUS_ACCESSED } else { 0 }
                | if dirty { STATUS_DIRTY } else { 0 };
            o.domain = d.to_raw();
            o.vaddr = vpn * 4096;
            if flags & FRAMES_TAKE != 0 {
                self.bits.insert(*f, (false, false));
            }
            if flags & FRAMES_UNBIND != 0 && !(flags & FRAMES_IF_CLEAN != 0 && dirty) {
                self.unbind(*f);
                o.status |= STATUS_UNBOUND;
            }
        }
        Ok(())
    }
    fn shrink(&mut self, domain: DomainId) -> Result<(), SysError> {
        self.shrunk.push(domain);
        Ok(())
    }
}

/// A disk that keeps what was written; reads and writes fail on demand,
/// and after `die_after` more writes it stops (the swapper "crashed").
#[derive(Default)]
struct Disk {
    blocks: Vec<Block>,
    fail_reads: u32,
    fail_writes: u32,
    die_after: Option<u32>,
    dead: bool,
    opens: u32,
    /// Blocks written.
    writes: u32,
}

impl Disk {
    fn new(n: usize) -> Disk {
        Disk {
            blocks: std::vec![[0u8; BLOCK]; n],
            ..Disk::default()
        }
    }
}

impl SwapDisk for Disk {
    fn open(&mut self) -> Result<u64, DiskError> {
        self.opens += 1;
        if self.dead {
            return Err(DiskError::Io);
        }
        Ok(self.blocks.len() as u64)
    }
    fn read(&mut self, n: u64, buf: &mut Block) -> Result<(), DiskError> {
        if self.dead {
            return Err(DiskError::Io);
        }
        if self.fail_reads > 0 {
            self.fail_reads -= 1;
            return Err(DiskError::Io);
        }
        *buf = *self.blocks.get(n as usize).ok_or(DiskError::Io)?;
        Ok(())
    }
    fn write(&mut self, n: u64, buf: &Block) -> Result<(), DiskError> {
        if self.dead {
            return Err(DiskError::Io);
        }
        if let Some(k) = self.die_after.as_mut() {
            if *k == 0 {
                self.dead = true;
                return Err(DiskError::Io);
            }
            *k -= 1;
        }
        if self.fail_writes > 0 {
            self.fail_writes -= 1;
            return Err(DiskError::Io);
        }
        *self.blocks.get_mut(n as usize).ok_or(DiskError::Io)? = *buf;
        self.writes += 1;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        if self.dead {
            return Err(DiskError::Io);
        }
        Ok(())
    }
}

/// Tables as the default 1 MiB heap sizes them.
fn small() -> Sizing {
    Sizing::for_heap(1 << 20)
}

fn cfg(restarted: bool) -> SwapConfig {
    SwapConfig {
        boot_id: 42,
        restarted,
        idle_after: 1000,
        tau: 100,
    }
}

type P = Pager<ZeroFill, WsClock>;

fn pager(k: &mut Kernel, disk: &mut Disk, frames: u64, restarted: bool) -> P {
    let sw = Swap::new(cfg(restarted), small(), |c| WsClock::new(c, 100)).unwrap();
    let mut p = Pager::with_swap(ZeroFill, sw);
    k.owned.extend(FIRST..FIRST + frames);
    let r = request(
        &mut p,
        k,
        disk,
        &Request::Grant {
            first: FIRST,
            count: frames,
        },
    );
    assert_eq!(r, Reply::Ok);
    p
}

fn request(p: &mut P, k: &mut Kernel, disk: &mut Disk, r: &Request) -> Reply {
    let mut buf = [0u8; 64];
    let payload = encode(r, &mut buf).unwrap().to_vec();
    let mut out = [0u8; 64];
    let (resp, _) = p.handle_with(
        &Incoming {
            label: LABEL_PAGER,
            badge: SUP,
            reply: Handle::new(2, 1),
            payload: &payload,
        },
        k,
        disk,
        &mut out,
    );
    decode(&out[..resp.len]).unwrap()
}

fn fault(
    p: &mut P,
    k: &mut Kernel,
    disk: &mut Disk,
    d: DomainId,
    vpn: u64,
    write: bool,
) -> (u32, Event) {
    let f = Fault {
        domain: d,
        vaddr: USER_START + vpn * 4096 + 8,
        access: if write { Access::Write } else { Access::Read },
        rip: USER_START,
    };
    let mut buf = [0u8; 64];
    let payload = encode(&f, &mut buf).unwrap().to_vec();
    k.faulting = d;
    let mut out = [0u8; 16];
    let (resp, ev) = p.handle_with(
        &Incoming {
            label: LABEL_FAULT,
            badge: 0,
            reply: R,
            payload: &payload,
        },
        k,
        disk,
        &mut out,
    );
    (resp.label, ev.unwrap())
}

/// A guest access: through the binding, or a fault first. `Err` with the
/// kill label if the pager killed the domain.
fn access(
    p: &mut P,
    k: &mut Kernel,
    disk: &mut Disk,
    d: DomainId,
    vpn: u64,
    store: Option<u64>,
) -> Result<u64, (u32, Event)> {
    if !k.at.contains_key(&(d, BASE + vpn)) {
        let (l, ev) = fault(p, k, disk, d, vpn, store.is_some());
        if l != FAULT_RESUME {
            return Err((l, ev));
        }
        assert!(
            k.at.contains_key(&(d, BASE + vpn)),
            "resumed without a binding"
        );
    }
    let f = k.at[&(d, BASE + vpn)];
    let b = k.bits.entry(f).or_default();
    b.0 = true;
    if let Some(v) = store {
        b.1 = true;
        k.data.insert(f, v);
    }
    Ok(k.data[&f])
}

fn dom(i: u32) -> DomainId {
    DomainId::new(3 + i, 1)
}

/// Checks what must hold between messages.
fn check(p: &P, k: &Kernel, disk: &mut Disk) {
    assert!(!k.corrupt_mapped, "a corrupt page was mapped");
    for (&f, &(d, _)) in &k.bound {
        assert!(
            p.pool.is_bound_to(f, d),
            "frame {f:#x} bound in the kernel, not in the pool"
        );
    }
    assert_eq!(p.pool.bound_count(), k.bound.len());
    let sw = p.swap().unwrap();
    // The check reads the runs' descriptors past any injected failure.
    let (fails, dead) = (disk.fail_reads, disk.dead);
    (disk.fail_reads, disk.dead) = (0, false);
    let slots = sw.slot_pages(disk);
    (disk.fail_reads, disk.dead) = (fails, dead);
    let swapped = slots.iter().filter(|(_, s)| *s).count();
    assert_eq!(sw.counters().swapped as usize, swapped, "the swapped count");
    for (page, frame, _) in sw.resident_pages() {
        assert_eq!(k.bound.get(&frame), Some(&(page.domain, page.vpn)));
        assert!(
            !slots.iter().any(|(q, swapped)| *q == page && *swapped),
            "{page:?} resident and in swap"
        );
    }
}

#[test]
fn pages_out_and_back_in_with_the_last_value() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 24, false);
    let d = dom(0);
    for vpn in 0..60 {
        access(&mut p, &mut k, &mut disk, d, vpn, Some(1000 + vpn)).unwrap();
        check(&p, &k, &mut disk);
    }
    for vpn in 0..60 {
        assert_eq!(
            access(&mut p, &mut k, &mut disk, d, vpn, None),
            Ok(1000 + vpn)
        );
        check(&p, &k, &mut disk);
    }
    let s = p.stats();
    assert!(s.page_outs >= 36 && s.page_ins >= 36, "{s:?}");
    assert_eq!(s.io_errors, 0);
    // Batched: far fewer Frames calls than pages moved.
    assert!(k.frames_calls < 60 * 2, "{}", k.frames_calls);
}

#[test]
fn a_corrupt_copy_kills_with_page_lost_and_is_never_mapped() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 24, false);
    let (d, other) = (dom(0), dom(1));
    for vpn in 0..40 {
        access(&mut p, &mut k, &mut disk, d, vpn, Some(7 + vpn)).unwrap();
    }
    // Corrupt every data block: whichever page comes back first is lost.
    for b in disk.blocks.iter_mut().skip(4) {
        b[100] ^= 0xff;
    }
    let err = (0..40)
        .find_map(|vpn| access(&mut p, &mut k, &mut disk, d, vpn, None).err())
        .unwrap();
    assert_eq!(err.0, FAULT_KILL_LOST);
    assert!(matches!(
        err.1,
        Event::Killed {
            reason: KillReason::Lost(Lost::ChecksumMismatch),
            ..
        }
    ));
    assert!(!k.corrupt_mapped);
    // The neighbour carries on.
    k.kill(d);
    request(&mut p, &mut k, &mut disk, &Request::Revoke { domain: d });
    assert_eq!(access(&mut p, &mut k, &mut disk, other, 0, Some(5)), Ok(5));
    check(&p, &k, &mut disk);
}

#[test]
fn a_read_error_kills_and_a_write_error_keeps_the_page() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 24, false);
    let d = dom(0);
    disk.fail_writes = 1000;
    // Every page-out fails: pages stay resident, the pool runs dry.
    let mut killed = None;
    for vpn in 0..40 {
        if let Err(e) = access(&mut p, &mut k, &mut disk, d, vpn, Some(vpn)) {
            killed = Some(e);
            break;
        }
    }
    let (l, ev) = killed.unwrap();
    assert_eq!(l, FAULT_KILL);
    assert!(matches!(
        ev,
        Event::Killed {
            reason: KillReason::OutOfFrames,
            ..
        }
    ));
    assert!(p.stats().io_errors > 0);
    assert_eq!(p.stats().page_outs, 0, "no success after an I/O error");
    for vpn in 0..20 {
        assert_eq!(access(&mut p, &mut k, &mut disk, d, vpn, None), Ok(vpn));
    }
    disk.fail_writes = 0;
    for vpn in 20..40 {
        access(&mut p, &mut k, &mut disk, dom(1), vpn, Some(vpn)).unwrap();
    }
    // A failed read of a descriptor block fails a write-back instead
    // (the page stays resident): one failure a page-in, until one lands
    // on the page's own read.
    let lost = (0..20).find_map(|vpn| {
        disk.fail_reads = 1;
        access(&mut p, &mut k, &mut disk, d, vpn, None).err()
    });
    let (l, ev) = lost.unwrap();
    assert_eq!(l, FAULT_KILL_LOST);
    assert!(matches!(
        ev,
        Event::Killed {
            reason: KillReason::Lost(Lost::ReadError),
            ..
        }
    ));
}

#[test]
fn idle_domains_swap_out_whole_and_come_back_in_one_fault() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 64, false);
    assert_eq!(
        request(
            &mut p,
            &mut k,
            &mut disk,
            &Request::SwapIdle { always: true }
        ),
        Reply::Ok
    );
    let (d, busy) = (dom(0), dom(1));
    for vpn in 0..10 {
        access(&mut p, &mut k, &mut disk, d, vpn, Some(50 + vpn)).unwrap();
    }
    access(&mut p, &mut k, &mut disk, busy, 0, Some(1)).unwrap();
    for t in 1..=12 {
        access(&mut p, &mut k, &mut disk, busy, 0, Some(t)).unwrap();
        p.tick(t * 250, &mut k, &mut disk);
    }
    assert_eq!(k.shrunk, [d]);
    let m = p.swap().unwrap().domain_mem(d);
    assert_eq!(
        (m.resident, m.swapped, m.swapped_out, m.swap_outs),
        (0, 10, true, 1)
    );
    assert!(k.at.keys().all(|(x, _)| *x != d));
    match request(&mut p, &mut k, &mut disk, &Request::DomainMem { domain: d }) {
        Reply::DomainMem(r) => assert_eq!((r.swapped, r.swapped_out), (10, true)),
        r => panic!("{r:?}"),
    }
    // The supervisor's SwapOut of a domain already out is done.
    assert_eq!(
        request(&mut p, &mut k, &mut disk, &Request::SwapOut { domain: d }),
        Reply::Ok
    );
    // One fault brings the whole run back.
    let (l, _) = fault(&mut p, &mut k, &mut disk, d, 3, false);
    assert_eq!(l, FAULT_RESUME);
    for vpn in 0..10 {
        assert!(k.at.contains_key(&(d, BASE + vpn)), "page {vpn} prefetched");
        assert_eq!(
            access(&mut p, &mut k, &mut disk, d, vpn, None),
            Ok(50 + vpn)
        );
    }
    let m = p.swap().unwrap().domain_mem(d);
    assert_eq!(
        (m.resident, m.swapped, m.swapped_out, m.swap_ins),
        (10, 0, false, 1)
    );
    check(&p, &k, &mut disk);
}

/// By default memory caches idle domains: they are swapped out only once
/// free frames fall below the idle watermark, and then only until the
/// target is free again, never a busy one.
#[test]
fn idle_domains_are_swapped_out_only_under_pressure() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(600);
    let mut p = pager(&mut k, &mut disk, 160, false);
    let busy = dom(9);
    // Eight idle domains of 12 pages: 96 of 160 bound, 64 free (>= 20).
    for i in 0..8 {
        for vpn in 0..12 {
            access(
                &mut p,
                &mut k,
                &mut disk,
                dom(i),
                vpn,
                Some(u64::from(i) * 100 + vpn),
            )
            .unwrap();
        }
    }
    let mut t = 0;
    let mut run = |p: &mut P, k: &mut Kernel, disk: &mut Disk, ticks: u64| {
        for _ in 0..ticks {
            t += 250;
            access(p, k, disk, busy, 0, Some(t)).unwrap();
            p.tick(t, k, disk);
        }
    };
    run(&mut p, &mut k, &mut disk, 12);
    assert!(
        k.shrunk.is_empty(),
        "swapped out with memory free: {:?}",
        k.shrunk
    );
    // The busy domain grows until fewer than 160/8 = 20 frames are free.
    for vpn in 1..50 {
        access(&mut p, &mut k, &mut disk, busy, vpn, Some(vpn)).unwrap();
    }
    let free = |p: &P| p.pool.free_count();
    assert!(free(&p) < 20, "{} free", free(&p));
    run(&mut p, &mut k, &mut disk, 4);
    // Idle ones went out until 160/4 = 40 were free: 2 of 12 pages each
    // would not do, so 3 or 4 of them, not all eight.
    assert!(free(&p) >= 40, "{} free", free(&p));
    let out = k.shrunk.len();
    assert!((2..8).contains(&out), "{out} swapped out");
    assert!(!k.shrunk.contains(&busy));
    // Each comes back with its pages.
    for i in 0..8 {
        for vpn in 0..12 {
            assert_eq!(
                access(&mut p, &mut k, &mut disk, dom(i), vpn, None),
                Ok(u64::from(i) * 100 + vpn)
            );
        }
    }
    check(&p, &k, &mut disk);
}

/// An idle check swaps out at most `IDLE_BURST` domains (no fault is
/// served while it writes), and the next checks go on until the target
/// is free.
#[test]
fn an_idle_check_swaps_out_a_bounded_burst() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(2000);
    let mut p = pager(&mut k, &mut disk, 400, false);
    let busy = dom(999);
    for i in 0..300 {
        access(&mut p, &mut k, &mut disk, dom(i), 0, Some(u64::from(i))).unwrap();
    }
    // Fewer than 400/8 = 50 free: the next checks swap idle ones out
    // until 400/4 = 100 are.
    for vpn in 0..70 {
        access(&mut p, &mut k, &mut disk, busy, vpn, Some(vpn)).unwrap();
    }
    assert!(p.pool.free_count() < 50, "{} free", p.pool.free_count());
    let mut t = 0;
    let mut out = Vec::new();
    while p.pool.free_count() < 100 && t < 100_000 {
        t += 250;
        access(&mut p, &mut k, &mut disk, busy, 0, Some(t)).unwrap();
        let before = k.shrunk.len();
        p.tick(t, &mut k, &mut disk);
        out.push(k.shrunk.len() - before);
    }
    assert!(p.pool.free_count() >= 100, "{} free", p.pool.free_count());
    assert!(out.iter().all(|&n| n <= 32), "bursts {out:?}");
    assert!(
        out.iter().filter(|&&n| n > 0).count() >= 2,
        "bursts {out:?}"
    );
    assert!(!k.shrunk.contains(&busy));
    for i in 0..300 {
        assert_eq!(
            access(&mut p, &mut k, &mut disk, dom(i), 0, None),
            Ok(u64::from(i))
        );
    }
    check(&p, &k, &mut disk);
}

/// A whole swap-out writes only the descriptor of a zero page, and the
/// swap-in never reads its slot; a restarted swapper finds it too.
#[test]
fn zero_pages_of_a_run_are_described_not_written() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 64, false);
    let (d, busy) = (dom(0), dom(1));
    // Odd pages zeros: stored as 0, or only read (zero-filled).
    for vpn in 0..10u64 {
        let v = vpn.is_multiple_of(2).then_some(50 + vpn);
        let v = if vpn == 3 { Some(0) } else { v };
        access(&mut p, &mut k, &mut disk, d, vpn, v).unwrap();
    }
    let value = |vpn: u64| if vpn.is_multiple_of(2) { 50 + vpn } else { 0 };
    // The area is formatted at its first use.
    access(&mut p, &mut k, &mut disk, busy, 0, Some(7)).unwrap();
    assert_eq!(
        request(
            &mut p,
            &mut k,
            &mut disk,
            &Request::SwapOut { domain: busy }
        ),
        Reply::Ok
    );
    let before = disk.writes;
    assert_eq!(
        request(&mut p, &mut k, &mut disk, &Request::SwapOut { domain: d }),
        Reply::Ok
    );
    // 5 data blocks and one descriptor block.
    let wrote = disk.writes - before;
    assert_eq!(wrote, 6, "blocks written");
    assert_eq!(p.swap().unwrap().counters().zero_pages, 5);
    // Garbage where the zero pages' slots are: never read.
    let geo = p.swap().unwrap().geometry();
    for s in 0..geo.slots {
        let b = geo.data_block(s) as usize;
        if disk.blocks[b] == [0; BLOCK] {
            disk.blocks[b] = [0xa5; BLOCK];
        }
    }
    access(&mut p, &mut k, &mut disk, busy, 0, Some(7)).unwrap();
    assert_eq!(access(&mut p, &mut k, &mut disk, d, 1, None), Ok(0));
    for vpn in 0..10 {
        assert_eq!(
            access(&mut p, &mut k, &mut disk, d, vpn, None),
            Ok(value(vpn))
        );
    }
    assert!(!k.corrupt_mapped);
    check(&p, &k, &mut disk);
    // Out again, then a restart: the run is rebuilt from its descriptors.
    assert_eq!(
        request(&mut p, &mut k, &mut disk, &Request::SwapOut { domain: d }),
        Reply::Ok
    );
    drop(p);
    k.owned.clear();
    k.kill(d);
    let mut p = pager(&mut k, &mut disk, 64, true);
    check(&p, &k, &mut disk);
    for vpn in 0..10 {
        assert_eq!(
            access(&mut p, &mut k, &mut disk, d, vpn, None),
            Ok(value(vpn))
        );
    }
    assert!(!k.corrupt_mapped);
    check(&p, &k, &mut disk);
}

#[test]
fn a_restarted_swapper_finds_every_page() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, 24, false);
    for i in 0..2 {
        for vpn in 0..30 {
            access(
                &mut p,
                &mut k,
                &mut disk,
                dom(i),
                vpn,
                Some(u64::from(i) * 100 + vpn),
            )
            .unwrap();
        }
    }
    drop(p);
    k.owned.clear();
    let mut p = pager(&mut k, &mut disk, 24, true);
    check(&p, &k, &mut disk);
    for i in 0..2 {
        for vpn in 0..30 {
            assert_eq!(
                access(&mut p, &mut k, &mut disk, dom(i), vpn, None),
                Ok(u64::from(i) * 100 + vpn)
            );
            check(&p, &k, &mut disk);
        }
    }
}

#[test]
fn without_a_disk_it_only_zero_fills() {
    let mut k = Kernel::default();
    let mut disk = Disk::new(2); // too small for one slot
    let mut p = pager(&mut k, &mut disk, 16, false);
    let mut n = 0;
    while access(&mut p, &mut k, &mut disk, dom(0), n, Some(1)).is_ok() {
        n += 1;
    }
    // ZeroFill keeps 16 / 16 = 1 frame from a domain holding over half.
    assert_eq!(n, 15);
    assert_eq!(p.stats().page_outs, 0);
}

#[derive(Debug, Clone)]
enum Ev {
    Access { d: u32, vpn: u64, write: bool },
    Tick(u64),
    Crash { after_writes: Option<u32> },
    Corrupt(usize),
    ReadError,
    WriteErrors(u32),
    Exit(u32),
    SwapOut(u32),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        12 => (0u32..3, 0u64..14, any::<bool>()).prop_map(|(d, vpn, write)| Ev::Access { d, vpn, write }),
        2 => (1u64..600).prop_map(Ev::Tick),
        1 => proptest::option::of(0u32..8).prop_map(|after_writes| Ev::Crash { after_writes }),
        1 => (0usize..300).prop_map(Ev::Corrupt),
        1 => Just(Ev::ReadError),
        1 => (1u32..4).prop_map(Ev::WriteErrors),
        1 => (0u32..3).prop_map(Ev::Exit),
        2 => (0u32..3).prop_map(Ev::SwapOut),
    ]
}

fn run(evs: &[Ev]) -> Result<(), TestCaseError> {
    const FRAMES: u64 = 20;
    let mut k = Kernel::default();
    let mut disk = Disk::new(300);
    let mut p = pager(&mut k, &mut disk, FRAMES, false);
    let mut gens = [1u32; 3];
    let did = |g: &[u32; 3], i: u32| DomainId::new(3 + i, g[i as usize]);
    // The last value stored to each live page (absent: never stored, 0).
    let mut model: BTreeMap<(DomainId, u64), u64> = BTreeMap::new();
    // Injected damage since which a Lost kill is legitimate.
    let mut damaged = false;
    let mut now = 0;
    let mut stamp = 1u64;
    for e in evs {
        match *e {
            Ev::Access { d, vpn, write } => {
                let id = did(&gens, d);
                let store = write.then(|| {
                    stamp += 1;
                    stamp
                });
                match access(&mut p, &mut k, &mut disk, id, vpn, store) {
                    Ok(v) => {
                        if let Some(s) = store {
                            model.insert((id, vpn), s);
                        } else {
                            prop_assert_eq!(
                                v,
                                model.get(&(id, vpn)).copied().unwrap_or(0),
                                "{:?} {}",
                                id,
                                vpn
                            );
                        }
                    }
                    Err((l, ev)) => {
                        let lost = l == FAULT_KILL_LOST;
                        let dry = matches!(
                            ev,
                            Event::Killed {
                                reason: KillReason::OutOfFrames,
                                ..
                            }
                        );
                        prop_assert!(
                            (lost || dry || l == FAULT_KILL) && (damaged || disk.dead),
                            "unexpected kill {:?}",
                            ev
                        );
                        // The domain dies; the supervisor revokes it.
                        k.kill(id);
                        model.retain(|(x, _), _| *x != id);
                        request(&mut p, &mut k, &mut disk, &Request::Revoke { domain: id });
                        gens[d as usize] += 1;
                    }
                }
            }
            Ev::Tick(dt) => {
                now += dt;
                p.tick(now, &mut k, &mut disk);
            }
            Ev::Crash { after_writes } => {
                if let Some(n) = after_writes {
                    disk.die_after = Some(n);
                    // Pressure until the disk dies mid-write.
                    for vpn in 0..14 {
                        stamp += 1;
                        let id = did(&gens, 0);
                        if access(&mut p, &mut k, &mut disk, id, vpn, Some(stamp)).is_ok() {
                            model.insert((id, vpn), stamp);
                        } else {
                            k.kill(id);
                            model.retain(|(x, _), _| *x != id);
                            request(&mut p, &mut k, &mut disk, &Request::Revoke { domain: id });
                            gens[0] += 1;
                        }
                        if disk.dead {
                            break;
                        }
                    }
                }
                drop(p);
                disk.dead = false;
                disk.die_after = None;
                k.owned.clear();
                p = pager(&mut k, &mut disk, FRAMES, true);
            }
            // Bit rot in the header or the data; a descriptor that rots
            // is a free slot (docs: its page is lost after a restart).
            Ev::Corrupt(b) if (1..4).contains(&b) => {}
            Ev::Corrupt(b) => {
                if let Some(x) = disk.blocks.get_mut(b) {
                    x[b % BLOCK] ^= 0x40;
                    damaged = true;
                }
            }
            Ev::ReadError => {
                disk.fail_reads = 1;
                damaged = true;
            }
            Ev::WriteErrors(n) => {
                disk.fail_writes = n;
                damaged = true;
            }
            Ev::SwapOut(d) => {
                let id = did(&gens, d);
                let r = request(&mut p, &mut k, &mut disk, &Request::SwapOut { domain: id });
                if r == Reply::Ok {
                    prop_assert!(k.at.keys().all(|(x, _)| *x != id), "swapped out but bound");
                }
            }
            Ev::Exit(d) => {
                let id = did(&gens, d);
                k.kill(id);
                model.retain(|(x, _), _| *x != id);
                request(&mut p, &mut k, &mut disk, &Request::Revoke { domain: id });
                gens[d as usize] += 1;
            }
        }
        check(&p, &k, &mut disk);
    }
    // Everything still alive reads back.
    disk.fail_reads = 0;
    for ((id, vpn), v) in model.clone() {
        if let Ok(got) = access(&mut p, &mut k, &mut disk, id, vpn, None) {
            prop_assert_eq!(got, v);
        } else {
            prop_assert!(damaged, "{:?}:{} lost without damage", id, vpn);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn every_page_reads_back_its_last_value(evs in proptest::collection::vec(ev(), 1..120)) {
        run(&evs)?;
    }
}

#[test]
fn kill_labels() {
    assert_ne!(FAULT_KILL, FAULT_KILL_LOST);
}

#[test]
fn metadata_fits_the_heap() {
    let size = small();
    let mut sw = Swap::new(cfg(false), size, |c| WsClock::new(c, 100)).unwrap();
    let closed = sw.metadata_bytes();
    // An area bigger than the slot map's share.
    let mut disk = Disk::new(size.slot_bytes * 8 + 64);
    assert_eq!(sw.ensure_open(&mut disk), Ok(true));
    let bytes = sw.metadata_bytes();
    std::println!(
        "swap engine {closed} B closed, {bytes} B open (policy {} B, loose page {} B, record {} B); \
         per swapped-out domain of 16 pages {} B; {size:?}",
        sw.policy().metadata_bytes(),
        Swap::<WsClock>::loose_page_bytes(),
        size_of::<DomRec>(),
        Swap::<WsClock>::bytes_per_swapped_domain(16)
    );
    assert_eq!(size_of::<Loose>(), 24);
    assert_eq!(size_of::<DomRec>(), 32);
    assert_eq!(Swap::<WsClock>::bytes_per_swapped_domain(16), 32 + 16 + 2);
    // With the pool full, the tables stay within the rule's budget.
    assert!(
        bytes + 16 * size.pool <= size.bytes(),
        "{bytes} > {}",
        size.bytes()
    );
}

/// A crash after a page was paged out twice into neighbouring slots: the
/// rebuilt run holds both copies, and the newer one is what comes back.
#[test]
fn a_rebuilt_run_keeps_the_newest_copy() {
    use Ev::*;
    let evs = [
        Access {
            d: 0,
            vpn: 12,
            write: false,
        },
        Crash {
            after_writes: Some(0),
        },
        Access {
            d: 2,
            vpn: 2,
            write: false,
        },
        Access {
            d: 2,
            vpn: 0,
            write: false,
        },
        Access {
            d: 2,
            vpn: 3,
            write: false,
        },
        SwapOut(2),
        Access {
            d: 1,
            vpn: 5,
            write: true,
        },
        Access {
            d: 2,
            vpn: 0,
            write: false,
        },
        Access {
            d: 2,
            vpn: 4,
            write: true,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 1,
            vpn: 0,
            write: false,
        },
        Access {
            d: 2,
            vpn: 5,
            write: false,
        },
        Access {
            d: 2,
            vpn: 8,
            write: false,
        },
        Crash { after_writes: None },
        Access {
            d: 1,
            vpn: 1,
            write: false,
        },
        Access {
            d: 0,
            vpn: 12,
            write: false,
        },
        Access {
            d: 2,
            vpn: 8,
            write: true,
        },
        Crash { after_writes: None },
        Access {
            d: 2,
            vpn: 6,
            write: false,
        },
        Exit(0),
        Access {
            d: 1,
            vpn: 1,
            write: false,
        },
        SwapOut(1),
        Exit(1),
        WriteErrors(2),
        Access {
            d: 0,
            vpn: 2,
            write: false,
        },
        Access {
            d: 0,
            vpn: 3,
            write: false,
        },
        Access {
            d: 2,
            vpn: 9,
            write: false,
        },
        Access {
            d: 0,
            vpn: 4,
            write: true,
        },
        Access {
            d: 0,
            vpn: 5,
            write: true,
        },
        Access {
            d: 1,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 6,
            write: true,
        },
        Access {
            d: 0,
            vpn: 7,
            write: false,
        },
        Access {
            d: 1,
            vpn: 1,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Crash { after_writes: None },
    ];
    run(&evs).unwrap();
}

#[test]
fn a_rebuilt_run_counts_each_page_once() {
    use Ev::*;
    let evs = [
        Access {
            d: 1,
            vpn: 7,
            write: false,
        },
        WriteErrors(1),
        Access {
            d: 0,
            vpn: 1,
            write: false,
        },
        Access {
            d: 0,
            vpn: 2,
            write: false,
        },
        Access {
            d: 0,
            vpn: 3,
            write: true,
        },
        Tick(1),
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Tick(1),
        Access {
            d: 0,
            vpn: 4,
            write: false,
        },
        ReadError,
        Access {
            d: 1,
            vpn: 8,
            write: true,
        },
        Tick(82),
        SwapOut(0),
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        SwapOut(0),
        Access {
            d: 0,
            vpn: 5,
            write: true,
        },
        Access {
            d: 1,
            vpn: 1,
            write: true,
        },
        Access {
            d: 0,
            vpn: 6,
            write: false,
        },
        Access {
            d: 1,
            vpn: 2,
            write: true,
        },
        Access {
            d: 1,
            vpn: 3,
            write: true,
        },
        Access {
            d: 0,
            vpn: 9,
            write: false,
        },
        Access {
            d: 0,
            vpn: 10,
            write: false,
        },
        Access {
            d: 0,
            vpn: 8,
            write: true,
        },
        Crash {
            after_writes: Some(0),
        },
        Access {
            d: 0,
            vpn: 7,
            write: false,
        },
        ReadError,
        Tick(17),
        Access {
            d: 1,
            vpn: 0,
            write: false,
        },
        Corrupt(18),
        Crash { after_writes: None },
        Access {
            d: 0,
            vpn: 1,
            write: false,
        },
    ];
    run(&evs).unwrap();
}

#[test]
fn a_rebuilt_run_skips_a_resident_page_in_its_holes() {
    use Ev::*;
    let evs = [
        Access {
            d: 2,
            vpn: 2,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 2,
            vpn: 1,
            write: false,
        },
        Access {
            d: 2,
            vpn: 3,
            write: false,
        },
        Exit(0),
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 1,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Crash { after_writes: None },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Exit(0),
        Exit(0),
        Tick(1),
        Access {
            d: 0,
            vpn: 0,
            write: true,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 1,
            write: false,
        },
        Access {
            d: 0,
            vpn: 2,
            write: false,
        },
        Access {
            d: 0,
            vpn: 3,
            write: false,
        },
        Access {
            d: 1,
            vpn: 0,
            write: false,
        },
        Access {
            d: 1,
            vpn: 1,
            write: false,
        },
        Access {
            d: 2,
            vpn: 1,
            write: false,
        },
        Access {
            d: 1,
            vpn: 2,
            write: false,
        },
        Access {
            d: 2,
            vpn: 10,
            write: false,
        },
        Access {
            d: 2,
            vpn: 4,
            write: false,
        },
        Exit(0),
        Access {
            d: 2,
            vpn: 9,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Access {
            d: 0,
            vpn: 1,
            write: true,
        },
        Access {
            d: 0,
            vpn: 2,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        SwapOut(2),
        Access {
            d: 2,
            vpn: 5,
            write: false,
        },
        Access {
            d: 2,
            vpn: 9,
            write: false,
        },
        Access {
            d: 0,
            vpn: 0,
            write: false,
        },
        Crash { after_writes: None },
        Access {
            d: 0,
            vpn: 2,
            write: false,
        },
    ];
    run(&evs).unwrap();
}
