//! Test pager for the kernel's paging calls (`revoke_complete`): serves
//! `revoke-client`'s faults, then checks step by step what `Frames`,
//! `CopyFrame` and `Shrink` report and do. It is the test's judge: it
//! prints `revoke-pager: all checks passed` only if every check held, and
//! `revoke-pager: FAIL ...` at the first that did not.
//!
//! The steps, driven by the client's calls (label = 100 + step):
//! 1. the client wrote 8 pages: all bound at their addresses, all dirty;
//!    `FRAMES_TAKE` clears the bits;
//! 2. it read them: accessed, not dirty; `CopyFrame` copies the bytes;
//! 3. it wrote page 3 again: `FRAMES_UNBIND | FRAMES_IF_CLEAN` unbinds the
//!    other 7 and leaves page 3 bound;
//! 4. it read all 8: each unbound page faulted here (no stale translation
//!    survived) and was served a new frame with other bytes, which the
//!    client saw; then, while the client idles, `Shrink` takes its tables
//!    and fixed pages (and is refused for a non-client and a busy client);
//! 5. it called again (its IPC buffer came back); its next fault is
//!    answered `FAULT_KILL_LOST`, which the kernel reports as `PageLost`.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::pager::{FAULT_KILL_LOST, FAULT_RESUME};
use ilwaco::protocol::syscall::{
    DomainOp, FrameRecord, FRAMES_IF_CLEAN, FRAMES_TAKE, FRAMES_UNBIND, STATUS_ACCESSED,
    STATUS_BOUND, STATUS_DIRTY, STATUS_UNBOUND,
};
use ilwaco::protocol::{DomainId, Handle, PageRights, SysError};
use ilwaco::sys::{self, PageBuf};
use ilwaco::{println, time};
use serac_attacks::{pager_recv, put_pager_ok, PagerMsg};

ilwaco::entry!(main);

const PAGES: usize = 8;
/// Step labels are `STEP + n`, clear of the pager protocol's own.
const STEP: u32 = 100;
/// Faults remembered before step 1 (the client's stack, heap, pages).
const SEEN: usize = 128;

struct State {
    next: Option<(u64, u64)>,
    client: DomainId,
    base: u64,
    frames: [u64; PAGES],
    faults: u64,
    step: u32,
    seen: [(u64, u64); SEEN],
    seen_len: usize,
}

fn fail(what: &str) -> i32 {
    println!("revoke-pager: FAIL {what}");
    1
}

fn query(st: &State, flags: u64) -> Result<[FrameRecord; PAGES], SysError> {
    let mut out = [FrameRecord::default(); PAGES];
    sys::frames(&st.frames, flags, &mut out)?;
    Ok(out)
}

/// Fills a fresh frame with `byte` and binds it at `page` through `reply`.
fn serve(st: &mut State, reply: Handle, page: u64, byte: u8) -> Result<u64, SysError> {
    let (f, left) = st
        .next
        .filter(|&(_, n)| n > 0)
        .ok_or(SysError::OutOfMemory)?;
    st.next = Some((f + 1, left - 1));
    let s = sys::SCRATCH_BASE;
    sys::map(Handle::NONE, s, f, PageRights::READ_WRITE)?;
    let fill = [byte; 256];
    for o in (0..4096).step_by(256) {
        sys::scratch_write(s, o, &fill)?;
    }
    sys::unmap(Handle::NONE, s)?;
    sys::map(reply, page, f, PageRights::READ_WRITE)?;
    Ok(f)
}

fn step(st: &mut State, label: u32, arg: u64) -> Result<(), &'static str> {
    let all = |recs: &[FrameRecord], f: &dyn Fn(&FrameRecord) -> bool| recs.iter().all(f);
    match label {
        1 => {
            st.base = arg;
            // Which frames back the client's pages: where we bound them.
            let r = query(st, 0).map_err(|_| "query 1")?;
            let where_ok = r.iter().enumerate().all(|(p, x)| {
                x.has(STATUS_BOUND)
                    && x.domain == st.client.to_raw()
                    && x.vaddr == st.base + p as u64 * 4096
            });
            if !where_ok {
                return Err("step 1: a frame is not bound where it was mapped");
            }
            if !all(&r, &|x| x.has(STATUS_DIRTY) && x.has(STATUS_ACCESSED)) {
                return Err("step 1: written pages not reported accessed and dirty");
            }
            query(st, FRAMES_TAKE).map_err(|_| "take")?;
            let r = query(st, 0).map_err(|_| "query 1b")?;
            if !all(&r, &|x| !x.has(STATUS_DIRTY) && !x.has(STATUS_ACCESSED)) {
                return Err("step 1: FRAMES_TAKE left use bits set");
            }
        }
        2 => {
            let r = query(st, 0).map_err(|_| "query 2")?;
            if !all(&r, &|x| x.has(STATUS_ACCESSED) && !x.has(STATUS_DIRTY)) {
                return Err("step 2: read pages not reported accessed and clean");
            }
            let mut buf = PageBuf::zeroed();
            sys::copy_frame(st.frames[0], &mut buf).map_err(|_| "copy_frame")?;
            if buf.0.iter().any(|&b| b != 1) {
                return Err("step 2: CopyFrame bytes differ from the client's page");
            }
            if sys::copy_frame(st.client.to_raw(), &mut buf) != Err(SysError::FrameNotOwned) {
                return Err("step 2: CopyFrame of a frame not owned was not refused");
            }
        }
        3 => {
            let r = query(st, FRAMES_UNBIND | FRAMES_IF_CLEAN).map_err(|_| "unbind")?;
            for (p, x) in r.iter().enumerate() {
                let unbound = x.has(STATUS_UNBOUND);
                if (p == 3) == unbound {
                    return Err("step 3: FRAMES_IF_CLEAN unbound a dirty page or kept a clean one");
                }
            }
            let r = query(st, 0).map_err(|_| "query 3")?;
            if r.iter()
                .enumerate()
                .any(|(p, x)| x.has(STATUS_BOUND) != (p == 3))
            {
                return Err("step 3: the kernel still reports an unbound frame bound");
            }
            st.faults = 0;
        }
        4 => {
            if st.faults != (PAGES - 1) as u64 {
                return Err("step 4: not every unbound page faulted");
            }
            if arg != PAGES as u64 {
                return Err("step 4: the client did not see the new frames' bytes");
            }
        }
        5 => {}
        _ => return Err("unknown step"),
    }
    st.step = label;
    Ok(())
}

