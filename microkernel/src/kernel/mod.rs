//! The kernel proper: domains, dispatch, syscalls, IPC, secure bindings.
//!
//! All of this is safe code over `arch` and `serac-kcore`. The kernel is
//! event-driven: it runs only on a trap, interrupt or syscall, with the frame
//! of the interrupted domain in hand, and leaves by returning into whichever
//! domain should run next. A blocked domain holds no kernel stack, only its
//! saved registers. Scheduling is round-robin with servers ahead of guests,
//! tickless: one one-shot LAPIC deadline = min(end of quantum, next alarm).

mod device;
mod domain;
mod fastpath;
mod handles;
mod ipc;
mod mem;
mod syscall;

use alloc::boxed::Box;
use alloc::vec::Vec;
use log::{info, warn};
use serac_kcore::image::{ImagePage, ImageSlot, Images};
use serac_kcore::owner::FrameOwners;
use serac_kcore::sched::{RunLink, RunQueue};
use serac_kcore::stlb::{Stlb, StlbSlot};
use serac_kcore::timerq::{TimerQueue, TimerSlot};
use serac_protocol::supervisor::DomainClass;
use serac_protocol::DomainId;
use spin::Mutex;

use crate::arch::cpu::TrapFrame;
use crate::arch::exit::{exit, ExitCode};
use crate::arch::time::{rdtsc, tsc_hz, tsc_to_lapic_ticks, tsc_to_ns};
use crate::arch::{apic, cpu, user};

pub use domain::Domain;
use domain::State;

/// The quantum: a domain that spins this long is preempted.
const QUANTUM_NS: u64 = 10_000_000;

/// The kernel's state. One CPU, one lock, taken on every entry.
pub struct Kernel {
    domains: Vec<Option<Box<Domain>>>,
    /// Generation of each slot's last occupant (survives the slot's reuse).
    gens: Vec<u32>,
    free_slots: Vec<u32>,
    runq: RunQueue<'static>,
    timers: TimerQueue<'static>,
    stlb: Stlb<'static>,
    owners: FrameOwners<'static>,
    /// Shared read-only images (code pages one frame for every domain).
    images: Images<'static>,
    current: Option<u32>,
    last_run: Option<u32>,
    dispatched_at: u64,
    /// When the running domain's quantum began (a fast-path switch hands
    /// it on to the partner).
    quantum_start: u64,
    test_mode: bool,
    supervisor: DomainId,
    /// The clock page frame, mapped read-only into every domain.
    clock_frame: u64,
    /// Domains created since boot.
    pub created: u64,
    /// Free kernel frames right after boot (for accounting).
    kernel_frames_base: u64,
    /// The quantum in TSC ticks.
    quantum_tsc: u64,
    /// The TSC deadline the LAPIC timer is armed for (0: none).
    armed: u64,
    /// Interrupt lines bound to driver domains: GSI -> (domain, its IRQ bit).
    irqs: [Option<(DomainId, u32)>; crate::arch::apic::MAX_GSI as usize],
    /// NMIs, machine checks and spurious 8259 interrupts already logged.
    hw_events_logged: [u64; 3],
    /// The boot archive's frames (first, count): never returned to the pool.
    archive_frames: (u64, u64),
    /// PCI functions and who holds each.
    devices: device::Devices,
    /// Domain slots: the run queue and timer tables hold this many, sized
    /// from the memory map (`serac_kcore::sizing`).
    max_domains: usize,
}

// The kernel's bytes per domain slot stay within what the heap was sized
// for: the boxed record and its allocator header, the run link, the timer
// slot, the slot's table entry and generation, the supervisor's two
// handles on it and the vnic's one (528-byte chunks of 15), and its own
// handles packed (`PACKED_HANDLES` of 32 bytes and a header: a domain not
// running holds them so, `Handles::pack`).
const _: () = assert!(
    core::mem::size_of::<Domain>()
        + 16
        + core::mem::size_of::<RunLink>()
        + core::mem::size_of::<TimerSlot>()
        + core::mem::size_of::<Option<Box<Domain>>>()
        + core::mem::size_of::<u32>()
        + 3 * 528 / 15
        + serac_kcore::sizing::PACKED_HANDLES as usize * 32
        + 16
        <= serac_kcore::sizing::BYTES_PER_DOMAIN as usize
);

impl core::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kernel")
            .field("domains", &self.domains.len())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

fn leak<T: Clone>(n: usize, v: T) -> &'static mut [T] {
    Box::leak(alloc::vec![v; n].into_boxed_slice())
}

