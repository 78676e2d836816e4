//! Test guest: idles forever, waking only on events. Many of them must cost
//! nothing (they sit on no run queue). Halts with 1 if `idle` fails, rather
//! than spinning. If the manifest gave it a notification (handle 1, e.g.
//! `notify=collector`), it first reports in with one notification, so a
//! counter can tell how many idlers really ran; without one the attempt
//! fails (`BadHandle`) and it just idles.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::IDLE_FOREVER;
use ilwaco::protocol::Handle;

ilwaco::entry!(main);

fn main() -> i32 {
    let _ = ilwaco::sys::notify(Handle::new(1, 1), 1);
    loop {
        if ilwaco::sys::idle(IDLE_FOREVER).is_err() {
            return 1;
        }
    }
}
