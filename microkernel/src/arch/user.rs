//! Ring 3: address spaces, the `syscall` entry, and entering a domain.
//!
//! The kernel is event-driven with one kernel stack. Every entry from ring 3
//! (trap, interrupt or `syscall`) leaves a [`TrapFrame`] at the top of that
//! stack; the kernel switches domains by saving that frame into the old
//! domain and overwriting it with the new one's, then returns with `iretq`.
//! So a blocked domain holds no kernel stack, only its saved frame.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::cpu::{selectors, TrapFrame};
use super::paging::{alloc_frame, free_frame, phys_to_virt, PHYS_OFFSET};

/// Vector number recorded in the frame of a `syscall` entry.
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Physical address of the kernel's PML4, whose upper half every address
/// space shares.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);
/// Top of the kernel stack, loaded by the `syscall` entry (single CPU).
#[unsafe(no_mangle)]
static SERAC_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// Scratch for the user rsp during `syscall` entry (single CPU, IF=0).
#[unsafe(no_mangle)]
static SERAC_USER_RSP: AtomicU64 = AtomicU64::new(0);

/// Why a mapping was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// No frame for an intermediate table.
    OutOfFrames,
    /// Something is already mapped there.
    AlreadyMapped,
    /// Outside the lower half.
    NotUser,
}

fn pml4_mut(pa: u64) -> &'static mut PageTable {
    // SAFETY: `pa` is the PML4 frame of an address space (or the kernel's),
    // reached through the direct map. The kernel is single-threaded with
    // interrupts off while it edits tables, so no other reference is live.
    unsafe { &mut *(phys_to_virt(pa) as *mut PageTable) }
}

fn mapper(pml4_pa: u64) -> OffsetPageTable<'static> {
    // SAFETY: all physical memory is mapped at PHYS_OFFSET once the kernel
    // tables are live, which `init` requires.
    unsafe { OffsetPageTable::new(pml4_mut(pml4_pa), VirtAddr::new(PHYS_OFFSET)) }
}

/// Allocates table frames and counts them for the space they go to.
struct TableFrames<'a>(&'a mut u32);

// SAFETY: `alloc_frame` returns distinct, unused, zeroed frames.
unsafe impl x86_64::structures::paging::FrameAllocator<Size4KiB> for TableFrames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let pa = alloc_frame()?;
        *self.0 += 1;
        Some(PhysFrame::containing_address(PhysAddr::new(pa)))
    }
}

/// Table frames a space may hold before the kernel drops it (it is only a
/// cache, refilled from the software TLB on faults): a base for the usual
/// layout (image, stack, heap, fixed pages, scratch) plus one per 128 pages
/// mapped, four times what dense mappings need. Intermediate tables are
/// never freed one by one, so without this a domain mapping and unmapping
/// at fresh strides would drain the kernel's pool (3 frames a step).
pub fn table_budget(pages: u32) -> u32 {
    32 + pages / 128
}

/// One domain's x86 page tables: a cache of its software-TLB bindings.
#[derive(Debug)]
pub struct AddressSpace {
    pml4: u64,
    /// Frames of this space's tables (the PML4 included).
    tables: u32,
    /// Pages mapped in it.
    pages: u32,
}

impl AddressSpace {
    /// A new space sharing the kernel's upper half, with an empty lower half.
    pub fn new() -> Result<Self, MapError> {
        let pa = alloc_frame().ok_or(MapError::OutOfFrames)?;
        // Share the kernel half: copy PML4 entries 256..512 (2 KiB).
        let mut upper = [0u8; 2048];
        super::paging::read_phys(KERNEL_PML4.load(Ordering::Relaxed) + 2048, &mut upper);
        super::paging::write_phys(pa + 2048, &upper);
        Ok(Self {
            pml4: pa,
            tables: 1,
            pages: 0,
        })
    }

    /// Table frames this space holds.
    pub fn tables(&self) -> u32 {
        self.tables
    }

    /// Whether it holds more table frames than [`table_budget`] allows.
    pub fn over_budget(&self) -> bool {
        self.tables > table_budget(self.pages)
    }

