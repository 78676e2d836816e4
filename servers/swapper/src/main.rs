//! The swapper, Serac's first pager: it answers software-TLB misses.
//!
//! The supervisor gives it frames with `domain_ctl(GiveFrame)`, announces
//! them with a `Grant` request, and names it the pager of guests with
//! `SetPager`. A miss blocks the guest and arrives here as a `Fault` (label
//! `LABEL_FAULT`); the swapper takes a frame from its pool, zeroes it through
//! a scratch page of its own, binds it at the faulting page through the
//! fault's reply handle and answers `FAULT_RESUME`, or `FAULT_KILL` when the
//! access is invalid or the pool is dry. The decisions are the
//! [`serac_pager_policy::Policy`]'s; this file is only the syscall loop and
//! the log lines.
//!
//! With `endpoint=disk` (handle slot 1) it also swaps, to the swap extent
//! named `swapper` on the disk server, opened on first need (the disk
//! server starts after the pagers): pages out in batches when the pool
//! runs low, swaps whole idle domains out, reads pages back with a
//! checksum (docs/swap-server.md). The logic is
//! [`serac_pager_policy::Swap`]; here are only its syscalls ([`Kernel`])
//! and the block client ([`Area`]). Without a disk it only zero-fills.
//!
//! It must be loaded eagerly (`eager=yes`): it has no pager of its own.
//! The disk server must not be paged by it either (it would wait on
//! itself).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use ilwaco::block::{BlockDevice, BlockError};
use ilwaco::ipc::{get_message, put_message};
use ilwaco::println;
use ilwaco::protocol::header::MsgHeader;
use ilwaco::protocol::header::LABEL_FAULT;
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::pager::Request;
use ilwaco::protocol::pager::{PagerStats, FAULT_MSG_MAX, FAULT_RESUME};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp, FrameRecord};
use ilwaco::protocol::{DomainId, Handle, PageRights, SysError};
use ilwaco::sys::{self, PageBuf};
use serac_pager_policy::swap::{Block, DiskError, Lost, Sizing, SwapConfig, SwapDisk, MAX_GRANT};
use serac_pager_policy::{Event, Incoming, KillReason, Mmu, Pager, Swap, WsClock, ZeroFill};

ilwaco::entry!(main);

/// Served faults that get a log line; after these the swapper stays quiet.
const LOGGED_FAULTS: u64 = 3;
/// Kills and refused requests that get a log line.
const LOGGED_PROBLEMS: u64 = 32;
/// Consecutive failed receives before the swapper gives up.
const MAX_RECV_ERRORS: u32 = 3;
/// A domain with no fault and no reference for this long is swapped out
/// whole (seconds).
const IDLE_SECS: u64 = 2;
/// WSClock's working-set window (seconds).
const TAU_SECS: u64 = 1;
/// How long a restarted swapper retries faults outside the regions it
/// knows (seconds).
const REGION_GRACE_SECS: u64 = 2;
/// How often the loop wakes to look for idle domains (ms).
const TICK_MS: u64 = 250;
/// Faults held back while the pool is empty (a restarted swapper's
/// parked faults can arrive before the supervisor's `Grant`); further ones
/// are resumed unserved and come back.
const DEFERRED_MAX: usize = 32;

/// A fault held back: its reply handle and message.
#[derive(Clone, Copy)]
struct Deferred {
    reply: Handle,
    len: usize,
    payload: [u8; FAULT_MSG_MAX],
}

/// The swap extent's name: the swapper's manifest name (the disk server
/// opens a swap area only to the domain of that name).
const AREA: &str = "swapper";

/// `map`/`unmap`/`Frames`/`CopyFrame`/`Shrink` through the kernel,
/// filling frames through one scratch page.
struct Kernel {
    page: Box<PageBuf>,
}

impl Kernel {
    const SCRATCH: u64 = sys::SCRATCH_BASE;

