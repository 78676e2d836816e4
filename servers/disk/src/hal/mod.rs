//! The only module of the disk server with `unsafe`: what virtio-drivers
//! needs from the platform and the buffers it shares with the device.
//!
//! - [`dma`] and [`pci`]: the DMA window with virtio-drivers' `Hal` over
//!   it, and configuration space through the kernel's `device()` call;
//!   shared with the vnic (`serac-virtio-hal`).
//! - [`blk`]: the virtio-blk device with request slots whose state says
//!   whether the CPU or the device may touch their memory.
//!
//! Everything outside this module is `#![forbid(unsafe_code)]` and uses
//! only the safe methods of [`blk::Blk`].

pub mod blk;
pub use serac_virtio_hal::hal::{dma, pci};
