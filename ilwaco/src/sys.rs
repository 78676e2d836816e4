//! The one module of Ilwaco with `unsafe`: the `syscall` instruction, the
//! `_start` entry, the upcall trampoline and the reads and writes of the
//! fixed pages (clock, IPC buffer, upcall page). Everything else in Ilwaco and
//! in every guest is safe code on top of the typed wrappers here.
//!
//! # What this module assumes about the kernel
//!
//! - `syscall` follows [`serac_protocol::syscall`]: number in `rax`,
//!   arguments in `rdi, rsi, rdx, r10, r8, r9`, result in `rax` (0 or a
//!   [`SysError`] code) and `rdx` (the value). `rcx` and `r11` are clobbered.
//!   To stay robust, the wrappers also treat `rdi, rsi, r8, r9, r10` as
//!   clobbered; they rely only on `rbx, rbp, rsp, r12..r15` (and the memory
//!   the call does not name) surviving the call.
//! - A domain starts at its ELF entry `_start` in ring 3. Nothing is assumed
//!   about its registers, not even `rsp`: `_start` switches to a stack of
//!   [`STACK_SIZE`] bytes in the image's own `.ilwaco_stack` segment (see
//!   `user.ld`), so the kernel only has to bind the `PT_LOAD` segments
//!   (zero-filled past their file size) and the fixed pages.
//! - `rdtsc` is allowed in ring 3 (`CR4.TSD` clear), and the clock page is
//!   mapped read-only at [`CLOCK_PAGE_ADDR`] before the domain first runs.
//! - Upcalls follow [`serac_protocol::upcall`]; see [`crate::upcall`] for how
//!   the trampoline resumes the interrupted context without a syscall.
//!
//! Rust code here is built for `x86_64-unknown-none`, which uses no SSE
//! registers, so the general registers are the whole user context.
#![allow(unsafe_code)]

use core::arch::asm;
#[cfg(not(test))]
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serac_protocol::error::sys_result;
use serac_protocol::header::HEADER_LEN;
use serac_protocol::layout::{
    clock, BOOT_ARCHIVE_ADDR, CLOCK_PAGE_ADDR, IPC_BUFFER_ADDR, IPC_BUFFER_SIZE, PAGE_SIZE,
    UPCALL_PAGE_ADDR,
};
use serac_protocol::syscall::{create_arg, DeviceOp, DomainOp, Syscall, DOMAIN_NAME_MAX};
use serac_protocol::upcall::{UpcallFrame, OFF_ENABLED, OFF_FRAME};
use serac_protocol::{Handle, PageRights, SysError};

/// Bytes of the initial stack `_start` switches to.
pub const STACK_SIZE: usize = 64 * 1024;
/// Bytes of the global heap (a static array in `.bss`, set up before `main`;
/// its pages cost a frame only once touched, through the pager).
pub const HEAP_SIZE: usize = 1024 * 1024;

/// Bytes of the clock page that [`read_clock_page`] copies (the last field's end).
pub const CLOCK_BYTES: usize = clock::OFF_BOOT_TSC + 8;

// ---------------------------------------------------------------------------
// Raw syscalls.

/// The raw six-argument syscall: returns `(rax, rdx)`.
///
/// # Safety
///
/// The arguments must not ask the kernel to write memory that Rust code
/// holds a reference to (the typed wrappers below only pass pointers the
/// kernel reads, and the IPC buffer and upcall page, which no Rust reference
/// ever points to).
#[inline(always)]
pub unsafe fn syscall6(
    num: u64,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
) -> (u64, u64) {
    let rax: u64;
    let rdx: u64;
    // SAFETY: `syscall` enters the kernel, which follows the convention in
    // the module docs: it clobbers only the registers declared here, does not
    // touch our stack (hence `nostack`), and writes memory only as the caller
    // allowed (the memory clobber is implied: no `nomem`/`readonly`).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") num => rax,
            inlateout("rdi") a0 => _,
            inlateout("rsi") a1 => _,
            inlateout("rdx") a2 => rdx,
            inlateout("r10") a3 => _,
            inlateout("r8") a4 => _,
            inlateout("r9") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (rax, rdx)
}

/// The raw syscall without arguments (the unused registers are passed as 0).
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall0(num: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, 0, 0, 0, 0, 0, 0) }
}

/// The raw one-argument syscall.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall1(num: u64, a0: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, a0, 0, 0, 0, 0, 0) }
}

/// The raw two-argument syscall.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall2(num: u64, a0: u64, a1: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, a0, a1, 0, 0, 0, 0) }
}

/// The raw three-argument syscall.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(num: u64, a0: u64, a1: u64, a2: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, a0, a1, a2, 0, 0, 0) }
}

/// The raw four-argument syscall.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall4(num: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, a0, a1, a2, a3, 0, 0) }
}

/// The raw five-argument syscall.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall5(num: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> (u64, u64) {
    // SAFETY: forwarded contract.
    unsafe { syscall6(num, a0, a1, a2, a3, a4, 0) }
}

// ---------------------------------------------------------------------------
// Typed syscalls. None of these lets the kernel write Rust-visible memory:
// IPC data moves through the IPC buffer page, which Rust only touches by copy.

fn nr(s: Syscall) -> u64 {
    u64::from(s.number())
}

/// `debug_write`: the bytes to the serial console; returns what the kernel reports.
pub fn debug_write(bytes: &[u8]) -> Result<u64, SysError> {
    // SAFETY: the kernel only reads `bytes.len()` bytes at `bytes.as_ptr()`,
    // which a live shared borrow covers.
    let (rax, rdx) = unsafe {
        syscall2(
            nr(Syscall::DebugWrite),
            bytes.as_ptr() as u64,
            bytes.len() as u64,
        )
    };
    sys_result(rax, rdx)
}

