//! The first instructions: one trampoline for both boot protocols.
//!
//! QEMU's PVH loader (`-kernel`) and GRUB's multiboot2 loader both enter
//! `serac_entry32` in 32-bit protected mode with paging off; EAX holds the
//! multiboot2 magic (or anything, for PVH) and EBX the physical address of the
//! boot information. The trampoline identity-maps the first 4 GiB (so the boot
//! information is reachable), maps the kernel at -2 GiB, enters long mode and
//! calls `kmain(eax, ebx)` on the kernel stack.

use core::arch::global_asm;

/// Size of the boot CPU's kernel stack.
pub const KERNEL_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .set MB2_MAGIC, 0xe85250d6
    .set MB2_LEN, mb2_header_end - mb2_header_start

    .section .multiboot2_header, "a"
    .balign 8
mb2_header_start:
    .long MB2_MAGIC
    .long 0
    .long MB2_LEN
    .long -(MB2_MAGIC + MB2_LEN)
    .balign 8
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .note.pvh, "a"
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long serac_entry32
    .balign 4

    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_pml4: .skip 4096
boot_pdpt_low: .skip 4096
boot_pdpt_high: .skip 4096
boot_pd: .skip 4096 * 4
boot_stack: .skip 4096
boot_stack_top:

    .section .boot.data, "aw"
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdtr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global serac_entry32
serac_entry32:
    cli
    cld
    mov edi, eax
    mov esi, ebx
    mov esp, offset boot_stack_top

    /* Zero the page tables: not every loader clears NOLOAD memory. */
    push edi
    mov edi, offset boot_pml4
    xor eax, eax
    mov ecx, (4096 * 7) / 4
    rep stosd
    pop edi

    /* PML4[0] and PML4[256] (the direct map at PHYS_OFFSET) -> low PDPT,
       PML4[511] -> high PDPT. */
    mov eax, offset boot_pdpt_low
    or eax, 3
    mov [boot_pml4], eax
    mov [boot_pml4 + 256 * 8], eax
    mov eax, offset boot_pdpt_high
    or eax, 3
    mov [boot_pml4 + 511 * 8], eax

    /* Low PDPT[0..4] -> four PDs (identity 0..4 GiB); high PDPT[510] -> PD 0
       (-2 GiB -> 0..1 GiB). */
    mov eax, offset boot_pd
    or eax, 3
    mov [boot_pdpt_low], eax
    mov [boot_pdpt_high + 510 * 8], eax
    add eax, 4096
    mov [boot_pdpt_low + 8], eax
    add eax, 4096
    mov [boot_pdpt_low + 16], eax
    add eax, 4096
    mov [boot_pdpt_low + 24], eax

    /* 2048 2-MiB pages: entry i = i * 2 MiB | PS | RW | P. */
    mov ecx, 0
1:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov [boot_pd + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov [boot_pd + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, 2048
    jne 1b

    /* PAE, then EFER.LME|NXE, then CR3 and paging. */
    mov eax, cr4
    or eax, 1 << 5
    mov cr4, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, (1 << 8) | (1 << 11)
    wrmsr
    mov eax, offset boot_pml4
    mov cr3, eax
    mov eax, cr0
    or eax, (1 << 31) | (1 << 16) | 1
    mov cr0, eax

    lgdt [boot_gdtr]
    push 0x08
    mov eax, offset boot_long_mode
    push eax
    retf

    .code64
boot_long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    movabs rax, offset serac_entry64
    jmp rax

    .text
serac_entry64:
    lea rsp, [rip + {stack} + {stack_size}]
    xor ebp, ebp
    /* edi = loader magic, esi = boot info (zero-extended by the 32-bit movs). */
    mov edi, edi
    mov esi, esi
    call {kmain}
    ud2
"#,
    stack = sym KERNEL_STACK,
    stack_size = const KERNEL_STACK_SIZE,
    kmain = sym crate::kmain,
);

/// The boot CPU's kernel stack (the only kernel stack: the kernel is
/// event-driven, so a blocked domain holds none).
#[repr(C, align(16))]
pub struct Stack(pub [u8; KERNEL_STACK_SIZE]);

pub static mut KERNEL_STACK: Stack = Stack([0; KERNEL_STACK_SIZE]);

/// Top of the kernel stack (where every entry from ring 3 starts).
pub fn kernel_stack_top() -> u64 {
    (&raw const KERNEL_STACK) as u64 + KERNEL_STACK_SIZE as u64
}
