//! Once notified, yields forever (idle with a past deadline): the partner
//! of the switch figure.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    // Wait to be told, so the other figures are not disturbed.
    let _ = ilwaco::sys::idle(ilwaco::protocol::syscall::IDLE_FOREVER);
    loop {
        let _ = ilwaco::sys::idle(0);
    }
}
