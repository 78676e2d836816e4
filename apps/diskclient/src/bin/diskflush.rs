//! Flushes while others read (`disk_flush`): writes a block of its disk,
//! flushes, reads it back, many times, while `diskload` instances read the
//! image. The disk server queues a flush on the device like any request,
//! beside the readers' requests in flight, and answers it on the device's
//! interrupt (the server says so in its log); each flush must succeed and
//! every block read back must be the one written.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::protocol::disk::{ExtentKind, BLOCK_SIZE};
use serac_diskclient::{disk, pattern};

ilwaco::entry!(main);

/// Write, flush, read-back rounds.
const ROUNDS: u64 = 50;

fn run() -> Result<(), &'static str> {
    let mut c = disk();
    let (h, info) = c
        .open(ExtentKind::Disk, "diskflush")
        .map_err(|_| "cannot open our disk")?;
    let mut buf = [0u8; BLOCK_SIZE];
    let mut back = [0u8; BLOCK_SIZE];
    for round in 1..=ROUNDS {
        let blk = round % info.blocks.max(1);
        pattern(round, &mut buf);
        c.write_block(h, blk, &buf).map_err(|_| "a write failed")?;
        c.flush(h).map_err(|_| "a flush failed")?;
        c.read_block(h, blk, &mut back)
            .map_err(|_| "a read failed")?;
        if back != buf {
            return Err("a flushed block read back wrong");
        }
    }
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("diskflush: {ROUNDS} writes flushed and read back");
            0
        }
        Err(why) => {
            println!("diskflush: {why}");
            1
        }
    }
}
