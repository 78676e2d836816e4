//! IPC: `call`, `reply_recv`, `send`, `notify`, and the kernel's own fault
//! and exit messages.
//!
//! The kernel never buffers message bodies: a sender that finds its
//! receiver busy is queued (an intrusive list through the domain records)
//! and its message stays in its own IPC buffer until delivery. The kernel
//! copies the fixed header and at most `MAX_PAYLOAD` bytes, plus at most one
//! handle, from the sender's IPC buffer to the receiver's. It parses no
//! payload; it encodes its own two messages with postcard into fixed buffers.

use serac_kcore::handles::HandleEntry;
use serac_protocol::codec;
use serac_protocol::exit::DomainExit;
use serac_protocol::header::{MsgHeader, HEADER_LEN, LABEL_EXIT, LABEL_FAULT};
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::pager::{Fault, FAULT_KILL, FAULT_KILL_LOST, FAULT_MSG_MAX};
use serac_protocol::syscall::{RECV_ACCEPT_HANDLE, RECV_WAKE_ON_EVENT};
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, SysError};

use super::domain::{self, Reason, State};
use super::Kernel;
use crate::arch::paging::{copy_phys, read_phys, write_phys};

/// Reads and checks the message header in domain `i`'s IPC buffer.
fn outgoing_header(k: &mut Kernel, i: u32) -> Result<MsgHeader, SysError> {
    let f = k.domain_mut(i).ok_or(SysError::BadHandle)?.ipc_frame()?;
    let mut raw = [0u8; HEADER_LEN];
    read_phys(f, &mut raw);
    let h = MsgHeader::decode(&raw)?;
    if h.len as usize > MAX_PAYLOAD {
        return Err(SysError::MessageTooLarge);
    }
    if h.is_kernel_label() {
        return Err(SysError::BadArgument);
    }
    Ok(h)
}

/// Resolves an endpoint or notification handle of domain `i` to its live
/// target. A target restarted since the handle was made gives
/// `ServerRestarted` once, and the handle follows the new generation.
pub fn resolve_target(
    k: &mut Kernel,
    i: u32,
    h: Handle,
    kind: HandleKind,
) -> Result<(DomainId, u64), SysError> {
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let e = d.handles.lookup_as(h, kind, HandleRights::SEND)?;
    let target = DomainId::from_raw(e.object);
    let Some(t) = k.domain(target.index) else {
        return Err(SysError::PeerDead);
    };
    if t.id == target && t.state != State::Dead {
        return Ok((target, e.badge));
    }
    if t.lineage <= target.gen && target.gen < t.id.gen && t.state != State::Dead {
        let now = t.id;
        if let Some(d) = k.domain_mut(i) {
            if let Ok(e) = d.handles.lookup_mut(h) {
                e.object = now.to_raw();
            }
        }
        return Err(SysError::ServerRestarted);
    }
    Err(SysError::PeerDead)
}

/// Appends `sender` to `receiver`'s queue.
pub fn enqueue_sender(k: &mut Kernel, sender: u32, receiver: u32) {
    if let Some(s) = k.domain_mut(sender) {
        s.next_in_queue = None;
    }
    let Some(r) = k.domain_mut(receiver) else {
        return;
    };
    match r.queue {
        None => r.queue = Some((sender, sender)),
        Some((head, tail)) => {
            r.queue = Some((head, sender));
            if let Some(t) = k.domain_mut(tail) {
                t.next_in_queue = Some(sender);
            }
        }
    }
}

fn pop_sender(k: &mut Kernel, receiver: u32) -> Option<u32> {
    let (head, tail) = k.domain(receiver)?.queue?;
    let next = k.domain(head).and_then(|d| d.next_in_queue);
    if let Some(r) = k.domain_mut(receiver) {
        r.queue = if head == tail {
            None
        } else {
            next.map(|n| (n, tail))
        };
    }
    if let Some(h) = k.domain_mut(head) {
        h.next_in_queue = None;
    }
    Some(head)
}