fn main() -> i32 {
    let mut st = State {
        next: None,
        client: DomainId::NONE,
        base: 0,
        frames: [0; PAGES],
        faults: 0,
        step: 0,
        seen: [(0, 0); SEEN],
        seen_len: 0,
    };
    let mut reply = Handle::NONE;
    loop {
        let (msg, r) = match pager_recv(reply) {
            Ok(m) => m,
            Err(_) => return fail("receive"),
        };
        reply = r;
        match msg {
            PagerMsg::Grant { first, count } => {
                st.next = Some((first, count));
                put_pager_ok();
            }
            PagerMsg::Fault { fault, reply: fr } => {
                st.client = fault.domain;
                let page = fault.vaddr & !0xfff;
                if st.step >= 5 {
                    let _ = put_message(FAULT_KILL_LOST, Handle::NONE, &[]);
                    let _ = sys::reply_recv_until(fr, sys::rdtsc() + 1);
                    println!("revoke-pager: all checks passed");
                    return 0;
                }
                let in_test =
                    st.base != 0 && (st.base..st.base + PAGES as u64 * 4096).contains(&page);
                let byte = if in_test {
                    0x80 + ((page - st.base) / 4096) as u8
                } else {
                    0
                };
                match serve(&mut st, fr, page, byte) {
                    Ok(f) => {
                        if st.step >= 3 && in_test {
                            st.faults += 1;
                        }
                        if st.step == 0 {
                            // Before step 1 the client fills its pages in
                            // order; remember every frame, sort out later.
                            remember(&mut st, page, f);
                        }
                    }
                    Err(_) => return fail("could not serve a fault"),
                }
                let _ = put_message(FAULT_RESUME, Handle::NONE, &[]);
            }
            PagerMsg::Other { label: l } if (STEP + 1..=STEP + 5).contains(&l) => {
                let label = l - STEP;
                let mut words = [0u8; 8];
                let arg = match get_message(&mut words) {
                    Ok((_, 8)) => u64::from_le_bytes(words),
                    _ => 0,
                };
                if label == 1 {
                    if let Err(e) = pick_frames(&mut st, arg) {
                        return fail(e);
                    }
                }
                if label == 5 {
                    // The client waits for this answer: it is not waiting
                    // in a way Shrink may take.
                    if sys::shrink(st.client) != Err(SysError::WouldBlock) {
                        return fail("Shrink of a client blocked in call was not WouldBlock");
                    }
                }
                if let Err(e) = step(&mut st, label, arg) {
                    return fail(e);
                }
                println!("revoke-pager: step {label} ok");
                let _ = put_message(l, Handle::NONE, &[]);
                if label == 4 {
                    // Answer, let the client fall asleep, then shrink it.
                    let _ = sys::reply_recv_until(reply, sys::rdtsc() + 1);
                    reply = Handle::NONE;
                    let _ = time::sleep_ns(30_000_000);
                    let me =
                        sys::domain_ctl(Handle::NONE, DomainOp::ReadCounter, 5, 0).unwrap_or(0);
                    if sys::shrink(DomainId::from_raw(me)) != Err(SysError::NoRights) {
                        return fail("Shrink of a domain it does not page was not NoRights");
                    }
                    match sys::shrink(st.client) {
                        Ok(()) => println!("revoke-pager: shrank the idle client"),
                        Err(_) => return fail("Shrink of the idle client failed"),
                    }
                }
            }
            PagerMsg::Other { .. } => put_pager_ok(),
        }
    }
}

/// Notes that frame `f` backs `page` (before step 1).
fn remember(st: &mut State, page: u64, f: u64) {
    if let Some(slot) = st.seen.get_mut(st.seen_len) {
        *slot = (page, f);
        st.seen_len += 1;
    }
}

/// The frames behind the client's 8 pages at `base`, from the faults.
fn pick_frames(st: &mut State, base: u64) -> Result<(), &'static str> {
    for p in 0..PAGES {
        let page = base + p as u64 * 4096;
        let seen = st.seen.get(..st.seen_len).unwrap_or(&[]);
        let (_, f) = seen
            .iter()
            .find(|x| x.0 == page)
            .ok_or("step 1: a test page never faulted here")?;
        st.frames[p] = *f;
    }
    Ok(())
}
