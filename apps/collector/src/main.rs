//! Test server: counts the domains that report in. Each reporter sends it
//! one notification (`apps/idler` does, through its handle 1), and the
//! kernel counts every notification as one event raised for the collector
//! (`domain_ctl(ReadCounter, EventsRaised)`): a domain counts only if it
//! ran far enough to make that syscall. The collector never idles, so no
//! alarm of its own is counted: it polls the counter every 20 ms from
//! `reply_recv` with a deadline (nobody sends it messages), and prints
//! `collector: <n> domain(s) reported in` each time the count has held
//! still for 100 ms at a new value.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{Handle, SysError};
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

/// Poll period and polls of no change before printing.
const POLL_NS: u64 = 20_000_000;
const STILL_POLLS: u32 = 5;

fn main() -> i32 {
    let Some(clock) = time::clock() else {
        println!("collector: no clock page");
        return 1;
    };
    let events = || {
        sys::domain_ctl(
            Handle::NONE,
            DomainOp::ReadCounter,
            DomainCounter::EventsRaised as u64,
            0,
        )
    };
    let (mut seen, mut printed, mut still) = (0u64, 0u64, 0u32);
    loop {
        let deadline = clock.deadline_after_ns(time::tsc(), POLL_NS);
        match sys::reply_recv_until(Handle::NONE, deadline) {
            Err(SysError::WouldBlock) => {}
            // Nobody holds an endpoint to it; anything else is a surprise.
            other => {
                println!("collector: reply_recv gave {other:?}; stopping");
                return 1;
            }
        }
        let Ok(n) = events() else {
            println!("collector: cannot read its counters");
            return 1;
        };
        still = if n == seen { still + 1 } else { 0 };
        seen = n;
        if still >= STILL_POLLS && n != printed {
            println!("collector: {n} domain(s) reported in");
            printed = n;
        }
    }
}
