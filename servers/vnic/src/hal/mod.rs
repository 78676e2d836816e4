//! The only module of the vnic with `unsafe`: what virtio-drivers needs
//! from the platform and the buffers it shares with the device.
//!
//! - [`dma`] and [`pci`]: the DMA window with virtio-drivers' `Hal` over
//!   it, and configuration space through the kernel's `device()` call;
//!   shared with the disk server (`serac-virtio-hal`).
//! - [`net`]: the virtio-net device with receive and transmit buffers
//!   whose state says whether the CPU or the device may touch them.
//!
//! Everything outside this module is `#![forbid(unsafe_code)]` and uses
//! only the safe methods of [`net::Net`].

pub mod net;
pub use serac_virtio_hal::hal::{dma, pci};
