//! The event source of the batching figure: a server that wakes every
//! `BATCH_PERIOD_US` (idle with a deadline; a woken server outranks the
//! guests) and notifies `bench-target` (handle 1), one bit of 64 in turn.
#![no_std]
#![no_main]

use ilwaco::protocol::Handle;
use ilwaco::{sys, time};
use serac_benchkit::BATCH_PERIOD_US;

ilwaco::entry!(main);

const TARGET: Handle = Handle::new(1, 1);

fn main() -> i32 {
    let mut k = 0u64;
    loop {
        if time::sleep_ns(BATCH_PERIOD_US * 1000).is_err() {
            return 1;
        }
        if sys::notify(TARGET, 1 << (k % 64)).is_err() {
            return 2;
        }
        k += 1;
    }
}