    fn zero_once(frame: u64) -> Result<(), SysError> {
        sys::map(Handle::NONE, Self::SCRATCH, frame, PageRights::READ_WRITE)?;
        let zeroed = sys::scratch_zero(Self::SCRATCH);
        let unmapped = sys::unmap(Handle::NONE, Self::SCRATCH);
        zeroed?;
        unmapped.map(|_| ())
    }

    fn write_once(frame: u64, data: &Block) -> Result<(), SysError> {
        sys::map(Handle::NONE, Self::SCRATCH, frame, PageRights::READ_WRITE)?;
        let written = sys::scratch_write(Self::SCRATCH, 0, data);
        let unmapped = sys::unmap(Handle::NONE, Self::SCRATCH);
        written?;
        unmapped.map(|_| ())
    }
}

impl Mmu for Kernel {
    fn zero(&mut self, frame: u64) -> Result<(), SysError> {
        match Self::zero_once(frame) {
            // A binding left behind by an earlier failure: clear it, retry.
            Err(SysError::AlreadyMapped) => {
                let _ = sys::unmap(Handle::NONE, Self::SCRATCH);
                Self::zero_once(frame)
            }
            r => r,
        }
    }

    fn bind(&mut self, reply: Handle, page: u64, frame: u64) -> Result<(), SysError> {
        sys::map(reply, page, frame, PageRights::READ_WRITE).map(|_| ())
    }

    fn write_frame(&mut self, frame: u64, data: &Block) -> Result<(), SysError> {
        match Self::write_once(frame, data) {
            Err(SysError::AlreadyMapped) => {
                let _ = sys::unmap(Handle::NONE, Self::SCRATCH);
                Self::write_once(frame, data)
            }
            r => r,
        }
    }

    fn copy_frame(&mut self, frame: u64, out: &mut Block) -> Result<u8, SysError> {
        let bits = sys::copy_frame(frame, &mut self.page)?;
        out.copy_from_slice(&self.page.0);
        Ok(bits)
    }

    fn frames(
        &mut self,
        frames: &[u64],
        flags: u64,
        out: &mut [FrameRecord],
    ) -> Result<(), SysError> {
        sys::frames(frames, flags, out)
    }

    fn shrink(&mut self, domain: DomainId) -> Result<(), SysError> {
        sys::shrink(domain)
    }
}

/// The swap area through the disk server, opened on first use.
struct Area {
    server: Handle,
    dev: Option<BlockDevice>,
    /// Requests made, and TSC ticks spent waiting for them.
    ops: u64,
    tsc: u64,
}

fn disk_error(e: BlockError) -> DiskError {
    match e {
        // No such extent, not ours, or no disk endpoint in slot 1.
        BlockError::NotFound
        | BlockError::NotPermitted
        | BlockError::Ipc(SysError::BadHandle | SysError::WrongHandleKind | SysError::NoRights) => {
            DiskError::NotFound
        }
        _ => DiskError::Io,
    }
}

impl Area {
    fn dev(&mut self) -> Result<&mut BlockDevice, DiskError> {
        if self.dev.is_none() {
            let d = BlockDevice::swap(self.server, AREA).map_err(disk_error)?;
            println!("swapper: swap area {AREA} open, {} blocks", d.len_blocks());
            let rec = Swap::<WsClock>::record_bytes();
            let bits = Swap::<WsClock>::bits_per_run_page();
            let loose = Swap::<WsClock>::loose_page_bytes();
            println!(
                "swapper: metadata per swapped-out domain: {rec} bytes and {bits} bits a page ({loose} bytes a page paged out alone)"
            );
            self.dev = Some(d);
        }
        self.dev.as_mut().ok_or(DiskError::Io)
    }