impl Kernel {
    fn domain(&self, i: u32) -> Option<&Domain> {
        self.domains.get(i as usize).and_then(|d| d.as_deref())
    }

    fn domain_mut(&mut self, i: u32) -> Option<&mut Domain> {
        self.domains
            .get_mut(i as usize)
            .and_then(|d| d.as_deref_mut())
    }

    /// The live domain `id` names (index and generation must match).
    fn live(&self, id: DomainId) -> Option<&Domain> {
        self.domain(id.index)
            .filter(|d| d.id == id && d.state != State::Dead)
    }

    /// Puts a runnable domain on the run queue.
    fn enqueue(&mut self, i: u32) {
        let Some(d) = self.domain(i) else { return };
        let class = d.class;
        if self.current != Some(i) {
            let _ = self.runq.enqueue(i, class);
        }
    }

    /// Makes a blocked or idle domain runnable.
    fn make_runnable(&mut self, i: u32) {
        let Some(d) = self.domain_mut(i) else { return };
        if d.state == State::Dead || d.state == State::Stopped {
            return;
        }
        d.state = State::Runnable;
        let _ = self.timers.cancel(i);
        self.enqueue(i);
    }

    /// Raises event bits (and, with NOTIFY, notification bits `word`) for
    /// domain `i`; wakes it from `idle` (or a `reply_recv` with
    /// `RECV_WAKE_ON_EVENT`), whose rdx is the mask taken. One call is one
    /// event.
    fn raise(&mut self, i: u32, bits: u64, word: u64) {
        let Some(d) = self.domain_mut(i) else { return };
        if bits & serac_protocol::upcall::NOTIFY != 0 {
            d.pending.notify(word);
            let rest = bits & !serac_protocol::upcall::NOTIFY;
            if rest != 0 {
                d.pending.raise(rest);
            }
        } else if bits != 0 {
            d.pending.raise(bits);
        }
        // `idle` returns the mask; so does a `reply_recv` that asked to be
        // woken by events, as `WouldBlock` (a message would have been 0).
        let wake = match d.state {
            State::Idle => Some(0),
            State::Receiving if d.wake_on_event => {
                Some(serac_protocol::SysError::WouldBlock.code())
            }
            _ => None,
        };
        if let Some(rax) = wake {
            let taken = d.pending.take_all().map_or(0, |t| t.mask);
            d.ctx.rax = u64::from(rax);
            d.ctx.rdx = taken;
            self.make_runnable(i);
        }
    }

    fn alive(&self) -> usize {
        self.domains
            .iter()
            .flatten()
            .filter(|d| d.state != State::Dead)
            .count()
    }
}

/// Most shared images at once (one per program the supervisor runs).
const MAX_IMAGES: usize = 256;

/// Pages of shared images the kernel can hold: one per 16 frames of RAM
/// (16 bytes each, so 1/4096 of RAM), at least 4096.
fn image_pages(frames: u64) -> usize {
    usize::try_from(frames / 16).unwrap_or(usize::MAX).max(4096)
}

/// Boot: sets up the kernel tables, creates the first domain from `image`
/// and enters it. Never returns.
pub fn start(
    name: &str,
    image: &[u8],
    archive: (u64, u64),
    test_mode: bool,
    pci: Vec<crate::arch::pci::Function>,
    ram: &[(u64, u64)],
    max_domains: usize,
) -> ! {
    let frames = crate::arch::paging::total_frames();
    let clock_frame = domain::make_clock_page();
    // One STLB slot per frame plus slack: a frame is bound at most once.
    let stlb_slots = leak((frames + frames / 4 + 64) as usize, StlbSlot::EMPTY);
    let owner_slots = leak(frames as usize, serac_kcore::owner::Owner::Kernel);
    let mut k = Kernel {
        domains: Vec::with_capacity(256),
        gens: Vec::with_capacity(256),
        free_slots: Vec::new(),
        runq: RunQueue::new(leak(max_domains, RunLink::default())),
        timers: TimerQueue::new(leak(max_domains, TimerSlot::default())),
        stlb: Stlb::new(stlb_slots, rdtsc()),
        owners: FrameOwners::new(0, owner_slots),
        images: Images::new(
            leak(MAX_IMAGES, ImageSlot::default()),
            leak(image_pages(frames), ImagePage::default()),
        ),
        current: None,
        last_run: None,
        dispatched_at: 0,
        quantum_start: 0,
        test_mode,
        supervisor: DomainId::NONE,
        clock_frame,
        created: 0,
        kernel_frames_base: 0,
        quantum_tsc: QUANTUM_NS * tsc_hz() / 1_000_000_000,
        armed: 0,
        irqs: [None; crate::arch::apic::MAX_GSI as usize],
        hw_events_logged: [0; 3],
        archive_frames: (archive.0 / 4096, archive.1.div_ceil(4096)),
        devices: device::Devices::new(pci, ram),
        max_domains,
    };
    let id = match domain::create_first(&mut k, name, image, archive) {
        Ok(id) => id,
        Err(e) => crate::fatal("domain", format_args!("cannot start {name}: {e:?}")),
    };
    k.supervisor = id;
    k.kernel_frames_base = crate::arch::paging::free_frames();
    info!(
        "domain: {name} started as {}:{}; the kernel starts no other domain",
        id.index, id.gen
    );
    *KERNEL.lock() = Some(k);
    let mut frame = TrapFrame::default();
    schedule(&mut frame);
    user::enter(&frame)
}

