//! The kernel's own page tables and the physical frame pool.
//!
//! After boot the kernel runs on tables it built itself: a direct map of
//! physical memory at [`PHYS_OFFSET`] (2 MiB pages, no-execute, uncached in
//! the 3-4 GiB MMIO hole), the kernel image at -2 GiB with W^X per section,
//! and the heap. The lower half is left empty for domains. The boot
//! identity map is dropped.

use serac_kcore::frame::FrameAllocator;
use spin::Mutex;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{
    FrameAllocator as X86FrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::bootinfo::BootInfo;

/// Where all physical memory is mapped once the kernel tables are live.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
/// Start of the kernel heap.
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
/// Kernel image virtual base (physical address + this).
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

/// Virtual address through which physical address `pa` is reachable. The
/// boot tables already map 0..4 GiB at `PHYS_OFFSET`; the kernel tables map
/// all of RAM there.
pub fn phys_to_virt(pa: u64) -> u64 {
    PHYS_OFFSET + pa
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_end: u8;
}

/// Physical memory facts gathered while building the allocator.
#[derive(Debug, Clone, Copy)]
pub struct MemStats {
    /// Frames free after reservations.
    pub free_frames: u64,
    /// Highest usable physical address + 1.
    pub top: u64,
    /// Physical address of the frame bitmap.
    pub bitmap_at: u64,
    /// Size of the frame bitmap in bytes.
    pub bitmap_bytes: u64,
}

fn sym(s: *const u8) -> u64 {
    s as u64
}

/// Builds the frame allocator from the boot memory map. Reserves the first
/// MiB, the kernel image, the boot modules and the boot information.
pub fn init_frames(bi: &BootInfo) -> Option<MemStats> {
    let top = bi.regions().iter().map(|r| r.end).max()?;
    let frames = top / 4096;
    let words = FrameAllocator::words_for(frames);
    let bitmap_bytes = (words * 8) as u64;
    let kernel_end_phys = sym(&raw const __kernel_end) - KERNEL_VMA;
    // Keep out: low MiB, kernel image (from its 2 MiB load address), modules,
    // boot info. The bitmap goes in the first gap that fits.
    let busy = |a: u64, b: u64| -> bool {
        let overlaps = |s: u64, e: u64| a < e && s < b;
        b > 0x1_0000_0000 // must be reachable through the boot direct map
            || overlaps(0, 0x10_0000)
            || overlaps(0x20_0000, kernel_end_phys)
            || bi.modules().iter().any(|m| overlaps(m.start, m.end))
            || overlaps(bi.info_range.start, bi.info_range.end)
    };
    let mut bitmap_at = None;
    'outer: for r in bi.regions() {
        let mut a = r.start.next_multiple_of(4096);
        while a + bitmap_bytes <= r.end {
            if !busy(a, a + bitmap_bytes) {
                bitmap_at = Some(a);
                break 'outer;
            }
            a += 0x10_0000;
            a = a.next_multiple_of(0x10_0000);
        }
    }
    let bitmap_at = bitmap_at?;
    // SAFETY: [bitmap_at, +bitmap_bytes) is usable RAM (from the memory map),
    // below 4 GiB (in the boot tables' direct map, and later in ours), overlaps
    // nothing in use, and is reserved in the allocator below, so this is the
    // only reference to it for the kernel's lifetime.
    let bits: &'static mut [u64] =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(bitmap_at) as *mut u64, words) };
    let mut fa = FrameAllocator::new(bits);
    for r in bi.regions() {
        fa.add_free(r.start.div_ceil(4096), r.end / 4096);
    }
    fa.reserve(0, 0x100);
    fa.reserve(0x200, kernel_end_phys.div_ceil(4096));
    for m in bi.modules() {
        fa.reserve(m.start / 4096, m.end.div_ceil(4096));
    }
    fa.reserve(bi.info_range.start / 4096, bi.info_range.end.div_ceil(4096));
    fa.reserve(bitmap_at / 4096, (bitmap_at + bitmap_bytes).div_ceil(4096));
    let free_frames = fa.free_count();
    *FRAMES.lock() = Some(fa);
    Some(MemStats {
        free_frames,
        top,
        bitmap_at,
        bitmap_bytes,
    })
}

/// Allocates a physical frame (zeroed), returning its physical address.
pub fn alloc_frame() -> Option<u64> {
    let pa = FRAMES.lock().as_mut()?.alloc()? * 4096;
    // SAFETY: the frame was free, so nothing else refers to it, and it is
    // reachable at phys_to_virt(pa).
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, 4096) };
    Some(pa)
}

