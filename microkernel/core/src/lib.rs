//! Pure logic of the Serac microkernel.
//!
//! Nothing here touches hardware: every structure is a plain data structure
//! with bounded size, so the host can test it (`cargo test -p serac-kcore`)
//! and the kernel links the very same code. No `unsafe`, no allocation after
//! construction, no panics on any input a domain can choose.
#![no_std]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a defect.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod batch;
pub mod console;
pub mod frame;
pub mod handles;
pub mod image;
pub mod owner;
pub mod ring;
pub mod sched;
pub mod sizing;
pub mod stlb;
pub mod timerq;

// Host tests use std (proptest, model collections); the crate stays no_std.
#[cfg(test)]
extern crate std;