/// Takes `sender` out of `receiver`'s queue if it is there.
pub fn remove_queued(k: &mut Kernel, receiver: u32, sender: u32) {
    remove_sender(k, receiver, sender);
}

fn remove_sender(k: &mut Kernel, receiver: u32, sender: u32) {
    let mut kept = alloc::vec::Vec::new();
    while let Some(s) = pop_sender(k, receiver) {
        if s != sender {
            kept.push(s);
        }
    }
    for s in kept {
        enqueue_sender(k, s, receiver);
    }
}

/// If `receiver` waits in `reply_recv` and has a queued sender, delivers
/// the first message and makes it runnable.
pub fn try_deliver(k: &mut Kernel, receiver: u32) {
    if k.domain(receiver).map(|d| d.state) != Some(State::Receiving) {
        return;
    }
    while let Some(s) = pop_sender(k, receiver) {
        match deliver(k, s, receiver) {
            Ok(reply) => {
                if let Some(r) = k.domain_mut(receiver) {
                    r.ctx.rax = 0;
                    r.ctx.rdx = reply.to_raw();
                }
                k.make_runnable(receiver);
                return;
            }
            Err(e) => fail_sender(k, s, e),
        }
    }
}

/// Completes a sender's operation with an error.
fn fail_sender(k: &mut Kernel, s: u32, e: SysError) {
    let Some(d) = k.domain_mut(s) else { return };
    match d.state {
        State::Sending { .. } | State::AwaitingReply { .. } => {
            d.ctx.rax = u64::from(e.code());
            d.ctx.rdx = 0;
            k.make_runnable(s);
        }
        State::Faulting { .. } => {
            let (vaddr, _, rip) = d.fault();
            domain::kill(
                k,
                s,
                Reason::Fault(serac_protocol::exit::FaultKind::PageFault, vaddr, rip, 0),
            );
        }
        _ => {}
    }
}

