//! Domains: creation, dispatch (with batched upcalls), death and restart.

use alloc::boxed::Box;
use log::{info, warn};
use serac_kcore::batch::Pending;
use serac_kcore::handles::HandleEntry;
use serac_kcore::owner::Owner;
use serac_protocol::bootimg::{BootImage, BootImageError};
use serac_protocol::exit::{ExitReason, FaultKind};
use serac_protocol::layout::{self, clock::ClockInfo, PAGE_SIZE};
use serac_protocol::pager::Access;
use serac_protocol::supervisor::DomainClass;
use serac_protocol::upcall::{UpcallFrame, OFF_ENABLED, OFF_FRAME, WAKEUP};
use serac_protocol::{DomainId, HandleKind, HandleRights, PageRights, SysError};

use super::{ipc, Kernel};
use crate::arch::cpu::TrapFrame;
use crate::arch::paging::{alloc_frame, free_frame, read_phys, write_phys, zero_frames};
use crate::arch::time::{rdtsc, tsc_hz};
use crate::arch::user::{self, AddressSpace};

use serac_kcore::sizing::{server_handle_chunks, supervisor_handle_chunks, GUEST_HANDLE_CHUNKS};

// kcore's sizing rule counts chunks of the kernel's size.
const _: () = assert!(serac_kcore::sizing::HANDLE_CHUNK as usize == super::handles::CHUNK);

/// Where a domain is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, not yet started.
    Stopped,
    /// On the run queue, or running.
    Runnable,
    /// In `idle`, until an event or its alarm.
    Idle,
    /// In `call`/`send`, queued on `to` until it receives.
    Sending {
        /// Index of the receiving domain.
        to: u32,
        /// A `call` (waits for a reply) rather than a `send`.
        call: bool,
    },
    /// In `call`, message delivered, waiting for `from`'s reply.
    AwaitingReply {
        /// Index of the server.
        from: u32,
    },
    /// In `reply_recv`, waiting for a message.
    Receiving,
    /// Missed the software TLB; waiting for its pager.
    Faulting {
        /// Index of the pager.
        pager: u32,
        /// Whether the fault message has been delivered.
        delivered: bool,
    },
    /// Ended; kept until the supervisor has been told.
    Dead,
}

/// Why a domain ended.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// `halt(code)`.
    Halted(u64),
    /// A fault: kind, address, rip, error code.
    Fault(FaultKind, u64, u64, u64),
    /// `domain_ctl(Kill)`.
    Killed,
}

impl Reason {
    /// The reason as the supervisor's exit message states it.
    pub fn to_exit(self) -> ExitReason {
        match self {
            Reason::Halted(c) => ExitReason::Halted(c),
            Reason::Fault(kind, vaddr, rip, error) => ExitReason::Fault {
                kind,
                vaddr,
                rip,
                error,
            },
            Reason::Killed => ExitReason::Killed,
        }
    }
}

impl Reason {
    /// Kept in a dead domain's saved registers (it never runs again and
    /// `Restart` clears them), which saves its record the field.
    fn store(self, c: &mut TrapFrame) {
        let kind = |k: FaultKind| match k {
            FaultKind::Other(v) => 0x100 | u64::from(v),
            k => FAULT_KINDS.iter().position(|x| *x == k).unwrap_or(0) as u64,
        };
        (c.rax, c.rdi, c.rsi, c.rdx, c.r10) = match self {
            Reason::Halted(code) => (1, code, 0, 0, 0),
            Reason::Fault(k, vaddr, rip, error) => (2, kind(k), vaddr, rip, error),
            Reason::Killed => (3, 0, 0, 0, 0),
        };
    }

    fn load(c: &TrapFrame) -> Reason {
        let kind = match c.rdi {
            v if v & 0x100 != 0 => FaultKind::Other((v & 0xff) as u8),
            v => FAULT_KINDS
                .get(v as usize)
                .copied()
                .unwrap_or(FaultKind::PageFault),
        };
        match c.rax {
            1 => Reason::Halted(c.rdi),
            2 => Reason::Fault(kind, c.rsi, c.rdx, c.r10),
            _ => Reason::Killed,
        }
    }
}

