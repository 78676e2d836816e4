//! Test guest: reads an address outside its space. The kernel (or its
//! pager) must stop this domain and nothing else; the neighbour proves the
//! rest kept running.
#![no_std]
#![no_main]

use ilwaco::println;

ilwaco::entry!(main);

/// Far above any image, heap or stack, and never bound.
const WILD: u64 = 0x7000_0000_0000;

fn main() -> i32 {
    println!("faulter: about to fault");
    let v = ilwaco::sys::peek(WILD);
    println!("TEST fault_isolated ... FAILED: faulter read {WILD:#x} and got {v:#x}");
    2
}
