//! Syscall dispatch: decode the number, check every argument, act.
//!
//! Each call returns `Ok(Some(value))` to resume the caller at once with
//! rax = 0, rdx = value; `Ok(None)` when the caller blocked (its result is
//! written when it is woken); or an error, which the caller gets in rax.

use serac_kcore::handles::HandleEntry;
use serac_protocol::header::HEADER_LEN;
use serac_protocol::layout::{self, USER_SPACE};
use serac_protocol::supervisor::DomainClass;
use serac_protocol::syscall::{
    self, valid_domain_name, DomainCounter, DomainOp, CONSOLE_READ_MAX, DEBUG_WRITE_MAX,
    DOMAIN_NAME_MAX,
};
use serac_protocol::user::UserRange;
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, SysError, Syscall};

use super::domain::{self, Reason, State};
use super::{ipc, mem, Kernel};
use crate::arch::paging::{read_phys, write_phys};

/// Handles the syscall of running domain `i`, whose registers are saved.
pub fn dispatch(k: &mut Kernel, i: u32) {
    let Some(d) = k.domain_mut(i) else { return };
    d.syscalls += 1;
    let c = d.ctx;
    let result = match Syscall::try_from(c.rax) {
        Err(e) => Err(e),
        Ok(Syscall::DebugWrite) => debug_write(k, i, c.rdi, c.rsi),
        Ok(Syscall::Halt) => {
            domain::kill(k, i, Reason::Halted(c.rdi));
            return;
        }
        Ok(Syscall::Idle) => idle(k, i, c.rdi),
        Ok(Syscall::Call) => ipc::call(k, i, Handle::from_raw(c.rdi), true),
        Ok(Syscall::Send) => ipc::call(k, i, Handle::from_raw(c.rdi), false),
        Ok(Syscall::ReplyRecv) => ipc::reply_recv(k, i, Handle::from_raw(c.rdi), c.rsi, c.rdx),
        Ok(Syscall::Notify) => ipc::notify(k, i, Handle::from_raw(c.rdi), c.rsi),
        Ok(Syscall::Map) => mem::map(k, i, Handle::from_raw(c.rdi), c.rsi, c.rdx, c.r10),
        Ok(Syscall::Unmap) => mem::unmap(k, i, Handle::from_raw(c.rdi), c.rsi),
        Ok(Syscall::IrqAck) => irq_ack(k, i, Handle::from_raw(c.rdi)),
        Ok(Syscall::DomainCtl) => domain_ctl(k, i, Handle::from_raw(c.rdi), c.rsi, c.rdx, c.r10),
        Ok(Syscall::Device) => {
            super::device::call(k, i, Handle::from_raw(c.rdi), c.rsi, c.rdx, c.r10)
        }
    };
    let Some(d) = k.domain_mut(i) else { return };
    match result {
        Ok(Some(v)) => {
            d.ctx.rax = 0;
            d.ctx.rdx = v;
        }
        Ok(None) => {}
        Err(e) => {
            d.ctx.rax = u64::from(e.code());
            d.ctx.rdx = 0;
            // A failed blocking call leaves the caller running.
            if d.state != State::Dead {
                d.state = State::Runnable;
            }
        }
    }
}

/// Copies a checked user buffer to the console, page by page through the
/// software TLB (never through a raw user pointer). The kernel prefixes
/// each line with the writer's id and name; each domain but the first has
/// a byte budget (`serac_kcore::console::Budget`), and what goes over it is
/// dropped, counted and reported once per episode. Returns the bytes
/// written, which may be fewer than `len`.
fn debug_write(k: &mut Kernel, i: u32, addr: u64, len: u64) -> Result<Option<u64>, SysError> {
    if len == 0 {
        // Nothing is read, so no pointer is checked (like write(2)).
        return Ok(Some(0));
    }
    if len > DEBUG_WRITE_MAX {
        return Err(SysError::MessageTooLarge);
    }
    let mut buf = [0u8; DEBUG_WRITE_MAX as usize];
    let n = len as usize;
    read_user(k, i, addr, &mut buf[..n])?;
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let first = d.id == k.supervisor;
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    let allowed = if first {
        n as u64
    } else {
        let g = d.console.take(
            crate::arch::time::rdtsc(),
            crate::arch::time::tsc_hz(),
            n as u64,
        );
        if g.newly_throttled {
            log::warn!(
                "domain {}:{} {}: console output over its budget; dropping the rest ({} bytes dropped so far)",
                d.id.index,
                d.id.gen,
                d.name(),
                d.console.dropped()
            );
        }
        g.bytes
    };
    let shown = &buf[..allowed as usize];
    crate::arch::serial::domain_write(d.id.index, d.id.gen, d.name(), shown);
    Ok(Some(allowed))
}

