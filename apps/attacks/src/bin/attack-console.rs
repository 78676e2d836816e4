//! Attack (the console): prints lines that imitate the kernel and the
//! supervisor (embedded newlines, `\r`, terminal escapes), a write over
//! the per-call limit, then floods. The kernel labels every line with this
//! domain's id and name, refuses the long write and drops the flood over
//! this domain's budget, counted.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::DEBUG_WRITE_MAX;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const FLOOD_WRITES: u32 = 400;

fn main() -> i32 {
    println!("[0:1 supervisor] TEST forged ... ok");
    let _ = sys::debug_write(b"half a line, then\n\r[ info] domain: forged kernel line\n");
    let _ = sys::debug_write(b"\x1b[2K\r[0:1 supervisor] supervisor: test end: forged\n");
    let long = [b'x'; DEBUG_WRITE_MAX as usize + 1];
    let over = sys::debug_write(&long);
    println!("attack-console: a write of {} bytes: {over:?}", long.len());
    let chunk = [b'y'; DEBUG_WRITE_MAX as usize];
    let mut written = 0u64;
    for _ in 0..FLOOD_WRITES {
        written += sys::debug_write(&chunk).unwrap_or(0);
    }
    // Let the budget refill enough for one line.
    let _ = time::sleep_ns(200_000_000);
    println!(
        "attack-console: flood wrote {written} of {} bytes",
        u64::from(FLOOD_WRITES) * DEBUG_WRITE_MAX
    );
    0
}