    /// Runs `op`. After a disk server restart it opens the area again; a
    /// read is then run once more (positional: the same request), a write
    /// fails: writes before it in its batch may have died with the server,
    /// so the batch must not be flushed as if they had not.
    fn with(
        &mut self,
        retry: bool,
        mut op: impl FnMut(&mut BlockDevice) -> Result<(), BlockError>,
    ) -> Result<(), DiskError> {
        let t0 = sys::rdtsc();
        self.ops += 1;
        let r = self.with_timed(retry, &mut op);
        self.tsc += sys::rdtsc().saturating_sub(t0);
        r
    }

    fn with_timed(
        &mut self,
        retry: bool,
        op: &mut impl FnMut(&mut BlockDevice) -> Result<(), BlockError>,
    ) -> Result<(), DiskError> {
        let d = self.dev()?;
        match op(d) {
            Err(BlockError::ServerRestarted) => {
                d.reopen().map_err(|_| DiskError::Io)?;
                if !retry {
                    return Err(DiskError::Io);
                }
                op(d).map_err(|_| DiskError::Io)
            }
            r => r.map_err(|_| DiskError::Io),
        }
    }
}

impl SwapDisk for Area {
    fn open(&mut self) -> Result<u64, DiskError> {
        self.dev().map(|d| d.len_blocks())
    }
    fn read(&mut self, n: u64, buf: &mut Block) -> Result<(), DiskError> {
        self.with(true, |d| d.read_block(n, buf))
    }
    fn write(&mut self, n: u64, buf: &Block) -> Result<(), DiskError> {
        self.with(false, |d| d.write_block(n, buf))
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        // A flush after a restart proves nothing about the writes before
        // it (the server may have lost them): fail, never retry.
        self.with(false, |d| d.flush())
    }
}

/// `index:gen`, as the operator console shows domains.
struct Dom(DomainId);

impl core::fmt::Display for Dom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.0.index, self.0.gen)
    }
}

fn log(ev: Event, problems: &mut u64) {
    match ev {
        Event::Granted {
            count,
            taken,
            total,
            first_grant,
            adopted,
        } => {
            if adopted > 0 {
                println!("swapper: {adopted} granted frames still bound: resident pages kept");
            }
            if taken < count {
                println!(
                    "swapper: can track only {taken} of {count} granted frames; the rest stay unused"
                );
            }
            if first_grant {
                println!("swapper: up, {total} frames");
            } else {
                println!("swapper: now {total} frames");
            }
        }
        Event::Served {
            nth,
            domain,
            vaddr,
            frame,
        } => {
            if nth <= LOGGED_FAULTS {
                println!(
                    "swapper: fault #{nth} domain {} vaddr={vaddr:#x} -> frame {frame:#x}",
                    Dom(domain)
                );
            }
        }
        Event::Killed {
            domain,
            reason: KillReason::OutOfFrames,
            ..
        } => println!("swapper: out of frames, killing {}", Dom(domain)),
        Event::Killed {
            domain,
            vaddr,
            reason: KillReason::Lost(why),
        } => {
            let why = match why {
                Lost::ReadError => "read error",
                Lost::ChecksumMismatch => "checksum mismatch",
                Lost::AreaUnreadable => "swap area unreadable",
                Lost::NoFrame => "no frame",
            };
            println!(
                "swapper: killing {} at vaddr={vaddr:#x}: swap copy lost ({why})",
                Dom(domain)
            );
        }
        // Comes back once the supervisor has told the region again.
        Event::Retried { .. } => {}
        other => {
            *problems += 1;
            if *problems > LOGGED_PROBLEMS {
                return;
            }
            match other {
                Event::Killed {
                    domain,
                    vaddr,
                    reason,
                } => println!(
                    "swapper: killing {} at vaddr={vaddr:#x}: {reason:?}",
                    Dom(domain)
                ),
                Event::Revoked { domain, frames } => {
                    println!("swapper: {} gone, {frames} frames free again", Dom(domain));
                }
                e => println!("swapper: {e:?}"),
            }
        }
    }
}