/// Copies `out.len()` bytes of domain `i`'s memory at `addr` into `out`,
/// page by page through the software TLB and the fixed pages (never
/// through a raw user pointer). `BadPointer` for anything unbound.
pub(super) fn read_user(k: &Kernel, i: u32, addr: u64, out: &mut [u8]) -> Result<(), SysError> {
    if out.is_empty() {
        return Ok(());
    }
    let range = UserRange::check(addr, out.len() as u64, &layout::SYSCALL_SPACE)?;
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let mut n = 0;
    for vpn in range.pages() {
        let Some((off, chunk)) = range.chunk_in_page(vpn) else {
            continue;
        };
        let frame = match vpn << 12 {
            layout::CLOCK_PAGE_ADDR => k.clock_frame,
            layout::IPC_BUFFER_ADDR => nonzero(d.fixed_frames().0)?,
            layout::UPCALL_PAGE_ADDR => nonzero(d.fixed_frames().1)?,
            _ => {
                let m = k.stlb.lookup(d.id, vpn).map(|m| m.frame);
                let f = m.or_else(|| k.images.lookup(d.image.into(), vpn).map(|x| x.0));
                f.ok_or(SysError::BadPointer)? * 4096
            }
        };
        let to = out
            .get_mut(n..n + chunk as usize)
            .ok_or(SysError::BadPointer)?;
        read_phys(frame + off, to);
        n += chunk as usize;
    }
    Ok(())
}

/// `irq_ack(irq)`: unmask a line bound to the caller.
fn irq_ack(k: &mut Kernel, i: u32, h: Handle) -> Result<Option<u64>, SysError> {
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let e = d
        .handles
        .lookup_as(h, HandleKind::Irq, HandleRights::default())?;
    let gsi = u32::try_from(e.object).map_err(|_| SysError::BadHandle)?;
    let id = d.id;
    match k.irqs.get(gsi as usize).copied().flatten() {
        Some((owner, _)) if owner == id => {
            crate::arch::apic::route_gsi(gsi, false);
            Ok(Some(0))
        }
        _ => Err(SysError::StaleHandle),
    }
}

/// A fixed page not allocated yet holds nothing to read.
fn nonzero(frame: u64) -> Result<u64, SysError> {
    if frame == 0 {
        Err(SysError::BadPointer)
    } else {
        Ok(frame)
    }
}

/// `idle(deadline)`: returns at once with pending events, else blocks.
fn idle(k: &mut Kernel, i: u32, deadline: u64) -> Result<Option<u64>, SysError> {
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    if let Some(t) = d.pending.take_all() {
        return Ok(Some(t.mask));
    }
    let now = crate::arch::time::rdtsc();
    d.ctx.rax = 0;
    d.ctx.rdx = 0;
    if deadline <= now {
        // A past deadline is a yield: to the back of the class.
        d.ctx.rdx = serac_protocol::upcall::ALARM;
        let class = d.class;
        k.current = None;
        let _ = k.runq.enqueue(i, class);
        return Ok(None);
    }
    d.state = State::Idle;
    // Page tables are only a cache of the software TLB: a domain that idles
    // for long gives them back and refills them by faults when it wakes.
    let long = deadline.saturating_sub(now) > crate::arch::time::tsc_hz() / 10;
    if long {
        domain::drop_space(k, i);
    }
    k.current = None;
    if deadline != serac_protocol::syscall::IDLE_FOREVER {
        k.timers.set(i, deadline)?;
    }
    Ok(None)
}

