//! A domain after another's disk (`disk_foreign`): once `diskclient` has
//! opened its disk (it notifies us), opening that disk must be refused,
//! and guessing its handle must not reach it; our own disk works all the
//! while. Then it tells `diskclient` it is done.
#![no_std]
#![no_main]

use ilwaco::protocol::disk::{DiskHandle, ExtentKind, ServiceError, BLOCK_SIZE};
use ilwaco::{println, sys};
use serac_diskclient::{disk, pattern, refused, report, wait_notify, PEER};

ilwaco::entry!(main);

fn steal() -> Result<(), &'static str> {
    if !wait_notify(10_000) {
        return Err("diskclient never said it had opened its disk");
    }
    let mut c = disk();
    refused(
        c.open(ExtentKind::Disk, "diskclient"),
        ServiceError::NotPermitted,
        "opening another domain's disk",
    )?;
    let (mine, _) = c
        .open(ExtentKind::Disk, "diskthief")
        .map_err(|_| "cannot open our own disk")?;
    // Handles are small numbers: try the neighbours of ours.
    let mut buf = [0u8; 512];
    for slot in 0..8 {
        if slot == mine.slot {
            continue;
        }
        for gen in 1..3 {
            let guess = DiskHandle { slot, gen, ..mine };
            refused(
                c.read(guess, 0, 0, &mut buf),
                ServiceError::BadHandle,
                "a guessed handle",
            )?;
        }
    }
    let (mut want, mut got) = ([0u8; BLOCK_SIZE], [0u8; BLOCK_SIZE]);
    pattern(99, &mut want);
    c.write_block(mine, 1, &want)
        .map_err(|_| "writing our own disk failed")?;
    c.read_block(mine, 1, &mut got)
        .map_err(|_| "reading our own disk failed")?;
    if got != want {
        return Err("our own disk does not read back");
    }
    Ok(())
}

fn main() -> i32 {
    let ok = report("disk_foreign", steal());
    if sys::notify(PEER, 1).is_err() {
        println!("diskthief: cannot notify diskclient");
    }
    i32::from(!ok)
}