/// Whether an earlier incarnation of the swapper ran this boot (the
/// kernel's generation of this domain counts restarts).
fn restarted() -> bool {
    sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    )
    .is_ok_and(|raw| DomainId::from_raw(raw).gen > 1)
}

fn config() -> SwapConfig {
    let clock = ilwaco::time::clock();
    let hz = clock.map_or(0, |c| c.tsc_hz);
    SwapConfig {
        boot_id: clock.map_or(0, |c| c.boot_tsc),
        restarted: restarted(),
        idle_after: IDLE_SECS.saturating_mul(hz),
        tau: TAU_SECS.saturating_mul(hz),
    }
}

/// A pager with no tables yet: it says it has room for the most frames a
/// grant is sized for, and builds them at the first `Grant` ([`size_from`]).
fn build() -> Pager<ZeroFill, WsClock> {
    let mut p = Pager::new(ZeroFill);
    p.set_early_room(MAX_GRANT);
    p
}

/// At the first `Grant { first, count }`: takes the frames the tables for
/// the whole grant need from the start of the run as heap, builds the
/// engine with them and returns the run that is left for the pool (never
/// empty: the tables take at most half). A restarted swapper is given the
/// same runs in the same order, so it sizes the same way (the area's
/// geometry depends on it).
fn size_from(pager: &mut Pager<ZeroFill, WsClock>, first: u64, count: u64) -> (u64, u64) {
    let Some((size, take)) = Sizing::for_grant(count) else {
        println!(
            "swapper: a first grant of {count} frames cannot pay for swap tables, zero-fill only"
        );
        return (first, count);
    };
    let mut grown = 0u64;
    for f in first..first.saturating_add(take as u64) {
        if let Err(e) = sys::grow_heap(f) {
            println!("swapper: growing the heap with frame {f:#x} failed: {e:?}");
            break;
        }
        grown += 1;
    }
    let cfg = config();
    let built = Swap::new(cfg, size, |c| WsClock::new(c, cfg.tau));
    if built.is_ok_and(|sw| pager.set_swap(sw).is_ok()) {
        println!(
            "swapper: tables for {} frames, {} domain records, {} slots, {} regions: {} KiB of heap, {grown} frames of the grant",
            size.frames,
            size.domains,
            size.slot_bytes.saturating_mul(8),
            pager.region_capacity(),
            grown.saturating_mul(4),
        );
    } else {
        println!("swapper: no memory for the swap tables, zero-fill only");
    }
    (first + grown, count - grown)
}

/// Times the first whole-domain swap-out and swap-in of this incarnation
/// (one line each: what a swap costs, measured with the TSC).
struct FirstTimes {
    out_done: bool,
    in_done: bool,
}

impl FirstTimes {
    fn counts(pager: &Pager<ZeroFill, WsClock>) -> (u64, u64, u64, u64) {
        pager.swap().map_or((0, 0, 0, 0), |sw| {
            let c = sw.counters();
            (c.swap_outs, c.swap_ins, c.page_outs, c.page_ins)
        })
    }

    fn note(
        &mut self,
        before: (u64, u64, u64, u64),
        after: (u64, u64, u64, u64),
        ticks: u64,
        hz: u64,
    ) {
        let us = ticks.saturating_mul(1_000_000).checked_div(hz).unwrap_or(0);
        if !self.out_done && after.0 > before.0 {
            self.out_done = true;
            let (n, pages) = (after.0 - before.0, after.2 - before.2);
            println!(
                "swapper: first swap-out: {n} domain(s), {pages} pages written and unbound in {us} us"
            );
        }
        if !self.in_done && after.1 > before.1 {
            self.in_done = true;
            let (n, pages) = (after.1 - before.1, after.3 - before.3);
            println!(
                "swapper: first swap-in: {n} domain(s), {pages} pages read, checked and bound in {us} us"
            );
        }
    }
}

