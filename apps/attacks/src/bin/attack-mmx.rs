//! Attack (shared FPU state): uses the mmx unit. Nothing saves its state
//! per domain, so the kernel makes every such instruction trap: this
//! domain must fault alone at its first one.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::sys::{fpu_probe, FpuUnit};

ilwaco::entry!(main);

fn main() -> i32 {
    println!("attack-mmx: trying one mmx instruction");
    let v = fpu_probe(FpuUnit::Mmx);
    println!("attack-mmx: the mmx unit worked and gave {v:#x}; it is a channel between domains");
    2
}