/// Returns a frame to the pool.
pub fn free_frame(pa: u64) -> Result<(), serac_kcore::frame::FrameError> {
    FRAMES
        .lock()
        .as_mut()
        .ok_or(serac_kcore::frame::FrameError::OutOfRange)?
        .free(pa / 4096)
}

/// Writes `data` at physical address `pa` (a frame the kernel owns),
/// through the direct map. `pa + data.len()` must stay within one frame.
pub fn write_phys(pa: u64, data: &[u8]) {
    let room = 4096 - (pa % 4096) as usize;
    let n = data.len().min(room);
    // SAFETY: the caller owns the frame containing `pa` and the write stays
    // inside it (clamped above); the direct map covers all RAM.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), phys_to_virt(pa) as *mut u8, n) };
}

/// Copies `len` bytes between physical addresses, each range within one
/// frame (clamped). For IPC: buffer to buffer, no staging copy.
pub fn copy_phys(src: u64, dst: u64, len: usize) {
    let room = |pa: u64| 4096 - (pa % 4096) as usize;
    let n = len.min(room(src)).min(room(dst));
    if src / 4096 == dst / 4096 {
        return;
    }
    // SAFETY: both ranges lie inside single frames (clamped above) of RAM in
    // the direct map, in different frames (checked), so they do not overlap;
    // the kernel is single-threaded here.
    unsafe {
        core::ptr::copy_nonoverlapping(
            phys_to_virt(src) as *const u8,
            phys_to_virt(dst) as *mut u8,
            n,
        )
    };
}

/// Reads the aligned `u64` at physical address `pa` (IPC header words).
pub fn read_u64(pa: u64) -> u64 {
    let pa = pa & !7;
    // SAFETY: an aligned word of RAM in the direct map; the kernel is
    // single-threaded here and the word is plain data.
    unsafe { core::ptr::read_volatile(phys_to_virt(pa) as *const u64) }
}

/// Writes the aligned `u64` at physical address `pa` of a frame the kernel
/// owns or is delivering into (IPC header words).
pub fn write_u64(pa: u64, v: u64) {
    let pa = pa & !7;
    // SAFETY: as for `read_u64`; the caller owns the frame for this write.
    unsafe { core::ptr::write_volatile(phys_to_virt(pa) as *mut u64, v) }
}

/// Reads into `buf` from physical address `pa`, within one frame.
pub fn read_phys(pa: u64, buf: &mut [u8]) {
    let room = 4096 - (pa % 4096) as usize;
    let n = buf.len().min(room);
    // SAFETY: reads stay inside one frame of RAM (clamped above), reached
    // through the direct map; the kernel is single-threaded here.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(pa) as *const u8, buf.as_mut_ptr(), n) };
}

/// Frames the allocator covers (top of RAM / 4 KiB).
pub fn total_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.capacity())
}

/// Allocates up to `n` contiguous frames (halving until a run fits);
/// returns (first frame, count).
pub fn alloc_range(mut n: u64) -> Option<(u64, u64)> {
    let mut guard = FRAMES.lock();
    let fa = guard.as_mut()?;
    while n > 0 {
        if let Some(first) = fa.alloc_range(n) {
            return Some((first, n));
        }
        n /= 2;
    }
    None
}

/// Zeroes `count` frames from frame number `first`.
pub fn zero_frames(first: u64, count: u64) {
    for f in first..first + count {
        // SAFETY: the caller just allocated these frames, so nothing else
        // refers to them; the direct map covers all RAM.
        unsafe { core::ptr::write_bytes(phys_to_virt(f * 4096) as *mut u8, 0, 4096) };
    }
}

/// Frames currently free.
pub fn free_frames() -> u64 {
    FRAMES.lock().as_ref().map_or(0, |f| f.free_count())
}

struct Frames;

// SAFETY: `alloc_frame` returns distinct, unused, zeroed 4 KiB frames.
unsafe impl X86FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_frame().map(|pa| PhysFrame::containing_address(PhysAddr::new(pa)))
    }
}

/// What [`init_kernel_tables`] built.
#[derive(Debug, Clone, Copy)]
pub struct TableStats {
    /// Bytes of physical memory in the direct map.
    pub physmap_bytes: u64,
    /// 4 KiB pages of kernel image mapped.
    pub image_pages: u64,
    /// Heap bytes mapped.
    pub heap_bytes: u64,
}

