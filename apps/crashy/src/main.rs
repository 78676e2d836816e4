//! Test server that crashes on request: answers label 1 with an echo, and
//! on label 99 reads an unmapped address (a fault the kernel reports to the
//! supervisor, which restarts it). Prints `crashy: up (generation N)`.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys};

ilwaco::entry!(main);

fn main() -> i32 {
    let me = sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    )
    .map(DomainId::from_raw)
    .unwrap_or(DomainId::NONE);
    println!("crashy: up (generation {})", me.gen);
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    loop {
        reply = match sys::reply_recv(reply) {
            Ok(raw) => Handle::from_raw(raw),
            Err(e) => {
                println!("crashy: reply_recv failed: {e:?}");
                return 1;
            }
        };
        let (label, len) = get_message(&mut buf).map_or((0, 0), |(h, n)| (h.label, n));
        if label == 99 {
            println!("crashy: crashing on request");
            let v = sys::peek(0x7000_0000_0000);
            println!("crashy: survived a bad read ({v:#x})?");
        }
        let _ = put_message(label, Handle::NONE, &buf[..len]);
    }
}
