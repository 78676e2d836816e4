//! The guest of `net_flood` that never reads: it has a port, never calls
//! `Recv`, and ends after three seconds. Its queue fills and its own drops
//! rise (the vnic's counters when the port is detached); its neighbours
//! must not notice.
#![no_std]
#![no_main]

use ilwaco::{println, time};
use serac_nettest::Port;

ilwaco::entry!(main);

fn main() -> i32 {
    let _port = Port::open("netdeaf");
    let _ = time::sleep_ns(3_000_000_000);
    println!("netdeaf: never read, ending");
    0
}
