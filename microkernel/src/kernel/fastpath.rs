//! The IPC fast path: `call` to a server already waiting, and `reply_recv`
//! answering a caller with no other message queued, switch straight from
//! one domain to the other with one lookup of each and no scheduling pass.
//!
//! It handles only the common case and changes nothing until every check
//! has passed; anything else (a handle to move, a receiver busy or
//! outranked, a pending upcall or event, pages not yet allocated) returns `false`
//! and the ordinary path in `ipc.rs` does the work. The partner inherits
//! the rest of the quantum, so the LAPIC deadline stays as armed.

use serac_kcore::handles::HandleEntry;
use serac_protocol::header::{MsgHeader, HEADER_LEN};
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::supervisor::DomainClass;
use serac_protocol::syscall::RECV_WAKE_ON_EVENT;
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights};

use super::domain::State;
use super::Kernel;
use crate::arch::cpu::TrapFrame;
use crate::arch::paging::{copy_phys, read_u64, write_u64};
use crate::arch::user;

/// Reads and checks the outgoing header in an IPC frame, word by word: a
/// plain message (no handle to move, no kernel label, a legal length).
/// Returns its payload length.
fn plain_header(ipc: u64) -> Option<u32> {
    let w0 = read_u64(ipc);
    let (label, len) = (w0 as u32, (w0 >> 32) as u32);
    let handle = read_u64(ipc + 8);
    let h = MsgHeader {
        label,
        len,
        handle: Handle::from_raw(handle),
        badge: 0,
    };
    (len as usize <= MAX_PAYLOAD && !h.is_kernel_label() && h.handle.is_none()).then_some(len)
}

/// Whether domain `j` can be entered at once: tables built, IPC buffer
/// there, no upcall machinery to run, not outranked by a waiting server.
fn enterable(k: &Kernel, j: u32) -> Option<u64> {
    let d = k.domain(j)?;
    let ipc = d.fixed_frames().0;
    let outranked = d.class == DomainClass::Guest && k.runq.should_preempt(DomainClass::Guest);
    (d.space.is_some() && ipc != 0 && d.upcall_entry == 0 && !outranked).then_some(ipc)
}

/// Copies a message (header and `len` payload bytes) from one IPC frame to
/// another in one copy, then stamps the badge (and clears the handle slot:
/// the fast path never moves a handle).
fn copy_message(from: u64, to: u64, len: u32, badge: u64) {
    copy_phys(from, to, HEADER_LEN + len as usize);
    write_u64(to + 8, 0);
    write_u64(to + 16, badge);
}

/// Makes `j` the running domain, its registers in `frame`.
/// It inherits the rest of the caller's quantum (`quantum_start` stays).
fn switch_to(k: &mut Kernel, j: u32, frame: &mut TrapFrame) {
    k.current = Some(j);
    k.last_run = Some(j);
    if let Some(d) = k.domain_mut(j) {
        if let Some(space) = &d.space {
            space.activate();
        }
        *frame = d.ctx;
        user::sanitize(frame);
    }
}

/// `call(endpoint)` to a server waiting in `reply_recv`.
pub fn call(k: &mut Kernel, i: u32, frame: &mut TrapFrame) -> bool {
    let ep = Handle::from_raw(frame.rdi);
    let Some(c) = k.domain(i) else { return false };
    let Ok(e) = c
        .handles
        .lookup_as(ep, HandleKind::Endpoint, HandleRights::SEND)
    else {
        return false;
    };
    let (target, badge) = (DomainId::from_raw(e.object), e.badge);
    let c_ipc = c.fixed_frames().0;
    let t = target.index;
    if t == i
        || c_ipc == 0
        || k.domain(t).map(|d| (d.id, d.state)) != Some((target, State::Receiving))
    {
        return false;
    }
    let Some(t_ipc) = enterable(k, t) else {
        return false;
    };
    let Some(len) = plain_header(c_ipc) else {
        return false;
    };
    // The one fallible change first: the server's reply handle.
    let caller = c.id;
    let Some(td) = k.domain_mut(t) else {
        return false;
    };
    let Ok(reply) = td.handles.allocate(HandleEntry {
        kind: HandleKind::Reply,
        rights: HandleRights::default(),
        object: caller.to_raw(),
        badge: 0,
    }) else {
        return false;
    };
    copy_message(c_ipc, t_ipc, len, badge);
    // A server waiting with a deadline: the message beat it.
    let _ = k.timers.cancel(t);
    if let Some(td) = k.domain_mut(t) {
        td.ctx.rax = 0;
        td.ctx.rdx = reply.to_raw();
        td.state = State::Runnable;
    }
    if let Some(cd) = k.domain_mut(i) {
        cd.state = State::AwaitingReply { from: t };
    }
    switch_to(k, t, frame);
    true
}

/// `reply_recv(reply)` when no other message waits: answer the caller and
/// run it while this server waits.
pub fn reply_recv(k: &mut Kernel, i: u32, frame: &mut TrapFrame) -> bool {
    let reply = Handle::from_raw(frame.rdi);
    let Some(s) = k.domain(i) else { return false };
    // A deadline (rsi) needs the timer queue, a handle to accept and
    // events to return need the ordinary path.
    let wake = frame.rdx == RECV_WAKE_ON_EVENT;
    if reply.is_none()
        || frame.rsi != 0
        || (frame.rdx != 0 && !wake)
        || (wake && s.pending.any())
        || s.queue.is_some()
    {
        return false;
    }
    let Ok(e) = s
        .handles
        .lookup_as(reply, HandleKind::Reply, HandleRights::default())
    else {
        return false;
    };
    let caller = DomainId::from_raw(e.object);
    let (s_id, s_ipc) = (s.id, s.fixed_frames().0);
    let c = caller.index;
    let waiting = k.domain(c).map(|d| (d.id, d.state));
    if s_ipc == 0 || waiting != Some((caller, State::AwaitingReply { from: i })) {
        return false;
    }
    let Some(c_ipc) = enterable(k, c) else {
        return false;
    };
    // The same checks as the ordinary path: a legal length, no kernel
    // label (refused there with `BadArgument`).
    let w0 = read_u64(s_ipc);
    let (label, len) = (w0 as u32, (w0 >> 32) as u32);
    if len as usize > MAX_PAYLOAD || label >= serac_protocol::header::KERNEL_LABEL_BASE {
        return false;
    }
    if let Some(sd) = k.domain_mut(i) {
        if sd.handles.revoke(reply).is_err() {
            return false;
        }
        sd.state = State::Receiving;
        sd.accept_handle = false;
        sd.wake_on_event = wake;
    }
    copy_message(s_ipc, c_ipc, len, s_id.to_raw());
    if let Some(cd) = k.domain_mut(c) {
        cd.ctx.rax = 0;
        cd.ctx.rdx = u64::from(len);
        cd.state = State::Runnable;
    }
    switch_to(k, c, frame);
    true
}