/// Charges the running domain and saves its registers from `frame`.
fn save_current(k: &mut Kernel, frame: &TrapFrame) {
    let now = rdtsc();
    let since = k.dispatched_at;
    k.dispatched_at = now;
    if let Some(i) = k.current {
        if let Some(d) = k.domain_mut(i) {
            d.ctx = *frame;
            d.cpu_ticks += now.saturating_sub(since);
        }
    }
}

/// Moves expired alarms to the run queue; returns the next deadline.
fn expire_alarms(k: &mut Kernel, now: u64) -> Option<u64> {
    while let Some((i, _)) = k.timers.pop_expired(now) {
        if k.domain(i).map(|d| d.state) == Some(State::Receiving) {
            // `reply_recv` with a deadline: no message came in time.
            if let Some(d) = k.domain_mut(i) {
                d.ctx.rax = u64::from(serac_protocol::SysError::WouldBlock.code());
                d.ctx.rdx = 0;
            }
            k.make_runnable(i);
        } else {
            k.raise(i, serac_protocol::upcall::ALARM, 0);
        }
    }
    k.timers.next_deadline()
}

/// Leaves the kernel: keeps running the current domain if it is still
/// runnable and not preempted, otherwise picks the next. Writes the chosen
/// domain's context into `frame`. Idles the CPU until some domain can run.
fn schedule(frame: &mut TrapFrame) {
    loop {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else {
            crate::fatal("sched", format_args!("kernel not initialised"))
        };
        if k.test_mode && k.live(k.supervisor).is_none() {
            report_and_exit(k);
        }
        log_hw_events(k);
        let now = rdtsc();
        let next_alarm = expire_alarms(k, now);
        // Keep the current domain unless it blocked, or a server waits
        // while it is a guest.
        let keep = k.current.filter(|&i| {
            k.domain(i).is_some_and(|d| {
                d.state == State::Runnable
                    && !(d.class == DomainClass::Guest && k.runq.should_preempt(d.class))
            })
        });
        if keep.is_none() {
            if let Some(i) = k.current.take() {
                if k.domain(i).is_some_and(|d| d.state == State::Runnable) {
                    k.enqueue(i);
                }
            }
        }
        let pick = keep.or_else(|| k.runq.pop().map(|(i, _)| i));
        if let Some(i) = pick {
            if keep.is_none() {
                k.quantum_start = now;
            }
            let started = k.quantum_start;
            let quantum_end = started + k.quantum_tsc;
            let deadline = next_alarm.map_or(quantum_end, |a| a.min(quantum_end));
            // One one-shot deadline; rearm only when it moved.
            if deadline != k.armed {
                k.armed = deadline;
                apic::timer_oneshot(tsc_to_lapic_ticks(deadline.saturating_sub(now)));
            }
            k.dispatched_at = now;
            let switched = k.last_run != Some(i);
            k.current = Some(i);
            k.last_run = Some(i);
            match domain::dispatch(k, i, switched) {
                Ok(ctx) => {
                    *frame = ctx;
                    return;
                }
                Err(e) => {
                    warn!("sched: cannot dispatch domain {i}: {e:?}; killing it");
                    k.current = None;
                    domain::kill(
                        k,
                        i,
                        domain::Reason::Fault(serac_protocol::exit::FaultKind::PageFault, 0, 0, 0),
                    );
                    continue;
                }
            }
        }
        // O(1) while the supervisor lives: the count walks every record,
        // and this runs each time the CPU idles (at 100,000 domains the
        // walk held every disk completion for 8 ms).
        if k.live(k.supervisor).is_none() && k.alive() == 0 {
            info!("sched: no domain left alive; the kernel idles (Ctrl-A X leaves QEMU)");
        }
        match next_alarm {
            Some(a) => {
                k.armed = a;
                apic::timer_oneshot(tsc_to_lapic_ticks(a.saturating_sub(now)));
            }
            None => {
                k.armed = 0;
                apic::timer_oneshot(0);
            }
        }
        drop(guard);
        cpu::wait_for_interrupt();
    }
}

