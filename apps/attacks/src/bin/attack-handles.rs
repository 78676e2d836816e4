//! Attack (handles without consent) and the test domain of
//! `handle_consent`: handle 1 is an endpoint to `pong`, which never opts
//! in to receiving handles, handle 2 a second one. It tries to push
//! handle 2 into pong's table a hundred times (a table holds 60: without
//! consent pong's table would fill for good and pong could not take a
//! reply handle, so could not serve anyone); each must be refused with
//! `HandleRefused` and leave handle 2 with this domain. Then it closes
//! handle 2 and checks it is gone.
#![no_std]
#![no_main]

use ilwaco::ipc::put_message;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, SysError};

ilwaco::entry!(main);

const PUSHES: u32 = 100;

fn plain_call(ep: Handle) -> Result<u64, SysError> {
    put_message(1, Handle::NONE, b"ping")?;
    sys::call(ep)
}

fn consent() -> Result<(), &'static str> {
    let (pong, spare) = (Handle::new(1, 1), Handle::new(2, 1));
    for _ in 0..PUSHES {
        put_message(1, spare, b"take this").map_err(|_| "cannot write a message")?;
        match sys::call(pong) {
            Err(SysError::HandleRefused) => {}
            Ok(_) => return Err("a handle moved into a receiver that did not opt in"),
            Err(_) => return Err("a handle push failed with another error"),
        }
        // Refused means the sender keeps it: it still works.
        plain_call(spare).map_err(|_| "the refused handle no longer works")?;
    }
    // Pong's table has room: it still serves.
    plain_call(pong).map_err(|_| "pong cannot serve after the pushes")?;
    Ok(())
}

fn close() -> Result<(), &'static str> {
    let spare = Handle::new(2, 1);
    sys::close(spare).map_err(|_| "close of a live handle failed")?;
    match plain_call(spare) {
        Err(SysError::BadHandle | SysError::StaleHandle) => {}
        _ => return Err("a closed handle still works"),
    }
    match sys::close(spare) {
        Err(SysError::BadHandle | SysError::StaleHandle) => {}
        _ => return Err("a second close of the same handle succeeded"),
    }
    match sys::close(Handle::new(40, 7)) {
        Err(SysError::BadHandle) => {}
        _ => return Err("close of a forged handle did not fail with BadHandle"),
    }
    plain_call(Handle::new(1, 1)).map_err(|_| "closing one handle broke another")?;
    Ok(())
}

fn report(name: &str, r: Result<(), &'static str>) -> bool {
    match r {
        Ok(()) => println!("TEST {name} ... ok"),
        Err(why) => println!("TEST {name} ... FAILED: {why}"),
    }
    r.is_ok()
}

fn main() -> i32 {
    let a = report("handle_consent", consent());
    let b = report("handle_close", close());
    i32::from(!(a && b))
}