/// `halt(code)`: ends the calling domain; the supervisor is told the code.
pub fn halt(code: u64) -> ! {
    // SAFETY: `halt` reads only its register argument.
    let _ = unsafe { syscall1(nr(Syscall::Halt), code) };
    // `halt` cannot fail for a live domain; if it ever returns, fault
    // visibly (the supervisor sees `InvalidOpcode`) instead of running on.
    // SAFETY: `ud2` raises #UD; it never returns.
    unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
}

/// `idle(deadline)`: blocks until an event or the absolute TSC `deadline`
/// ([`serac_protocol::syscall::IDLE_FOREVER`] for none); returns the
/// pending-event mask it took.
pub fn idle(deadline_tsc: u64) -> Result<u64, SysError> {
    // SAFETY: `idle` reads only its register argument.
    let (rax, rdx) = unsafe { syscall1(nr(Syscall::Idle), deadline_tsc) };
    sys_result(rax, rdx)
}

/// `call(endpoint)`: sends the message in the IPC buffer and blocks for the
/// reply, which the kernel leaves in the IPC buffer.
pub fn call(endpoint: Handle) -> Result<u64, SysError> {
    ipc_not_lent()?;
    // SAFETY: the kernel reads and writes only the IPC buffer page, which no
    // Rust reference points to (see `ipc_write`/`ipc_read`; a reference of
    // `with_ipc_payload` makes this return above).
    let (rax, rdx) = unsafe { syscall1(nr(Syscall::Call), endpoint.to_raw()) };
    sys_result(rax, rdx)
}

/// `reply_recv(reply)`: answers `reply` (or [`Handle::NONE`]) with the IPC
/// buffer's message and waits for the next one, left in the IPC buffer.
pub fn reply_recv(reply: Handle) -> Result<u64, SysError> {
    reply_recv_until(reply, 0)
}

/// `reply_recv` that gives up at the absolute TSC `deadline` (0: never)
/// with `WouldBlock` when no message has come.
pub fn reply_recv_until(reply: Handle, deadline: u64) -> Result<u64, SysError> {
    reply_recv_with(reply, deadline, 0)
}

/// `reply_recv` with `flags` (`RECV_ACCEPT_HANDLE`: the next message may
/// move a handle into this domain's table; without it such a message is
/// refused and its sender keeps the handle; `RECV_WAKE_ON_EVENT`: see
/// [`reply_recv_or_event`], which also reads the mask this drops).
pub fn reply_recv_with(reply: Handle, deadline: u64, flags: u64) -> Result<u64, SysError> {
    ipc_not_lent()?;
    // SAFETY: as for `call`: only the IPC buffer page is touched.
    let (rax, rdx) = unsafe { syscall3(nr(Syscall::ReplyRecv), reply.to_raw(), deadline, flags) };
    sys_result(rax, rdx)
}

/// How a [`reply_recv_or_event`] wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A message, with its `Reply` handle (`NONE` for a `send`).
    Message(Handle),
    /// No message, but events: the pending mask, taken as `idle` takes it.
    Events(u64),
    /// The deadline passed first.
    Timeout,
}

/// `reply_recv` with `RECV_WAKE_ON_EVENT` (and any other `flags`): waits
/// for a message or for a pending event, whichever comes first (a message
/// waiting already wins), or until `deadline` (0: never).
pub fn reply_recv_or_event(reply: Handle, deadline: u64, flags: u64) -> Result<Woken, SysError> {
    ipc_not_lent()?;
    let flags = flags | serac_protocol::syscall::RECV_WAKE_ON_EVENT;
    // SAFETY: as for `call`: only the IPC buffer page is touched.
    let (rax, rdx) = unsafe { syscall3(nr(Syscall::ReplyRecv), reply.to_raw(), deadline, flags) };
    match sys_result(rax, rdx) {
        Ok(raw) => Ok(Woken::Message(Handle::from_raw(raw))),
        Err(SysError::WouldBlock) if rdx != 0 => Ok(Woken::Events(rdx)),
        Err(SysError::WouldBlock) => Ok(Woken::Timeout),
        Err(e) => Err(e),
    }
}

/// Drops one of this domain's handles (`domain_ctl(NONE, Close, h)`).
/// Closing a `Reply` handle tells its caller `PeerDead`.
pub fn close(h: Handle) -> Result<(), SysError> {
    domain_ctl(Handle::NONE, DomainOp::Close, h.to_raw(), 0).map(|_| ())
}

/// `send(endpoint)`: sends the IPC buffer's message without waiting for a
/// reply (`WouldBlock` if the server is not waiting).
pub fn send(endpoint: Handle) -> Result<u64, SysError> {
    ipc_not_lent()?;
    // SAFETY: the kernel only reads the IPC buffer page.
    let (rax, rdx) = unsafe { syscall1(nr(Syscall::Send), endpoint.to_raw()) };
    sys_result(rax, rdx)
}

/// `notify(notification, bits)`: ORs `bits` into the target's notification word.
pub fn notify(notification: Handle, bits: u64) -> Result<u64, SysError> {
    // SAFETY: `notify` reads only its register arguments.
    let (rax, rdx) = unsafe { syscall2(nr(Syscall::Notify), notification.to_raw(), bits) };
    sys_result(rax, rdx)
}

/// `map(target, vaddr, frame, rights)`: inserts a binding into the domain
/// that the `DomainCtl` handle `target` names.
///
/// Bindings are the kernel's and the pager's business: mapping or unmapping
/// pages of the caller's own image is a logic error (the next access faults
/// to the pager), not something Ilwaco can prevent.
pub fn map(target: Handle, vaddr: u64, frame: u64, rights: PageRights) -> Result<u64, SysError> {
    // SAFETY: `map` reads only its register arguments; it never makes the
    // kernel write into the caller's memory.
    let (rax, rdx) = unsafe {
        syscall4(
            nr(Syscall::Map),
            target.to_raw(),
            vaddr,
            frame,
            u64::from(rights.bits()),
        )
    };
    sys_result(rax, rdx)
}