/// Copies sender `s`'s message (or the kernel's message about `s`) into
/// `r`'s IPC buffer. Returns the reply handle given to `r` (or NONE).
fn deliver(k: &mut Kernel, s: u32, r: u32) -> Result<Handle, SysError> {
    let sender = k.domain(s).ok_or(SysError::PeerDead)?;
    let (sid, state) = (sender.id, sender.state);
    let r_ipc = k.domain_mut(r).ok_or(SysError::PeerDead)?.ipc_frame()?;
    match state {
        State::Sending { call, .. } => {
            let mut h = outgoing_header(k, s)?;
            let s_ipc = k.domain_mut(s).ok_or(SysError::PeerDead)?.ipc_frame()?;
            h.badge = k.domain(s).map_or(0, |d| d.send_badge);
            // At most one handle moves, only with TRANSFER, and only into a
            // receiver that opted in (`RECV_ACCEPT_HANDLE`): nobody can
            // fill another domain's table unasked.
            let moving = if h.handle.is_none() {
                None
            } else {
                let sd = k.domain(s).ok_or(SysError::PeerDead)?;
                let e = sd.handles.lookup(h.handle)?;
                if !e.rights.contains(HandleRights::TRANSFER) {
                    return Err(SysError::NoRights);
                }
                if !k.domain(r).is_some_and(|d| d.accept_handle) {
                    return Err(SysError::HandleRefused);
                }
                Some(e)
            };
            // The reply handle first: if it cannot be made, nothing has
            // moved and the sender keeps its handle (abi.md 5, rule 2).
            let reply = if call {
                reply_handle(k, r, sid)?
            } else {
                Handle::NONE
            };
            if let Some(entry) = moving {
                let rd = k.domain_mut(r).ok_or(SysError::PeerDead)?;
                match rd.handles.allocate(entry) {
                    Ok(new) => {
                        if let Some(sd) = k.domain_mut(s) {
                            let _ = sd.handles.revoke(h.handle);
                        }
                        h.handle = new;
                    }
                    Err(e) => {
                        if !reply.is_none() {
                            let _ = rd.handles.revoke(reply);
                        }
                        return Err(e);
                    }
                }
            }
            let mut head = [0u8; HEADER_LEN];
            h.encode(&mut head)?;
            write_phys(r_ipc, &head);
            copy_phys(
                s_ipc + HEADER_LEN as u64,
                r_ipc + HEADER_LEN as u64,
                h.len as usize,
            );
            if call {
                if let Some(sd) = k.domain_mut(s) {
                    sd.state = State::AwaitingReply { from: r };
                }
                Ok(reply)
            } else {
                if let Some(sd) = k.domain_mut(s) {
                    sd.ctx.rax = 0;
                    sd.ctx.rdx = 0;
                }
                k.make_runnable(s);
                Ok(Handle::NONE)
            }
        }
        State::Faulting { pager, .. } => {
            let (vaddr, access, rip) = k
                .domain(s)
                .map_or((0, serac_protocol::pager::Access::Read, 0), |d| d.fault());
            let msg = Fault {
                domain: sid,
                vaddr,
                access,
                rip,
            };
            let mut payload = [0u8; FAULT_MSG_MAX];
            let bytes = codec::encode(&msg, &mut payload).map_err(|_| SysError::MessageTooLarge)?;
            write_kernel_message(r_ipc, LABEL_FAULT, sid, bytes)?;
            let reply = reply_handle(k, r, sid)?;
            if let Some(sd) = k.domain_mut(s) {
                sd.state = State::Faulting {
                    pager,
                    delivered: true,
                };
            }
            Ok(reply)
        }
        State::Dead => {
            let reason = k.domain(s).and_then(|d| d.exit()).unwrap_or(Reason::Killed);
            let msg = DomainExit {
                domain: sid,
                reason: reason.to_exit(),
            };
            let mut payload = [0u8; serac_protocol::exit::EXIT_MSG_MAX];
            let bytes = codec::encode(&msg, &mut payload).map_err(|_| SysError::MessageTooLarge)?;
            write_kernel_message(r_ipc, LABEL_EXIT, sid, bytes)?;
            // The record stays (state Dead) until the supervisor restarts
            // or kills it, so `Restart` can reuse the slot and lineage.
            Ok(Handle::NONE)
        }
        _ => Err(SysError::PeerDead),
    }
}

fn write_kernel_message(
    ipc: u64,
    label: u32,
    about: DomainId,
    payload: &[u8],
) -> Result<(), SysError> {
    let h = MsgHeader {
        label,
        len: u32::try_from(payload.len()).map_err(|_| SysError::MessageTooLarge)?,
        handle: Handle::NONE,
        badge: about.to_raw(),
    };
    let mut buf = [0u8; HEADER_LEN + 64];
    let n = serac_protocol::header::write_message(&mut buf, h, payload)?;
    write_phys(ipc, &buf[..n]);
    Ok(())
}

/// A one-shot `Reply` handle in `r`'s table naming `caller`.
fn reply_handle(k: &mut Kernel, r: u32, caller: DomainId) -> Result<Handle, SysError> {
    let rd = k.domain_mut(r).ok_or(SysError::PeerDead)?;
    rd.handles.allocate(HandleEntry {
        kind: HandleKind::Reply,
        rights: HandleRights::default(),
        object: caller.to_raw(),
        badge: 0,
    })
}

