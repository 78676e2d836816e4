//! Reading what the loader left us: PVH `hvm_start_info` or a multiboot2
//! information structure. Both live in physical memory below 4 GiB, which the
//! trampoline identity-maps; everything is copied into a [`BootInfo`] so that
//! nothing refers to loader memory after boot.
//!
//! The loader is trusted (it is firmware), but lengths are still clamped so a
//! buggy one cannot make us read without bound.

/// Multiboot2 loaders put this in EAX.
pub const MULTIBOOT2_MAGIC: u32 = 0x36d7_6289;
/// First word of a PVH `hvm_start_info`.
pub const PVH_MAGIC: u32 = 0x336e_c578;

const MAX_REGIONS: usize = 64;
const MAX_MODULES: usize = 8;
const MAX_CMDLINE: usize = 256;

/// The boot protocol that started us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// QEMU `-kernel` (Xen PVH direct boot).
    Pvh,
    /// GRUB and other multiboot2 loaders.
    Multiboot2,
}

impl Protocol {
    /// Name used in the boot line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pvh => "pvh",
            Protocol::Multiboot2 => "multiboot2",
        }
    }
}

/// A physical memory range `[start, end)` the firmware says is usable RAM.
#[derive(Debug, Clone, Copy, Default)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Everything the kernel needs from the loader, copied out.
#[derive(Debug)]
pub struct BootInfo {
    /// How we were booted.
    pub protocol: Protocol,
    regions: [Region; MAX_REGIONS],
    region_count: usize,
    modules: [Region; MAX_MODULES],
    module_count: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
    /// Physical range of the boot information itself (must not be reused
    /// until it has been copied; it has been, by the time anyone asks).
    pub info_range: Region,
}

/// Why boot information could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootInfoError {
    /// Neither the multiboot2 magic nor a PVH start_info was found.
    UnknownLoader,
    /// The PVH start_info is version 0 (no memory map).
    NoMemoryMap,
}

fn read_u32(paddr: u64) -> u32 {
    // SAFETY: the trampoline identity-maps 0..4 GiB and both loaders place
    // their structures there; read_unaligned tolerates any alignment.
    unsafe { core::ptr::read_unaligned(paddr as *const u32) }
}

fn read_u64(paddr: u64) -> u64 {
    // SAFETY: as for `read_u32`.
    unsafe { core::ptr::read_unaligned(paddr as *const u64) }
}

fn read_u8(paddr: u64) -> u8 {
    // SAFETY: as for `read_u32`.
    unsafe { core::ptr::read_volatile(paddr as *const u8) }
}

impl BootInfo {
    fn empty(protocol: Protocol) -> Self {
        Self {
            protocol,
            regions: [Region::default(); MAX_REGIONS],
            region_count: 0,
            modules: [Region::default(); MAX_MODULES],
            module_count: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp: None,
            info_range: Region::default(),
        }
    }

    /// Parses the loader's structure. `magic` is EAX at entry, `info` EBX.
    pub fn parse(magic: u32, info: u32) -> Result<Self, BootInfoError> {
        let info = u64::from(info);
        if magic == MULTIBOOT2_MAGIC {
            Ok(Self::parse_multiboot2(info))
        } else if info != 0 && read_u32(info) == PVH_MAGIC {
            Self::parse_pvh(info)
        } else {
            Err(BootInfoError::UnknownLoader)
        }
    }

    fn parse_pvh(si: u64) -> Result<Self, BootInfoError> {
        let mut bi = Self::empty(Protocol::Pvh);
        bi.info_range = Region {
            start: si,
            end: si + 56,
        };
        let version = read_u32(si + 4);
        let nr_modules = read_u32(si + 12);
        let modlist = read_u64(si + 16);
        let cmdline = read_u64(si + 24);
        let rsdp = read_u64(si + 32);
        if rsdp != 0 {
            bi.rsdp = Some(rsdp);
        }
        if cmdline != 0 {
            bi.copy_cmdline(cmdline);
        }
        for i in 0..u64::from(nr_modules).min(MAX_MODULES as u64) {
            let e = modlist + i * 32;
            let (start, size) = (read_u64(e), read_u64(e + 8));
            bi.push_module(start, start.saturating_add(size));
        }
        if version < 1 {
            return Err(BootInfoError::NoMemoryMap);
        }
        let memmap = read_u64(si + 40);
        let entries = read_u32(si + 48);
        for i in 0..u64::from(entries).min(256) {
            let e = memmap + i * 24;
            let (addr, size, ty) = (read_u64(e), read_u64(e + 8), read_u32(e + 16));
            if ty == 1 {
                bi.push_region(addr, addr.saturating_add(size));
            }
        }
        Ok(bi)
    }

    fn parse_multiboot2(mbi: u64) -> Self {
        let mut bi = Self::empty(Protocol::Multiboot2);
        let total = u64::from(read_u32(mbi)).min(1 << 20);
        bi.info_range = Region {
            start: mbi,
            end: mbi + total,
        };
        let mut tag = mbi + 8;
        while tag + 8 <= mbi + total {
            let ty = read_u32(tag);
            let size = u64::from(read_u32(tag + 4));
            if ty == 0 || size < 8 {
                break;
            }
            match ty {
                1 => bi.copy_cmdline(tag + 8),
                3 => {
                    let start = u64::from(read_u32(tag + 8));
                    let end = u64::from(read_u32(tag + 12));
                    bi.push_module(start, end);
                }
                6 => {
                    let entry_size = u64::from(read_u32(tag + 8)).max(24);
                    let mut e = tag + 16;
                    while e + 24 <= tag + size {
                        let (addr, len, ty) = (read_u64(e), read_u64(e + 8), read_u32(e + 16));
                        if ty == 1 {
                            bi.push_region(addr, addr.saturating_add(len));
                        }
                        e += entry_size;
                    }
                }
                // ACPI 1.0 / 2.0 RSDP: the tag holds a copy of the RSDP
                // itself, which the ACPI parser can read in place.
                14 if bi.rsdp.is_none() => bi.rsdp = Some(tag + 8),
                15 => bi.rsdp = Some(tag + 8),
                _ => {}
            }
            tag += size.div_ceil(8) * 8;
        }
        bi
    }

    fn copy_cmdline(&mut self, paddr: u64) {
        let mut n = 0;
        while n < MAX_CMDLINE {
            let b = read_u8(paddr + n as u64);
            if b == 0 {
                break;
            }
            self.cmdline[n] = b;
            n += 1;
        }
        self.cmdline_len = n;
    }

    fn push_module(&mut self, start: u64, end: u64) {
        if self.module_count < MAX_MODULES && end > start {
            self.modules[self.module_count] = Region { start, end };
            self.module_count += 1;
        }
    }

    fn push_region(&mut self, start: u64, end: u64) {
        if self.region_count < MAX_REGIONS && end > start {
            self.regions[self.region_count] = Region { start, end };
            self.region_count += 1;
        }
    }

    /// Usable RAM regions.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.region_count]
    }

    /// Boot modules (the boot archive is the first).
    pub fn modules(&self) -> &[Region] {
        &self.modules[..self.module_count]
    }

    /// The kernel command line (lossy: non-UTF-8 gives an empty string).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Total usable RAM in bytes.
    pub fn usable_bytes(&self) -> u64 {
        self.regions().iter().map(|r| r.end - r.start).sum()
    }

    /// The value of `key=` in the command line, if present.
    pub fn cmdline_value(&self, key: &str) -> Option<&str> {
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}
