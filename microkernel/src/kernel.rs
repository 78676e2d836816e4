//! Domains, their dispatch and the syscalls implemented so far.
//!
//! All of this is safe code over `arch`. The kernel is event-driven: it runs
//! only on a trap, interrupt or syscall from a domain (with the frame of the
//! interrupted domain in hand), and leaves by returning into whichever domain
//! should run next. Scheduling is round-robin with servers ahead of guests,
//! tickless: one one-shot LAPIC deadline = min(end of quantum, next alarm).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use log::{info, warn};
use serac_kcore::elf::{self, Elf};
use serac_protocol::layout::{self, PAGE_SIZE};
use serac_protocol::user::UserRange;
use serac_protocol::{DomainId, SysError, Syscall};
use spin::Mutex;

use crate::arch::cpu::{exception_name, TrapFrame};
use crate::arch::exit::{exit, ExitCode};
use crate::arch::paging::{alloc_frame, free_frame, read_phys, write_phys};
use crate::arch::time::{ns_to_lapic_ticks, rdtsc, tsc_hz, tsc_to_ns};
use crate::arch::user::{self, AddressSpace};
use crate::arch::{apic, cpu};

/// Top of a domain's initial stack, and its size.
pub const STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
const STACK_PAGES: u64 = 16;
/// The quantum: a domain that spins this long is preempted.
const QUANTUM_NS: u64 = 10_000_000;
/// Upper bound on domains (the table is preallocated to this).
const MAX_DOMAINS: usize = 4096;

/// Whether a domain is a server (scheduled first) or a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Trusted-by-role servers: supervisor, pager, drivers.
    Server,
    /// Untrusted guests.
    #[allow(dead_code, reason = "guests are started through domain_ctl, next")]
    Guest,
}

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On the run queue (or running).
    Runnable,
    /// In `idle` until an event or the TSC deadline.
    Idle {
        /// Absolute TSC deadline (`u64::MAX`: none).
        deadline: u64,
    },
    /// Ended with `halt(code)`.
    Halted(u64),
    /// Stopped by a fault it caused.
    Faulted,
}

/// One protection domain.
#[derive(Debug)]
pub struct Domain {
    /// Id with generation.
    pub id: DomainId,
    name: [u8; 16],
    /// Scheduling class.
    pub class: Class,
    /// Life-cycle state.
    pub state: State,
    ctx: TrapFrame,
    space: Option<AddressSpace>,
    /// Frames this domain owns (freed when it ends).
    frames: Vec<u64>,
    /// Pending virtual-interrupt bits.
    pending: u64,
    /// TSC ticks of CPU charged to this domain.
    pub cpu_ticks: u64,
    /// Syscalls made.
    pub syscalls: u64,
}

