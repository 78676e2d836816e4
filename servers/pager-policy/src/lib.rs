//! The swapper's core, kept free of syscalls so the host can test it.
//!
//! - [`pool`]: the frames the pager owns (granted by the supervisor with
//!   `domain_ctl(GiveFrame)` and announced with a `Grant` request) and which
//!   domain each one is bound to.
//! - [`regions`]: where each domain may have pages zero-filled.
//! - [`policy`]: the [`Policy`] trait (which fault to serve, which frame to
//!   use) and its implementations; a swapping policy plugs in here.
//! - [`replace`]: the [`Replacement`] trait (which resident pages leave
//!   memory, which idle domains swap out) and WSClock, 2Q and FIFO behind
//!   it; `cargo xtask swap-sim` replays traces through them.
//! - [`wire`]: client helpers for the supervisor's `Grant`/`Region`
//!   requests (`serac_protocol::pager::Request`).
//! - [`pager`]: the state machine: one incoming message in, one reply (label
//!   and payload) out, with the page-table work done through the [`Mmu`]
//!   trait that the swapper implements with `map`/`unmap`.
//!
//! Invariants: every input (payload bytes, frame numbers, addresses) is
//! untrusted and nothing here panics on it; every table is bounded and
//! allocation uses `try_reserve`, so exhaustion is an error reply, never an
//! abort; a frame is in exactly one of the states free, bound or lost.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod pager;
pub mod policy;
pub mod pool;
pub mod regions;
pub mod replace;
pub mod swap;
pub mod wire;

pub use pager::{Event, Incoming, KillReason, Mmu, Pager, Response};
pub use policy::{Policy, Quota, ZeroFill};
pub use pool::{FramePool, GrantError};
pub use regions::Regions;
pub use replace::{Replacement, TwoQ, WsClock};
pub use swap::{DiskError, Lost, NoDisk, Swap, SwapConfig, SwapDisk};
