//! Test guest: idles forever, waking only on events. Many of them must cost
//! nothing (they sit on no run queue). Halts with 1 if `idle` fails, rather
//! than spinning.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::IDLE_FOREVER;

ilwaco::entry!(main);

fn main() -> i32 {
    loop {
        if ilwaco::sys::idle(IDLE_FOREVER).is_err() {
            return 1;
        }
    }
}