/// The domain a `DomainCtl` handle names, checked live, with `need`.
fn ctl_target(k: &Kernel, i: u32, h: Handle, need: HandleRights) -> Result<DomainId, SysError> {
    let id = ctl_target_any(k, i, h, need)?;
    k.live(id).map(|t| t.id).ok_or(SysError::StaleHandle)
}

/// Like [`ctl_target`], but the domain may have ended (Kill reaps it,
/// Restart revives it, counters stay readable).
fn ctl_target_any(k: &Kernel, i: u32, h: Handle, need: HandleRights) -> Result<DomainId, SysError> {
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    if h.is_none() {
        return Ok(d.id);
    }
    let e = d.handles.lookup_as(h, HandleKind::DomainCtl, need)?;
    let id = DomainId::from_raw(e.object);
    match k.domain(id.index) {
        Some(t) if t.id == id => Ok(id),
        _ => Err(SysError::StaleHandle),
    }
}

/// Device power goes only through a handle with `CREATE` (the root).
fn require_root(k: &Kernel, i: u32, h: Handle) -> Result<(), SysError> {
    let rights = k
        .domain(i)
        .ok_or(SysError::BadHandle)?
        .handles
        .lookup(h)?
        .rights;
    if rights.contains(HandleRights::CREATE) {
        Ok(())
    } else {
        Err(SysError::NoRights)
    }
}

