//! The supervisor, the first domain the kernel starts.
//!
//! For now it only proves the path from the kernel to a ring-3 server: it
//! says it is up, reads the clock page and halts with code 0 (1 if the clock
//! page is invalid). Later it reads the boot manifest and starts the domains.
#![no_std]
#![no_main]

use ilwaco::println;

ilwaco::entry!(main);

fn main() -> i32 {
    println!("supervisor: up");
    match ilwaco::time::clock() {
        Some(c) => {
            println!(
                "supervisor: tsc {} Hz ({} MHz)",
                c.tsc_hz,
                c.tsc_hz / 1_000_000
            );
            0
        }
        None => {
            println!("supervisor: clock page invalid");
            1
        }
    }
}
