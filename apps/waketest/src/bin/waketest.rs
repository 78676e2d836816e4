//! Test server for `reply_recv` with `RECV_WAKE_ON_EVENT`, and the verdict
//! (`TEST wake_on_event ... ok`). `wakepoker` (a server, so it runs as
//! soon as it is woken) calls and notifies it in a fixed order; each step
//! here says what must end the wait:
//! 1. the poker's first call: a message, with the flag set;
//! 2. a deadline, while the poker waits for the answer: `Timeout`;
//! 3. bad flag bits: `BadArgument`, and the reply handle stays;
//! 4. answering, then waiting: the poker's notify ends the wait (`Events`
//!    with `NOTIFY`);
//! 5. the poker notifies again and calls while this domain is busy: the
//!    message comes first, and answering it returns the pending event at
//!    once;
//! 6. a stream of [`STREAM`] calls answered with the flag (the kernel's
//!    fast path): every one arrives, in order; after the last answer the
//!    poker's notify ends the wait, so the fast path recorded the flag (the
//!    wait before the stream was one without it).
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::upcall::NOTIFY;
use ilwaco::protocol::{Handle, SysError};
use ilwaco::sys::{self, Woken};
use ilwaco::{println, time};

ilwaco::entry!(main);

/// Calls in the fast-path stream (step 6).
pub const STREAM: u32 = 200;

/// The message in the IPC buffer, as (label, first payload word).
fn message() -> Result<(u32, u32), &'static str> {
    let mut buf = [0u8; 8];
    let (h, n) = get_message(&mut buf).map_err(|_| "unreadable message")?;
    let word = if n >= 4 {
        u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])
    } else {
        0
    };
    Ok((h.label, word))
}

/// A wait that must end with a message labelled `label`; its reply handle.
fn expect_message(
    w: Result<Woken, SysError>,
    label: u32,
    what: &'static str,
) -> Result<Handle, &'static str> {
    match w {
        Ok(Woken::Message(r)) if !r.is_none() => match message()? {
            (l, _) if l == label => Ok(r),
            _ => Err(what),
        },
        Ok(Woken::Events(_)) => Err("an event ended a wait a message should have"),
        Ok(_) => Err(what),
        Err(_) => Err("reply_recv failed"),
    }
}

fn expect_notify(w: Result<Woken, SysError>, what: &'static str) -> Result<(), &'static str> {
    match w {
        Ok(Woken::Events(mask)) if mask & NOTIFY != 0 => Ok(()),
        _ => Err(what),
    }
}

fn answer(label: u32) -> Result<(), &'static str> {
    put_message(label, Handle::NONE, &[]).map_err(|_| "cannot write the answer")
}

fn run() -> Result<(), &'static str> {
    let clock = time::clock().ok_or("no clock page")?;
    // 1.
    let r1 = expect_message(
        sys::reply_recv_or_event(Handle::NONE, 0, 0),
        1,
        "step 1: not the first call",
    )?;
    // 2. The poker waits for our answer: nothing can come but the time.
    let deadline = clock.deadline_after_ns(time::tsc(), 5_000_000);
    match sys::reply_recv_or_event(Handle::NONE, deadline, 0) {
        Ok(Woken::Timeout) if time::tsc() >= deadline => {}
        Ok(Woken::Timeout) => return Err("step 2: a timeout before the deadline"),
        _ => return Err("step 2: the deadline did not end the wait with Timeout"),
    }
    // 3. Unknown bits, beside the flag too, before anything is answered.
    answer(1)?;
    for bad in [4, 2 | 8, 1 << 63] {
        if sys::reply_recv_with(r1, 1, bad) != Err(SysError::BadArgument) {
            return Err("step 3: a bad flag bit was not BadArgument");
        }
    }
    // 4. The reply handle stayed: this answers it.
    expect_notify(
        sys::reply_recv_or_event(r1, 0, 0),
        "step 4: the notify did not end the wait with NOTIFY",
    )?;
    // 5. The poker notifies and calls meanwhile (it outranks this guest;
    // the spin only makes sure).
    let until = clock.deadline_after_ns(time::tsc(), 20_000_000);
    while time::tsc() < until {
        core::hint::spin_loop();
    }
    let r2 = expect_message(
        sys::reply_recv_or_event(Handle::NONE, 0, 0),
        2,
        "step 5: the waiting message did not come first",
    )?;
    answer(2)?;
    expect_notify(
        sys::reply_recv_or_event(r2, 0, 0),
        "step 5: the event pending at the wait did not end it",
    )?;
    // 6. A wait without the flag first, so only a recorded flag makes the
    // last wait end on the notify.
    let mut reply = match sys::reply_recv(Handle::NONE) {
        Ok(raw) => Handle::from_raw(raw),
        Err(_) => return Err("step 6: reply_recv failed"),
    };
    for i in 0..STREAM {
        match message()? {
            (3, n) if n == i => {}
            _ => return Err("step 6: a call of the stream missing or out of order"),
        }
        put_message(3, Handle::NONE, &(i + 1).to_le_bytes()).map_err(|_| "cannot write")?;
        let w = sys::reply_recv_or_event(reply, 0, 0);
        if i + 1 == STREAM {
            expect_notify(
                w,
                "step 6: the notify after the stream did not end the wait",
            )?;
        } else {
            reply = expect_message(w, 3, "step 6: the stream's next call did not come")?;
        }
    }
    // The poker's own checks.
    let r = expect_message(
        sys::reply_recv_or_event(Handle::NONE, 0, 0),
        4,
        "no report from the poker",
    )?;
    let (_, errors) = message()?;
    answer(4)?;
    let _ = sys::reply_recv_until(r, 1);
    if errors != 0 {
        return Err("the poker saw wrong answers");
    }
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("TEST wake_on_event ... ok");
            0
        }
        Err(why) => {
            println!("TEST wake_on_event ... FAILED: {why}");
            1
        }
    }
}
