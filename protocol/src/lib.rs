//! The Serac ABI, defined once.
//!
//! Kernel, servers, Ilwaco and the host tools all depend on this crate; nobody
//! redefines a constant. It is `no_std`, has no `unsafe`, and every parser in it
//! returns a typed error on any input rather than panicking.
#![no_std]
#![forbid(unsafe_code)]

pub mod bootarc;
