//! Client of `crashy` (handle 1): checks that a server crash is never
//! silence. A call that makes the server crash fails with `PeerDead`; once
//! the supervisor has restarted it, the next call fails once with
//! `ServerRestarted`, and the retry succeeds.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, SysError};

ilwaco::entry!(main);

const CRASHY: Handle = Handle::new(1, 1);

fn call(label: u32) -> Result<u64, SysError> {
    put_message(label, Handle::NONE, b"ping")?;
    sys::call(CRASHY)?;
    let mut buf = [0u8; 16];
    let (_, n) = get_message(&mut buf)?;
    Ok(n as u64)
}

fn check() -> Result<(), &'static str> {
    call(1).map_err(|_| "first call failed")?;
    match call(99) {
        Err(SysError::PeerDead) => println!("crashclient: crash call failed with PeerDead"),
        Err(_) => return Err("crash call: wrong error"),
        Ok(_) => return Err("crash call succeeded"),
    }
    // Wait for the restart: PeerDead while it is down, then ServerRestarted once.
    let mut saw_restart = false;
    for _ in 0..200 {
        match call(1) {
            Err(SysError::PeerDead) => {
                let _ = ilwaco::time::sleep_ns(5_000_000);
            }
            Err(SysError::ServerRestarted) => {
                println!("crashclient: call failed with ServerRestarted");
                saw_restart = true;
            }
            Ok(_) if saw_restart => return Ok(()),
            Ok(_) => return Err("call succeeded without a ServerRestarted first"),
            Err(_) => return Err("unexpected error while waiting for the restart"),
        }
    }
    Err("server never came back")
}

fn main() -> i32 {
    match check() {
        Ok(()) => {
            println!("TEST server_restart_seen ... ok");
            0
        }
        Err(why) => {
            println!("TEST server_restart_seen ... FAILED: {why}");
            1
        }
    }
}
