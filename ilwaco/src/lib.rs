//! Ilwaco, the library OS linked into every Serac guest and server.
//!
//! It gives a domain what a process expects from its C library and runtime:
//! an entry point ([`entry!`]), a heap, a panic handler that halts with a
//! message, a console ([`print!`], [`println!`]), clocks and sleep
//! ([`time`]), the typed syscalls and IPC ([`sys`], [`ipc`]), the upcall
//! dispatcher ([`upcall`]), block devices on the disk server ([`block`]),
//! read-only files on a mounted image ([`fs`]) and TCP/IP over the vnic
//! ([`net`]).
//!
//! Invariants:
//! - all `unsafe` is in [`sys`]; the rest of the crate (and every app, whose
//!   lints forbid `unsafe`) is safe code over its wrappers;
//! - no Rust reference ever points into the IPC buffer or the upcall page:
//!   the kernel writes them, so Ilwaco only copies in and out;
//! - only [`fs`] and [`net`] allocate (fs: its index and `read_to_end`;
//!   net: socket buffers, tasks and timers, never per packet), with
//!   `try_reserve` where a failure can be reported, so the console and panic path work even when the heap
//!   is exhausted. Upcall handlers must not allocate either (the heap lock
//!   may be held by the code they interrupted).
//!
//! A binary is `#![no_std]`, `#![no_main]`, calls `ilwaco::entry!(main)` and
//! links with `user.ld` (see the `build.rs` of `apps/hello`).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
// Tests may unwrap and cast: a panic there is a failed test, not a defect.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::cast_possible_truncation
    )
)]

extern crate alloc;

pub mod block;
pub mod console;
pub mod fs;
pub mod ipc;
pub mod net;
pub mod rt;
pub mod sys;
pub mod time;
pub mod upcall;

#[cfg(test)]
mod testdisk;

pub use block::{BlockDevice, BlockError};
pub use fs::{File, FsError, Image};
pub use serac_protocol as protocol;
pub use serac_protocol::SysError;