    /// Maps the 4 KiB page at `va` to frame `pa` for ring 3 (`uncached`
    /// for device memory: PCD | PWT).
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        writable: bool,
        exec: bool,
        uncached: bool,
    ) -> Result<(), MapError> {
        if va >= 0x0000_8000_0000_0000 {
            return Err(MapError::NotUser);
        }
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
        if writable {
            flags |= F::WRITABLE;
        }
        if !exec {
            flags |= F::NO_EXECUTE;
        }
        if uncached {
            flags |= F::NO_CACHE | F::WRITE_THROUGH;
        }
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let frame = PhysFrame::containing_address(PhysAddr::new(pa));
        let parents = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        // SAFETY: maps a user page in this space's lower half only; the
        // frame's ownership was checked by the caller (secure binding), and
        // the kernel half is untouched.
        let flush = unsafe {
            mapper(self.pml4).map_to_with_table_flags(
                page,
                frame,
                flags,
                parents,
                &mut TableFrames(&mut self.tables),
            )
        }
        .map_err(|e| match e {
            x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed => {
                MapError::OutOfFrames
            }
            _ => MapError::AlreadyMapped,
        })?;
        flush.flush();
        self.pages += 1;
        Ok(())
    }

    /// Removes the mapping at `va`, returning the frame it named.
    pub fn unmap(&mut self, va: u64) -> Option<u64> {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let (frame, flush) = mapper(self.pml4).unmap(page).ok()?;
        flush.flush();
        self.pages = self.pages.saturating_sub(1);
        Some(frame.start_address().as_u64())
    }

    /// The use bits (`USED_ACCESSED | USED_DIRTY`) of the page at `va`,
    /// cleared in the entry (and the TLB) when `take`. `None` if unmapped.
    pub fn used(&mut self, va: u64, take: bool) -> Option<u8> {
        let e = leaf(self.pml4, va)?;
        let bits = used_bits(e.flags());
        if take && bits != 0 {
            e.set_flags(e.flags() - (F::ACCESSED | F::DIRTY));
            x86_64::instructions::tlb::flush(VirtAddr::new(va));
        }
        Some(bits)
    }

    /// [`AddressSpace::destroy`], first handing `f` the use bits of every
    /// page that has some, so dropping the cache loses none of them.
    pub fn destroy_harvest(self, f: &mut dyn FnMut(u64, u8)) {
        harvest(self.pml4, 4, 0, f);
        self.destroy();
    }

    /// Loads this space into CR3.
    pub fn activate(&self) {
        let frame = PhysFrame::containing_address(PhysAddr::new(self.pml4));
        if Cr3::read().0 != frame {
            // SAFETY: the space shares the kernel's upper half, so the
            // running kernel code, stack and data stay mapped.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
        }
    }

    /// Frees the table frames of the lower half (not the leaf frames, which
    /// the domain's owner tracks) and the PML4. Switches to the kernel's
    /// tables first if this space is live.
    pub fn destroy(self) {
        let kernel =
            PhysFrame::containing_address(PhysAddr::new(KERNEL_PML4.load(Ordering::Relaxed)));
        if Cr3::read().0.start_address().as_u64() == self.pml4 {
            // SAFETY: the kernel's own tables map everything the kernel uses.
            unsafe { Cr3::write(kernel, Cr3Flags::empty()) };
        }
        free_tables(self.pml4, 4);
    }
}

fn used_bits(fl: F) -> u8 {
    use serac_protocol::syscall::{USED_ACCESSED, USED_DIRTY};
    (if fl.contains(F::ACCESSED) {
        USED_ACCESSED
    } else {
        0
    }) | (if fl.contains(F::DIRTY) { USED_DIRTY } else { 0 })
}

/// The present leaf entry for `va` in the space at `pml4`.
fn leaf(
    pml4: u64,
    va: u64,
) -> Option<&'static mut x86_64::structures::paging::page_table::PageTableEntry> {
    let mut pa = pml4;
    for level in (1..=4u8).rev() {
        let idx = ((va >> (12 + 9 * u64::from(level - 1))) & 511) as usize;
        let e = pml4_mut(pa).iter_mut().nth(idx)?;
        if !e.flags().contains(F::PRESENT) || e.flags().contains(F::HUGE_PAGE) {
            return None;
        }
        if level == 1 {
            return Some(e);
        }
        pa = e.addr().as_u64();
    }
    None
}

fn harvest(pa: u64, level: u8, base: u64, f: &mut dyn FnMut(u64, u8)) {
    let entries = if level == 4 { 256 } else { 512 };
    for (i, e) in pml4_mut(pa).iter().take(entries).enumerate() {
        let fl = e.flags();
        if !fl.contains(F::PRESENT) || fl.contains(F::HUGE_PAGE) {
            continue;
        }
        let va = base | (i as u64) << (12 + 9 * u64::from(level - 1));
        if level == 1 {
            let bits = used_bits(fl);
            if bits != 0 {
                f(va, bits);
            }
        } else {
            harvest(e.addr().as_u64(), level - 1, va, f);
        }
    }
}

fn free_tables(pa: u64, level: u8) {
    if level > 1 {
        let table = pml4_mut(pa);
        let entries = if level == 4 { 256 } else { 512 };
        for e in table.iter().take(entries) {
            if e.flags().contains(F::PRESENT) && !e.flags().contains(F::HUGE_PAGE) {
                free_tables(e.addr().as_u64(), level - 1);
            }
        }
    }
    if level < 4 || pa != KERNEL_PML4.load(Ordering::Relaxed) {
        let _ = free_frame(pa);
    }
}

