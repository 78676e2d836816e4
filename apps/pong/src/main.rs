//! Test server: answers every request with the same label and the payload
//! with each byte incremented (wrapping), forever. Prints `pong: up` once.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// Consecutive failed receives before pong gives up.
const MAX_RECV_ERRORS: u32 = 3;

fn main() -> i32 {
    println!("pong: up");
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    let mut errors = 0u32;
    loop {
        match sys::reply_recv(reply) {
            Ok(raw) => {
                errors = 0;
                reply = Handle::from_raw(raw);
            }
            Err(e) => {
                errors += 1;
                println!("pong: reply_recv failed: {e:?}");
                if errors >= MAX_RECV_ERRORS {
                    return 1;
                }
                reply = Handle::NONE;
                continue;
            }
        }
        let (label, len) = match get_message(&mut buf) {
            // Kernel labels cannot be sent by a domain; answer those with 0.
            Ok((h, len)) if !h.is_kernel_label() => (h.label, len),
            _ => (0, 0),
        };
        let answer = &mut buf[..len];
        for b in answer.iter_mut() {
            *b = b.wrapping_add(1);
        }
        if put_message(label, Handle::NONE, answer).is_err() {
            let _ = put_message(label, Handle::NONE, &[]);
        }
    }
}
