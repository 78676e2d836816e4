//! The kernel heap: a fixed region mapped at boot, managed by
//! `linked_list_allocator`. Kernel objects whose number grows with domains
//! are meant to live in bounded tables instead; the heap is for boot-time
//! structures.

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the mapped region `[start, start + size)` to the allocator.
pub fn init(start: u64, size: u64) {
    // SAFETY: the region was just mapped writable by `init_kernel_tables`
    // with fresh frames, nothing else uses it, and this runs once.
    unsafe { HEAP.lock().init(start as *mut u8, size as usize) };
}

/// Bytes in use and free.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.used(), h.free())
}

/// Whether the heap can take `bytes` more and still keep a reserve for the
/// kernel's own bookkeeping. Allocation failure in the kernel is fatal, so
/// anything a domain can make the kernel allocate asks this first and
/// answers `OutOfMemory` instead.
pub fn has_room(bytes: usize) -> bool {
    const RESERVE: usize = 256 * 1024;
    usage().1 >= bytes.saturating_add(RESERVE)
}