/// The summary line, at most once a second and only when it changed.
struct Summary {
    last: PagerStats,
    swaps: (u64, u64),
    at: u64,
    /// The most domains swapped out whole at once said so far (hundreds).
    most_out: usize,
    /// TSC ticks spent serving messages and ticks.
    busy: u64,
}

impl Summary {
    fn maybe_print(&mut self, pager: &Pager<ZeroFill, WsClock>, area: &Area, now: u64, hz: u64) {
        let Some(sw) = pager.swap() else { return };
        if !sw.is_open() || now.saturating_sub(self.at) < hz {
            return;
        }
        let out = sw.domains_out();
        while out / 100 > self.most_out {
            // Each hundred once: how many records are in use at once.
            self.most_out += 1;
            println!(
                "swapper: {} domains swapped out whole at once",
                self.most_out * 100
            );
        }
        let s = pager.stats();
        let c = sw.counters();
        let swaps = (c.swap_outs, c.swap_ins);
        let same = (s.resident, s.swapped, s.page_ins, s.page_outs, s.io_errors)
            == (
                self.last.resident,
                self.last.swapped,
                self.last.page_ins,
                self.last.page_outs,
                self.last.io_errors,
            );
        if same && swaps == self.swaps {
            return;
        }
        println!(
            "swapper: resident {} swapped {} page-ins {} page-outs {} swap-outs {} swap-ins {} io-errors {}",
            s.resident, s.swapped, s.page_ins, s.page_outs, c.swap_outs, c.swap_ins, s.io_errors
        );
        // Where its time goes: waiting for the disk, or its own work.
        let ms = |t: u64| t.saturating_mul(1000).checked_div(hz).unwrap_or(0);
        println!(
            "swapper: time: {} ms busy, {} ms of it in {} disk request(s); {} zero page(s) not written",
            ms(self.busy),
            ms(area.tsc),
            area.ops,
            c.zero_pages
        );
        self.last = s;
        self.swaps = swaps;
        self.at = now;
    }
}

/// Records the faults it is sent to its own disk `swapper` (kind Disk),
/// when the disk has one: a trace of a real run for `cargo xtask swap-sim
/// --disk-trace IMAGE`. Records of 16 bytes (ms since boot + 1, domain
/// index, vpn with bit 63 for a store), 256 a block, zeros after the last.
/// It opens the disk at its first flush (a tick, or a full block); faults
/// before that fill the first block, and ones that find it full are
/// counted, not recorded.
struct Tracer {
    dev: Option<BlockDevice>,
    tries: u32,
    block: Box<Block>,
    used: usize,
    at: u64,
    recorded: u64,
    lost: u64,
    dirty: bool,
}

impl Tracer {
    const PER_BLOCK: usize = 4096 / 16;

    fn record(&mut self, payload: &[u8]) {
        let Ok(f) = ilwaco::protocol::codec::decode::<ilwaco::protocol::pager::Fault>(payload)
        else {
            return;
        };
        let full = self.dev.as_ref().is_some_and(|d| self.at >= d.len_blocks());
        if full || (self.used == Self::PER_BLOCK) {
            self.lost += 1;
            return;
        }
        let ms = ilwaco::time::now_ns().unwrap_or(0) / 1_000_000 + 1;
        let write = f.access == ilwaco::protocol::pager::Access::Write;
        let vpn = (f.vaddr >> 12) | u64::from(write) << 63;
        let at = self.used * 16;
        if let Some(r) = self.block.get_mut(at..at + 16) {
            r[..4].copy_from_slice(&u32::try_from(ms).unwrap_or(u32::MAX).to_le_bytes());
            r[4..8].copy_from_slice(&f.domain.index.to_le_bytes());
            r[8..].copy_from_slice(&vpn.to_le_bytes());
        }
        self.used += 1;
        self.recorded += 1;
        self.dirty = true;
    }

