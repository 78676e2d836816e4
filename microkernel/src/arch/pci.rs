//! PCI configuration space: found at boot, reached only through here.
//!
//! Access is through ECAM (the ACPI MCFG table, segment 0) when there is
//! one, else the legacy 0xCF8/0xCFC mechanism (`-M pc`, which only reaches
//! the first 256 bytes). The kernel enumerates every function once, sizes
//! its BARs, and hands nothing out itself: the supervisor grants a
//! function to a driver domain (`kernel/device.rs`).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

use super::paging::phys_to_virt;

/// ECAM base for bus 0 of segment 0 (0: none, use port I/O).
static ECAM_BASE: AtomicU64 = AtomicU64::new(0);
/// Last bus the ECAM window covers.
static ECAM_LAST_BUS: AtomicU64 = AtomicU64::new(0);

/// A function's address: bus, device, function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bdf {
    /// Bus.
    pub bus: u8,
    /// Device (0..32).
    pub dev: u8,
    /// Function (0..8).
    pub func: u8,
}

impl Bdf {
    /// `bus << 8 | dev << 3 | func`, the usual packing.
    pub fn packed(self) -> u16 {
        u16::from(self.bus) << 8 | u16::from(self.dev) << 3 | u16::from(self.func)
    }
}

/// Bytes of configuration space reachable for a function.
pub fn config_len() -> u16 {
    if ECAM_BASE.load(Ordering::Relaxed) != 0 {
        4096
    } else {
        256
    }
}

/// Reads the aligned dword at `off` of `f`'s configuration space.
pub fn read32(f: Bdf, off: u16) -> u32 {
    let off = off & !3;
    let ecam = ECAM_BASE.load(Ordering::Relaxed);
    if ecam != 0 && u64::from(f.bus) <= ECAM_LAST_BUS.load(Ordering::Relaxed) {
        let pa = ecam + (u64::from(f.packed()) << 12) + u64::from(off);
        // SAFETY: `pa` lies in the ECAM window the MCFG table describes
        // (bus checked against its end), reached through the direct map;
        // config reads have no side effects on the kernel's memory.
        return unsafe { core::ptr::read_volatile(phys_to_virt(pa) as *const u32) };
    }
    if off >= 256 {
        return u32::MAX;
    }
    let addr = 0x8000_0000 | u32::from(f.packed()) << 8 | u32::from(off);
    let mut a: Port<u32> = Port::new(0xcf8);
    let mut d: Port<u32> = Port::new(0xcfc);
    // SAFETY: 0xCF8/0xCFC are the PCI configuration mechanism #1 ports;
    // the kernel is their only user and runs with interrupts off here.
    unsafe {
        a.write(addr);
        d.read()
    }
}

/// Writes the aligned dword at `off` of `f`'s configuration space.
pub fn write32(f: Bdf, off: u16, v: u32) {
    let off = off & !3;
    let ecam = ECAM_BASE.load(Ordering::Relaxed);
    if ecam != 0 && u64::from(f.bus) <= ECAM_LAST_BUS.load(Ordering::Relaxed) {
        let pa = ecam + (u64::from(f.packed()) << 12) + u64::from(off);
        // SAFETY: as in `read32`; callers only write registers they are
        // allowed to (`kernel/device.rs` refuses BARs and the ROM).
        unsafe { core::ptr::write_volatile(phys_to_virt(pa) as *mut u32, v) };
        return;
    }
    if off >= 256 {
        return;
    }
    let addr = 0x8000_0000 | u32::from(f.packed()) << 8 | u32::from(off);
    let mut a: Port<u32> = Port::new(0xcf8);
    let mut d: Port<u32> = Port::new(0xcfc);
    // SAFETY: as in `read32`.
    unsafe {
        a.write(addr);
        d.write(v);
    }
}

/// Reads `width` (1, 2 or 4) bytes at `off`, which the caller has checked
/// to be aligned to `width` and inside [`config_len`].
pub fn read(f: Bdf, off: u16, width: u8) -> u32 {
    let shift = 8 * u32::from(off & 3);
    let v = read32(f, off) >> shift;
    match width {
        1 => v & 0xff,
        2 => v & 0xffff,
        _ => v,
    }
}