/// Logs NMIs, machine checks and spurious 8259 interrupts taken since the
/// last call. The trap path only counts them: it may interrupt the kernel
/// with the console lock held. None is charged to the domain that ran.
fn log_hw_events(k: &mut Kernel) {
    use core::sync::atomic::Ordering::Relaxed;
    let now = [
        cpu::NMIS.load(Relaxed),
        cpu::MACHINE_CHECKS.load(Relaxed),
        cpu::SPURIOUS_PIC.load(Relaxed),
    ];
    let names = [
        "NMI",
        "machine check (recoverable)",
        "spurious 8259 interrupt",
    ];
    for ((n, seen), name) in now.iter().zip(k.hw_events_logged.iter_mut()).zip(names) {
        if *n != *seen {
            warn!("kernel: {name} x{} ({n} since boot); a kernel event, no domain's fault: the interrupted context resumed", n - *seen);
            *seen = *n;
        }
    }
}

/// Test mode: the supervisor has ended; say how each domain ended and
/// leave QEMU. The runner judges these lines.
fn report_and_exit(k: &Kernel) -> ! {
    let shown = k.domains.iter().flatten().count();
    for d in k.domains.iter().flatten().take(32) {
        info!(
            "domain {}:{} {} {:?} after {} us of CPU, {} syscalls, {} faults, {} events / {} upcalls, {} console bytes dropped, {} table frames ({} resets)",
            d.id.index,
            d.id.gen,
            d.name(),
            d.state,
            tsc_to_ns(d.cpu_ticks) / 1000,
            d.syscalls,
            d.faults,
            d.pending.events_raised(),
            d.pending.upcalls_delivered(),
            d.console.dropped(),
            d.space.as_ref().map_or(0, |s| s.tables()),
            d.table_resets,
        );
    }
    if shown > 32 {
        info!("({} more domains not shown)", shown - 32);
    }
    let (heap_used, _) = crate::arch::heap::usage();
    let frames_used = k
        .kernel_frames_base
        .saturating_sub(crate::arch::paging::free_frames());
    let records = k.domains.iter().flatten().count() as u64;
    // The frames the kernel holds for live domains: fixed pages and page
    // tables (the pool count above misses them once the supervisor's
    // grant has come back).
    let domain_frames: u64 = k
        .domains
        .iter()
        .flatten()
        .map(|d| {
            let (ipc, up) = d.fixed_frames();
            u64::from(ipc != 0)
                + u64::from(up != 0)
                + d.space.as_ref().map_or(0, |s| u64::from(s.tables()))
        })
        .sum();
    crate::kprintln!(
        "KERNEL stats: {} domain record(s), {} created since boot, kernel frames in use since start {} ({} KiB), heap in use {} KiB, domain record {} bytes, domain frames {}",
        records,
        k.created,
        frames_used,
        frames_used * 4,
        heap_used / 1024,
        core::mem::size_of::<Domain>(),
        domain_frames
    );
    crate::kprintln!("KERNEL supervisor ended; {} domain(s) alive", k.alive());
    exit(ExitCode::Success)
}

/// A trap raised by ring-3 code.
pub fn user_exception(frame: &mut TrapFrame, cr2: u64) {
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        save_current(k, frame);
        if let Some(i) = k.current {
            mem::exception(k, i, frame.vector, frame.error, cr2);
        }
    }
    schedule(frame);
}

/// The LAPIC deadline passed: end of quantum or an alarm.
pub fn timer(frame: &mut TrapFrame, from_user: bool) {
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        // The armed deadline has passed (possibly a little early, by
        // calibration rounding): the next schedule must arm a new one.
        k.armed = 0;
        if !from_user {
            // The kernel was idle in `schedule`, which rechecks alarms itself.
            return;
        }
        save_current(k, frame);
        let now = rdtsc();
        let quantum = k.quantum_tsc;
        // End of quantum: to the back of its class.
        if let Some(i) = k.current {
            let ran = now.saturating_sub(k.quantum_start);
            if ran + quantum / 16 >= quantum {
                k.current = None;
                if k.domain(i).is_some_and(|d| d.state == State::Runnable) {
                    let _ = k
                        .runq
                        .enqueue(i, k.domain(i).map_or(DomainClass::Guest, |d| d.class));
                }
            }
        }
    }
    schedule(frame);
}