/// `unmap(target, vaddr)`: removes a binding, returning the frame.
pub fn unmap(target: Handle, vaddr: u64) -> Result<u64, SysError> {
    // SAFETY: `unmap` reads only its register arguments (see `map` for
    // unmapping one's own pages).
    let (rax, rdx) = unsafe { syscall2(nr(Syscall::Unmap), target.to_raw(), vaddr) };
    sys_result(rax, rdx)
}

/// `irq_ack(irq)`: re-enables an interrupt line bound to the caller.
pub fn irq_ack(irq: Handle) -> Result<u64, SysError> {
    // SAFETY: `irq_ack` reads only its register argument.
    let (rax, rdx) = unsafe { syscall1(nr(Syscall::IrqAck), irq.to_raw()) };
    sys_result(rax, rdx)
}

/// `domain_ctl(handle, op, a, b)`: a privileged operation on a domain.
pub fn domain_ctl(ctl: Handle, op: DomainOp, a: u64, b: u64) -> Result<u64, SysError> {
    // The two that write the caller's memory have wrappers of their own.
    if matches!(op, DomainOp::Frames | DomainOp::CopyFrame) {
        return Err(SysError::BadArgument);
    }
    // SAFETY: none of `domain_ctl`'s operations writes the caller's memory
    // (`Create` and `ImageCreate` only read at `b`).
    let (rax, rdx) = unsafe { syscall4(nr(Syscall::DomainCtl), ctl.to_raw(), op as u64, a, b) };
    sys_result(rax, rdx)
}

/// `domain_ctl(ctl, Create, ...)`: a new, stopped domain of `class` (0
/// server, 1 guest) that the kernel calls `name` in its log and in the
/// prefix of the domain's console lines. `name` is at most
/// `DOMAIN_NAME_MAX` bytes of `A-Z a-z 0-9 . _ -`, else `BadArgument`.
/// Returns a `DomainCtl` handle to it.
pub fn create_domain(ctl: Handle, class: u8, name: &str) -> Result<Handle, SysError> {
    if name.len() > DOMAIN_NAME_MAX {
        return Err(SysError::BadArgument);
    }
    let a = create_arg(u64::from(class), name.len());
    // SAFETY: the kernel only reads `name.len()` bytes at `name.as_ptr()`,
    // which a live shared borrow covers, and `Create` writes no memory of ours.
    let (rax, rdx) = unsafe {
        syscall4(
            nr(Syscall::DomainCtl),
            ctl.to_raw(),
            DomainOp::Create as u64,
            a,
            name.as_ptr() as u64,
        )
    };
    sys_result(rax, rdx).map(Handle::from_raw)
}

/// `device(handle, op, a, b)`: the PCI function a `Device` handle names
/// (`DeviceOp`: info, configuration reads and writes, BAR mapping).
pub fn device(dev: Handle, op: DeviceOp, a: u64, b: u64) -> Result<u64, SysError> {
    // SAFETY: `device` reads only its register arguments and never writes
    // the caller's memory. `MapBar` binds device pages where the caller
    // says; a bound page is refused (`AlreadyMapped`), and binding them
    // where its own memory would later fault in is, as with `map`, the
    // caller's logic error (see `map`).
    let (rax, rdx) = unsafe { syscall4(nr(Syscall::Device), dev.to_raw(), op as u64, a, b) };
    sys_result(rax, rdx)
}

// ---------------------------------------------------------------------------
// The fixed pages.

/// Copies the first [`CLOCK_BYTES`] of the clock page (decode with
/// [`clock::ClockInfo::read`]).
pub fn read_clock_page() -> [u8; CLOCK_BYTES] {
    let mut out = [0u8; CLOCK_BYTES];
    let base = CLOCK_PAGE_ADDR as *const u8;
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the kernel maps the clock page read-only at
        // CLOCK_PAGE_ADDR in every domain before it first runs, and
        // CLOCK_BYTES < PAGE_SIZE; volatile because the kernel owns it.
        *b = unsafe { core::ptr::read_volatile(base.add(i)) };
    }
    out
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: `rdtsc` only writes eax/edx; the kernel allows it in ring 3.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Copies `bytes` into the IPC buffer at `offset`; `MessageTooLarge` if it
/// would run past the buffer.
pub fn ipc_write(offset: usize, bytes: &[u8]) -> Result<(), SysError> {
    check_ipc(offset, bytes.len())?;
    ipc_not_lent()?;
    // SAFETY: the kernel maps the IPC buffer RW at IPC_BUFFER_ADDR before the
    // domain runs; [offset, offset + len) is inside it (checked above); no
    // Rust reference points into the page, so this copy aliases nothing.
    unsafe {
        core::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (IPC_BUFFER_ADDR as *mut u8).add(offset),
            bytes.len(),
        );
    }
    Ok(())
}

/// Copies from the IPC buffer at `offset` into `out`; `MessageTooLarge` if
/// it would run past the buffer.
pub fn ipc_read(offset: usize, out: &mut [u8]) -> Result<(), SysError> {
    check_ipc(offset, out.len())?;
    ipc_not_lent()?;
    // SAFETY: as for `ipc_write`; the source is the mapped IPC buffer range.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (IPC_BUFFER_ADDR as *const u8).add(offset),
            out.as_mut_ptr(),
            out.len(),
        );
    }
    Ok(())
}

/// Whether [`with_ipc_payload`] has lent out a reference into the IPC
/// buffer (one thread, but an upcall handler may interrupt the closure).
static IPC_LENT: AtomicBool = AtomicBool::new(false);

/// `WouldBlock` while a [`with_ipc_payload`] closure runs: nothing may
/// write the IPC buffer, or let the kernel write it, under its reference.
fn ipc_not_lent() -> Result<(), SysError> {
    if IPC_LENT.load(Ordering::SeqCst) {
        return Err(SysError::WouldBlock);
    }
    Ok(())
}