/// Records the kernel PML4 and programs the `syscall` MSRs.
pub fn init(kernel_stack_top: u64) {
    KERNEL_PML4.store(Cr3::read().0.start_address().as_u64(), Ordering::Relaxed);
    SERAC_KERNEL_RSP.store(kernel_stack_top, Ordering::Relaxed);
    let s = selectors();
    // SAFETY: enabling SCE only makes `syscall` legal; the entry point and
    // selectors are set before any domain runs.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
    if Star::write(s.user_code, s.user_data, s.kernel_code, s.kernel_data).is_err() {
        crate::arch::exit::halt_forever();
    }
    LStar::write(VirtAddr::new(syscall_entry_addr()));
    // The kernel runs with RFLAGS = 2 whatever ring 3 set: in particular
    // NT (with NT set, the kernel's `iretq` faults), IOPL, AC, DF and TF
    // never reach ring 0. Linux masks the same set.
    SFMask::write(RFlags::all());
}

fn syscall_entry_addr() -> u64 {
    unsafe extern "C" {
        static serac_syscall_entry: u8;
    }
    (&raw const serac_syscall_entry) as u64
}

/// A fresh ring-3 frame starting at `rip` with stack `rsp`, interrupts on.
pub fn user_frame(rip: u64, rsp: u64) -> TrapFrame {
    let s = selectors();
    TrapFrame {
        rip,
        rsp,
        cs: u64::from(s.user_code.0),
        ss: u64::from(s.user_data.0),
        rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(2)).bits(),
        ..TrapFrame::default()
    }
}

/// Makes sure a frame about to be restored is a ring-3 frame with
/// interrupts on, whatever a domain wrote into its saved context.
pub fn sanitize(frame: &mut TrapFrame) {
    let s = selectors();
    frame.cs = u64::from(s.user_code.0);
    frame.ss = u64::from(s.user_data.0);
    // Keep the arithmetic flags, DF, AC; force IF and IOPL 0, clear NT/RF/VM.
    let keep = 0x0cd5 | (1 << 18);
    frame.rflags = (frame.rflags & keep) | (1 << 9) | 2;
}

/// Leaves the kernel for the domain whose frame is given. Resets the kernel
/// stack: nothing the kernel had on it survives.
pub fn enter(frame: &TrapFrame) -> ! {
    let top = SERAC_KERNEL_RSP.load(Ordering::Relaxed);
    let size = core::mem::size_of::<TrapFrame>() as u64;
    let dst = (top - size) as *mut TrapFrame;
    // SAFETY: the top of the kernel stack is free once we abandon the current
    // call chain, which `serac_enter_user` does by loading rsp = dst; the
    // frame's cs/ss are ring-3 selectors (checked by `sanitize`).
    unsafe {
        core::ptr::write(dst, *frame);
        serac_enter_user(dst);
    }
}

unsafe extern "C" {
    fn serac_enter_user(frame: *const TrapFrame) -> !;
}

global_asm!(
    r#"
    .text
    .global serac_syscall_entry
serac_syscall_entry:
    /* RFLAGS = 2 (SFMASK). rcx = user rip, r11 = user rflags. Build the
       same TrapFrame an interrupt would, with vector 0x100. */
    mov [rip + SERAC_USER_RSP], rsp
    mov rsp, [rip + SERAC_KERNEL_RSP]
    push {user_ss}
    push [rip + SERAC_USER_RSP]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {syscall_vector}
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call trap_dispatch

    /* rsp -> the TrapFrame of whichever domain runs next. A frame saved by
       a syscall entry returns with sysretq (its rcx and r11 are dead by the
       ABI); any other with iretq. sysretq to a non-canonical rip would fault
       in ring 0, so only a lower-half rip takes that path. */
    .global serac_return_to_user
serac_return_to_user:
    cmp qword ptr [rsp + {off_vector}], {syscall_vector}
    jne trap_return
    mov rax, [rsp + {off_rip}]
    shr rax, 47
    jnz trap_return
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    pop rcx
    add rsp, 8
    pop r11
    /* Last: from here until sysretq the CPU is in ring 0 on the user stack
       with IF=0; NMIs and machine checks use IST stacks (cpu.rs). */
    pop rsp
    sysretq

    .global serac_enter_user
serac_enter_user:
    mov rsp, rdi
    jmp serac_return_to_user
"#,
    user_ss = const super::cpu::USER_DATA_SEL,
    user_cs = const super::cpu::USER_CODE_SEL,
    syscall_vector = const SYSCALL_VECTOR,
    off_vector = const core::mem::offset_of!(TrapFrame, vector),
    off_rip = const core::mem::offset_of!(TrapFrame, rip),
);
