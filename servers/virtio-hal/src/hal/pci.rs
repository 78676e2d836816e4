//! PCI configuration space for virtio-drivers, through the kernel.
//!
//! Every access goes through `device()` on the server's `Device` handle,
//! which reaches only the granted function, so the `DeviceFunction`
//! virtio-drivers passes is ignored. BAR writes are the kernel's to refuse;
//! the sizing dance `PciRoot::bar_info` does is emulated from `BarInfo`
//! (`serac_disk_core::pci`, where the reason is written down).

use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::protocol::Handle;
use ilwaco::sys;
use serac_disk_core::pci::{BarSizing, BAR0, BARS};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// Configuration access to the one function a `Device` handle names.
#[derive(Debug, Clone, Copy)]
pub struct DeviceConfig {
    dev: Handle,
    bars: BarSizing,
}

impl DeviceConfig {
    /// Reads the BAR registers and sizes once, for the emulation.
    pub fn new(dev: Handle) -> DeviceConfig {
        let mut regs = [0u32; BARS];
        let mut sizes = [0u64; BARS];
        for i in 0..BARS {
            let off = u64::from(BAR0) + 4 * i as u64;
            regs[i] = read(dev, off);
            sizes[i] = sys::device(dev, DeviceOp::BarInfo, i as u64, 0).unwrap_or(0);
        }
        DeviceConfig {
            dev,
            bars: BarSizing::new(regs, sizes),
        }
    }
}

/// A refused or failed read reads as all ones, like an absent function.
fn read(dev: Handle, off: u64) -> u32 {
    sys::device(dev, DeviceOp::ConfigRead, off, 4)
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(u32::MAX)
}

impl ConfigurationAccess for DeviceConfig {
    fn read_word(&self, _df: DeviceFunction, off: u8) -> u32 {
        self.bars.read(off, read(self.dev, u64::from(off)))
    }

    fn write_word(&mut self, _df: DeviceFunction, off: u8, data: u32) {
        if !self.bars.write(off, data) {
            // The kernel refuses only BAR and ROM writes; nothing to do
            // about a refusal here (the trait has no error), and the
            // driver reads back what it needs.
            let _ = sys::device(
                self.dev,
                DeviceOp::ConfigWrite,
                u64::from(off) | 4 << 16,
                u64::from(data),
            );
        }
    }

    // SAFETY (of the declaration): a copy reaches the same function only
    // through the kernel, one access at a time; it holds no pointer, so
    // concurrent use cannot race on memory.
    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}
