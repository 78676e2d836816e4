//! Handle-transfer test server: each request must carry an endpoint handle;
//! `relay` calls through it (to `pong`) and answers with what came back,
//! proving the handle arrived in its table and works.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::syscall::RECV_ACCEPT_HANDLE;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};

ilwaco::entry!(main);

fn main() -> i32 {
    println!("relay: up");
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    loop {
        // The relay wants handles: it opts in on every receive.
        reply = match sys::reply_recv_with(reply, 0, RECV_ACCEPT_HANDLE) {
            Ok(raw) => Handle::from_raw(raw),
            Err(e) => {
                println!("relay: reply_recv failed: {e:?}");
                return 1;
            }
        };
        let Ok((h, len)) = get_message(&mut buf) else {
            let _ = put_message(1, Handle::NONE, b"no message");
            continue;
        };
        if h.handle.is_none() {
            let _ = put_message(1, Handle::NONE, b"no handle");
            continue;
        }
        println!("relay: received handle {}:{}", h.handle.index, h.handle.gen);
        // Forward the payload through the handle we were given.
        let mut out = [0u8; 64];
        let n = len.min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        let forwarded = put_message(1, Handle::NONE, &out[..n])
            .and_then(|()| sys::call(h.handle))
            .and_then(|_| get_message(&mut buf));
        match forwarded {
            Ok((_, m)) => {
                let mut answer = [0u8; 64];
                let m = m.min(answer.len());
                answer[..m].copy_from_slice(&buf[..m]);
                let _ = put_message(0, Handle::NONE, &answer[..m]);
            }
            Err(e) => {
                println!("relay: call through the received handle failed: {e:?}");
                let _ = put_message(1, Handle::NONE, b"forward failed");
            }
        }
    }
}
