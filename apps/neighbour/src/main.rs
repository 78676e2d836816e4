//! Test guest: sleeps 50 ms (so the faulter faults first), then reports it
//! is still running: a fault stops only the faulting domain.
#![no_std]
#![no_main]

use ilwaco::{println, time};

ilwaco::entry!(main);

fn main() -> i32 {
    match time::sleep_ns(50_000_000) {
        Ok(_) => {
            println!("TEST fault_isolated ... ok");
            0
        }
        Err(e) => {
            println!("TEST fault_isolated ... FAILED: sleep failed: {e:?}");
            1
        }
    }
}
