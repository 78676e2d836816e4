//! The client of `revoke-pager` (its pager, and its handle 1); see there
//! for the steps. It only writes, reads and reports what it read: the
//! verdict is the pager's and the kernel's.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use ilwaco::ipc::put_message;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const PAGES: usize = 8;

fn call(step: u32, arg: u64) {
    // Labels 101..=105, clear of the pager protocol's own.
    let _ = put_message(100 + step, Handle::NONE, &arg.to_le_bytes());
    if let Err(e) = sys::call(Handle::new(1, 1)) {
        println!("revoke-client: step {step} call failed: {e:?}");
    }
}

fn main() -> i32 {
    let mut v = vec![0u8; (PAGES + 1) * 4096];
    let start = v.as_ptr() as usize;
    let off = (4096 - start % 4096) % 4096;
    let pages = &mut v[off..off + PAGES * 4096];
    for (p, page) in pages.chunks_mut(4096).enumerate() {
        page.fill(p as u8 + 1);
    }
    call(1, (start + off) as u64);
    let sum: u64 = pages.iter().map(|&b| u64::from(b)).sum();
    call(2, sum);
    pages[3 * 4096] = 0xee;
    call(3, 0);
    let mut ok = 0u64;
    for (p, page) in pages.chunks(4096).enumerate() {
        let good = if p == 3 {
            page[0] == 0xee && page[1..].iter().all(|&b| b == 4)
        } else {
            page.iter().all(|&b| b == 0x80 + p as u8)
        };
        ok += u64::from(good);
    }
    call(4, ok);
    let _ = time::sleep_ns(100_000_000);
    call(5, 0);
    let mut more = vec![0u8; 64 * 4096];
    more[32 * 4096] = 1;
    core::hint::black_box(&mut more);
    println!("revoke-client: a fault answered FAULT_KILL_LOST let me run on");
    1
}
