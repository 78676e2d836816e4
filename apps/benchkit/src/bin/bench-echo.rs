//! The leanest server: answers every message with itself (whatever is in
//! its IPC buffer after receiving), so a round trip through it measures
//! the kernel's IPC path and nothing else.
#![no_std]
#![no_main]

use ilwaco::protocol::Handle;

ilwaco::entry!(main);

fn main() -> i32 {
    let mut reply = Handle::NONE;
    loop {
        reply = match ilwaco::sys::reply_recv(reply) {
            Ok(raw) => Handle::from_raw(raw),
            Err(_) => Handle::NONE,
        };
    }
}
