//! Shared bits of the benchmark programs: the median and the output line.
//! Every figure is printed as `BENCH <name> <value>`, which
//! `cargo xtask bench` parses. Under `qemu -icount shift=0` the TSC counts
//! executed instructions, so the figures are deterministic path lengths.
#![no_std]

/// Median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Prints one figure.
pub fn report(name: &str, value: u64) {
    ilwaco::println!("BENCH {name} {value}");
}

/// How long the idle-vs-spin worker measures, in milliseconds.
pub const WORK_MS: u64 = 300;

/// The waiters' and pollers' period, in milliseconds.
pub const PERIOD_MS: u64 = 10;

/// Set in the notification word the switch partner sends back with its
/// yield count (so a count of 0 still arrives as a nonzero word).
pub const PARTNER_MARK: u64 = 1 << 63;

/// How long the batching target measures, in milliseconds.
pub const BATCH_WINDOW_MS: u64 = 100;

/// The batching notifier's period, in microseconds.
pub const BATCH_PERIOD_US: u64 = 100;
