//! The measuring client. Handles, in grant order (the endpoints, then the
//! notifications): 1 = endpoint to `pong`, 2 = endpoint to `bench-echo`
//! (which answers each message with itself), 3 = notification to itself,
//! 4 = notification to `bench-sleeper`, 5 = notification to
//! `bench-yielder` (which starts yielding when told, and reports how often
//! it yielded when told again).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use ilwaco::protocol::Handle;
use ilwaco::sys;
use serac_benchkit::{median, report, PARTNER_MARK};

ilwaco::entry!(main);

const N: usize = 512;
const PONG: Handle = Handle::new(1, 1);
const ECHO: Handle = Handle::new(2, 1);
const SELF_NOTIFY: Handle = Handle::new(3, 1);
const SLEEPER: Handle = Handle::new(4, 1);
const YIELDER: Handle = Handle::new(5, 1);

static UPCALL_AT: AtomicU64 = AtomicU64::new(0);
/// Notification bits delivered by upcalls.
static WORD: AtomicU64 = AtomicU64::new(0);

fn on_upcall(e: ilwaco::upcall::Events) {
    UPCALL_AT.store(sys::rdtsc(), Ordering::Relaxed);
    WORD.fetch_or(e.notify, Ordering::Relaxed);
}

/// Upcalls off: otherwise every switch raises WAKEUP, and `idle` with a
/// pending event returns at once instead of yielding.
fn upcalls_off() {
    ilwaco::upcall::disable();
    let _ = sys::domain_ctl(
        Handle::NONE,
        ilwaco::protocol::syscall::DomainOp::SetUpcall,
        0,
        0,
    );
}

/// Tells the yielder to stop and waits (yielding, upcalls on) for the
/// count of yields it sends back; `None` if it never does.
fn partner_yields() -> Option<u64> {
    WORD.store(0, Ordering::Relaxed);
    ilwaco::upcall::install(Handle::NONE).ok()?;
    ilwaco::upcall::enable();
    sys::notify(YIELDER, 2).ok()?;
    for _ in 0..1000 {
        if WORD.load(Ordering::Relaxed) & PARTNER_MARK != 0 {
            break;
        }
        let _ = sys::idle(0);
    }
    upcalls_off();
    let w = WORD.load(Ordering::Relaxed);
    (w & PARTNER_MARK != 0).then_some(w & !PARTNER_MARK)
}

/// Pages touched once each by the fault-to-map figure (in `.bss`, so the
/// pager fills them on first touch).
static FRESH_PAGES: [AtomicU64; FRESH * 512] = [const { AtomicU64::new(0) }; FRESH * 512];
const FRESH: usize = 64;

/// The badge the kernel stamps on the echo server's replies: its id.
fn reply_badge() -> u64 {
    ilwaco::sys::ipc_header_words()[2]
}

fn measure(mut f: impl FnMut()) -> u64 {
    let mut t = [0u64; N];
    for slot in t.iter_mut() {
        let a = sys::rdtsc();
        f();
        *slot = sys::rdtsc() - a;
    }
    median(&mut t)
}

fn main() -> i32 {
    ilwaco::println!("bench: start");
    report(
        "syscall_null",
        measure(|| {
            let _ = sys::debug_write(&[]);
        }),
    );

    let payload = [7u8; 16];
    let mut reply = [0u8; 64];
    let mut bad = 0;
    let ipc = measure(|| {
        if ilwaco::ipc::put_message(1, Handle::NONE, &payload).is_err()
            || sys::call(PONG).is_err()
            || ilwaco::ipc::get_message(&mut reply).is_err()
        {
            bad += 1;
        }
    });
    if bad > 0 {
        ilwaco::println!("bench: {bad} IPC round trips failed");
        return 1;
    }
    report("ipc_roundtrip_ilwaco", ipc);

    // The kernel path alone: the 16-byte message stays in the IPC buffer,
    // the echo server sends it back unchanged, and the client calls again.
    if ilwaco::ipc::put_message(1, Handle::NONE, &payload).is_err() {
        return 1;
    }
    let raw = measure(|| {
        if sys::call(ECHO).is_err() {
            bad += 1;
        }
    });
    if bad > 0
        || ilwaco::ipc::get_message(&mut reply)
            != Ok((
                ilwaco::protocol::header::MsgHeader {
                    label: 1,
                    len: 16,
                    handle: Handle::NONE,
                    badge: reply_badge(),
                },
                16,
            ))
        || reply[..16] != payload
    {
        ilwaco::println!("bench: the echo round trips did not return the message");
        return 1;
    }
    report("ipc_roundtrip", raw);

    if ilwaco::upcall::set_handler(on_upcall).is_err()
        || ilwaco::upcall::install(Handle::NONE).is_err()
    {
        ilwaco::println!("bench: cannot install the upcall handler");
        return 1;
    }
    ilwaco::upcall::enable();
    let mut t = [0u64; N];
    for slot in t.iter_mut() {
        UPCALL_AT.store(0, Ordering::Relaxed);
        let a = sys::rdtsc();
        let _ = sys::notify(SELF_NOTIFY, 1);
        let at = UPCALL_AT.load(Ordering::Relaxed);
        if at == 0 {
            ilwaco::println!("bench: the upcall was not delivered on return from notify");
            return 1;
        }
        *slot = at.saturating_sub(a);
    }
    report("upcall", median(&mut t));
    upcalls_off();

    // Yield to the yielder and back: two switches per iteration.
    if sys::notify(YIELDER, 1).is_err() {
        ilwaco::println!("bench: cannot wake the yielder");
        return 1;
    }
    let _ = sys::idle(0);
    let switch = measure(|| {
        let _ = sys::idle(0);
    });
    // Each sample must have let the yielder run once (it counts one more,
    // when told to stop); otherwise the figure timed a yield to nobody.
    match partner_yields() {
        Some(n) if n >= N as u64 => {
            ilwaco::println!("bench: the yielder yielded {n} times during {N} switch samples");
        }
        Some(n) => {
            ilwaco::println!("bench: the yielder yielded only {n} times during {N} switch samples");
            return 1;
        }
        None => {
            ilwaco::println!("bench: the yielder never reported its yields");
            return 1;
        }
    }
    report("switch", switch / 2);

    // Each sample touches a page nobody has touched: one pager round trip.
    // The array escapes, so the stores below are real memory writes.
    let pages = core::hint::black_box(&FRESH_PAGES);
    let mut t = [0u64; FRESH];
    for (i, slot) in t.iter_mut().enumerate() {
        let a = sys::rdtsc();
        pages[i * 512].store(1, Ordering::Relaxed);
        *slot = sys::rdtsc() - a;
    }
    report("fault_to_map", median(&mut t));

    // A storm against the sleeper (upcall_batching checks how it arrives).
    for _ in 0..1000 {
        let _ = sys::notify(SLEEPER, 1);
    }
    // Let the sleeper run and report.
    let _ = ilwaco::time::sleep_ns(5_000_000);
    ilwaco::println!("bench: done");
    0
}
