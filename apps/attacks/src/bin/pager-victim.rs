//! The client of `attack-pager` (its pager, and its handle 1): writes 16
//! pages, tells the pager it is done (the pager then dies), waits, and
//! reads the pages again. Those frames were the dead pager's: the kernel
//! must have taken them back, so the read faults and this domain ends
//! (its pager is gone). Reading them is the hole.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ilwaco::ipc::put_message;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const PAGES: usize = 16;

fn main() -> i32 {
    let mut mem: Vec<u8> = Vec::with_capacity(PAGES * 4096);
    mem.resize(PAGES * 4096, 0x5a);
    println!("pager-victim: wrote {PAGES} pages");
    // Label 99: "done" (attack-pager's `DONE`).
    let _ = put_message(99, Handle::NONE, b"done");
    let _ = sys::call(Handle::new(1, 1));
    let _ = time::sleep_ns(50_000_000);
    let intact = mem.iter().filter(|&&b| b == 0x5a).count();
    println!("pager-victim: still reading the dead pager's frames ({intact} bytes intact)");
    1
}
