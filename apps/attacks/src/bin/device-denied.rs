//! The test domain of `device_grant` without a device: nothing the manifest
//! did not grant is reachable. No handle slot is a `Device`, the BAR's
//! frames cannot be mapped as memory, and the device powers of `domain_ctl`
//! need the supervisor's root handle.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::{DeviceOp, DomainOp};
use ilwaco::protocol::{Handle, PageRights};
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// The virtio-blk function's memory BAR 4 as QEMU's firmware places it.
const BAR_FRAME: u64 = 0xfe000;

fn check() -> Result<(), &'static str> {
    for i in 0..64 {
        for g in 1..3 {
            if sys::device(Handle::new(i, g), DeviceOp::Info, 0, 0).is_ok() {
                return Err("a handle reached a device");
            }
        }
    }
    if sys::map(
        Handle::NONE,
        0x5000_0000_0000,
        BAR_FRAME,
        PageRights::READ_WRITE,
    )
    .is_ok()
    {
        return Err("a BAR frame mapped as memory");
    }
    for op in [DomainOp::PciFunction, DomainOp::GrantDevice] {
        if sys::domain_ctl(Handle::NONE, op, 0, 0).is_ok() {
            return Err("a device power without the root handle");
        }
    }
    Ok(())
}

fn main() -> i32 {
    match check() {
        Ok(()) => {
            println!("TEST device_denied ... ok");
            0
        }
        Err(why) => {
            println!("TEST device_denied ... FAILED: {why}");
            1
        }
    }
}