/// `call(endpoint)` and `send(endpoint)`.
pub fn call(k: &mut Kernel, i: u32, ep: Handle, is_call: bool) -> Result<Option<u64>, SysError> {
    let (target, badge) = resolve_target(k, i, ep, HandleKind::Endpoint)?;
    outgoing_header(k, i)?;
    if target.index == i {
        return Err(SysError::BadArgument);
    }
    let receiving = k.domain(target.index).map(|d| d.state) == Some(State::Receiving);
    if !is_call && !receiving {
        return Err(SysError::WouldBlock);
    }
    if let Some(d) = k.domain_mut(i) {
        d.send_badge = badge;
        d.state = State::Sending {
            to: target.index,
            call: is_call,
        };
    }
    k.current = None;
    enqueue_sender(k, i, target.index);
    try_deliver(k, target.index);
    // The caller's result is set on delivery (send) or reply (call).
    Ok(None)
}

/// `reply_recv(reply, deadline, flags)`: answer, then wait for the next
/// message, until the absolute TSC `deadline` if it is not 0 (then
/// `WouldBlock`); `flags` may hold `RECV_ACCEPT_HANDLE` and
/// `RECV_WAKE_ON_EVENT` (pending events end the wait: `WouldBlock`, rdx =
/// the mask taken).
pub fn reply_recv(
    k: &mut Kernel,
    i: u32,
    reply: Handle,
    deadline: u64,
    flags: u64,
) -> Result<Option<u64>, SysError> {
    if flags & !(RECV_ACCEPT_HANDLE | RECV_WAKE_ON_EVENT) != 0 {
        return Err(SysError::BadArgument);
    }
    if !reply.is_none() {
        let e = {
            let d = k.domain(i).ok_or(SysError::BadHandle)?;
            d.handles
                .lookup_as(reply, HandleKind::Reply, HandleRights::default())?
        };
        let label = {
            let mut raw = [0u8; HEADER_LEN];
            let f = k.domain_mut(i).ok_or(SysError::BadHandle)?.ipc_frame()?;
            read_phys(f, &mut raw);
            MsgHeader::decode(&raw)?
        };
        if label.len as usize > MAX_PAYLOAD {
            return Err(SysError::MessageTooLarge);
        }
        // A reply is a message like any other: a kernel label in it would
        // pass for the kernel's word. The reply handle stays for a retry.
        if label.is_kernel_label() {
            return Err(SysError::BadArgument);
        }
        if let Some(d) = k.domain_mut(i) {
            let _ = d.handles.revoke(reply);
        }
        answer(k, i, DomainId::from_raw(e.object), label);
    }
    if let Some(d) = k.domain_mut(i) {
        d.state = State::Receiving;
        d.accept_handle = flags & RECV_ACCEPT_HANDLE != 0;
        d.wake_on_event = flags & RECV_WAKE_ON_EVENT != 0;
    }
    k.current = None;
    try_deliver(k, i);
    // No message, but events the caller asked to be woken for: as `idle`.
    if let Some(d) = k
        .domain_mut(i)
        .filter(|d| d.state == State::Receiving && d.wake_on_event)
    {
        if let Some(t) = d.pending.take_all() {
            d.ctx.rax = u64::from(SysError::WouldBlock.code());
            d.ctx.rdx = t.mask;
            d.state = State::Runnable;
            k.current = Some(i);
            return Ok(None);
        }
    }
    if deadline != 0 && k.domain(i).map(|d| d.state) == Some(State::Receiving) {
        if deadline <= crate::arch::time::rdtsc() {
            // Nothing arrived and the time is up: the caller keeps running.
            if let Some(d) = k.domain_mut(i) {
                d.state = State::Runnable;
            }
            k.current = Some(i);
            return Err(SysError::WouldBlock);
        }
        k.timers.set(i, deadline)?;
    }
    Ok(None)
}

