//! Test guest: the innocent neighbour of an attacker. It runs for ever,
//! and every 120 ms it writes a page of its own memory (a fresh one for the
//! first 64 ticks, each first touch a fault its pager serves when it has
//! one), checks every page it wrote before, and prints `neighbour: tick
//! <n>, <p> pages intact`. Tests require such a line *after* the kernel's
//! or supervisor's line that ends the attack, so a neighbour that stopped,
//! lost memory or lost its pager fails them. It never prints a verdict:
//! the judge's ordering is the verdict.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ilwaco::{println, time};

ilwaco::entry!(main);

const PAGES: usize = 64;
/// Long enough that the kernel drops its page tables while it sleeps
/// (idle over 100 ms), so every tick also needs kernel memory to resume.
const TICK_NS: u64 = 120_000_000;
const PAGE: usize = 4096;

fn main() -> i32 {
    // Reserved, not touched: pages arrive one tick at a time.
    let mut mem: Vec<u8> = Vec::with_capacity(PAGES * PAGE);
    let mut tick: u64 = 0;
    loop {
        if let Err(e) = time::sleep_ns(TICK_NS) {
            println!("neighbour: sleep failed: {e:?}");
            return 1;
        }
        tick += 1;
        let stamp = (tick & 0xff) as u8;
        let page = ((tick - 1) % PAGES as u64) as usize;
        if mem.len() < PAGES * PAGE {
            mem.resize(mem.len() + PAGE, stamp);
        } else if let Some(p) = mem.get_mut(page * PAGE..(page + 1) * PAGE) {
            p.fill(stamp);
        }
        let n = mem.len() / PAGE;
        let intact = (0..n)
            .filter(|&p| {
                let want = (last_tick_of(p, tick) & 0xff) as u8;
                mem[p * PAGE..(p + 1) * PAGE].iter().all(|&b| b == want)
            })
            .count();
        if intact != n {
            println!("neighbour: tick {tick}: only {intact} of {n} pages intact");
            return 2;
        }
        println!("neighbour: tick {tick}, {n} pages intact");
    }
}

/// The last tick (at most `now`) that wrote page `p`: pages are written
/// in turn, page `p` at ticks `p + 1`, `p + 1 + PAGES`, ...
fn last_tick_of(p: usize, now: u64) -> u64 {
    let first = p as u64 + 1;
    first + (now - first) / PAGES as u64 * PAGES as u64
}
