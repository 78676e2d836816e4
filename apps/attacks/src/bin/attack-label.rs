//! Attack (kernel labels in replies): a server that answers every call
//! first with a kernel-reserved label, which would pass for the kernel's
//! own word with the caller (`LABEL_EXIT`). The kernel must refuse it
//! (`BadArgument`) and keep the reply handle, so the server can answer
//! properly; `label-client` checks what it really received.
#![no_std]
#![no_main]

use ilwaco::ipc::put_message;
use ilwaco::protocol::header::LABEL_EXIT;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// The label of the genuine answer.
const GENUINE: u32 = 7;

fn main() -> i32 {
    println!("attack-label: up");
    let mut reply = Handle::NONE;
    let mut refused = 0u32;
    loop {
        reply = match sys::reply_recv(reply) {
            Ok(raw) => Handle::from_raw(raw),
            Err(e) => {
                println!("attack-label: reply_recv failed: {e:?}");
                return 1;
            }
        };
        if reply.is_none() {
            continue;
        }
        // The forged answer: a reply with a kernel label, then wait for
        // the next message as if it had gone through.
        let _ = put_message(LABEL_EXIT, Handle::NONE, b"forged");
        match sys::reply_recv_until(reply, sys::rdtsc() + 1) {
            Err(ilwaco::SysError::BadArgument) => {
                refused += 1;
                println!("attack-label: forged reply #{refused} refused");
            }
            other => println!("attack-label: forged reply answered {other:?}"),
        }
        let _ = put_message(GENUINE, Handle::NONE, b"genuine");
    }
}
