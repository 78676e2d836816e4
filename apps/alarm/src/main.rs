//! Test guest: five alarms (5, 10, 20, 40 and 80 ms); each must wake no
//! earlier than its deadline, less than 20 ms after it, and with the ALARM
//! bit. Prints `TEST alarms_on_time ... ok`.
#![no_std]
#![no_main]

use ilwaco::protocol::upcall::ALARM;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const ALARMS_MS: [u64; 5] = [5, 10, 20, 40, 80];
/// Most an alarm may be late.
const SLACK_NS: u64 = 20_000_000;

fn run() -> Result<(), &'static str> {
    let clock = time::clock().ok_or("no clock page")?;
    for ms in ALARMS_MS {
        let deadline = clock.deadline_after_ns(time::tsc(), ms * 1_000_000);
        let mut events = 0;
        loop {
            events |= sys::idle(deadline).map_err(|_| "idle failed")?;
            if time::tsc() >= deadline {
                break;
            }
        }
        let woke = time::tsc();
        if events & ALARM == 0 {
            return Err("the deadline passed but no ALARM bit came");
        }
        let late = clock
            .ns_since_boot(woke)
            .saturating_sub(clock.ns_since_boot(deadline));
        println!("alarm: {ms} ms alarm woke {} us late", late / 1000);
        if late >= SLACK_NS {
            return Err("an alarm woke 20 ms or more late");
        }
    }
    Ok(())
}

/// Domains started beside this one (e.g. a hundred idlers) all run once
/// before they first idle; let that burst pass, so what is measured is
/// alarm latency among idle domains, not the start-up queue.
const SETTLE_NS: u64 = 200_000_000;

fn main() -> i32 {
    let _ = ilwaco::time::sleep_ns(SETTLE_NS);
    match run() {
        Ok(()) => {
            println!("TEST alarms_on_time ... ok");
            0
        }
        Err(why) => {
            println!("TEST alarms_on_time ... FAILED: {why}");
            1
        }
    }
}
