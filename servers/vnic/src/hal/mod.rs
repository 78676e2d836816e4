//! The only module of the vnic with `unsafe`: what virtio-drivers needs
//! from the platform and the buffers it shares with the device.
//!
//! - [`dma`]: the DMA window (the granted frames, bound once) and the
//!   `Hal` implementation over it, which also maps the BARs.
//! - [`pci`]: configuration space through the kernel's `device()` call.
//! - [`net`]: the virtio-net device with receive and transmit buffers
//!   whose state says whether the CPU or the device may touch them.
//!
//! Everything outside this module is `#![forbid(unsafe_code)]` and uses
//! only the safe methods of [`net::Net`].

pub mod dma;
pub mod net;
pub mod pci;
