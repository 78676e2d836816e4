//! QEMU integration tests: each boots a real Serac image and judges its
//! serial output and QEMU's exit status.
//!
//! - [`spec`]: what a test is, and the list [`spec::all`] (add tests there).
//! - [`pattern`]: the whole-line patterns tests use for serial lines.
//! - [`qemu`]: QEMU command lines (also used by `cargo xtask run` and `gdb`).
//! - [`host_http`]: the host's curl and wrk against guests' web servers.
//! - [`judge`]: pure pass/fail logic, unit-tested on the host.
//! - [`runner`]: builds per-test archives and ISOs, runs QEMU with a hard
//!   timeout, and reports.
//!
//! The kernel's side of the contract: the first serial line is
//! `Serac <version> booting via <pvh|multiboot2>, <N> MiB usable`; in-kernel
//! tests print `TEST <name> ... ok` or `TEST <name> ... FAILED: <why>`;
//! panics print `PANIC at <file>:<line>:<col>: <message>`; CPU exceptions
//! print `EXCEPTION #<vector> <name> error=0x<hex> rip=0x<hex>`; the kernel
//! ends a test run by writing 0x10 (success, QEMU status 33) or 0x11
//! (failure, status 35) to port 0xf4.
#![forbid(unsafe_code)]

pub mod host_http;
pub mod host_push;
pub mod judge;
pub mod pattern;
pub mod qemu;
pub mod runner;
pub mod spec;

pub use runner::{Context, Outcome, Runner};
pub use spec::{all, Boot, DiskExtent, DiskImage, QemuTest};
