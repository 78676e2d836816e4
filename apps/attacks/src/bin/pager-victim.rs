//! The client of `attack-pager` (its pager, and its handle 1): writes 16
//! pages, tells the pager it is done (the pager then dies), waits, and
//! reads the pages again. A pager's death loses no page: the frames stay
//! bound here, now the supervisor's, and the software TLB keeps anyone
//! else from binding them. Then it touches a new page: with its pager dead
//! for good, that fault waits until the supervisor reaps the pager, and
//! this domain ends. Being served that page is the hole.
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
    println!(
        "pager-victim: {intact} of {} bytes intact after the pager died",
        mem.len()
    );
    // Far past anything touched so far: certainly a new page.
    let mut more: Vec<u8> = Vec::with_capacity(64 * 4096);
    more.resize(64 * 4096, 0xa5);
    println!(
        "pager-victim: served a new page by a dead pager at {:p} (faults {})",
        more.as_ptr(),
        sys::domain_ctl(
            Handle::NONE,
            ilwaco::protocol::syscall::DomainOp::ReadCounter,
            4,
            0
        )
        .unwrap_or(0)
    );
    1
}