/// Runs `f` on the IPC buffer's payload (the bytes after the header) in
/// place, so a message is encoded or decoded without staging copies.
/// While `f` runs, every other access to the IPC buffer from this domain
/// (`call`, `reply_recv`, `send`, `ipc_read`/`ipc_write`, a nested
/// `with_ipc_payload`, also from an upcall handler) fails with
/// `WouldBlock`; this returns `WouldBlock` itself if one is running. The
/// header words (`ipc_set_header`, `ipc_header_words`) lie before the
/// slice and stay usable.
pub fn with_ipc_payload<R>(f: impl FnOnce(&mut [u8]) -> R) -> Result<R, SysError> {
    if IPC_LENT.swap(true, Ordering::SeqCst) {
        return Err(SysError::WouldBlock);
    }
    let len = serac_protocol::layout::MAX_PAYLOAD;
    // SAFETY: the kernel maps the IPC buffer RW at IPC_BUFFER_ADDR before
    // the domain runs and writes it only inside this domain's `call` and
    // `reply_recv` (and reads it in `send`), which refuse to run while
    // IPC_LENT is set, as do all other accessors of the page here; so for
    // as long as `f` holds this slice, it is the only access to those
    // bytes. [HEADER_LEN, HEADER_LEN + MAX_PAYLOAD) is the page's tail.
    let payload = unsafe {
        core::slice::from_raw_parts_mut((IPC_BUFFER_ADDR as *mut u8).add(HEADER_LEN), len)
    };
    let r = f(payload);
    IPC_LENT.store(false, Ordering::SeqCst);
    Ok(r)
}

fn check_ipc(offset: usize, len: usize) -> Result<(), SysError> {
    match offset.checked_add(len) {
        Some(end) if end as u64 <= IPC_BUFFER_SIZE => Ok(()),
        _ => Err(SysError::MessageTooLarge),
    }
}

/// Sets or clears the upcall page's enable flag.
pub fn upcall_set_enabled(on: bool) {
    let flag = (UPCALL_PAGE_ADDR + OFF_ENABLED as u64) as *mut u64;
    // SAFETY: the kernel maps the upcall page RW at UPCALL_PAGE_ADDR before
    // the domain runs; the flag is an aligned u64 in it that no Rust
    // reference points to. Volatile: the kernel reads it.
    unsafe { core::ptr::write_volatile(flag, u64::from(on)) };
}

/// The interrupted context the kernel saved for the current upcall
/// (meaningful only inside an upcall handler).
pub fn upcall_frame() -> UpcallFrame {
    let mut raw = [0u8; UpcallFrame::LEN];
    let base = (UPCALL_PAGE_ADDR + OFF_FRAME as u64) as *const u8;
    for (i, b) in raw.iter_mut().enumerate() {
        // SAFETY: the frame lies inside the mapped upcall page
        // (OFF_FRAME + LEN < PAGE_SIZE); volatile because the kernel writes it.
        *b = unsafe { core::ptr::read_volatile(base.add(i)) };
    }
    UpcallFrame::decode(&raw).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Boot arguments.

/// `rdi, rsi, rdx, r10` as the kernel left them at `_start`, stored by
/// `_start` before anything else runs (docs/abi.md section 10: the first
/// domain gets the boot archive and its memory grant there; every other
/// domain starts with them zero). Atomics, because assembly writes them.
static BOOT_ARGS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Largest boot archive [`boot_archive`] accepts.
pub const BOOT_ARCHIVE_MAX: u64 = 256 * 1024 * 1024;

/// The four argument registers the domain was entered with (`rdi, rsi, rdx,
/// r10`); zeros in host tests.
pub fn boot_args() -> [u64; 4] {
    [0, 1, 2, 3].map(|i| BOOT_ARGS[i].load(Ordering::Relaxed))
}

/// The boot archive, if the kernel handed this domain one: `rdi` is
/// [`BOOT_ARCHIVE_ADDR`] and `rsi` a length in `1..BOOT_ARCHIVE_MAX`.
pub fn boot_archive() -> Option<&'static [u8]> {
    let [addr, len, ..] = boot_args();
    if addr != BOOT_ARCHIVE_ADDR || len == 0 || len >= BOOT_ARCHIVE_MAX {
        return None;
    }
    let len = usize::try_from(len).ok()?;
    // SAFETY: only the kernel sets these registers, and it passes
    // BOOT_ARCHIVE_ADDR only to the first domain, after binding the archive's
    // `len` bytes read-only there for the domain's whole life; nobody writes
    // them (the frames are the kernel's, so no domain can map them
    // writable). Unmapping them is a logic error of the same kind as
    // unmapping one's own image (see `map`). `len` is below 256 MiB, so the
    // range neither wraps nor exceeds `isize::MAX`.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

// ---------------------------------------------------------------------------
// The scratch window.

/// First page of the scratch window: virtual pages in which no Rust object
/// lives (the linker script, the heap, the stack and the fixed pages are all
/// elsewhere), so a domain may bind a frame there with `map(Handle::NONE,
/// ..)` and fill it with [`scratch_write`] / [`scratch_zero`] before handing
/// it on (the supervisor loading images).
pub const SCRATCH_BASE: u64 = 0x0000_0e00_0000_0000;
/// Pages in the scratch window.
pub const SCRATCH_PAGES: u64 = 64;

/// Checks that `[page + offset, + len)` lies in one scratch page; returns
/// the address of its first byte.
fn scratch_range(page: u64, offset: usize, len: usize) -> Result<u64, SysError> {
    let in_window = (SCRATCH_BASE..SCRATCH_BASE + SCRATCH_PAGES * PAGE_SIZE).contains(&page);
    if !in_window || !page.is_multiple_of(PAGE_SIZE) {
        return Err(SysError::BadPointer);
    }
    match offset.checked_add(len) {
        Some(end) if end as u64 <= PAGE_SIZE => Ok(page + offset as u64),
        _ => Err(SysError::BadArgument),
    }
}

/// Copies `bytes` to `page + offset`, where `page` is a page of the scratch
/// window (`BadPointer` otherwise) and the bytes stay inside it
/// (`BadArgument` otherwise). If nothing is bound there, the domain faults.
pub fn scratch_write(page: u64, offset: usize, bytes: &[u8]) -> Result<(), SysError> {
    let dst = scratch_range(page, offset, bytes.len())?;
    // SAFETY: `dst .. dst + len` lies in the scratch window, where no Rust
    // object or reference lives (nothing in Ilwaco or the linker script
    // places anything there), so the write aliases nothing; `bytes` cannot
    // point into the window for the same reason. An unbound page faults (the
    // pager or the supervisor decides), it never reaches other memory.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len()) };
    Ok(())
}

/// Zeroes the scratch page `page` (see [`scratch_write`]).
pub fn scratch_zero(page: u64) -> Result<(), SysError> {
    const LEN: usize = 4096;
    const _: () = assert!(LEN as u64 == PAGE_SIZE);
    let dst = scratch_range(page, 0, LEN)?;
    // SAFETY: as for `scratch_write`: one whole page of the scratch window.
    unsafe { core::ptr::write_bytes(dst as *mut u8, 0, LEN) };
    Ok(())
}

// ---------------------------------------------------------------------------
// Entry, heap and the upcall trampoline (only in the real image: a host test
// binary has its own `_start`).

/// The heap the global allocator hands out.
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

/// Heap bytes allocated now (the allocator's count, its own headers
/// included): what a measurement of memory in use reads.
pub fn heap_in_use() -> usize {
    #[cfg(not(test))]
    {
        ALLOCATOR.lock().used()
    }
    #[cfg(test)]
    {
        0
    }
}

#[cfg(not(test))]
static mut HEAP: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];

