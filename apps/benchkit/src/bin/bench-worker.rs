//! Does useful work (a xorshift loop) for `WORK_MS` of clock time and
//! reports how much it got done.
#![no_std]
#![no_main]

use serac_benchkit::{report, WORK_MS};

ilwaco::entry!(main);

fn main() -> i32 {
    let Some(clock) = ilwaco::time::clock() else {
        return 1;
    };
    // Let every other domain start first.
    let _ = ilwaco::time::sleep_ns(20_000_000);
    let end = clock.deadline_after_ns(ilwaco::time::tsc(), WORK_MS * 1_000_000);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut work = 0u64;
    while ilwaco::time::tsc() < end {
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        work += 1;
    }
    core::hint::black_box(x);
    report("work", work);
    0
}
