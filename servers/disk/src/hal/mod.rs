//! The only module of the disk server with `unsafe`: what virtio-drivers
//! needs from the platform and the buffers it shares with the device.
//!
//! - [`dma`]: the DMA window (the granted frames, bound once) and the
//!   `Hal` implementation over it, which also maps the BARs.
//! - [`pci`]: configuration space through the kernel's `device()` call,
//!   with BAR sizing emulated (the kernel refuses BAR writes).
//! - [`blk`]: the virtio-blk device with request slots whose state says
//!   whether the CPU or the device may touch their memory.
//!
//! Everything outside this module is `#![forbid(unsafe_code)]` and uses
//! only the safe methods of [`blk::Blk`].

pub mod blk;
pub mod dma;
pub mod pci;
