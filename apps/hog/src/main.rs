//! Test guest for the pager (run with `pager=swapper`): touches the pages of
//! a 256 MiB `.bss` array one by one. The swapper's pool is smaller, so it
//! must run dry and kill this domain (`swapper: out of frames, killing ..`)
//! while the other domains go on. Reaching the end is a failure.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ilwaco::println;

ilwaco::entry!(main);

const MIB: usize = 1024 * 1024;
const BYTES: usize = 256 * MIB;
const WORDS_PER_PAGE: usize = 512;

/// Zero-initialised, so in `.bss`: bound only when touched.
static MEMORY: [AtomicU64; BYTES / 8] = [const { AtomicU64::new(0) }; BYTES / 8];

fn main() -> i32 {
    println!("hog: touching up to {} MiB", BYTES / MIB);
    for (p, page) in MEMORY.chunks(WORDS_PER_PAGE).enumerate() {
        page[0].store(p as u64 + 1, Ordering::Relaxed);
        let done = (p + 1) * WORDS_PER_PAGE * 8;
        if done.is_multiple_of(16 * MIB) {
            println!("hog: {} MiB touched", done / MIB);
        }
    }
    println!("TEST pager_out_of_frames ... FAILED: hog touched 256 MiB and was never stopped");
    2
}
