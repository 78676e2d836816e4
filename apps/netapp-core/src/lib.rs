//! The pure parts of the network apps, tested on the host.
//!
//! - [`sample`]: a seeded PRNG and a Zipf(α) or uniform choice of one of
//!   N targets (a CDF table in fixed point; floating point only to build it).
//! - [`config`]: `key=value` words, as the apps read them from an image.
//! - [`stats`]: latency percentiles.
//! - [`game`]: udp-echo's bounded table of clients and their sequence state.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod config;
pub mod game;
pub mod sample;
pub mod stats;