#[cfg(not(test))]
extern "C" {
    /// Defined by [`crate::entry!`] in the binary: runs `main`, returns the exit code.
    fn ilwaco_main() -> u64;
}

/// Called by `_start` on the Ilwaco stack: heap, then `main`, then `halt`.
#[cfg(not(test))]
extern "C" fn start() -> ! {
    // SAFETY: `start` runs exactly once (only `_start` calls it, and
    // `_start` is entered once per domain), before any allocation, so this
    // is the only reference ever made to HEAP.
    let heap: &'static mut [MaybeUninit<u8>] = unsafe { &mut *core::ptr::addr_of_mut!(HEAP) };
    ALLOCATOR.lock().init_from_slice(heap);
    // SAFETY: `ilwaco_main` is the `extern "C" fn() -> u64` that
    // `ilwaco::entry!` defines; it takes no arguments and has no preconditions.
    let code = unsafe { ilwaco_main() };
    halt(code)
}

/// Rust side of the upcall trampoline (upcalls are disabled while it runs).
#[cfg(not(test))]
extern "C" fn upcall_dispatch(mask: u64, notify: u64) {
    crate::upcall::dispatch(crate::upcall::Events { mask, notify });
}

#[cfg(not(test))]
extern "C" {
    /// The upcall entry point (see the trampoline below); never called from Rust.
    fn __ilwaco_upcall_entry();
}

/// The address to give the kernel with `domain_ctl(SetUpcall)`.
pub fn upcall_entry_address() -> u64 {
    #[cfg(not(test))]
    {
        __ilwaco_upcall_entry as *const () as usize as u64
    }
    #[cfg(test)]
    {
        0
    }
}

/// Address of saved register `i` of the upcall frame.
#[cfg(not(test))]
const fn frame_slot(i: usize) -> u64 {
    UPCALL_PAGE_ADDR + (OFF_FRAME + 8 * i) as u64
}

// Indices in `UpcallFrame::regs` after rip, rsp, rflags (protocol's order:
// rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15).
#[cfg(not(test))]
const RAX: usize = 3;
#[cfg(not(test))]
const R8: usize = 10;

