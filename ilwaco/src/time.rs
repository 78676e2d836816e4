//! Clocks and sleep, from the global clock page and `idle`.
//!
//! Time is read without a syscall: `rdtsc` and the calibration the kernel
//! wrote into the clock page at boot. Sleeping blocks in `idle` with an
//! absolute TSC deadline, so a sleeping domain costs no CPU.

use serac_protocol::layout::clock::ClockInfo;
use serac_protocol::SysError;

use crate::sys;

/// The clock page's calibration; `None` if the page is not (yet) valid.
pub fn clock() -> Option<ClockInfo> {
    ClockInfo::read(&sys::read_clock_page())
}

/// The raw time-stamp counter.
pub fn tsc() -> u64 {
    sys::rdtsc()
}

/// TSC ticks per second, from the clock page.
pub fn tsc_hz() -> Option<u64> {
    clock().map(|c| c.tsc_hz)
}

/// Nanoseconds since the kernel booted; `None` without a valid clock page.
pub fn now_ns() -> Option<u64> {
    clock().map(|c| c.ns_since_boot(sys::rdtsc()))
}

/// Blocks for at least `ns` nanoseconds.
///
/// Events that end `idle` early do not end the sleep; their pending bits
/// (taken from the kernel, so nobody else sees them) are ORed together and
/// returned, for the caller to handle. `BadArgument` without a valid clock
/// page (a deadline cannot be computed).
pub fn sleep_ns(ns: u64) -> Result<u64, SysError> {
    let c = clock().ok_or(SysError::BadArgument)?;
    let deadline = c.deadline_after_ns(sys::rdtsc(), ns);
    let mut events = 0;
    loop {
        events |= sys::idle(deadline)?;
        if sys::rdtsc() >= deadline {
            return Ok(events);
        }
    }
}
