//! Handle-transfer test client. Handles: 1 = endpoint to `pong`, 2 =
//! endpoint to `relay`. It sends handle 1 to `relay` inside a message; the
//! handle must leave its own table (a later call through it fails) and work
//! in relay's (relay forwards through it to `pong`, whose answer comes back).
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, SysError};

ilwaco::entry!(main);

const PONG: Handle = Handle::new(1, 1);
const RELAY: Handle = Handle::new(2, 1);

fn check() -> Result<(), &'static str> {
    let mut buf = [0u8; 64];
    put_message(0, PONG, b"abc").map_err(|_| "cannot write the message")?;
    sys::call(RELAY).map_err(|_| "call to relay failed")?;
    let (h, n) = get_message(&mut buf).map_err(|_| "unreadable reply")?;
    if h.label != 0 || &buf[..n] != b"bcd" {
        return Err("relay did not get pong's answer through the moved handle");
    }
    put_message(0, Handle::NONE, b"x").map_err(|_| "cannot write")?;
    match sys::call(PONG) {
        Err(SysError::StaleHandle) | Err(SysError::BadHandle) => Ok(()),
        Err(_) => Err("the moved handle failed with the wrong error"),
        Ok(_) => Err("the moved handle still works in the sender's table"),
    }
}

fn main() -> i32 {
    match check() {
        Ok(()) => {
            println!("TEST handle_transfer ... ok");
            0
        }
        Err(why) => {
            println!("TEST handle_transfer ... FAILED: {why}");
            1
        }
    }
}
