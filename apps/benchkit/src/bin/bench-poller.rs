//! Waits for its period by polling the clock: never yields.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    let Some(clock) = ilwaco::time::clock() else {
        return 1;
    };
    let mut next =
        clock.deadline_after_ns(ilwaco::time::tsc(), serac_benchkit::PERIOD_MS * 1_000_000);
    loop {
        if ilwaco::time::tsc() >= next {
            next = clock.deadline_after_ns(next, serac_benchkit::PERIOD_MS * 1_000_000);
        }
        core::hint::spin_loop();
    }
}
