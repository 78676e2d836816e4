//! Overcommit test guest: fills `PAGES` pages with a pattern derived from
//! its own domain id, sleeps long enough to be swapped out whole, and
//! then checks every byte. It halts with 0 only if all of them are right
//! (the kernel's halt line is the verdict), 2 if a page came back wrong.
//! It repeats the sleep-and-check `ROUNDS` times, so it is swapped out and
//! in more than once.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use ilwaco::protocol::syscall::DomainOp;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

/// Pages of pattern (64 KiB): 200 of them are 12.5 MiB, more than the
/// swapper keeps resident in a 64 MiB machine.
const PAGES: usize = 16;
/// Sleep and check rounds.
const ROUNDS: u32 = 3;
/// Sleep between checks: longer than the swapper's idle period.
const SLEEP_NS: u64 = 3_000_000_000;

/// The word at `i` of domain `id`'s pattern (splitmix64 of both).
fn word(id: u64, i: u64) -> u64 {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn main() -> i32 {
    let id = sys::domain_ctl(Handle::NONE, DomainOp::ReadCounter, 5, 0).unwrap_or(0);
    let words = PAGES * 4096 / 8;
    let mut mem: Vec<u64> = Vec::new();
    if mem.try_reserve_exact(words).is_err() {
        println!("patterner: no heap for {PAGES} pages");
        return 3;
    }
    for i in 0..words {
        mem.push(word(id, i as u64));
    }
    for round in 1..=ROUNDS {
        let _ = time::sleep_ns(SLEEP_NS);
        if let Some(bad) = (0..words).find(|&i| mem[i] != word(id, i as u64)) {
            println!(
                "patterner: round {round}: page {} word {} is {:#x}, not {:#x}",
                bad / 512,
                bad % 512,
                mem[bad],
                word(id, bad as u64)
            );
            return 2;
        }
    }
    0
}
