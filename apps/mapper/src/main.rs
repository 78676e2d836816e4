//! Test guest: `map` of a frame it does not own, and of frames beyond any
//! RAM, must be refused with an error (never succeed, never crash), and
//! leave no binding behind. Prints `TEST map_foreign_frame_refused ... ok`.
#![no_std]
#![no_main]

use ilwaco::protocol::{Handle, PageRights, SysError};
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// Where the attempts map (inside `USER_START..USER_END`, not in the image).
const VADDR: u64 = 0x1000_0000;
/// Physical 1 MiB: owned by the kernel or another domain, never by a guest.
const FOREIGN: u64 = 0x100;

fn attempt(frame: u64) -> Result<SysError, &'static str> {
    match sys::map(Handle::NONE, VADDR, frame, PageRights::READ_WRITE) {
        Err(e) => Ok(e),
        Ok(_) => {
            let _ = sys::unmap(Handle::NONE, VADDR);
            Err("map of a frame the guest does not own succeeded")
        }
    }
}

fn run() -> Result<(), &'static str> {
    match attempt(FOREIGN)? {
        SysError::FrameNotOwned | SysError::FrameInUse => {}
        _ => return Err("foreign frame refused with the wrong error"),
    }
    // Beyond RAM: 2^36 frames is 256 TiB; 2^52 and u64::MAX are beyond any
    // physical address. Any error will do; success or a crash will not.
    for frame in [1 << 36, 1 << 52, u64::MAX] {
        attempt(frame)?;
    }
    match sys::unmap(Handle::NONE, VADDR) {
        Err(SysError::NotMapped) => Ok(()),
        Err(_) => Err("unmap after the refusals gave the wrong error"),
        Ok(_) => Err("a refused map left a binding behind"),
    }
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("TEST map_foreign_frame_refused ... ok");
            0
        }
        Err(why) => {
            println!("TEST map_foreign_frame_refused ... FAILED: {why}");
            1
        }
    }
}
