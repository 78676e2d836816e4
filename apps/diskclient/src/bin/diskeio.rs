//! Against a device that fails chosen requests (`disk_eio`: QEMU's
//! blkdebug fails reads of block 2 and writes of block 1 of our disk with
//! EIO): exactly those come back `Io`, never as success, and everything
//! else still works, before and after.
#![no_std]
#![no_main]

use ilwaco::protocol::disk::{ExtentKind, ServiceError, BLOCK_SIZE};
use serac_diskclient::{disk, pattern, refused, report};

ilwaco::entry!(main);

fn check() -> Result<(), &'static str> {
    let mut c = disk();
    let (h, _) = c
        .open(ExtentKind::Disk, "diskclient")
        .map_err(|_| "cannot open our disk")?;
    let (mut want, mut got) = ([0u8; BLOCK_SIZE], [0u8; BLOCK_SIZE]);
    pattern(0, &mut want);
    c.write_block(h, 0, &want)
        .map_err(|_| "writing block 0 failed")?;
    refused(
        c.read_block(h, 2, &mut got),
        ServiceError::Io,
        "a read the device fails",
    )?;
    c.read_block(h, 0, &mut got)
        .map_err(|_| "reading block 0 after the error failed")?;
    if got != want {
        return Err("block 0 does not read back");
    }
    // The first half of block 1 is fine; its second half fails.
    c.write(h, 1, 0, &want[..2048])
        .map_err(|_| "writing the first half failed")?;
    refused(
        c.write(h, 1, 2048, &want[2048..]),
        ServiceError::Io,
        "a write the device fails",
    )?;
    refused(
        c.read_block(h, 2, &mut got),
        ServiceError::Io,
        "the failing read again",
    )?;
    c.flush(h).map_err(|_| "flush after the errors failed")?;
    c.read_block(h, 3, &mut got)
        .map_err(|_| "reading block 3 failed")?;
    if got.iter().any(|x| *x != 0) {
        return Err("block 3 is not zero");
    }
    Ok(())
}

fn main() -> i32 {
    i32::from(!report("disk_eio", check()))
}
