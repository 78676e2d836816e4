//! The pattern check the patterners share: fill `pages` pages with a
//! pattern derived from the domain's id, then `rounds` times sleep (long
//! enough to be swapped out whole) and check every byte. Returns the halt
//! code: 0 only if all of them were right, 2 if a page came back wrong, 3
//! without heap for the pages.

use alloc::vec::Vec;
use ilwaco::protocol::syscall::DomainOp;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

/// The word at `i` of domain `id`'s pattern (splitmix64 of both).
fn word(id: u64, i: u64) -> u64 {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fills, sleeps and checks (see the module header).
pub fn run(pages: usize, rounds: u32, sleep_ns: u64) -> i32 {
    let id = sys::domain_ctl(Handle::NONE, DomainOp::ReadCounter, 5, 0).unwrap_or(0);
    let words = pages * 4096 / 8;
    let mut mem: Vec<u64> = Vec::new();
    if mem.try_reserve_exact(words).is_err() {
        println!("patterner: no heap for {pages} pages");
        return 3;
    }
    for i in 0..words {
        mem.push(word(id, i as u64));
    }
    for round in 1..=rounds {
        let _ = time::sleep_ns(sleep_ns);
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
