//! Test guest for the pager (run with `pager=swapper endpoint=swapper`):
//! its `.bss` holds 64 pages that are not in the image, so each first touch
//! is a fault the swapper serves. Every page must read as zeros, keep what
//! is written to it (distinct frames), and the swapper's counters (through
//! handle 1, an endpoint to it) must show the faults. Prints
//! `TEST pager_zero_fill ... ok`.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ilwaco::ipc::Endpoint;
use ilwaco::println;
use ilwaco::protocol::pager::Client;
use ilwaco::protocol::Handle;

ilwaco::entry!(main);

const PAGES: usize = 64;
const WORDS_PER_PAGE: usize = 512;

/// Zero-initialised, so in `.bss`: bound only when touched.
static MEMORY: [AtomicU64; PAGES * WORDS_PER_PAGE] =
    [const { AtomicU64::new(0) }; PAGES * WORDS_PER_PAGE];

fn run() -> Result<(), &'static str> {
    for w in MEMORY.iter() {
        if w.load(Ordering::Relaxed) != 0 {
            return Err("a fresh page is not zero");
        }
    }
    for (p, page) in MEMORY.chunks(WORDS_PER_PAGE).enumerate() {
        for (i, w) in page.iter().enumerate() {
            w.store(((p as u64) << 32) | i as u64 | 1 << 63, Ordering::Relaxed);
        }
    }
    for (p, page) in MEMORY.chunks(WORDS_PER_PAGE).enumerate() {
        for (i, w) in page.iter().enumerate() {
            if w.load(Ordering::Relaxed) != ((p as u64) << 32) | i as u64 | 1 << 63 {
                return Err("a page lost what was written (shared frame?)");
            }
        }
    }
    let stats = Client::new(Endpoint(Handle::new(1, 1)))
        .stats()
        .map_err(|_| "Stats request to the swapper failed")?;
    println!(
        "toucher: swapper reports {} faults, {} frames resident",
        stats.faults, stats.resident
    );
    if stats.faults < PAGES as u64 || (stats.resident as usize) < PAGES {
        return Err("the swapper's counters do not show this guest's faults");
    }
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("TEST pager_zero_fill ... ok");
            0
        }
        Err(why) => {
            println!("TEST pager_zero_fill ... FAILED: {why}");
            1
        }
    }
}