/// Writes `width` (1, 2 or 4) bytes at aligned `off` without touching the
/// other bytes of the dword (a read-modify-write would write back RW1C
/// status bits and clear them).
pub fn write(f: Bdf, off: u16, width: u8, v: u32) {
    if width == 4 {
        return write32(f, off, v);
    }
    let ecam = ECAM_BASE.load(Ordering::Relaxed);
    if ecam != 0 && u64::from(f.bus) <= ECAM_LAST_BUS.load(Ordering::Relaxed) {
        let pa = ecam + (u64::from(f.packed()) << 12) + u64::from(off);
        let va = phys_to_virt(pa);
        // SAFETY: as in `write32`; `off` is aligned to `width`, so the
        // access stays inside the function's 4 KiB of ECAM.
        unsafe {
            if width == 1 {
                core::ptr::write_volatile(va as *mut u8, v as u8);
            } else {
                core::ptr::write_volatile(va as *mut u16, v as u16);
            }
        }
        return;
    }
    if off >= 256 {
        return;
    }
    let addr = 0x8000_0000 | u32::from(f.packed()) << 8 | u32::from(off & !3);
    let mut a: Port<u32> = Port::new(0xcf8);
    let data = 0xcfc + (off & 3);
    // SAFETY: as in `read32`; mechanism #1 decodes byte and word accesses
    // at 0xCFC + (off & 3).
    unsafe {
        a.write(addr);
        if width == 1 {
            Port::<u8>::new(data).write(v as u8);
        } else {
            Port::<u16>::new(data).write(v as u16);
        }
    }
}

/// One base address register, sized at boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bar {
    /// Physical base (memory) or port base (I/O); 0 when absent.
    pub base: u64,
    /// Bytes (or ports) it decodes; 0 when absent.
    pub size: u64,
    /// I/O ports rather than memory.
    pub io: bool,
}

/// One PCI function as found at boot.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Where it is.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class, subclass, programming interface.
    pub class: [u8; 3],
    /// Its BARs (a 64-bit BAR takes two slots; the second stays empty).
    pub bars: [Bar; 6],
    /// Interrupt pin (1 = INTA .. 4 = INTD; 0 none) and the line firmware wrote.
    pub int_pin: u8,
    /// Interrupt line register (the legacy IRQ firmware routed it to).
    pub int_line: u8,
}

/// Sizes BAR `i` of `f` (decoding is switched off around it).
fn size_bar(f: Bdf, i: usize) -> (Bar, bool) {
    let off = 0x10 + 4 * i as u16;
    let lo = read32(f, off);
    if lo & 1 == 1 {
        write32(f, off, u32::MAX);
        let mask = read32(f, off) & !3;
        write32(f, off, lo);
        let size = u64::from((!mask).wrapping_add(1) & 0xffff);
        return (
            Bar {
                base: u64::from(lo & !3),
                size: if mask == 0 { 0 } else { size },
                io: true,
            },
            false,
        );
    }
    let wide = (lo >> 1) & 3 == 2;
    write32(f, off, u32::MAX);
    let mask_lo = read32(f, off) & !0xf;
    write32(f, off, lo);
    let (hi, mask_hi) = if wide {
        let hi = read32(f, off + 4);
        write32(f, off + 4, u32::MAX);
        let m = read32(f, off + 4);
        write32(f, off + 4, hi);
        (hi, m)
    } else {
        (0, u32::MAX)
    };
    let mask = u64::from(mask_hi) << 32 | u64::from(mask_lo);
    let size = if mask_lo == 0 {
        0
    } else {
        (!mask).wrapping_add(1)
    };
    (
        Bar {
            base: u64::from(hi) << 32 | u64::from(lo & !0xf),
            size,
            io: false,
        },
        wide,
    )
}

fn probe(f: Bdf) -> Option<Function> {
    let id = read32(f, 0);
    let vendor = id as u16;
    if vendor == 0xffff {
        return None;
    }
    let class = read32(f, 8);
    let header = (read32(f, 0x0c) >> 16) as u8 & 0x7f;
    let mut bars = [Bar::default(); 6];
    if header == 0 {
        // Memory and I/O decoding off while the BARs read back their masks.
        let cmd = read32(f, 4);
        write32(f, 4, cmd & !0x3);
        let mut i = 0;
        while i < 6 {
            let (bar, wide) = size_bar(f, i);
            bars[i] = bar;
            i += if wide { 2 } else { 1 };
        }
        write32(f, 4, cmd);
    }
    let int = read32(f, 0x3c);
    Some(Function {
        bdf: f,
        vendor,
        device: (id >> 16) as u16,
        class: [(class >> 24) as u8, (class >> 16) as u8, (class >> 8) as u8],
        bars,
        int_pin: (int >> 8) as u8,
        int_line: int as u8,
    })
}

/// Finds every function on buses `0..=last_bus`. `ecam` is the MCFG's
/// window for segment 0, if any.
pub fn enumerate(ecam: Option<(u64, u8)>) -> Vec<Function> {
    if let Some((base, last)) = ecam {
        ECAM_BASE.store(base, Ordering::Relaxed);
        ECAM_LAST_BUS.store(u64::from(last), Ordering::Relaxed);
    }
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            let f0 = Bdf { bus, dev, func: 0 };
            let Some(first) = probe(f0) else { continue };
            let multi = (read32(f0, 0x0c) >> 16) & 0x80 != 0;
            found.push(first);
            if multi {
                for func in 1..8u8 {
                    if let Some(f) = probe(Bdf { bus, dev, func }) {
                        found.push(f);
                    }
                }
            }
        }
    }
    found
}