/// Why the kernel tables could not be built.
#[derive(Debug, Clone, Copy)]
pub enum PagingError {
    /// Ran out of frames for tables or heap.
    OutOfFrames,
    /// A mapping collided with an existing one (a layout bug).
    MapFailed,
}

/// Builds the kernel's page tables and switches to them.
pub fn init_kernel_tables(top: u64, heap_bytes: u64) -> Result<TableStats, PagingError> {
    let pml4_pa = alloc_frame().ok_or(PagingError::OutOfFrames)?;
    // SAFETY: pml4_pa is a fresh zeroed frame reachable through the identity
    // map; nothing else refers to it.
    let pml4 = unsafe { &mut *(phys_to_virt(pml4_pa) as *mut PageTable) };
    // SAFETY: physical memory below 4 GiB is mapped at PHYS_OFFSET by the boot
    // tables, and every table frame comes from `alloc_frame`, which scans from
    // frame 0 and so returns low frames first.
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(PHYS_OFFSET)) };
    let mut frames = Frames;

    // Direct map: all RAM, and at least the 32-bit MMIO hole (LAPIC, I/O
    // APIC, HPET live at 0xfec00000..).
    let physmap_bytes = top.max(0x1_0000_0000).next_multiple_of(1 << 21);
    let mut pa = 0;
    while pa < physmap_bytes {
        let mut flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
        if (0xc000_0000..0x1_0000_0000).contains(&pa) {
            flags |= F::NO_CACHE | F::WRITE_THROUGH;
        }
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(PHYS_OFFSET + pa));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(pa));
        // SAFETY: the direct map aliases physical memory only in kernel-only
        // pages; the kernel never creates a second mutable reference through
        // it to memory owned elsewhere (frames are owned via the allocator).
        unsafe { mapper.map_to(page, frame, flags, &mut frames) }
            .map_err(|_| PagingError::MapFailed)?
            .ignore();
        pa += 1 << 21;
    }

    // Kernel image, W^X per section.
    let sections = [
        (
            sym(&raw const __text_start),
            sym(&raw const __text_end),
            F::PRESENT | F::GLOBAL,
        ),
        (
            sym(&raw const __rodata_start),
            sym(&raw const __rodata_end),
            F::PRESENT | F::GLOBAL | F::NO_EXECUTE,
        ),
        (
            sym(&raw const __data_start),
            sym(&raw const __kernel_end),
            F::PRESENT | F::GLOBAL | F::NO_EXECUTE | F::WRITABLE,
        ),
    ];
    let mut image_pages = 0;
    for (start, end, flags) in sections {
        let mut va = start;
        while va < end {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
            let frame = PhysFrame::containing_address(PhysAddr::new(va - KERNEL_VMA));
            // SAFETY: maps the kernel image to where it already lives, with
            // the same or tighter permissions than the boot tables.
            unsafe { mapper.map_to(page, frame, flags, &mut frames) }
                .map_err(|_| PagingError::MapFailed)?
                .ignore();
            va += 4096;
            image_pages += 1;
        }
    }

    // Heap.
    let mut va = HEAP_START;
    while va < HEAP_START + heap_bytes {
        let frame_pa = alloc_frame().ok_or(PagingError::OutOfFrames)?;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = PhysFrame::containing_address(PhysAddr::new(frame_pa));
        let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
        // SAFETY: a fresh frame mapped at an address nothing else uses.
        unsafe { mapper.map_to(page, frame, flags, &mut frames) }
            .map_err(|_| PagingError::MapFailed)?
            .ignore();
        va += 4096;
    }

    // Global pages and no-execute need CR4.PGE and EFER.NXE (set by the
    // trampoline); enable PGE now.
    // SAFETY: setting PGE only affects TLB retention of global pages.
    unsafe {
        x86_64::registers::control::Cr4::update(|f| {
            f.insert(x86_64::registers::control::Cr4Flags::PAGE_GLOBAL);
        });
    }
    let frame = PhysFrame::containing_address(PhysAddr::new(pml4_pa));
    // SAFETY: the new tables map the running code (image at -2 GiB), the
    // stack (in .bss), and all physical memory at PHYS_OFFSET, so execution
    // continues; the boot identity map is gone from here on.
    unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    Ok(TableStats {
        physmap_bytes,
        image_pages,
        heap_bytes,
    })
}
