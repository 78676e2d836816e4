//! Test guest: 1,000 calls to pong (its first handle, `Handle::new(1, 1)`,
//! an endpoint granted by the supervisor), each with a 16-byte payload;
//! every reply must be the payload with each byte plus one. Prints
//! `TEST ipc_pingpong ... ok` and the round-trip time, then halts with 0.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::Transport;
use ilwaco::protocol::Handle;
use ilwaco::{println, time};

ilwaco::entry!(main);

/// Round trips measured.
const ROUNDS: u32 = 1000;
/// Label of the echo requests (any non-kernel label).
const LABEL: u32 = 0x50_49_4e_47;

fn run() -> Result<u64, &'static str> {
    let mut pong = Endpoint(Handle::new(1, 1));
    let clock = time::clock().ok_or("no clock page")?;
    let start = time::tsc();
    for i in 0..ROUNDS {
        let mut req = [0u8; 16];
        for (j, b) in req.iter_mut().enumerate() {
            // Every value, 0xff included (its reply wraps to 0).
            *b = (i as u8).wrapping_mul(7).wrapping_add(j as u8 * 17);
        }
        let mut reply = [0u8; 64];
        let n = pong
            .call(LABEL, &req, &mut reply)
            .map_err(|_| "call to pong failed")?;
        if n != req.len() {
            return Err("reply has the wrong length");
        }
        if req
            .iter()
            .zip(&reply[..n])
            .any(|(a, b)| a.wrapping_add(1) != *b)
        {
            return Err("reply is not the payload plus one");
        }
    }
    let end = time::tsc();
    Ok(clock
        .ns_since_boot(end)
        .saturating_sub(clock.ns_since_boot(start))
        / 1000)
}

fn main() -> i32 {
    match run() {
        Ok(us) => {
            println!("TEST ipc_pingpong ... ok");
            println!("ping: {ROUNDS} round trips in {us} us");
            0
        }
        Err(why) => {
            println!("TEST ipc_pingpong ... FAILED: {why}");
            1
        }
    }
}
