//! The test domain of `reply_labels`: calls `attack-label` (its handle 1),
//! which tries to answer with a kernel label first. Every answer that
//! arrives must be the genuine one.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};

ilwaco::entry!(main);

const CALLS: u32 = 20;

fn main() -> i32 {
    let server = Handle::new(1, 1);
    let mut buf = [0u8; 64];
    for n in 0..CALLS {
        if put_message(1, Handle::NONE, b"hello").is_err() {
            println!("TEST reply_labels ... FAILED: cannot write a message");
            return 1;
        }
        if let Err(e) = sys::call(server) {
            println!("TEST reply_labels ... FAILED: call {n} failed: {e:?}");
            return 1;
        }
        match get_message(&mut buf) {
            Ok((h, len)) if h.label == 7 && buf.get(..len) == Some(&b"genuine"[..]) => {}
            Ok((h, len)) => {
                println!(
                    "TEST reply_labels ... FAILED: call {n} got label {:#x} and {:?}",
                    h.label,
                    buf.get(..len)
                );
                return 1;
            }
            Err(e) => {
                println!("TEST reply_labels ... FAILED: call {n}: unreadable reply: {e:?}");
                return 1;
            }
        }
    }
    println!("TEST reply_labels ... ok: {CALLS} answers, none with a kernel label");
    0
}