/// The fault kinds but `Other`, by code.
const FAULT_KINDS: [FaultKind; 10] = [
    FaultKind::PageFault,
    FaultKind::Protection,
    FaultKind::GeneralProtection,
    FaultKind::InvalidOpcode,
    FaultKind::DivideError,
    FaultKind::Debug,
    FaultKind::Alignment,
    FaultKind::StackSegment,
    FaultKind::FloatingPoint,
    FaultKind::PageLost,
];

/// One protection domain: all the kernel keeps for it.
#[derive(Debug)]
pub struct Domain {
    /// Slot index and generation.
    pub id: DomainId,
    /// Generation at which this lineage began (restarts keep the lineage).
    pub lineage: u32,
    name: [u8; 16],
    /// Scheduling class.
    pub class: DomainClass,
    /// Life-cycle state.
    pub state: State,
    /// Saved registers while not running.
    pub ctx: TrapFrame,
    /// Page tables: a cache of the domain's software-TLB bindings.
    pub space: Option<AddressSpace>,
    /// Frame of the IPC buffer (kernel-owned; 0 until first used).
    ipc_fn: u32,
    /// Frame of the upcall page (kernel-owned; 0 until first used).
    upcall_fn: u32,
    /// Handles this domain holds.
    pub handles: super::handles::Handles,
    /// Pending virtual interrupts and batching counters.
    pub pending: Pending,
    /// Upcall entry point (0: upcalls off).
    pub upcall_entry: u64,
    /// The domain whose endpoint receives this domain's faults.
    pager: DomainId,
    /// Its shared image (`ImageAttach`), 0 if none.
    pub image: u16,
    /// Senders queued on this domain (head, tail: indices).
    pub queue: Option<(u32, u32)>,
    /// Next sender in the queue this domain waits on.
    pub next_in_queue: Option<u32>,
    /// Badge of the endpoint this domain is sending through.
    pub send_badge: u64,
    /// The access that missed: (vaddr, access); its rip is `ctx.rip`.
    fault: (u64, serac_protocol::pager::Access),
    /// CPU charged, in TSC ticks.
    pub cpu_ticks: u64,
    /// Syscalls made.
    pub syscalls: u64,
    /// Software-TLB misses sent to the pager.
    pub faults: u64,
    /// Interrupt lines bound to it (the next one gets bit `IRQ(irq_lines)`).
    pub irq_lines: u8,
    /// Times its page-table cache went over budget and was dropped.
    pub table_resets: u16,
    /// In `reply_recv` with `RECV_ACCEPT_HANDLE`: the next message may move
    /// a handle into its table.
    pub accept_handle: bool,
    /// In `reply_recv` with `RECV_WAKE_ON_EVENT`: an event ends the wait.
    pub wake_on_event: bool,
    /// Console bytes it may still write (`debug_write`).
    pub console: serac_kcore::console::Budget,
    /// Its upcall page was dropped (`Shrink`) with upcalls enabled: the
    /// page made again reads as enabled.
    upcall_parked: bool,
}

impl Domain {
    /// The IPC buffer's physical address, 0 if none (the record keeps
    /// frame numbers, 4 bytes each).
    fn ipc_pa(&self) -> u64 {
        u64::from(self.ipc_fn) * PAGE_SIZE
    }

    /// The upcall page's physical address, 0 if none.
    fn upcall_pa(&self) -> u64 {
        u64::from(self.upcall_fn) * PAGE_SIZE
    }

    /// The IPC buffer's frame, allocated on first use: a domain that never
    /// does IPC (an idle guest) costs no kernel page for it.
    pub fn ipc_frame(&mut self) -> Result<u64, SysError> {
        if self.ipc_pa() == 0 {
            self.ipc_fn = to_fn(alloc_frame().ok_or(SysError::OutOfMemory)?);
            let pa = self.ipc_pa();
            if let Some(space) = self.space.as_mut() {
                let _ = space.map(layout::IPC_BUFFER_ADDR, pa, true, false, false);
            }
        }
        Ok(self.ipc_pa())
    }

    /// The upcall page's frame, allocated on first use.
    pub fn upcall_frame(&mut self) -> Result<u64, SysError> {
        if self.upcall_pa() == 0 {
            self.upcall_fn = to_fn(alloc_frame().ok_or(SysError::OutOfMemory)?);
            if core::mem::take(&mut self.upcall_parked) {
                write_phys(self.upcall_pa() + OFF_ENABLED as u64, &1u64.to_le_bytes());
            }
            let pa = self.upcall_pa();
            if let Some(space) = self.space.as_mut() {
                let _ = space.map(layout::UPCALL_PAGE_ADDR, pa, true, false, false);
            }
        }
        Ok(self.upcall_pa())
    }

