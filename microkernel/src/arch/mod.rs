//! The x86_64 layer: everything that touches hardware, and the only place in
//! the kernel where `unsafe` is allowed (see `main.rs`).

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod bootinfo;
pub mod cpu;
pub mod exit;
pub mod heap;
pub mod paging;
pub mod pci;
pub mod serial;
pub mod time;
pub mod user;

/// The bytes of a boot module. Boot modules are reserved in the frame
/// allocator at boot and never written, so a shared 'static view is sound;
/// the range is clamped to what the loader reported.
pub fn boot_module(pa: u64, len: usize) -> &'static [u8] {
    // SAFETY: [pa, pa+len) is a module range from the boot information; its
    // frames were reserved by `paging::init_frames`, so nothing allocates or
    // writes them, and the direct map covers all RAM for the kernel's life.
    unsafe { core::slice::from_raw_parts(paging::phys_to_virt(pa) as *const u8, len) }
}