// `_start`: save the argument registers into BOOT_ARGS (before anything
// clobbers them), ignore whatever rsp the kernel left, switch to our own stack,
// clear rbp (ends frame-pointer backtraces) and the direction flag (the
// SysV ABI requires DF = 0 at calls), and call `start` with rsp 16-aligned
// before the call, as the ABI wants.
//
// `__ilwaco_upcall_entry`: entered by the kernel with upcalls disabled,
// rdi = pending mask, rsi = notification word, rsp below the interrupted
// red zone. It calls `upcall_dispatch(rdi, rsi)`, then resumes the saved
// frame with plain moves and one indirect jump. The frame is stable until
// the enable flag is set again, which is the second-to-last instruction;
// after it, the only instruction left is `jmp [resume_rip]`, and every
// register already holds its interrupted value. If an upcall lands exactly
// there, the kernel saves a frame whose rip is that `jmp`, and the nested
// trampoline then leaves `resume_rip` alone (it still holds the original
// rip), so the original context resumes intact. No stack memory of the
// interrupted context (its red zone included) is touched.
#[cfg(not(test))]
core::arch::global_asm!(
    ".section .text._start,\"ax\",@progbits",
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "    mov qword ptr [rip + {boot_args}], rdi",
    "    mov qword ptr [rip + {boot_args} + 8], rsi",
    "    mov qword ptr [rip + {boot_args} + 16], rdx",
    "    mov qword ptr [rip + {boot_args} + 24], r10",
    "    lea rsp, [rip + __ilwaco_stack_top]",
    "    xor ebp, ebp",
    "    cld",
    "    call {start}",
    "    ud2",
    ".size _start, . - _start",
    "",
    ".section .text.__ilwaco_upcall_entry,\"ax\",@progbits",
    ".globl __ilwaco_upcall_entry",
    ".type __ilwaco_upcall_entry,@function",
    "__ilwaco_upcall_entry:",
    "    cld",
    "    and rsp, -16",
    "    xor ebp, ebp",
    "    call {dispatch}",
    "    mov rax, qword ptr [{f_rip}]",
    "    lea rcx, [rip + __ilwaco_upcall_resume]",
    "    cmp rax, rcx",
    "    je 2f",
    "    mov qword ptr [rip + __ilwaco_resume_rip], rax",
    "2:",
    "    push qword ptr [{f_rflags}]",
    "    popfq",
    // From here on only `mov`s: the restored flags must survive.
    "    mov rax, qword ptr [{f_rax}]",
    "    mov rbx, qword ptr [{f_rax} + 8]",
    "    mov rcx, qword ptr [{f_rax} + 16]",
    "    mov rdx, qword ptr [{f_rax} + 24]",
    "    mov rsi, qword ptr [{f_rax} + 32]",
    "    mov rdi, qword ptr [{f_rax} + 40]",
    "    mov rbp, qword ptr [{f_rax} + 48]",
    "    mov r8,  qword ptr [{f_r8}]",
    "    mov r9,  qword ptr [{f_r8} + 8]",
    "    mov r10, qword ptr [{f_r8} + 16]",
    "    mov r11, qword ptr [{f_r8} + 24]",
    "    mov r12, qword ptr [{f_r8} + 32]",
    "    mov r13, qword ptr [{f_r8} + 40]",
    "    mov r14, qword ptr [{f_r8} + 48]",
    "    mov r15, qword ptr [{f_r8} + 56]",
    "    mov rsp, qword ptr [{f_rsp}]",
    "    mov qword ptr [{enabled}], 1",
    ".globl __ilwaco_upcall_resume",
    "__ilwaco_upcall_resume:",
    "    jmp qword ptr [rip + __ilwaco_resume_rip]",
    ".size __ilwaco_upcall_entry, . - __ilwaco_upcall_entry",
    "",
    ".section .bss.__ilwaco_resume_rip,\"aw\",@nobits",
    ".balign 8",
    "__ilwaco_resume_rip:",
    "    .skip 8",
    "",
    ".section .ilwaco_stack,\"aw\",@nobits",
    ".balign 4096",
    "__ilwaco_stack_bottom:",
    "    .skip {stack_size}",
    "__ilwaco_stack_top:",
    "",
    ".text",
    start = sym start,
    boot_args = sym BOOT_ARGS,
    dispatch = sym upcall_dispatch,
    f_rip = const frame_slot(UpcallFrame::RIP),
    f_rsp = const frame_slot(UpcallFrame::RSP),
    f_rflags = const frame_slot(UpcallFrame::RFLAGS),
    f_rax = const frame_slot(RAX),
    f_r8 = const frame_slot(R8),
    enabled = const UPCALL_PAGE_ADDR + OFF_ENABLED as u64,
    stack_size = const STACK_SIZE,
);

/// A syscall with arbitrary arguments, for tests of the kernel's checks
/// (bad numbers, bad pointers). Safe because it refuses the calls that can
/// change the caller's memory (`map`, `unmap`, `domain_ctl`) or end it
/// (`halt`); every other call only reads what it is pointed at, or writes the
/// IPC buffer, which no Rust reference covers.
pub fn probe(num: u64, a0: u64, a1: u64, a2: u64) -> Result<u64, SysError> {
    let refused = [
        Syscall::Map,
        Syscall::Unmap,
        Syscall::DomainCtl,
        Syscall::Halt,
    ];
    if refused.iter().any(|s| nr(*s) == num) {
        return Err(SysError::BadArgument);
    }
    // SAFETY: see above: none of the permitted calls writes memory that Rust
    // code holds a reference to.
    let (rax, rdx) = unsafe { syscall3(num, a0, a1, a2) };
    sys_result(rax, rdx)
}

