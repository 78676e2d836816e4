//! Runs as `diskclient` on the second boot of the same disk file: the
//! blocks the first boot wrote and flushed are still there (`disk_persist`).
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::protocol::disk::{ExtentKind, BLOCK_SIZE};
use serac_diskclient::{disk, pattern, report};

ilwaco::entry!(main);

fn check() -> Result<(), &'static str> {
    let mut c = disk();
    let (h, info) = c
        .open(ExtentKind::Disk, "diskclient")
        .map_err(|_| "cannot open our disk")?;
    println!("diskcheck: opened disk diskclient, {} blocks", info.blocks);
    let (mut want, mut got) = ([0u8; BLOCK_SIZE], [0u8; BLOCK_SIZE]);
    for blk in [0, 3] {
        pattern(blk, &mut want);
        c.read_block(h, blk, &mut got)
            .map_err(|_| "read_block failed")?;
        if got != want {
            return Err("a block differs from what the first boot wrote");
        }
    }
    c.read_block(h, 1, &mut got)
        .map_err(|_| "read_block failed")?;
    if got.iter().any(|x| *x != 0) {
        return Err("a block the first boot never wrote is not zero");
    }
    Ok(())
}

fn main() -> i32 {
    i32::from(!report("disk_persist", check()))
}