    /// Packs the handles, frees the IPC buffer (a waiting domain's is
    /// scratch: the next message overwrites it) and the upcall page, unless
    /// upcalls are off in it (a handler may be running: the saved context
    /// is live). All come back on first use. The caller dropped the page
    /// tables.
    pub fn drop_fixed_pages(&mut self) {
        self.handles.pack();
        if self.ipc_pa() != 0 {
            let _ = free_frame(self.ipc_pa());
            self.ipc_fn = 0;
        }
        if self.upcall_pa() != 0 {
            let mut enabled = [0u8; 8];
            read_phys(self.upcall_pa() + OFF_ENABLED as u64, &mut enabled);
            if u64::from_le_bytes(enabled) != 0 {
                let _ = free_frame(self.upcall_pa());
                self.upcall_fn = 0;
                self.upcall_parked = true;
            }
        }
    }

    /// The domain whose endpoint receives its faults (`NONE` is none: the
    /// record keeps no `Option` tag).
    pub fn pager(&self) -> Option<DomainId> {
        (!self.pager.is_none()).then_some(self.pager)
    }

    /// Sets [`Domain::pager`].
    pub fn set_pager(&mut self, p: DomainId) {
        self.pager = p;
    }

    /// Why it ended, once dead.
    pub fn exit(&self) -> Option<Reason> {
        (self.state == State::Dead).then(|| Reason::load(&self.ctx))
    }

    /// The access that missed, while faulting: (vaddr, access, rip).
    pub fn fault(&self) -> (u64, serac_protocol::pager::Access, u64) {
        (self.fault.0, self.fault.1, self.ctx.rip)
    }

    /// Records the access that missed (the context is the faulting one).
    pub fn set_fault(&mut self, vaddr: u64, access: serac_protocol::pager::Access) {
        self.fault = (vaddr, access);
    }

    /// The frames of the fixed pages, 0 where not allocated yet.
    pub fn fixed_frames(&self) -> (u64, u64) {
        (self.ipc_pa(), self.upcall_pa())
    }

