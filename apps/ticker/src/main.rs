//! Test guest, run beside a spinner: sleeps 10 ms twenty times and checks
//! each sleep ends within 50 ms of its deadline, which holds only if the
//! kernel preempts the spinner. Prints `TEST preempt_spinner ... ok`.
#![no_std]
#![no_main]

use ilwaco::{println, time};

ilwaco::entry!(main);

const SLEEP_NS: u64 = 10_000_000;
const ROUNDS: u32 = 20;
/// Most a sleep may overrun its deadline.
const SLACK_NS: u64 = 50_000_000;

fn run() -> Result<u64, &'static str> {
    let clock = time::clock().ok_or("no clock page")?;
    let mut worst = 0;
    for _ in 0..ROUNDS {
        let start = clock.ns_since_boot(time::tsc());
        time::sleep_ns(SLEEP_NS).map_err(|_| "sleep failed")?;
        let slept = clock.ns_since_boot(time::tsc()).saturating_sub(start);
        if slept < SLEEP_NS {
            return Err("woke before the deadline");
        }
        let late = slept - SLEEP_NS;
        worst = worst.max(late);
        if late >= SLACK_NS {
            return Err("a sleep ended more than 50 ms late (spinner not preempted?)");
        }
    }
    Ok(worst)
}

fn main() -> i32 {
    match run() {
        Ok(worst) => {
            println!("ticker: worst lateness {} us", worst / 1000);
            println!("TEST preempt_spinner ... ok");
            0
        }
        Err(why) => {
            println!("TEST preempt_spinner ... FAILED: {why}");
            1
        }
    }
}
