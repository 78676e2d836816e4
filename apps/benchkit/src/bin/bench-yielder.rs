//! The partner of the switch figure. Once notified it yields (idle with a
//! past deadline) and counts its yields until notified again, then sends
//! the count back to `bench-core` as notification bits (handle 1), so the
//! bench can check that it really ran between the measured switches. The
//! count and the bit test are the only work on the measured path.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::IDLE_FOREVER;
use ilwaco::protocol::upcall::NOTIFY;
use ilwaco::protocol::Handle;
use ilwaco::sys;
use serac_benchkit::PARTNER_MARK;

ilwaco::entry!(main);

const CORE: Handle = Handle::new(1, 1);

fn main() -> i32 {
    // Wait to be told, so the other figures are not disturbed.
    let _ = sys::idle(IDLE_FOREVER);
    let mut yields = 0u64;
    loop {
        match sys::idle(0) {
            Ok(m) if m & NOTIFY != 0 => break,
            Ok(_) => yields += 1,
            Err(_) => return 1,
        }
    }
    if sys::notify(CORE, PARTNER_MARK | yields).is_err() {
        return 2;
    }
    loop {
        let _ = sys::idle(IDLE_FOREVER);
    }
}
