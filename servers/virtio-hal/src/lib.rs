//! What every virtio driver server (disk, vnic) needs from the platform,
//! written once so its `unsafe` is audited once:
//!
//! - [`hal::dma`]: the DMA window (the granted frames, bound once) and
//!   virtio-drivers' `Hal` over it, which also maps the BARs;
//! - [`hal::pci`]: configuration space through the kernel's `device()`
//!   call, with BAR sizing emulated (the kernel refuses BAR writes).
//!
//! Each server's own `hal` module re-exports these beside its device
//! (`blk`, `net`). Unsafe code is confined to `mod hal`.
#![no_std]

#[allow(unsafe_code)]
pub mod hal;
