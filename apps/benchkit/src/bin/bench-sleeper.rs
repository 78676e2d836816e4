//! Waits for events only; after each wake-up reports its kernel counters,
//! so the `upcall_batching` test sees how a notification storm arrived.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::{DomainCounter, DomainOp, IDLE_FOREVER};
use ilwaco::protocol::Handle;
use ilwaco::sys;

ilwaco::entry!(main);

fn counter(c: DomainCounter) -> u64 {
    sys::domain_ctl(Handle::NONE, DomainOp::ReadCounter, c as u64, 0).unwrap_or(0)
}

fn main() -> i32 {
    loop {
        let _ = sys::idle(IDLE_FOREVER);
        let events = counter(DomainCounter::EventsRaised);
        let deliveries = counter(DomainCounter::UpcallsDelivered);
        ilwaco::println!("BENCH storm_events {events}");
        ilwaco::println!("BENCH storm_deliveries {deliveries}");
    }
}