    /// The name given at creation (for logs).
    pub fn name(&self) -> &str {
        let n = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

/// Why a domain could not be created.
#[derive(Debug, Clone, Copy)]
pub enum CreateError {
    /// The first domain's boot image is malformed.
    #[allow(dead_code, reason = "shown through Debug")]
    Image(BootImageError),
    /// A kernel table is full or memory ran out.
    #[allow(dead_code, reason = "shown through Debug")]
    Sys(SysError),
}

impl From<SysError> for CreateError {
    fn from(e: SysError) -> Self {
        CreateError::Sys(e)
    }
}

/// The frame number of a physical address the frame allocator gave
/// (below 2^44, so it fits).
fn to_fn(pa: u64) -> u32 {
    u32::try_from(pa / PAGE_SIZE).unwrap_or(0)
}

/// Writes the global clock page.
pub fn make_clock_page() -> u64 {
    let Some(frame) = alloc_frame() else {
        crate::fatal("clock", format_args!("no frame for the clock page"))
    };
    let mut page = [0u8; 64];
    let info = ClockInfo {
        tsc_hz: tsc_hz(),
        boot_tsc: rdtsc(),
    };
    if info.write(&mut page).is_some() {
        write_phys(frame, &page);
    }
    frame
}

/// Creates an empty, stopped domain with its fixed pages.
pub fn create(k: &mut Kernel, name: &str, class: DomainClass) -> Result<DomainId, SysError> {
    // The record, a slot in the tables and room for a handle chunk.
    if !crate::arch::heap::has_room(2 * core::mem::size_of::<Domain>() + 1024) {
        return Err(SysError::OutOfMemory);
    }
    let slot = match k.free_slots.pop() {
        Some(s) => s,
        None => {
            if k.domains.len() >= k.max_domains {
                return Err(SysError::TableFull);
            }
            k.domains.push(None);
            k.gens.push(0);
            u32::try_from(k.domains.len() - 1).map_err(|_| SysError::TableFull)?
        }
    };
    let gen = k.gens[slot as usize].wrapping_add(1).max(1);
    k.gens[slot as usize] = gen;
    let id = DomainId::new(slot, gen);
    let mut n = [0u8; 16];
    let len = name.len().min(16);
    n[..len].copy_from_slice(&name.as_bytes()[..len]);
    k.domains[slot as usize] = Some(Box::new(Domain {
        id,
        lineage: gen,
        name: n,
        class,
        state: State::Stopped,
        ctx: TrapFrame::default(),
        space: None,
        ipc_fn: 0,
        upcall_fn: 0,
        // A server may hold a handle on every domain (the vnic a
        // notification per port); a guest 60.
        handles: super::handles::Handles::new(match class {
            DomainClass::Server => server_handle_chunks(k.max_domains),
            DomainClass::Guest => GUEST_HANDLE_CHUNKS as usize,
        }),
        pending: Pending::new(),
        upcall_entry: 0,
        pager: DomainId::NONE,
        image: 0,
        queue: None,
        next_in_queue: None,
        send_badge: 0,
        fault: (0, serac_protocol::pager::Access::Read),
        cpu_ticks: 0,
        syscalls: 0,
        faults: 0,
        irq_lines: 0,
        table_resets: 0,
        accept_handle: false,
        wake_on_event: false,
        console: serac_kcore::console::Budget::new(rdtsc()),
        upcall_parked: false,
    }));
    k.created += 1;
    Ok(id)
}

/// Binds frame `f` (owned by `owner`) at `va` in domain `d`, in the STLB.
fn bind(k: &mut Kernel, d: DomainId, va: u64, f: u64, rights: PageRights) -> Result<(), SysError> {
    k.owners.assign(f, Owner::Domain(d))?;
    serac_kcore::owner::map(&k.owners, &mut k.stlb, d, d, va, f, rights)
}

/// Creates the first domain: loads its boot image (page runs digested from
/// its ELF at build time, so no ELF parsing in ring 0) with every page
/// bound and owned by it, binds the boot archive read-only, grants it a
/// contiguous memory pool and a root `DomainCtl` handle on itself.
pub fn create_first(
    k: &mut Kernel,
    name: &str,
    image: &[u8],
    archive: (u64, u64),
) -> Result<DomainId, CreateError> {
    // Checked whole before anything is allocated: runs in range, disjoint, W^X.
    let img = BootImage::parse(image).map_err(CreateError::Image)?;
    let id = create(k, name, DomainClass::Server)?;
    for run in img.runs() {
        for p in 0..run.pages {
            let f = alloc_frame().ok_or(SysError::OutOfMemory)?;
            write_phys(f, img.page_data(&run, p));
            let va = run.vaddr + u64::from(p) * PAGE_SIZE;
            bind(k, id, va, f / PAGE_SIZE, run.rights)?;
        }
    }
    // A conventional initial stack (Ilwaco switches to its own).
    for p in 1..=16 {
        let f = alloc_frame().ok_or(SysError::OutOfMemory)?;
        bind(
            k,
            id,
            layout::INITIAL_STACK_TOP - p * PAGE_SIZE,
            f / PAGE_SIZE,
            PageRights::READ_WRITE,
        )?;
    }
    // The boot archive, read-only. Its frames stay the kernel's... but a
    // binding needs an owner: the first domain owns them, read-only.
    let (apa, alen) = archive;
    let mut off = 0;
    while off < alen {
        let f = (apa + off) / PAGE_SIZE;
        bind(k, id, layout::BOOT_ARCHIVE_ADDR + off, f, PageRights::READ)?;
        off += PAGE_SIZE;
    }
    // The memory grant: three quarters of what is free, contiguous,
    // zeroed. The kernel's own frames (page tables, IPC buffers, upcall
    // pages) follow the resident domains only (`Shrink` gives a swapped-out
    // one's back): about one a domain at 1,000 resident httpd, so a
    // quarter holds tens of thousands, and the rest caches domains.
    let want = crate::arch::paging::free_frames() / 4 * 3;
    let (first, count) = crate::arch::paging::alloc_range(want).ok_or(SysError::OutOfMemory)?;
    zero_frames(first, count);
    for f in first..first + count {
        k.owners.assign(f, Owner::Domain(id))?;
    }
    info!(
        "domain: {name}: {} image pages, archive {} KiB at {:#x}, grant of {} frames ({} MiB) from frame {:#x}",
        img.page_count(),
        alen / 1024,
        layout::BOOT_ARCHIVE_ADDR,
        count,
        count >> 8,
        first
    );
    let chunks = supervisor_handle_chunks(k.max_domains);
    let d = k.domain_mut(id.index).ok_or(SysError::BadHandle)?;
    d.handles = super::handles::Handles::new(chunks);
    d.handles.allocate(HandleEntry {
        kind: HandleKind::DomainCtl,
        rights: HandleRights::SEND
            .union(HandleRights::TRANSFER)
            .union(HandleRights::MAP)
            .union(HandleRights::CONTROL)
            .union(HandleRights::CREATE),
        object: id.to_raw(),
        badge: 0,
    })?;
    let mut ctx = user::user_frame(img.entry, layout::INITIAL_STACK_TOP);
    ctx.rdi = layout::BOOT_ARCHIVE_ADDR;
    ctx.rsi = alen;
    ctx.rdx = first;
    ctx.r10 = count;
    d.ctx = ctx;
    d.state = State::Runnable;
    k.enqueue(id.index);
    Ok(id)
}

/// Starts a stopped domain at `rip` with stack `rsp`.
pub fn start(k: &mut Kernel, i: u32, rip: u64, rsp: u64) -> Result<(), SysError> {
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    if d.state != State::Stopped {
        return Err(SysError::BadArgument);
    }
    d.ctx = user::user_frame(rip, rsp);
    d.state = State::Runnable;
    k.enqueue(i);
    Ok(())
}

/// A fresh page-table cache for `d`: the fixed pages only; everything
/// else is filled from the STLB on faults.
fn new_space(d: &Domain, clock: u64) -> Result<AddressSpace, SysError> {
    let mut space = AddressSpace::new().map_err(|_| SysError::OutOfMemory)?;
    let maps = [
        (layout::CLOCK_PAGE_ADDR, clock, false),
        (layout::IPC_BUFFER_ADDR, d.ipc_pa(), true),
        (layout::UPCALL_PAGE_ADDR, d.upcall_pa(), true),
    ];
    // Fixed pages not allocated yet are allocated by their first fault.
    for (va, pa, w) in maps {
        if pa != 0 && space.map(va, pa, w, false, false).is_err() {
            space.destroy();
            return Err(SysError::OutOfMemory);
        }
    }
    Ok(space)
}

/// Drops domain `i`'s page-table cache (over its budget) and, if it is
/// the running domain, gives it a fresh one at once: the syscall return
/// path does not pass through `dispatch`.
pub fn rebuild_space(k: &mut Kernel, i: u32) {
    let clock = k.clock_frame;
    let running = k.current == Some(i);
    let Some(d) = k.domain_mut(i) else { return };
    d.table_resets = d.table_resets.saturating_add(1);
    if d.table_resets == 1 {
        info!(
            "domain {}:{} {}: page tables over budget; dropped, refilled on demand (only the first time is logged)",
            d.id.index,
            d.id.gen,
            d.name()
        );
    }
    drop_space(k, i);
    let Some(d) = k.domain_mut(i) else { return };
    if running {
        match new_space(d, clock) {
            Ok(space) => {
                space.activate();
                d.space = Some(space);
            }
            Err(_) => {
                k.current = None;
                kill(k, i, Reason::Fault(FaultKind::PageFault, 0, 0, 0));
            }
        }
    }
}

/// Drops domain `i`'s page-table cache, first moving the use bits of its
/// pages into the software TLB, where the frames' owner reads them.
pub fn drop_space(k: &mut Kernel, i: u32) {
    let Some(d) = k.domain_mut(i) else { return };
    let id = d.id;
    let Some(space) = d.space.take() else { return };
    let stlb = &mut k.stlb;
    space.destroy_harvest(&mut |va, bits| {
        if let Some(u) = stlb.used_mut(id, layout::vpn(va)) {
            *u |= bits;
        }
    });
}

/// Builds (or reuses) the domain's page tables and returns the context to
/// enter, delivering pending events in one upcall when enabled.
pub fn dispatch(k: &mut Kernel, i: u32, switched: bool) -> Result<TrapFrame, SysError> {
    let clock = k.clock_frame;
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    if d.space.is_none() {
        d.space = Some(new_space(d, clock)?);
    }
    if let Some(space) = &d.space {
        space.activate();
    }
    if d.upcall_parked && d.upcall_entry != 0 {
        d.upcall_frame()?;
    }
    if d.upcall_entry != 0 && d.upcall_pa() != 0 {
        if switched {
            d.pending.raise(WAKEUP);
        }
        let mut enabled = [0u8; 8];
        read_phys(d.upcall_pa() + OFF_ENABLED as u64, &mut enabled);
        if u64::from_le_bytes(enabled) != 0 {
            if let Some(del) = d.pending.take_all() {
                deliver_upcall(d, del.mask, del.notify_word);
            }
        }
    }
    let mut ctx = d.ctx;
    user::sanitize(&mut ctx);
    Ok(ctx)
}

/// Saves the interrupted context in the upcall page and enters the upcall
/// entry with the mask in rdi and the notification word in rsi.
fn deliver_upcall(d: &mut Domain, mask: u64, word: u64) {
    let c = d.ctx;
    let saved = UpcallFrame {
        regs: [
            c.rip, c.rsp, c.rflags, c.rax, c.rbx, c.rcx, c.rdx, c.rsi, c.rdi, c.rbp, c.r8, c.r9,
            c.r10, c.r11, c.r12, c.r13, c.r14, c.r15,
        ],
    };
    let mut buf = [0u8; UpcallFrame::LEN];
    if saved.encode(&mut buf).is_err() {
        return;
    }
    write_phys(d.upcall_pa() + OFF_FRAME as u64, &buf);
    write_phys(d.upcall_pa() + OFF_ENABLED as u64, &0u64.to_le_bytes());
    d.ctx.rip = d.upcall_entry;
    d.ctx.rdi = mask;
    d.ctx.rsi = word;
    d.ctx.rsp = (c.rsp.wrapping_sub(128)) & !15;
}

/// Ends domain `i`: unbinds its pages, revokes its handles, wakes whoever
/// waits on it, frees its kernel memory and tells the supervisor.
pub fn kill(k: &mut Kernel, i: u32, reason: Reason) {
    let Some(d) = k.domain(i) else { return };
    if d.state == State::Dead {
        return;
    }
    let id = d.id;
    let name_for_log = alloc::string::String::from(d.name());
    teardown(k, i);
    let is_supervisor = id == k.supervisor;
    if let Some(d) = k.domain_mut(i) {
        d.state = State::Dead;
        reason.store(&mut d.ctx);
    }
    match reason {
        Reason::Halted(code) => info!("domain {}:{} {name_for_log} halted with code {code}", id.index, id.gen),
        Reason::Fault(kind, vaddr, rip, error) => warn!(
            "domain {}:{} {name_for_log} faulted: {kind:?} addr={vaddr:#x} rip={rip:#x} error={error:#x}",
            id.index, id.gen
        ),
        Reason::Killed => info!("domain {}:{} {name_for_log} killed", id.index, id.gen),
    }
    if is_supervisor {
        return;
    }
    // Tell the supervisor (queued like a sender; freed once delivered).
    let sup = k.supervisor.index;
    if k.live(k.supervisor).is_some() {
        ipc::enqueue_sender(k, i, sup);
        ipc::try_deliver(k, sup);
    }
}

/// `domain_ctl(Kill)` of a dead domain: forgets it, freeing its slot.
pub fn reap(k: &mut Kernel, i: u32) {
    let sup = k.supervisor.index;
    ipc::remove_queued(k, sup, i);
    // Domains whose faults waited for this pager to come back: it will not.
    for w in parked_on(k, i) {
        let (vaddr, _, rip) = k.domain(w).map_or((0, Access::Read, 0), |d| d.fault());
        kill(k, w, Reason::Fault(FaultKind::PageFault, vaddr, rip, 0));
    }
    release_slot(k, i);
}

/// Domains faulting on pager slot `i` whose fault is in no queue: their
/// pager died; they wait for its restart.
fn parked_on(k: &Kernel, i: u32) -> alloc::vec::Vec<u32> {
    k.domains
        .iter()
        .flatten()
        .filter(|d| matches!(d.state, State::Faulting { pager, delivered: false } if pager == i))
        .map(|d| d.id.index)
        .collect()
}

/// Frees a dead domain's slot for reuse (its generation is remembered).
pub fn release_slot(k: &mut Kernel, i: u32) {
    if let Some(slot) = k.domains.get_mut(i as usize) {
        *slot = None;
        k.free_slots.push(i);
    }
}

/// Drops everything a domain holds except its slot and id.
fn teardown(k: &mut Kernel, i: u32) {
    let _ = k.runq.remove(i);
    let _ = k.timers.cancel(i);
    if k.current == Some(i) {
        k.current = None;
    }
    ipc::detach(k, i);
    let Some(d) = k.domain(i) else { return };
    let id = d.id;
    // Its own bindings: the frames stay with their owners, unbound.
    k.stlb.remove_all_for_domain(id, |_| {});
    if let Some(d) = k.domain_mut(i) {
        let image = core::mem::take(&mut d.image);
        k.images.detach(image.into());
    }
    super::unbind_irqs(k, id);
    k.devices.release(id);
    // Its frames go to the supervisor; with no supervisor (it is the one
    // dying) back to the kernel's pool, but for the boot archive's.
    let sup = k.supervisor;
    let heir = if id == sup || k.live(sup).is_none() {
        None
    } else {
        Some(sup)
    };
    // Frames it owns that are bound in other domains (it was their pager)
    // stay bound when the supervisor inherits them: a pager's crash loses
    // no page, and the supervisor gives them to its next generation. The
    // software TLB still binds each frame once, so nobody else can map
    // them meanwhile. With no heir they are unbound first.
    let mut foreign = 0u64;
    let mut next = 0;
    while let Some(f) = k.owners.next_owned(id, next) {
        next = f + 1;
        if let Some((d, vpn)) = k.stlb.frame_binding(f) {
            foreign += 1;
            if heir.is_none() && k.stlb.remove(d, vpn).is_ok() {
                if let Some(space) = k.domain_mut(d.index).and_then(|x| x.space.as_mut()) {
                    let _ = space.unmap(vpn * PAGE_SIZE);
                }
            }
        }
    }
    if let Some(h) = heir {
        k.images.reassign(id, h);
    }
    let returned = match heir {
        Some(h) => k.owners.reassign_all(id, Owner::Domain(h)) as u64,
        None => {
            let (a0, an) = k.archive_frames;
            let mut n = 0u64;
            let mut next = 0;
            while let Some(f) = k.owners.next_owned(id, next) {
                next = f + 1;
                let _ = k.owners.assign(f, Owner::Kernel);
                if !(a0..a0 + an).contains(&f) && free_frame(f * PAGE_SIZE).is_ok() {
                    n += 1;
                }
            }
            n
        }
    };
    if foreign > 0 || returned > 0 {
        let name = k.domain(i).map_or("?", |d| d.name());
        info!(
            "domain {}:{} {name}: {foreign} of its frames {} in other domains, {returned} returned to the {}",
            id.index,
            id.gen,
            if heir.is_some() { "still bound" } else { "unbound" },
            if heir.is_some() { "supervisor" } else { "kernel's pool" }
        );
    }
    if let Some(d) = k.domain_mut(i) {
        d.handles.revoke_all();
        if let Some(space) = d.space.take() {
            space.destroy();
        }
        for f in [d.ipc_pa(), d.upcall_pa()] {
            if f != 0 {
                let _ = free_frame(f);
            }
        }
        d.ipc_fn = 0;
        d.upcall_fn = 0;
        d.upcall_entry = 0;
        d.pager = DomainId::NONE;
        d.irq_lines = 0;
    }
}

/// Restarts domain `i` in place: same slot and lineage, next generation,
/// stopped, with fresh fixed pages. Returns its new id.
pub fn restart(k: &mut Kernel, i: u32) -> Result<DomainId, SysError> {
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    if d.id == k.supervisor {
        return Err(SysError::BadArgument);
    }
    if d.state == State::Dead {
        // Its exit message may still be queued: it is moot now.
        ipc::remove_queued(k, k.supervisor.index, i);
    }
    teardown(k, i);
    let gen = k.gens[i as usize].wrapping_add(1).max(1);
    k.gens[i as usize] = gen;
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    d.id = DomainId::new(i, gen);
    d.state = State::Stopped;
    d.pending = Pending::new();
    d.ctx = TrapFrame::default();
    let id = d.id;
    // Faults that waited for this pager go to its new generation.
    for w in parked_on(k, i) {
        ipc::enqueue_sender(k, w, i);
    }
    Ok(id)
}
