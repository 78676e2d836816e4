//! ACPI discovery: the local APIC, I/O APICs and HPET from the MADT and HPET
//! tables (the `acpi` crate, no allocation). Nothing else of ACPI is used.

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};
use core::ptr::NonNull;

use super::paging::phys_to_virt;

/// Maps ACPI tables through the kernel's direct map.
#[derive(Debug, Clone, Copy)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let va = phys_to_virt(pa as u64) as *mut T;
        // The direct map never yields null: PHYS_OFFSET is non-zero.
        let ptr = NonNull::new(va).unwrap_or(NonNull::dangling());
        // SAFETY: ACPI tables lie in RAM or firmware-reserved memory inside
        // the direct map, which stays mapped for the kernel's lifetime.
        unsafe { PhysicalMapping::new(pa, ptr, size, size, *self) }
    }
    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

const MAX_IOAPICS: usize = 8;

/// What the platform offers, as far as Serac cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Platform {
    /// Physical address of the RSDP used.
    pub rsdp: u64,
    /// ACPI revision.
    pub revision: u8,
    /// Local APIC physical base.
    pub lapic: u64,
    /// Enabled processors in the MADT.
    pub cpus: u32,
    /// I/O APICs: (physical base, first GSI).
    pub ioapics: [(u64, u32); MAX_IOAPICS],
    /// Number of valid entries in `ioapics`.
    pub ioapic_count: usize,
    /// HPET physical base, if any.
    pub hpet: Option<u64>,
    /// PCI ECAM window of segment 0 from the MCFG: (base of bus 0, last bus).
    pub ecam: Option<(u64, u8)>,
}

/// Why ACPI discovery failed.
#[derive(Debug)]
pub enum AcpiError {
    /// No RSDP given by the loader nor found in the BIOS area.
    NoRsdp,
    /// The tables were malformed (checksum, signature...).
    Tables(#[allow(dead_code, reason = "shown through Debug")] acpi::AcpiError),
    /// No MADT, so no APIC information.
    NoMadt,
}

/// Reads the MADT and HPET tables. `rsdp` is the loader's hint.
pub fn discover(rsdp: Option<u64>) -> Result<Platform, AcpiError> {
    let tables = match rsdp {
        // SAFETY: the loader's RSDP address (or its copy in the boot
        // information) is reachable through the direct map.
        Some(pa) => unsafe { AcpiTables::from_rsdp(DirectMap, pa as usize) },
        // SAFETY: the BIOS area (EBDA, 0xe0000..0x100000) is in the direct map.
        None => unsafe { AcpiTables::search_for_rsdp_bios(DirectMap) },
    }
    .map_err(|e| match e {
        acpi::AcpiError::NoValidRsdp => AcpiError::NoRsdp,
        e => AcpiError::Tables(e),
    })?;
    let mut p = Platform {
        rsdp: rsdp.unwrap_or(0),
        revision: tables.revision(),
        ..Platform::default()
    };
    let madt = tables.find_table::<Madt>().map_err(|_| AcpiError::NoMadt)?;
    p.lapic = u64::from(madt.get().local_apic_address);
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) if e.flags & 1 != 0 => p.cpus += 1,
            MadtEntry::IoApic(e) if p.ioapic_count < MAX_IOAPICS => {
                p.ioapics[p.ioapic_count] =
                    (u64::from(e.io_apic_address), e.global_system_interrupt_base);
                p.ioapic_count += 1;
            }
            MadtEntry::LocalApicAddressOverride(e) => p.lapic = e.local_apic_address,
            _ => {}
        }
    }
    p.hpet = HpetInfo::new(&tables).ok().map(|h| h.base_address as u64);
    if let Ok(mcfg) = tables.find_table::<acpi::mcfg::Mcfg>() {
        // Segment 0 only; an entry's base is that of its first bus.
        p.ecam = mcfg
            .get()
            .entries()
            .iter()
            .find(|e| {
                let seg = e.pci_segment_group;
                seg == 0
            })
            .and_then(|e| {
                let (base, first, last) = (e.base_address, e.bus_number_start, e.bus_number_end);
                let bus0 = base.checked_sub(u64::from(first) << 20)?;
                // Reached through the direct map, which covers the low 4 GiB.
                (base < (1 << 32)).then_some((bus0, last))
            });
    }
    Ok(p)
}