impl Domain {
    /// The name given at creation.
    pub fn name(&self) -> &str {
        let n = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// The kernel's state.
#[derive(Debug)]
struct Kernel {
    domains: Vec<Option<Domain>>,
    gens: Vec<u32>,
    runq_servers: VecDeque<usize>,
    runq_guests: VecDeque<usize>,
    current: Option<usize>,
    /// TSC when the current domain was dispatched.
    dispatched_at: u64,
    /// In test mode the kernel exits QEMU when no domain is left alive.
    test_mode: bool,
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Why a domain could not be created.
#[derive(Debug, Clone, Copy)]
pub enum LoadError {
    /// The image is not a valid static x86_64 executable.
    Elf(#[allow(dead_code, reason = "shown through Debug")] elf::ElfError),
    /// A segment lies outside the mappable user range.
    SegmentOutsideUserSpace,
    /// Out of frames or table slots.
    OutOfMemory,
    /// The domain table is full.
    TooManyDomains,
}

impl Kernel {
    fn alloc_slot(&mut self) -> Result<usize, LoadError> {
        if let Some(i) = self.domains.iter().position(Option::is_none) {
            return Ok(i);
        }
        if self.domains.len() >= MAX_DOMAINS {
            return Err(LoadError::TooManyDomains);
        }
        self.domains.push(None);
        self.gens.push(0);
        Ok(self.domains.len() - 1)
    }

    fn enqueue(&mut self, i: usize) {
        let Some(d) = self.domains.get(i).and_then(Option::as_ref) else {
            return;
        };
        match d.class {
            Class::Server => self.runq_servers.push_back(i),
            Class::Guest => self.runq_guests.push_back(i),
        }
    }

    fn pick(&mut self) -> Option<usize> {
        while let Some(i) = self
            .runq_servers
            .pop_front()
            .or_else(|| self.runq_guests.pop_front())
        {
            if matches!(self.domain(i).map(|d| d.state), Some(State::Runnable)) {
                return Some(i);
            }
        }
        None
    }

    fn domain(&self, i: usize) -> Option<&Domain> {
        self.domains.get(i).and_then(Option::as_ref)
    }

    fn domain_mut(&mut self, i: usize) -> Option<&mut Domain> {
        self.domains.get_mut(i).and_then(Option::as_mut)
    }

    fn alive(&self) -> usize {
        self.domains
            .iter()
            .flatten()
            .filter(|d| matches!(d.state, State::Runnable | State::Idle { .. }))
            .count()
    }

    /// Loads a static ELF into a new domain and queues it.
    fn spawn(&mut self, name: &str, class: Class, image: &[u8]) -> Result<DomainId, LoadError> {
        let elf = Elf::parse(image).map_err(LoadError::Elf)?;
        let slot = self.alloc_slot()?;
        let mut space = AddressSpace::new().map_err(|_| LoadError::OutOfMemory)?;
        let mut frames = Vec::new();
        let result = load_image(&elf, &mut space, &mut frames);
        if let Err(e) = result {
            for f in frames {
                let _ = free_frame(f);
            }
            space.destroy();
            return Err(e);
        }
        let gen = self.gens[slot].wrapping_add(1).max(1);
        self.gens[slot] = gen;
        let id = DomainId::new(slot as u32, gen);
        let mut n = [0u8; 16];
        let len = name.len().min(16);
        n[..len].copy_from_slice(&name.as_bytes()[..len]);
        self.domains[slot] = Some(Domain {
            id,
            name: n,
            class,
            state: State::Runnable,
            ctx: user::user_frame(elf.entry, STACK_TOP),
            space: Some(space),
            frames,
            pending: 0,
            cpu_ticks: 0,
            syscalls: 0,
        });
        self.enqueue(slot);
        Ok(id)
    }

    /// Ends domain `i`: frees its memory and leaves its record for the
    /// supervisor to read.
    fn end(&mut self, i: usize, state: State) {
        if let Some(d) = self.domain_mut(i) {
            d.state = state;
            if let Some(space) = d.space.take() {
                space.destroy();
            }
            for f in core::mem::take(&mut d.frames) {
                let _ = free_frame(f);
            }
        }
        if self.current == Some(i) {
            self.current = None;
        }
    }
}

fn load_image(
    elf: &Elf<'_>,
    space: &mut AddressSpace,
    frames: &mut Vec<u64>,
) -> Result<(), LoadError> {
    let mut map_new =
        |space: &mut AddressSpace, va: u64, w: bool, x: bool| -> Result<u64, LoadError> {
            let pa = alloc_frame().ok_or(LoadError::OutOfMemory)?;
            frames.push(pa);
            space
                .map(va, pa, w, x)
                .map_err(|_| LoadError::OutOfMemory)?;
            Ok(pa)
        };
    for seg in elf.segments() {
        let seg = seg.map_err(LoadError::Elf)?;
        let end = seg
            .vaddr
            .checked_add(seg.mem_len)
            .ok_or(LoadError::SegmentOutsideUserSpace)?;
        if seg.vaddr < layout::USER_START || end > layout::USER_END {
            return Err(LoadError::SegmentOutsideUserSpace);
        }
        let data = elf.data(&seg);
        let first = seg.vaddr & !(PAGE_SIZE - 1);
        let mut va = first;
        while va < end {
            let w = seg.flags & elf::flags::W != 0;
            let x = seg.flags & elf::flags::X != 0;
            let pa = map_new(space, va, w, x)?;
            // Copy the part of the file image that falls in this page.
            let page_end = va + PAGE_SIZE;
            let from = seg.vaddr.max(va);
            let to = (seg.vaddr + data.len() as u64).min(page_end);
            if from < to {
                let off = (from - seg.vaddr) as usize;
                write_phys(pa + (from - va), &data[off..off + (to - from) as usize]);
            }
            va = page_end;
        }
    }
    for p in 0..STACK_PAGES {
        map_new(space, STACK_TOP - (p + 1) * PAGE_SIZE, true, false)?;
    }
    // The global clock page (read-only, shared by all: the one exception to
    // "no shared memory"), the IPC buffer and the upcall page.
    let clock = CLOCK_FRAME.load(Ordering::Relaxed);
    space
        .map(layout::CLOCK_PAGE_ADDR, clock, false, false)
        .map_err(|_| LoadError::OutOfMemory)?;
    map_new(space, layout::IPC_BUFFER_ADDR, true, false)?;
    map_new(space, layout::UPCALL_PAGE_ADDR, true, false)?;
    Ok(())
}

/// The frame of the global clock page.
static CLOCK_FRAME: AtomicU64 = AtomicU64::new(0);

/// Boot: create the first domain from `image` and enter it. Never returns.
pub fn start(name: &str, image: &[u8], test_mode: bool) -> ! {
    let Some(clock) = alloc_frame() else {
        crate::fatal("clock", format_args!("no frame for the clock page"))
    };
    let mut page = [0u8; 64];
    let info = serac_protocol::layout::clock::ClockInfo {
        tsc_hz: tsc_hz(),
        boot_tsc: rdtsc(),
    };
    if info.write(&mut page).is_some() {
        write_phys(clock, &page);
    }
    CLOCK_FRAME.store(clock, Ordering::Relaxed);
    let mut k = Kernel {
        domains: Vec::with_capacity(64),
        gens: Vec::with_capacity(64),
        runq_servers: VecDeque::with_capacity(64),
        runq_guests: VecDeque::with_capacity(64),
        current: None,
        dispatched_at: 0,
        test_mode,
    };
    match k.spawn(name, Class::Server, image) {
        Ok(id) => info!("domain: {name} created as {}:{}", id.index, id.gen),
        Err(e) => crate::fatal("domain", format_args!("cannot load {name}: {e:?}")),
    }
    *KERNEL.lock() = Some(k);
    let mut frame = TrapFrame::default();
    schedule(&mut frame);
    user::enter(&frame)
}

/// Saves the running domain's context from `frame` (if any).
fn save_current(k: &mut Kernel, frame: &TrapFrame) {
    let now = rdtsc();
    let since = k.dispatched_at;
    if let Some(i) = k.current {
        if let Some(d) = k.domain_mut(i) {
            d.ctx = *frame;
            d.cpu_ticks += now.saturating_sub(since);
        }
    }
}

/// Wakes idle domains whose deadline passed; returns the earliest future one.
fn expire_alarms(k: &mut Kernel, now: u64) -> u64 {
    let mut next = u64::MAX;
    let mut woken = Vec::new();
    for (i, d) in k.domains.iter_mut().enumerate() {
        if let Some(d) = d {
            if let State::Idle { deadline } = d.state {
                if deadline <= now {
                    d.state = State::Runnable;
                    d.pending |= serac_protocol::upcall::ALARM;
                    woken.push(i);
                } else {
                    next = next.min(deadline);
                }
            }
        }
    }
    for i in woken {
        k.enqueue(i);
    }
    next
}

/// Picks the next domain and writes its context into `frame`, idling the
/// CPU until one is runnable. Exits QEMU in test mode when all have ended.
fn schedule(frame: &mut TrapFrame) {
    loop {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else {
            crate::fatal("sched", format_args!("kernel not initialised"));
        };
        let now = rdtsc();
        let next_alarm = expire_alarms(k, now);
        if let Some(i) = k.pick() {
            k.current = Some(i);
            k.dispatched_at = now;
            let quantum_end = now + QUANTUM_NS * tsc_hz() / 1_000_000_000;
            let deadline = quantum_end.min(next_alarm);
            apic::timer_oneshot(ns_to_lapic_ticks(tsc_to_ns(deadline.saturating_sub(now))));
            let Some(d) = k.domain_mut(i) else { continue };
            if let Some(space) = &d.space {
                space.activate();
            }
            let mut ctx = d.ctx;
            // `idle` reports the events that ended it in rdx.
            if d.pending != 0 && ctx.rax == 0 {
                ctx.rdx = core::mem::take(&mut d.pending);
            }
            user::sanitize(&mut ctx);
            *frame = ctx;
            return;
        }
        k.current = None;
        if k.alive() == 0 {
            info!("sched: no domain left alive");
            if k.test_mode {
                report_and_exit(k);
            }
        }
        if next_alarm != u64::MAX {
            apic::timer_oneshot(ns_to_lapic_ticks(tsc_to_ns(next_alarm.saturating_sub(now))));
        }
        drop(guard);
        cpu::wait_for_interrupt();
    }
}

/// Test mode: every domain has ended; say how each ended and leave QEMU.
/// The runner judges these lines (a fault may be the expected outcome).
fn report_and_exit(k: &Kernel) -> ! {
    for d in k.domains.iter().flatten() {
        info!(
            "domain {}:{} {} ended {:?} after {} us of CPU, {} syscalls",
            d.id.index,
            d.id.gen,
            d.name(),
            d.state,
            tsc_to_ns(d.cpu_ticks) / 1000,
            d.syscalls
        );
    }
    crate::kprintln!("KERNEL all domains ended");
    exit(ExitCode::Success)
}

/// A trap or fault raised by ring-3 code: stop that domain only.
pub fn user_exception(frame: &mut TrapFrame, cr2: u64) {
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        save_current(k, frame);
        if let Some(i) = k.current {
            if let Some(d) = k.domain(i) {
                warn!(
                    "domain {}:{} {} faulted: #{} {} error={:#x} rip={:#x}{}",
                    d.id.index,
                    d.id.gen,
                    d.name(),
                    frame.vector,
                    exception_name(frame.vector),
                    frame.error,
                    frame.rip,
                    if frame.vector == 14 {
                        alloc::format!(" addr={cr2:#x}")
                    } else {
                        alloc::string::String::new()
                    }
                );
            }
            k.end(i, State::Faulted);
        }
    }
    schedule(frame);
}

/// The LAPIC deadline passed: end of quantum or an alarm.
pub fn timer(frame: &mut TrapFrame, from_user: bool) {
    if !from_user {
        // The kernel was idle in `schedule`; it rechecks alarms itself.
        return;
    }
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        save_current(k, frame);
        if let Some(i) = k.current.take() {
            k.enqueue(i);
        }
    }
    schedule(frame);
}

/// A `syscall` from the running domain. Results go in rax (0 or an error
/// code) and rdx (the value).
pub fn syscall(frame: &mut TrapFrame) {
    let result = {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        let Some(i) = k.current else { return };
        if let Some(d) = k.domain_mut(i) {
            d.syscalls += 1;
        }
        match Syscall::try_from(frame.rax) {
            Err(e) => Err(e),
            Ok(Syscall::DebugWrite) => debug_write(k, i, frame.rdi, frame.rsi),
            Ok(Syscall::Halt) => {
                save_current(k, frame);
                k.end(i, State::Halted(frame.rdi));
                if let Some(d) = k.domain(i) {
                    info!(
                        "domain {}:{} {} halted with code {}",
                        d.id.index,
                        d.id.gen,
                        d.name(),
                        frame.rdi
                    );
                }
                drop(guard);
                schedule(frame);
                return;
            }
            Ok(Syscall::Idle) => {
                frame.rax = 0;
                frame.rdx = 0;
                save_current(k, frame);
                let deadline = frame.rdi;
                if let Some(d) = k.domain_mut(i) {
                    if d.pending != 0 {
                        // Events already pending: return at once with them.
                        frame.rdx = core::mem::take(&mut d.pending);
                        return;
                    }
                    d.state = State::Idle { deadline };
                }
                k.current = None;
                drop(guard);
                schedule(frame);
                return;
            }
            Ok(_) => Err(SysError::BadSyscall),
        }
    };
    match result {
        Ok(v) => {
            frame.rax = 0;
            frame.rdx = v;
        }
        Err(e) => {
            frame.rax = u64::from(e.code());
            frame.rdx = 0;
        }
    }
}

/// Copies a checked user buffer to the console, page by page through the
/// domain's translations (never through a raw user pointer).
fn debug_write(k: &mut Kernel, i: usize, addr: u64, len: u64) -> Result<u64, SysError> {
    const MAX: u64 = serac_protocol::syscall::DEBUG_WRITE_MAX;
    if len == 0 {
        // Nothing is read, so no pointer is checked (like write(2)).
        return Ok(0);
    }
    let range = UserRange::check_max(addr, len, MAX, &(layout::CLOCK_PAGE_ADDR..layout::USER_END))?;
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let space = d.space.as_ref().ok_or(SysError::BadPointer)?;
    let mut buf = [0u8; MAX as usize];
    let mut n = 0;
    for vpn in range.pages() {
        let Some((off, chunk)) = range.chunk_in_page(vpn) else {
            continue;
        };
        let (pa, _) = space
            .translate((vpn << 12) + off)
            .ok_or(SysError::BadPointer)?;
        read_phys(pa, &mut buf[n..n + chunk as usize]);
        n += chunk as usize;
    }
    let text = core::str::from_utf8(&buf[..n]).unwrap_or("<non-UTF-8 output>");
    crate::arch::serial::print(format_args!("{text}"));
    Ok(n as u64)
}
