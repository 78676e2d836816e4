//! The Serac ABI, defined once.
//!
//! Kernel, servers, Ilwaco and the host tools all depend on this crate; nobody
//! redefines a constant. It is `no_std`, has no `unsafe`, and every parser in it
//! returns a typed error on any input rather than panicking.
#![no_std]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a defect.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bootarc;
pub mod bootimg;

pub mod client;
pub mod codec;
pub mod console;
pub mod disk;
pub mod error;
pub mod exit;
pub mod header;
pub mod ids;
pub mod layout;
pub mod manifest;
pub mod net;
pub mod pager;
pub mod push;
pub mod supervisor;
pub mod syscall;
pub mod upcall;
pub mod user;

// Host tests use std (proptest, Vec); the crate itself stays no_std.
#[cfg(test)]
extern crate std;
#[cfg(test)]
mod testutil;

pub use error::SysError;
pub use ids::{DomainId, Handle, HandleKind, HandleRights, PageRights};
pub use syscall::Syscall;