/// Delivers server `i`'s reply (in its IPC buffer) to `target`.
fn answer(k: &mut Kernel, i: u32, target: DomainId, h: MsgHeader) {
    let Some(t) = k.live(target) else { return };
    match t.state {
        State::AwaitingReply { from } if from == i => {
            let src = k.domain_mut(i).map(|d| d.ipc_frame());
            let dst = k.domain_mut(target.index).map(|d| d.ipc_frame());
            let (Some(Ok(src)), Some(Ok(dst))) = (src, dst) else {
                fail_sender(k, target.index, SysError::OutOfMemory);
                return;
            };
            let mut out = h;
            out.handle = Handle::NONE;
            out.badge = k.domain(i).map_or(0, |d| d.id.to_raw());
            let mut head = [0u8; HEADER_LEN];
            if out.encode(&mut head).is_ok() {
                write_phys(dst, &head);
                copy_phys(
                    src + HEADER_LEN as u64,
                    dst + HEADER_LEN as u64,
                    h.len as usize,
                );
            }
            if let Some(t) = k.domain_mut(target.index) {
                t.ctx.rax = 0;
                t.ctx.rdx = u64::from(h.len);
            }
            k.make_runnable(target.index);
        }
        State::Faulting {
            pager,
            delivered: true,
        } if pager == i => {
            if h.label == FAULT_KILL || h.label == FAULT_KILL_LOST {
                let (vaddr, _, rip) = t.fault();
                let kind = if h.label == FAULT_KILL {
                    serac_protocol::exit::FaultKind::PageFault
                } else {
                    serac_protocol::exit::FaultKind::PageLost
                };
                domain::kill(k, target.index, Reason::Fault(kind, vaddr, rip, 0));
            } else {
                // Retry the access: the context is unchanged.
                k.make_runnable(target.index);
            }
        }
        _ => {}
    }
}

/// Server `i` dropped the `Reply` handle for `caller` without answering:
/// the caller learns the server will never answer (`PeerDead`); a fault
/// left unserved kills the faulting domain, as `FAULT_KILL` would.
pub fn abandon(k: &mut Kernel, i: u32, caller: DomainId) {
    let Some(t) = k.live(caller) else { return };
    match t.state {
        State::AwaitingReply { from } if from == i => {
            fail_sender(k, caller.index, SysError::PeerDead);
        }
        State::Faulting {
            pager,
            delivered: true,
        } if pager == i => fail_sender(k, caller.index, SysError::PeerDead),
        _ => {}
    }
}

/// `notify(notification, bits)`.
pub fn notify(k: &mut Kernel, i: u32, h: Handle, bits: u64) -> Result<Option<u64>, SysError> {
    let (target, _) = resolve_target(k, i, h, HandleKind::Notification)?;
    k.raise(target.index, serac_protocol::upcall::NOTIFY, bits.max(1));
    Ok(Some(0))
}

/// Removes domain `i` from every IPC relation before it dies: out of any
/// queue, and everyone waiting on it gets `PeerDead`.
pub fn detach(k: &mut Kernel, i: u32) {
    let Some(d) = k.domain(i) else { return };
    match d.state {
        State::Sending { to, .. } => remove_sender(k, to, i),
        State::Faulting {
            pager,
            delivered: false,
        } => remove_sender(k, pager, i),
        _ => {}
    }
    while let Some(s) = pop_sender(k, i) {
        park_or_fail(k, s, i);
    }
    let waiting: alloc::vec::Vec<u32> = k
        .domains
        .iter()
        .flatten()
        .filter(|d| {
            matches!(d.state, State::AwaitingReply { from } if from == i)
                || matches!(d.state, State::Faulting { pager, delivered: true } if pager == i)
        })
        .map(|d| d.id.index)
        .collect();
    for w in waiting {
        park_or_fail(k, w, i);
    }
}

/// A domain faulting on dying pager `i` is parked: its fault waits, in no
/// queue, for the pager's restart (`domain::restart` queues it again) or
/// dies at its reap. Other waiters get `PeerDead`.
fn park_or_fail(k: &mut Kernel, w: u32, i: u32) {
    match k.domain_mut(w) {
        Some(d) if matches!(d.state, State::Faulting { .. }) => {
            d.state = State::Faulting {
                pager: i,
                delivered: false,
            };
            d.next_in_queue = None;
        }
        _ => fail_sender(k, w, SysError::PeerDead),
    }
}