/// A device interrupt on line `gsi`: masked until the driver acknowledges
/// it, and delivered as the driver's `IRQ(n)` pending bit (waking it from
/// `idle`). A line bound to nobody stays masked.
pub fn irq(frame: &mut TrapFrame, from_user: bool, gsi: u32) {
    if gsi == crate::arch::serial::COM1_GSI {
        return console_irq(frame, from_user);
    }
    // Mask before the EOI: a level-triggered line still asserted would
    // otherwise fire again at once.
    crate::arch::apic::route_gsi(gsi, true);
    apic::eoi();
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        let bound = k.irqs.get(gsi as usize).copied().flatten();
        if let Some((d, n)) = bound {
            if k.live(d).is_some() {
                if let Ok(bit) = serac_protocol::upcall::irq_bit(n) {
                    k.raise(d.index, bit, 0);
                }
            }
        }
        if !from_user {
            return;
        }
        save_current(k, frame);
    }
    schedule(frame);
}

/// COM1 received: the kernel's own line, never masked (edge-triggered,
/// and drained here, so it falls again). The supervisor gets `NOTIFY`
/// with `CONSOLE_INPUT_NOTIFY` and takes the bytes with `ConsoleInput`.
fn console_irq(frame: &mut TrapFrame, from_user: bool) {
    apic::eoi();
    let got = crate::arch::serial::receive();
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        let s = k.supervisor;
        if got && k.live(s).is_some() {
            k.raise(
                s.index,
                serac_protocol::upcall::NOTIFY,
                serac_protocol::syscall::CONSOLE_INPUT_NOTIFY,
            );
        }
        if !from_user {
            return;
        }
        save_current(k, frame);
    }
    schedule(frame);
}

/// Binds line `gsi` to domain `to`, which gets IRQ bit `n`.
pub(crate) fn bind_irq(
    k: &mut Kernel,
    gsi: u32,
    level: bool,
    active_low: bool,
    to: DomainId,
    n: u32,
) -> Result<(), serac_protocol::SysError> {
    if gsi == crate::arch::serial::COM1_GSI {
        // The console's line is the kernel's.
        return Err(serac_protocol::SysError::AlreadyMapped);
    }
    let slot = k
        .irqs
        .get_mut(gsi as usize)
        .ok_or(serac_protocol::SysError::BadArgument)?;
    if slot.is_some_and(|(d, _)| d != to) {
        return Err(serac_protocol::SysError::AlreadyMapped);
    }
    crate::arch::apic::set_gsi_mode(gsi, level, active_low);
    if !crate::arch::apic::route_gsi(gsi, false) {
        return Err(serac_protocol::SysError::BadArgument);
    }
    *slot = Some((to, n));
    Ok(())
}

/// Unbinds every line of domain `d` (it ended), masking them.
pub(crate) fn unbind_irqs(k: &mut Kernel, d: DomainId) {
    for (gsi, slot) in k.irqs.iter_mut().enumerate() {
        if slot.is_some_and(|(o, _)| o.index == d.index) {
            *slot = None;
            crate::arch::apic::route_gsi(gsi as u32, true);
        }
    }
}

/// A `syscall` from the running domain.
pub fn syscall(frame: &mut TrapFrame) {
    {
        let mut guard = KERNEL.lock();
        let Some(k) = guard.as_mut() else { return };
        save_current(k, frame);
        let Some(i) = k.current else { return };
        let fast = match frame.rax {
            2 => fastpath::call(k, i, frame),
            3 => fastpath::reply_recv(k, i, frame),
            _ => false,
        };
        if fast {
            if let Some(d) = k.domain_mut(i) {
                d.syscalls += 1;
            }
            return;
        }
        syscall::dispatch(k, i);
        // Fast path: the caller keeps the CPU (it did not block, nobody it
        // woke outranks it, no upcall is due): just return its result.
        if k.current == Some(i) {
            let preempt = k.runq.should_preempt(DomainClass::Guest);
            if let Some(d) = k.domain(i) {
                let upcall_due = d.upcall_entry != 0 && d.pending.any();
                let outranked = d.class == DomainClass::Guest && preempt;
                if d.state == State::Runnable && !upcall_due && !outranked {
                    frame.rax = d.ctx.rax;
                    frame.rdx = d.ctx.rdx;
                    return;
                }
            }
        }
    }
    schedule(frame);
}
