//! The target of the batching figure: a busy guest (it spins) with upcalls
//! on, runnable for the whole window behind spinners of its own class,
//! while `bench-notifier` notifies it at a steady rate. Each notification
//! is one event; the kernel delivers what is pending in one upcall when
//! the target is next dispatched, so how many events share an upcall
//! depends on how long the target waits for the CPU, which is what the
//! figure measures (`EventsRaised / UpcallsDelivered` over the window, read
//! with `domain_ctl(ReadCounter)`; the switch-in WAKEUP counts too).
//! It checks that its handler ran once per upcall the kernel counted and
//! that every notification bit arrived, then prints `TEST
//! batching_under_load ... ok` and the two counts.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time, upcall};
use serac_benchkit::{report, BATCH_WINDOW_MS};

ilwaco::entry!(main);

static HANDLED: AtomicU64 = AtomicU64::new(0);
static WORD: AtomicU64 = AtomicU64::new(0);

fn on_upcall(e: upcall::Events) {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    WORD.fetch_or(e.notify, Ordering::Relaxed);
}

fn counter(c: DomainCounter) -> u64 {
    sys::domain_ctl(Handle::NONE, DomainOp::ReadCounter, c as u64, 0).unwrap_or(0)
}

fn run() -> Result<(u64, u64), &'static str> {
    let clock = time::clock().ok_or("no clock page")?;
    upcall::set_handler(on_upcall).map_err(|_| "handler already set")?;
    upcall::install(Handle::NONE).map_err(|_| "SetUpcall refused")?;
    let (e0, u0) = (
        counter(DomainCounter::EventsRaised),
        counter(DomainCounter::UpcallsDelivered),
    );
    let h0 = HANDLED.load(Ordering::Relaxed);
    upcall::enable();
    let end = clock.deadline_after_ns(time::tsc(), BATCH_WINDOW_MS * 1_000_000);
    while time::tsc() < end {
        core::hint::spin_loop();
    }
    upcall::disable();
    let events = counter(DomainCounter::EventsRaised) - e0;
    let upcalls = counter(DomainCounter::UpcallsDelivered) - u0;
    let handled = HANDLED.load(Ordering::Relaxed) - h0;
    if handled != upcalls {
        println!(
            "bench-target: the handler ran {handled} times, the kernel counts {upcalls} upcalls"
        );
        return Err("handler runs and kernel upcalls differ");
    }
    if WORD.load(Ordering::Relaxed) != u64::MAX {
        println!(
            "bench-target: notification bits seen {:#x}",
            WORD.load(Ordering::Relaxed)
        );
        return Err("not every notification bit arrived");
    }
    if upcalls == 0 || events <= upcalls {
        return Err("no upcall carried more than one event");
    }
    Ok((events, upcalls))
}

fn main() -> i32 {
    match run() {
        Ok((events, upcalls)) => {
            println!("TEST batching_under_load ... ok");
            report("batch_events", events);
            report("batch_upcalls", upcalls);
            0
        }
        Err(why) => {
            println!("TEST batching_under_load ... FAILED: {why}");
            1
        }
    }
}
