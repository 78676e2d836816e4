//! Waits for its period with idle-with-timeout.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    loop {
        let _ = ilwaco::time::sleep_ns(serac_benchkit::PERIOD_MS * 1_000_000);
    }
}
