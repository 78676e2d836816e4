//! Attack (shared FPU state): uses the sse unit. Nothing saves its state
//! per domain, so the kernel makes every such instruction trap: this
//! domain must fault alone at its first one.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::sys::{fpu_probe, FpuUnit};

ilwaco::entry!(main);

fn main() -> i32 {
    println!("attack-sse: trying one sse instruction");
    let v = fpu_probe(FpuUnit::Sse);
    println!("attack-sse: the sse unit worked and gave {v:#x}; it is a channel between domains");
    2
}