    /// Writes the block being filled (once the swap area is open), and
    /// moves on when it is full.
    fn flush(&mut self, area: &Area) {
        if !self.dirty {
            return;
        }
        // Tried at each flush for the first 40 (about 10 s of ticks): the
        // disk server may not know this domain's name yet.
        if self.dev.is_none() && self.tries < 40 {
            self.tries += 1;
            if let Ok(d) = BlockDevice::disk(area.server, AREA) {
                println!(
                    "swapper: recording its faults to its disk {AREA} ({} blocks; {} early fault(s) found the first block full)",
                    d.len_blocks(),
                    self.lost
                );
                self.dev = Some(d);
            }
        }
        let Some(d) = self.dev.as_mut() else { return };
        if self.at >= d.len_blocks() || d.write_block(self.at, &self.block).is_err() {
            return;
        }
        self.dirty = false;
        if self.used == Self::PER_BLOCK {
            self.at += 1;
            self.used = 0;
            self.block.fill(0);
            if self.at == d.len_blocks() {
                println!("swapper: trace disk full after {} faults", self.recorded);
            }
        }
    }
}

fn main() -> i32 {
    let mut pager = build();
    let mut tracer = Tracer {
        dev: None,
        tries: 0,
        block: Box::new([0; 4096]),
        used: 0,
        at: 0,
        recorded: 0,
        lost: 0,
        dirty: false,
    };
    let mut kernel = Kernel {
        page: Box::new(PageBuf::zeroed()),
    };
    let mut area = Area {
        server: ilwaco::rt::granted(1),
        dev: None,
        ops: 0,
        tsc: 0,
    };
    let hz = ilwaco::time::tsc_hz().unwrap_or(0);
    let tick = TICK_MS.saturating_mul(hz) / 1000;
    if restarted() {
        // The supervisor tells the regions again after the frames, while
        // the clients run: until then a fault outside them is retried.
        let now = sys::rdtsc();
        pager.tick(now, &mut kernel, &mut area);
        pager.set_region_grace(now.saturating_add(REGION_GRACE_SECS.saturating_mul(hz)));
    }
    let mut summary = Summary {
        last: PagerStats::default(),
        swaps: (0, 0),
        at: 0,
        most_out: 0,
        busy: 0,
    };
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    let mut recv_errors = 0u32;
    let mut problems = 0u64;
    let mut deferred: [Option<Deferred>; DEFERRED_MAX] = [None; DEFERRED_MAX];
    let mut first = FirstTimes {
        out_done: false,
        in_done: false,
    };
    loop {
        let ready = pager.pool.total() > 0 && deferred.iter().any(Option::is_some);
        // With held-back faults to serve, only look for a message (a past
        // deadline); without a clock (or a disk) there is nothing to time.
        let deadline = if ready {
            1
        } else if tick == 0 || pager.swap().is_none() {
            0
        } else {
            sys::rdtsc().saturating_add(tick)
        };
        let raw = match sys::reply_recv_until(reply, deadline) {
            Ok(raw) => {
                recv_errors = 0;
                raw
            }
            Err(SysError::WouldBlock) if deadline != 0 => {
                // The deadline passed (the answer, if any, went out).
                reply = Handle::NONE;
                let next = if ready {
                    deferred.iter_mut().find_map(Option::take)
                } else {
                    None
                };
                if let Some(d) = next {
                    // Serve a held-back fault now that there are frames;
                    // the next receive answers it.
                    let msg = Incoming {
                        label: LABEL_FAULT,
                        badge: 0,
                        reply: d.reply,
                        payload: d.payload.get(..d.len).unwrap_or(&[]),
                    };
                    let (resp, ev) = pager.handle_with(&msg, &mut kernel, &mut area, &mut out);
                    if let Some(ev) = ev {
                        log(ev, &mut problems);
                    }
                    if put_message(resp.label, Handle::NONE, &[]).is_ok() {
                        reply = d.reply;
                    }
                    continue;
                }
                let now = sys::rdtsc();
                let before = FirstTimes::counts(&pager);
                pager.tick(now, &mut kernel, &mut area);
                let after = FirstTimes::counts(&pager);
                let dt = sys::rdtsc().saturating_sub(now);
                first.note(before, after, dt, hz);
                summary.busy += dt;
                summary.maybe_print(&pager, &area, now, hz);
                tracer.flush(&area);
                continue;
            }
            Err(e) => {
                // The reply could not be delivered (e.g. the caller died), or
                // receiving failed: drop the reply and receive afresh.
                recv_errors += 1;
                println!("swapper: reply_recv failed: {e:?}");
                if recv_errors >= MAX_RECV_ERRORS {
                    println!("swapper: cannot receive, stopping");
                    return 1;
                }
                reply = Handle::NONE;
                continue;
            }
        };
        reply = Handle::from_raw(raw);
        let (h, len): (MsgHeader, usize) = match get_message(&mut payload) {
            Ok(m) => m,
            Err(_) => {
                // A header that does not decode cannot come from the kernel.
                let _ = put_message(0, Handle::NONE, &[]);
                continue;
            }
        };
        if h.label == LABEL_FAULT && pager.pool.total() == 0 && len <= FAULT_MSG_MAX {
            // No frames yet: hold the fault (its reply handle with it)
            // until the supervisor's Grant.
            if let Some(slot) = deferred.iter_mut().find(|d| d.is_none()) {
                let mut d = Deferred {
                    reply,
                    len,
                    payload: [0; FAULT_MSG_MAX],
                };
                if let (Some(dst), Some(src)) = (d.payload.get_mut(..len), payload.get(..len)) {
                    dst.copy_from_slice(src);
                }
                *slot = Some(d);
                reply = Handle::NONE;
                continue;
            }
            // No room to hold it: let the domain retry the access. It
            // faults again once it runs, behind the supervisor's Grant
            // (guests run after servers), so no fault is refused for
            // being early.
            let _ = put_message(FAULT_RESUME, Handle::NONE, &[]);
            continue;
        }
        let mut msg = Incoming {
            label: h.label,
            badge: h.badge,
            reply,
            payload: payload.get(..len).unwrap_or(&[]),
        };
        let mut rest = [0u8; 32];
        if let Some((first, count)) = pager.first_grant(&msg) {
            // The pager sees only what the tables left of the run.
            let (first, count) = size_from(&mut pager, first, count);
            if let Ok(b) =
                ilwaco::protocol::codec::encode(&Request::Grant { first, count }, &mut rest)
            {
                msg.payload = b;
            }
        }
        if h.label == LABEL_FAULT {
            tracer.record(msg.payload);
        }
        let t0 = sys::rdtsc();
        let before = FirstTimes::counts(&pager);
        let (resp, ev) = pager.handle_with(&msg, &mut kernel, &mut area, &mut out);
        if tracer.used == Tracer::PER_BLOCK {
            tracer.flush(&area);
        }
        let dt = sys::rdtsc().saturating_sub(t0);
        first.note(before, FirstTimes::counts(&pager), dt, hz);
        summary.busy += dt;
        if let Some(ev) = ev {
            log(ev, &mut problems);
        }
        if deadline > 1 {
            let now = sys::rdtsc();
            let before = FirstTimes::counts(&pager);
            pager.tick(now, &mut kernel, &mut area);
            let after = FirstTimes::counts(&pager);
            let dt = sys::rdtsc().saturating_sub(now);
            first.note(before, after, dt, hz);
            summary.busy += dt;
            summary.maybe_print(&pager, &area, now, hz);
            tracer.flush(&area);
        }
        let body = out.get(..resp.len).unwrap_or(&[]);
        if put_message(resp.label, Handle::NONE, body).is_err() {
            let _ = put_message(resp.label, Handle::NONE, &[]);
        }
    }
}
