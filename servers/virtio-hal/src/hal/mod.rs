//! The shared platform layer's `unsafe`: the DMA window and PCI access.

pub mod dma;
pub mod pci;
