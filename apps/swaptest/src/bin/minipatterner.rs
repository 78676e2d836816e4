//! Many-domain test guest: the patterner's check on 2 pages, with sleeps
//! long enough that hundreds of its instances are swapped out whole at
//! once (more than the 256 domain records the swapper once had). It halts
//! with 0 only if every byte came back right (the kernel's halt line is
//! the verdict), 2 if a page came back wrong.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../pattern.rs"]
mod pattern;

ilwaco::entry!(main);

/// Pages of pattern (8 KiB).
const PAGES: usize = 2;
/// Sleep and check rounds.
const ROUNDS: u32 = 2;
/// Sleep between checks: the swapper's idle period (2 s) and time for the
/// others to boot and go idle too.
const SLEEP_NS: u64 = 10_000_000_000;

fn main() -> i32 {
    pattern::run(PAGES, ROUNDS, SLEEP_NS)
}