/// Reads the `u64` at `addr`, whatever it is. For fault tests: reading an
/// address the domain has no binding for makes the kernel stop the domain.
/// Sound because a domain is single-threaded and any bit pattern is a valid
/// `u64`; an unmapped address never returns.
pub fn peek(addr: u64) -> u64 {
    // SAFETY: a volatile read creates no reference; if the page is mapped the
    // read sees plain bytes (no concurrent writer exists in a one-CPU
    // domain), and if not, the domain faults and never resumes here.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Writes `v` at `addr`, a page the domain has bound read-only (its own
/// code, for hostile tests): the kernel stops the domain, so this never
/// returns unless the kernel let a read-only page be written.
pub fn poke_readonly(addr: u64, v: u64) {
    // SAFETY: no Rust object lives writably at a read-only page, so the
    // write aliases nothing the compiler reasons about; if the kernel let
    // it through, only code bytes change, which is what the caller tests.
    unsafe { core::ptr::write_volatile(addr as *mut u64, v) }
}

/// Reads the `u16` at `addr` with one 2-byte access (device registers
/// care about access sizes). Sound for the same reasons as [`peek`].
pub fn peek16(addr: u64) -> u16 {
    // SAFETY: as for `peek`: a volatile read through a raw address creates
    // no reference, and an unbound address faults instead of returning.
    unsafe { core::ptr::read_volatile(addr as *const u16) }
}

/// Reads the `u32` at `addr` with one 4-byte access (see [`peek16`]).
pub fn peek32(addr: u64) -> u32 {
    // SAFETY: as for `peek16`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// RFLAGS bits [`set_rflags`] may leave set: NT (only `iretq` reads it,
/// and Ilwaco never executes one), IOPL (a ring-3 `popfq` ignores it), AC
/// (checks alignment only with CR0.AM, which the kernel leaves clear) and
/// ID. For hostile tests of what ring 3 can hand the kernel.
pub const HOSTILE_RFLAGS: u64 = (1 << 14) | (3 << 12) | (1 << 18) | (1 << 21);

/// The current RFLAGS.
pub fn rflags() -> u64 {
    let f: u64;
    // SAFETY: `pushfq; pop` reads the flags into a register and leaves the
    // stack as it was.
    unsafe { asm!("pushfq", "pop {}", out(reg) f, options(preserves_flags)) };
    f
}

/// ORs `bits & HOSTILE_RFLAGS` into RFLAGS (they stay set until changed)
/// and returns RFLAGS as it then reads.
pub fn set_rflags(bits: u64) -> u64 {
    let bits = bits & HOSTILE_RFLAGS;
    // SAFETY: only the bits of HOSTILE_RFLAGS change, none of which alters
    // how the Rust code of this domain runs (see there).
    unsafe {
        asm!(
            "pushfq",
            "or qword ptr [rsp], {bits}",
            "popfq",
            bits = in(reg) bits,
        )
    };
    rflags()
}

/// One syscall made with DF (the direction flag) set: the kernel must not
/// run with it. DF is clear again when this returns.
pub fn syscall_with_df(num: u64, a0: u64, a1: u64) -> (u64, u64) {
    if matches!(
        Syscall::try_from(num),
        Ok(Syscall::Map | Syscall::Unmap | Syscall::DomainCtl | Syscall::Halt)
    ) {
        return (u64::from(SysError::BadArgument.code()), 0);
    }
    let rax: u64;
    let rdx: u64;
    // SAFETY: as for `probe`: the permitted calls write no memory Rust code
    // refers to; DF is set only between `std` and `cld`, around `syscall`.
    unsafe {
        asm!(
            "std",
            "syscall",
            "cld",
            inlateout("rax") num => rax,
            inlateout("rdi") a0 => _,
            inlateout("rsi") a1 => _,
            inlateout("rdx") 0u64 => rdx,
            lateout("rcx") _, lateout("r11") _,
            lateout("r8") _, lateout("r9") _, lateout("r10") _,
            options(nostack),
        )
    };
    (rax, rdx)
}

/// Which floating-point or vector unit [`fpu_probe`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FpuUnit {
    /// `fld1; fstp` (x87).
    X87,
    /// `pcmpeqb mm0, mm0; movq` (MMX).
    Mmx,
    /// `pcmpeqb xmm0, xmm0; movq` (SSE2).
    Sse,
}

/// Executes one instruction of `unit` and returns what it computed. The
/// kernel makes these trap (nothing saves their state per domain, so they
/// would be a channel between domains): the domain faults and this never
/// returns. A return means the unit worked, and is a kernel defect.
pub fn fpu_probe(unit: FpuUnit) -> u64 {
    let mut out = 0u64;
    let p = &raw mut out;
    // SAFETY: each sequence writes only the 8 bytes at `p`, a local; the
    // registers it uses are not Rust's (the target is soft-float).
    unsafe {
        match unit {
            FpuUnit::X87 => asm!("fld1", "fstp qword ptr [{p}]", p = in(reg) p, options(nostack)),
            FpuUnit::Mmx => asm!(
                "pcmpeqb mm0, mm0",
                "movq qword ptr [{p}], mm0",
                p = in(reg) p,
                options(nostack)
            ),
            FpuUnit::Sse => asm!(
                "pcmpeqb xmm0, xmm0",
                "movq qword ptr [{p}], xmm0",
                p = in(reg) p,
                options(nostack)
            ),
        }
    }
    out
}

/// Writes the first two header words of the IPC buffer (label and length;
/// the handle to move). The badge word is the kernel's to fill. Word
/// stores instead of a byte copy: this is on every RPC's path.
pub fn ipc_set_header(label: u32, len: u32, handle: u64) {
    let p = IPC_BUFFER_ADDR as *mut u64;
    // SAFETY: the IPC buffer is mapped read-write at IPC_BUFFER_ADDR (page
    // aligned, so the words are aligned) before the domain runs, and no
    // Rust reference points into it, so these stores alias nothing.
    unsafe {
        core::ptr::write_volatile(p, u64::from(label) | (u64::from(len) << 32));
        core::ptr::write_volatile(p.add(1), handle);
    }
}

/// The IPC buffer's three header words (label and length, handle, badge).
pub fn ipc_header_words() -> [u64; 3] {
    let p = IPC_BUFFER_ADDR as *const u64;
    // SAFETY: as for `ipc_set_header`; reads of three aligned words.
    unsafe {
        [
            core::ptr::read_volatile(p),
            core::ptr::read_volatile(p.add(1)),
            core::ptr::read_volatile(p.add(2)),
        ]
    }
}

/// Longest wait [`fuzz_syscall`] lets an `idle` or `reply_recv` ask for.
pub const FUZZ_MAX_WAIT_NS: u64 = 1_000_000;

/// Makes any syscall with arbitrary arguments, for adversarial tests of the
/// kernel, returning the raw `(rax, rdx)`. The kernel must survive whatever
/// a domain asks, so almost nothing is pinned, and what is pinned protects
/// only the caller's own run, never the kernel or another domain:
///
/// - `halt` is refused (answered with `BadArgument`'s code): it would end
///   the caller before it has made its calls. A fuzzer halts itself, with
///   any code, when it is done.
/// - An `idle` or `reply_recv` deadline more than [`FUZZ_MAX_WAIT_NS`]
///   ahead (`IDLE_FOREVER`, and `reply_recv`'s 0, which both mean for ever,
///   included) is pulled in to `now + deadline % FUZZ_MAX_WAIT_NS`: a wait
///   for ever would never end the caller's run, and nothing but that run
///   waits on it. Past deadlines (a yield) pass unchanged.
///
/// Everything else passes unchanged, including what wrecks the caller:
/// `map` and `unmap` anywhere in its own space, and `domain_ctl(SetUpcall)`
/// to any address.
///
/// Memory safety of the caller, call by call:
/// - `map`/`unmap` cannot reach memory Rust uses in a domain the supervisor
///   loads eagerly with no pager (`eager=yes`): every page of its image,
///   `.bss`, heap and stack is then bound to a frame the supervisor owns,
///   so the kernel refuses to bind over it (`AlreadyMapped`) or to unbind
///   it (`FrameNotOwned`); the caller only binds and unbinds frames of its
///   own at addresses no Rust object lives at. With a pager that is not
///   so (a page not yet touched can be bound under the allocator's feet):
///   call this only in an eager domain.
/// - The kernel writes only the IPC buffer and the upcall page for the
///   caller, and no Rust reference covers either.
/// - `SetUpcall` with an arbitrary entry is the one that is not sound:
///   once upcalls are enabled, the next upcall enters the caller at that
///   address, and from then on its behaviour is whatever the bytes there
///   do (usually a fault that ends it). That is deliberate: only a domain
///   that exists to attack the kernel calls this, and what it does to
///   itself is nobody else's concern. A caller that never enables upcalls
///   (`upcall::enable`) keeps its control flow.
pub fn fuzz_syscall(num: u64, mut a: [u64; 6]) -> (u64, u64) {
    // `forever`: the deadline that means "no deadline" (0 for reply_recv).
    let bounded = |deadline: u64, forever: Option<u64>| {
        let now = rdtsc();
        let hz = crate::time::tsc_hz().unwrap_or(1_000_000_000);
        let max = (hz / (1_000_000_000 / FUZZ_MAX_WAIT_NS)).max(1);
        if Some(deadline) == forever || deadline > now.saturating_add(max) {
            now.saturating_add(1 + deadline % max)
        } else {
            deadline
        }
    };
    match Syscall::try_from(num) {
        Ok(Syscall::Halt) => return (u64::from(SysError::BadArgument.code()), 0),
        Ok(Syscall::Idle) => a[0] = bounded(a[0], None),
        Ok(Syscall::ReplyRecv) => a[1] = bounded(a[1], Some(0)),
        _ => {}
    }
    if matches!(
        Syscall::try_from(num),
        Ok(Syscall::Call | Syscall::ReplyRecv | Syscall::Send)
    ) && ipc_not_lent().is_err()
    {
        return (u64::from(SysError::WouldBlock.code()), 0);
    }
    // SAFETY: the memory-safety argument is in the doc comment above: no
    // call writes memory Rust holds a reference to (in an eager domain);
    // SetUpcall can redirect the caller's own control flow, deliberately.
    unsafe { syscall6(num, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// A page-aligned page of memory, for [`copy_frame`].
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct PageBuf(pub [u8; 4096]);

impl PageBuf {
    /// A zeroed page.
    pub const fn zeroed() -> PageBuf {
        PageBuf([0; 4096])
    }
}

/// `domain_ctl(NONE, Frames, ..)`: asks the kernel about the caller's
/// frames `frames` (at most `FRAMES_MAX`) with `flags` (`FRAMES_TAKE`,
/// `FRAMES_UNBIND`, `FRAMES_IF_CLEAN`), writing one answer per frame to
/// `out` (which must be as long). The batch travels in the IPC payload,
/// so this fails with `WouldBlock` while the payload is lent.
pub fn frames(
    frames: &[u64],
    flags: u64,
    out: &mut [serac_protocol::syscall::FrameRecord],
) -> Result<(), SysError> {
    use serac_protocol::syscall::{FrameRecord, FRAMES_MAX, FRAME_RECORD_LEN};
    if frames.len() > FRAMES_MAX || out.len() != frames.len() {
        return Err(SysError::BadArgument);
    }
    if IPC_LENT.swap(true, Ordering::SeqCst) {
        return Err(SysError::WouldBlock);
    }
    let base = (IPC_BUFFER_ADDR + HEADER_LEN as u64) as *mut u8;
    for (i, &f) in frames.iter().enumerate() {
        let rec = FrameRecord::request(f);
        for (j, b) in rec.iter().enumerate() {
            // SAFETY: the IPC buffer is mapped RW at IPC_BUFFER_ADDR and,
            // with IPC_LENT set, nothing else here touches it; the offset
            // is below HEADER_LEN + FRAMES_MAX * FRAME_RECORD_LEN, inside
            // the page.
            unsafe { core::ptr::write_volatile(base.add(i * FRAME_RECORD_LEN + j), *b) };
        }
    }
    let r = {
        // SAFETY: `Frames` writes only the records in the IPC payload,
        // which no Rust reference covers (IPC_LENT is held).
        let (rax, rdx) = unsafe {
            syscall4(
                nr(Syscall::DomainCtl),
                Handle::NONE.to_raw(),
                DomainOp::Frames as u64,
                frames.len() as u64,
                flags,
            )
        };
        sys_result(rax, rdx)
    };
    if r.is_ok() {
        for (i, (o, &f)) in out.iter_mut().zip(frames).enumerate() {
            let mut raw = [0u8; FRAME_RECORD_LEN];
            for (j, b) in raw.iter_mut().enumerate() {
                // SAFETY: as for the writes above.
                *b = unsafe { core::ptr::read_volatile(base.add(i * FRAME_RECORD_LEN + j)) };
            }
            *o = FrameRecord::answer(f, &raw).unwrap_or_default();
        }
    }
    IPC_LENT.store(false, Ordering::SeqCst);
    r.map(|_| ())
}

/// `domain_ctl(NONE, CopyFrame, frame, dst)`: copies the caller's frame
/// `frame`, wherever it is bound, into `dst`, and returns its use bits
/// (`USED_ACCESSED | USED_DIRTY`), which the kernel takes (clears).
pub fn copy_frame(frame: u64, dst: &mut PageBuf) -> Result<u8, SysError> {
    let va = dst as *mut PageBuf as u64;
    // SAFETY: the kernel writes exactly the 4 KiB page at `va`, which `dst`
    // borrows mutably for the call, and nothing else of the caller's.
    let (rax, rdx) = unsafe {
        syscall4(
            nr(Syscall::DomainCtl),
            Handle::NONE.to_raw(),
            DomainOp::CopyFrame as u64,
            frame,
            va,
        )
    };
    sys_result(rax, rdx).map(|b| (b & 0xff) as u8)
}

/// `domain_ctl(NONE, Shrink, domain)`: the pager takes back a waiting
/// client's page tables, IPC buffer and upcall page.
pub fn shrink(domain: serac_protocol::DomainId) -> Result<(), SysError> {
    domain_ctl(Handle::NONE, DomainOp::Shrink, domain.to_raw(), 0).map(|_| ())
}
