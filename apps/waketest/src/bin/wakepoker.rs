//! Calls and notifies `waketest` in the order its module docs give
//! (handles: 1 = its endpoint, 2 = a notification to it), then reports how
//! many answers were wrong in a last call (label 4).
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::Handle;
use ilwaco::{println, rt, sys};

ilwaco::entry!(main);

const STREAM: u32 = 200;

/// Calls with `label` and `word`; whether the answer has `label` (and, if
/// `want` is some, that first word).
fn call(ep: Handle, label: u32, word: u32, want: Option<u32>) -> bool {
    let mut buf = [0u8; 8];
    let ok = put_message(label, Handle::NONE, &word.to_le_bytes())
        .and_then(|()| sys::call(ep))
        .and_then(|_| get_message(&mut buf));
    match ok {
        Ok((h, n)) => {
            let got = (n >= 4).then(|| u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
            h.label == label && (want.is_none() || got == want)
        }
        Err(_) => false,
    }
}

fn main() -> i32 {
    let (ep, note) = (rt::granted(1), rt::granted(2));
    let mut errors = 0u32;
    let mut check = |ok: bool| errors += u32::from(!ok);
    check(call(ep, 1, 0, None));
    check(sys::notify(note, 0x10).is_ok());
    check(sys::notify(note, 0x20).is_ok());
    check(call(ep, 2, 0, None));
    for i in 0..STREAM {
        check(call(ep, 3, i, Some(i + 1)));
    }
    check(sys::notify(note, 0x40).is_ok());
    if errors != 0 {
        println!("wakepoker: {errors} wrong answer(s)");
    }
    let _ = call(ep, 4, errors, None);
    0
}
