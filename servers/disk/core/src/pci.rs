//! BAR sizing as a PCI driver library expects it, over a kernel that owns
//! the BARs.
//!
//! Drivers (virtio-drivers' `PciRoot::bar_info` among them) size a BAR the
//! classic way: write all ones, read back the size mask, write the
//! original value back. Serac's kernel refuses every write to a BAR
//! (`device()` answers `NoRights`: where a device decodes memory is the
//! kernel's business) but tells the size (`DeviceOp::BarInfo`). So the
//! driver's configuration access absorbs BAR writes and, after an
//! all-ones write, answers reads of that register with the mask the
//! device would have shown, computed from the kernel's size. The restore
//! write ends the emulation and is dropped too: the register never changed.

/// Offset of BAR 0 in a type-0 configuration header.
pub const BAR0: u8 = 0x10;
/// BAR registers in a type-0 header.
pub const BARS: usize = 6;

/// The emulated sizing state of one function's six BAR registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSizing {
    /// What each register reads as while being sized.
    masks: [u32; BARS],
    /// Whether all ones were written to it since the last other write.
    sizing: [bool; BARS],
}

/// The BAR register index of configuration offset `off`, if it is one.
fn bar_index(off: u8) -> Option<usize> {
    let i = usize::from(off.checked_sub(BAR0)? / 4);
    (off.is_multiple_of(4) && i < BARS).then_some(i)
}

impl BarSizing {
    /// `regs` are the six BAR registers as read from configuration space;
    /// `sizes[i]` is `DeviceOp::BarInfo(i)`: the size in bytes, bit 0 set
    /// for I/O, 0 if absent (and for the upper half of a 64-bit BAR, whose
    /// size the kernel reports at the lower half).
    pub fn new(regs: [u32; BARS], sizes: [u64; BARS]) -> BarSizing {
        let mut masks = [0u32; BARS];
        let mut i = 0;
        while i < BARS {
            let (reg, info) = (regs[i], sizes[i]);
            let io = info & 1 != 0;
            let size = info & !1;
            let wide = !io && reg & 0b110 == 0b100 && i + 1 < BARS;
            if size != 0 {
                // Address bits below the size read back as zero.
                let full = !(size - 1);
                masks[i] = if io {
                    (full as u32 & !0b11) | (reg & 0b11)
                } else {
                    (full as u32 & !0xf) | (reg & 0xf)
                };
                if wide {
                    masks[i + 1] = (full >> 32) as u32;
                }
            }
            i += if wide { 2 } else { 1 };
        }
        BarSizing {
            masks,
            sizing: [false; BARS],
        }
    }

    /// A 4-byte write of `value` at `off`. `true` if it was a BAR register:
    /// then it is absorbed here and must not reach the device.
    pub fn write(&mut self, off: u8, value: u32) -> bool {
        let Some(i) = bar_index(off) else {
            return false;
        };
        if let Some(s) = self.sizing.get_mut(i) {
            *s = value == u32::MAX;
        }
        true
    }

    /// A 4-byte read at `off` that returned `real` from the device: the
    /// size mask instead while that BAR is being sized.
    pub fn read(&self, off: u8, real: u32) -> u32 {
        match bar_index(off) {
            Some(i) if self.sizing.get(i) == Some(&true) => self.masks.get(i).copied().unwrap_or(0),
            _ => real,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a real device reads back after all ones: the driver's formula.
    fn size_from(low: u32, high: Option<u32>, io: bool) -> u64 {
        let flags = if io { 0b11 } else { 0b1111 };
        let top = match high {
            Some(h) => h,
            None if low == 0 => 0,
            None => u32::MAX,
        };
        let mask = u64::from(low) | u64::from(top) << 32;
        (!(mask & !flags)).wrapping_add(1)
    }

    #[test]
    fn virtio_blk_bars() {
        // QEMU's modern virtio-blk: BAR 1 a 4 KiB MSI-X table, BAR 4 a
        // 16 KiB 64-bit prefetchable BAR, the rest absent.
        let regs = [0, 0xfebd_1000, 0, 0, 0xfe00_000c, 0];
        let sizes = [0, 0x1000, 0, 0, 0x4000, 0];
        let mut s = BarSizing::new(regs, sizes);
        // Not sizing: reads pass through, other registers are not BARs.
        assert_eq!(s.read(0x14, 0xfebd_1000), 0xfebd_1000);
        assert!(!s.write(0x04, u32::MAX));
        assert!(!s.write(0x28, u32::MAX));
        assert!(!s.write(0x11, u32::MAX));
        assert!(s.write(0x14, u32::MAX));
        let low = s.read(0x14, 0xfebd_1000);
        assert_eq!(size_from(low, None, false), 0x1000);
        assert_eq!(low & 0xf, 0);
        // The restore write ends the emulation.
        assert!(s.write(0x14, 0xfebd_1000));
        assert_eq!(s.read(0x14, 0xfebd_1000), 0xfebd_1000);
        // The 64-bit BAR: both halves, flags kept.
        assert!(s.write(0x20, u32::MAX));
        assert!(s.write(0x24, u32::MAX));
        let (lo, hi) = (s.read(0x20, regs[4]), s.read(0x24, 0));
        assert_eq!(lo & 0xf, 0xc);
        assert_eq!(size_from(lo, Some(hi), false), 0x4000);
        // An absent BAR reads zero: no BAR.
        assert!(s.write(0x10, u32::MAX));
        assert_eq!(s.read(0x10, 0), 0);
    }

    #[test]
    fn io_bar() {
        let mut s = BarSizing::new([0xc041, 0, 0, 0, 0, 0], [0x41, 0, 0, 0, 0, 0]);
        s.write(0x10, u32::MAX);
        let m = s.read(0x10, 0xc041);
        assert_eq!(m & 1, 1);
        assert_eq!(size_from(m, None, true) & 0xffff_ffff, 0x40);
    }

    proptest! {
        #[test]
        fn sized_bars_read_back_their_size(shift in 4u32..40, index in 0usize..5, wide in any::<bool>(), base in any::<u32>()) {
            let size = 1u64 << shift;
            let wide = wide || shift >= 32;
            let mut regs = [0u32; BARS];
            let mut sizes = [0u64; BARS];
            regs[index] = (base & !0xf) | if wide { 0b100 } else { 0 };
            sizes[index] = size;
            let mut s = BarSizing::new(regs, sizes);
            let off = BAR0 + 4 * index as u8;
            prop_assert!(s.write(off, u32::MAX));
            let lo = s.read(off, regs[index]);
            let hi = if wide {
                prop_assert!(s.write(off + 4, u32::MAX));
                Some(s.read(off + 4, 0))
            } else {
                None
            };
            prop_assert_eq!(size_from(lo, hi, false), size);
            prop_assert_eq!(lo & 0xf, regs[index] & 0xf);
        }

        #[test]
        fn any_access_is_total(regs in any::<[u32; BARS]>(), sizes in any::<[u64; BARS]>(), ops in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<bool>()), 0..32)) {
            let mut s = BarSizing::new(regs, sizes);
            for (off, v, w) in ops {
                if w {
                    prop_assert_eq!(s.write(off, v), bar_index(off).is_some());
                } else if bar_index(off).is_none() {
                    prop_assert_eq!(s.read(off, v), v);
                }
            }
        }
    }
}
