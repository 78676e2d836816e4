//! Overcommit test guest: fills `PAGES` pages with a pattern derived from
//! its own domain id, sleeps long enough to be swapped out whole, and
//! then checks every byte. It halts with 0 only if all of them are right
//! (the kernel's halt line is the verdict), 2 if a page came back wrong.
//! It repeats the sleep-and-check `ROUNDS` times, so it is swapped out and
//! in more than once.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../pattern.rs"]
mod pattern;

ilwaco::entry!(main);

/// Pages of pattern (64 KiB): 200 of them are 12.5 MiB, more than the
/// swapper keeps resident in a 64 MiB machine.
const PAGES: usize = 16;
/// Sleep and check rounds.
const ROUNDS: u32 = 3;
/// Sleep between checks: longer than the swapper's idle period.
const SLEEP_NS: u64 = 3_000_000_000;

fn main() -> i32 {
    pattern::run(PAGES, ROUNDS, SLEEP_NS)
}
