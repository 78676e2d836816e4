//! Pure logic of the supervisor.
//!
//! Nothing here makes a syscall: the manifest parser, the authority rules,
//! the frame pool and the image load plan are plain data structures with
//! bounded size, so the host tests them (`cargo test -p
//! serac-supervisor-core`) and the ring-3 supervisor links the very same
//! code. No `unsafe`, no allocation but the frame pool's bitmap (sized
//! from the grant, with `try_reserve`), no
//! panics on any input (the manifest and the images come from the boot
//! archive, which the supervisor checks rather than trusts).
#![no_std]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a defect.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod authority;
pub mod console;
pub mod frames;
pub mod intx;
pub mod manifest;
pub mod plan;

#[cfg(test)]
extern crate std;