/// `domain_ctl(handle, op, a, b)`.
fn domain_ctl(
    k: &mut Kernel,
    i: u32,
    h: Handle,
    op: u64,
    a: u64,
    b: u64,
) -> Result<Option<u64>, SysError> {
    let op = DomainOp::try_from(op)?;
    // Without a handle a domain may only act on itself, harmlessly; it
    // closes only its own handles.
    if h.is_none()
        && !matches!(
            op,
            DomainOp::SetUpcall
                | DomainOp::ReadCounter
                | DomainOp::Close
                | DomainOp::Frames
                | DomainOp::CopyFrame
                | DomainOp::Shrink
                | DomainOp::ImageCreate
                | DomainOp::ImageRelease
        )
    {
        return Err(SysError::BadHandle);
    }
    // The caller's own frames and its clients: authority is ownership and
    // being the pager, not a handle.
    match op {
        DomainOp::Frames
        | DomainOp::CopyFrame
        | DomainOp::Shrink
        | DomainOp::ImageCreate
        | DomainOp::ImageRelease
            if !h.is_none() =>
        {
            return Err(SysError::BadArgument);
        }
        DomainOp::ImageCreate => return mem::image_create(k, i, a, b),
        DomainOp::ImageRelease => {
            let me = k.domain(i).ok_or(SysError::BadHandle)?.id;
            return k
                .images
                .release(&mut k.owners, a, me)
                .map(|n| Some(n.into()));
        }
        DomainOp::Frames => return mem::frames(k, i, a, b),
        DomainOp::CopyFrame => return mem::copy_frame(k, i, a, b),
        DomainOp::Shrink => return mem::shrink(k, i, a),
        _ => {}
    }
    if op == DomainOp::Close {
        if !h.is_none() {
            return Err(SysError::BadArgument);
        }
        let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
        let e = d.handles.revoke(Handle::from_raw(a))?;
        if e.kind == HandleKind::Reply {
            ipc::abandon(k, i, DomainId::from_raw(e.object));
        }
        return Ok(Some(0));
    }
    let need = match op {
        DomainOp::Create => HandleRights::CREATE,
        _ => HandleRights::CONTROL,
    };
    let t = match op {
        DomainOp::Kill | DomainOp::Restart | DomainOp::ReadCounter => {
            ctl_target_any(k, i, h, need)?
        }
        _ => ctl_target(k, i, h, need)?,
    };
    match op {
        DomainOp::Create => {
            let class = match a & 0xff {
                0 => DomainClass::Server,
                1 => DomainClass::Guest,
                _ => return Err(SysError::BadArgument),
            };
            let len = (a >> 8) as usize;
            if a >> 16 != 0 || len > DOMAIN_NAME_MAX {
                return Err(SysError::BadArgument);
            }
            let mut name = [0u8; DOMAIN_NAME_MAX];
            read_user(k, i, b, &mut name[..len])?;
            if !valid_domain_name(&name[..len]) {
                return Err(SysError::BadArgument);
            }
            let name = core::str::from_utf8(&name[..len]).map_err(|_| SysError::BadArgument)?;
            let id = domain::create(k, if name.is_empty() { "domain" } else { name }, class)?;
            let handle = k
                .domain_mut(i)
                .ok_or(SysError::BadHandle)?
                .handles
                .allocate(HandleEntry {
                    kind: HandleKind::DomainCtl,
                    rights: HandleRights::SEND
                        .union(HandleRights::TRANSFER)
                        .union(HandleRights::MAP)
                        .union(HandleRights::CONTROL),
                    object: id.to_raw(),
                    badge: 0,
                });
            match handle {
                Ok(h) => Ok(Some(h.to_raw())),
                Err(e) => {
                    domain::kill(k, id.index, Reason::Killed);
                    Err(e)
                }
            }
        }
        DomainOp::Start => {
            if !(USER_SPACE.contains(&a)) {
                return Err(SysError::BadPointer);
            }
            domain::start(k, t.index, a, b)?;
            Ok(Some(0))
        }
        DomainOp::Kill => {
            if k.domain(t.index).is_some_and(|d| d.state == State::Dead) {
                domain::reap(k, t.index);
            } else {
                domain::kill(k, t.index, Reason::Killed);
            }
            Ok(Some(0))
        }
        DomainOp::GiveFrame => {
            let caller = k.domain(i).ok_or(SysError::BadHandle)?.id;
            // b = 1: even a bound frame, binding kept; only the first
            // domain, which hands a restarted pager back its frames.
            let bound_ok = match b {
                0 => false,
                1 if caller == k.supervisor => true,
                1 => return Err(SysError::NoRights),
                _ => return Err(SysError::BadArgument),
            };
            k.owners.transfer(&k.stlb, a, caller, t, bound_ok)?;
            Ok(Some(0))
        }
        DomainOp::SetUpcall => {
            if a != 0 && !USER_SPACE.contains(&a) {
                return Err(SysError::BadPointer);
            }
            k.domain_mut(t.index)
                .ok_or(SysError::BadHandle)?
                .upcall_entry = a;
            Ok(Some(0))
        }
        DomainOp::SetPager => {
            let (pager, _) = ipc::resolve_target(k, i, Handle::from_raw(a), HandleKind::Endpoint)?;
            k.domain_mut(t.index)
                .ok_or(SysError::BadHandle)?
                .set_pager(pager);
            Ok(Some(0))
        }
        DomainOp::ReadCounter => {
            let d = k.domain(t.index).ok_or(SysError::BadHandle)?;
            let v = match DomainCounter::try_from(a)? {
                DomainCounter::CpuTicks => d.cpu_ticks,
                DomainCounter::EventsRaised => d.pending.events_raised(),
                DomainCounter::UpcallsDelivered => d.pending.upcalls_delivered(),
                DomainCounter::Faults => d.faults,
                DomainCounter::Id => d.id.to_raw(),
                DomainCounter::HandleBase => u64::from(d.handles.first_gen()),
                DomainCounter::State => match d.state {
                    State::Stopped => syscall::STATE_STOPPED,
                    State::Runnable => syscall::STATE_RUNNABLE,
                    State::Idle => syscall::STATE_IDLE,
                    State::Receiving => syscall::STATE_RECEIVING,
                    State::Dead => syscall::STATE_DEAD,
                    _ => syscall::STATE_BLOCKED,
                },
            };
            Ok(Some(v))
        }
        DomainOp::Grant => {
            let recipient = ctl_target(k, i, Handle::from_raw(a), HandleRights::CONTROL)?;
            let kind = HandleKind::try_from((b & 0xff) as u8)?;
            let rights = HandleRights::from_bits(b >> 8)?;
            // No amplification: the grant carries no right the caller's
            // handle on this domain lacks.
            let held = k
                .domain(i)
                .ok_or(SysError::BadHandle)?
                .handles
                .lookup(h)?
                .rights;
            if !held.contains(rights) {
                return Err(SysError::NoRights);
            }
            if !matches!(kind, HandleKind::Endpoint | HandleKind::Notification) {
                return Err(SysError::BadArgument);
            }
            let entry = HandleEntry {
                kind,
                rights,
                object: t.to_raw(),
                badge: recipient.to_raw(),
            };
            let r = k.domain_mut(recipient.index).ok_or(SysError::BadHandle)?;
            let granted = r.handles.allocate(entry)?;
            // A domain not started yet keeps its handles packed (32 bytes
            // each, not a 528-byte chunk): the supervisor builds every
            // instance before it starts them, 100,000 at once.
            if r.state == State::Stopped {
                r.handles.pack();
            }
            Ok(Some(granted.to_raw()))
        }
        DomainOp::BindIrq => {
            require_root(k, i, h)?;
            // `a`: the GSI, then bit 32 level-triggered, bit 33 active-low.
            let gsi = u32::try_from(a & 0xffff_ffff).map_err(|_| SysError::BadArgument)?;
            let (level, active_low) = (a >> 32 & 1 != 0, a >> 33 & 1 != 0);
            if a >> 34 != 0 {
                return Err(SysError::BadArgument);
            }
            let to = ctl_target(k, i, Handle::from_raw(b), HandleRights::CONTROL)?;
            let d = k.domain_mut(to.index).ok_or(SysError::BadHandle)?;
            let n = u32::from(d.irq_lines);
            serac_protocol::upcall::irq_bit(n)?;
            let handle = d.handles.allocate(HandleEntry {
                kind: HandleKind::Irq,
                rights: HandleRights::default(),
                object: u64::from(gsi),
                badge: u64::from(n),
            })?;
            if let Err(e) = super::bind_irq(k, gsi, level, active_low, to, n) {
                if let Some(d) = k.domain_mut(to.index) {
                    let _ = d.handles.revoke(handle);
                }
                return Err(e);
            }
            if let Some(d) = k.domain_mut(to.index) {
                d.irq_lines = d.irq_lines.saturating_add(1);
            }
            Ok(Some(handle.to_raw()))
        }
        DomainOp::ImageAttach => {
            let me = k.domain(i).ok_or(SysError::BadHandle)?.id;
            if k.domain(t.index).ok_or(SysError::BadHandle)?.image != 0 {
                return Err(SysError::AlreadyMapped);
            }
            k.images.attach(a, me)?;
            let d = k.domain_mut(t.index).ok_or(SysError::BadHandle)?;
            d.image = u16::try_from(a).map_err(|_| SysError::BadArgument)?;
            Ok(Some(0))
        }
        DomainOp::Translate => mem::translate(k, t, a).map(Some),
        DomainOp::ConsoleInput | DomainOp::ConsoleLog => {
            require_root(k, i, h)?;
            // The IPC buffer first: input taken is never lost to an error.
            let at = k.domain_mut(i).ok_or(SysError::BadHandle)?.ipc_frame()? + HEADER_LEN as u64;
            let mut buf = [0u8; CONSOLE_READ_MAX];
            let n = if op == DomainOp::ConsoleInput {
                crate::arch::serial::take_input(&mut buf)
            } else {
                crate::arch::serial::history(usize::try_from(a).unwrap_or(usize::MAX), &mut buf)
            };
            write_phys(at, buf.get(..n).unwrap_or(&[]));
            Ok(Some(n as u64))
        }
        DomainOp::Close
        | DomainOp::Frames
        | DomainOp::CopyFrame
        | DomainOp::Shrink
        | DomainOp::ImageCreate
        | DomainOp::ImageRelease => Err(SysError::BadArgument),
        DomainOp::GrantDevice | DomainOp::PciFunction => {
            require_root(k, i, h)?;
            if op == DomainOp::PciFunction {
                return super::device::function_info(k, a, b).map(Some);
            }
            let to = ctl_target(k, i, Handle::from_raw(b), HandleRights::CONTROL)?;
            super::device::grant(k, a, to).map(Some)
        }
        DomainOp::Restart => {
            let new = domain::restart(k, t.index)?;
            let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
            if let Ok(e) = d.handles.lookup_mut(h) {
                e.object = new.to_raw();
            }
            Ok(Some(h.to_raw()))
        }
    }
}
