//! Pure logic of the Serac microkernel.
//!
//! Nothing here touches hardware: every structure is a plain data structure
//! with bounded size, so the host can test it (`cargo test -p serac-kcore`)
//! and the kernel links the very same code. No `unsafe`, no allocation after
//! construction, no panics on any input a domain can choose.
#![no_std]
#![forbid(unsafe_code)]

pub mod frame;
