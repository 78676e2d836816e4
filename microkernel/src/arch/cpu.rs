//! GDT, TSS, IDT and the trap path.
//!
//! Every vector has a 16-byte assembly stub that pushes a uniform frame and
//! calls [`trap_dispatch`]. Exceptions raised in the kernel are fatal and
//! reported with vector, error code, RIP and (for #PF) CR2; the double fault
//! runs on its own IST stack so a kernel stack overflow is still reported.

use core::arch::global_asm;
use core::fmt::Write;
use spin::Lazy;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::registers::control::Cr2;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::exit::{exit, ExitCode};
use super::serial::RawWriter;

/// Saved registers, in the order the trap stubs push them.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// IST slot (1-based in the IDT, 0-based in the TSS) for the double fault.
const DOUBLE_FAULT_IST: u16 = 1;
/// IST slot for NMI and machine check: they can arrive in the instruction
/// window of `sysretq` where rsp is already the user's.
const NMI_IST: u16 = 2;
const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);
static mut DOUBLE_FAULT_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);
static mut NMI_STACK: IstStack = IstStack([0; IST_STACK_SIZE]);

/// The GDT's layout, fixed: the entry assembly pushes these selectors, and
/// `sysret` derives the user ones from STAR (user data, then user code).
pub const KERNEL_CODE_SEL: u16 = 1 << 3;
/// Kernel data selector.
pub const KERNEL_DATA_SEL: u16 = 2 << 3;
/// User data (and stack) selector, RPL 3.
pub const USER_DATA_SEL: u16 = (3 << 3) | 3;
/// User code selector, RPL 3.
pub const USER_CODE_SEL: u16 = (4 << 3) | 3;

// `sysretq` loads CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8.
const _: () = assert!(USER_CODE_SEL == USER_DATA_SEL + 8);

// The entry assembly names frame fields by offset (`cpu.rs`, `user.rs`).
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(TrapFrame, r15) == 0);
    assert!(offset_of!(TrapFrame, rax) == 14 * 8);
    assert!(offset_of!(TrapFrame, vector) == 15 * 8);
    assert!(offset_of!(TrapFrame, error) == 16 * 8);
    assert!(offset_of!(TrapFrame, rip) == 17 * 8);
    assert!(offset_of!(TrapFrame, cs) == 18 * 8);
    assert!(offset_of!(TrapFrame, rflags) == 19 * 8);
    assert!(offset_of!(TrapFrame, rsp) == 20 * 8);
    assert!(offset_of!(TrapFrame, ss) == 21 * 8);
    assert!(core::mem::size_of::<TrapFrame>() == 22 * 8);
};

/// Segment selectors, fixed so `syscall`/`sysret` (STAR) can rely on them.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

static TSS: Lazy<TaskStateSegment> = Lazy::new(|| {
    let mut tss = TaskStateSegment::new();
    let top = VirtAddr::from_ptr(&raw const DOUBLE_FAULT_STACK) + IST_STACK_SIZE as u64;
    tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST - 1)] = top;
    let nmi_top = VirtAddr::from_ptr(&raw const NMI_STACK) + IST_STACK_SIZE as u64;
    tss.interrupt_stack_table[usize::from(NMI_IST - 1)] = nmi_top;
    let kstack = VirtAddr::from_ptr(&raw const super::boot::KERNEL_STACK)
        + super::boot::KERNEL_STACK_SIZE as u64;
    tss.privilege_stack_table[0] = kstack;
    tss
});

static GDT: Lazy<(GlobalDescriptorTable, Selectors)> = Lazy::new(|| {
    let mut gdt = GlobalDescriptorTable::new();
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    let tss = gdt.append(Descriptor::tss_segment(&TSS));
    // The assembly's selectors are constants: the table must agree.
    let fixed = [
        (kernel_code, KERNEL_CODE_SEL),
        (kernel_data, KERNEL_DATA_SEL),
        (user_data, USER_DATA_SEL),
        (user_code, USER_CODE_SEL),
    ];
    if fixed.iter().any(|(s, want)| s.0 != *want) {
        crate::fatal(
            "cpu",
            format_args!("GDT layout differs from the entry selectors"),
        );
    }
    (
        gdt,
        Selectors {
            kernel_code,
            kernel_data,
            user_data,
            user_code,
            tss,
        },
    )
});

/// The selectors loaded by [`init`].
pub fn selectors() -> Selectors {
    GDT.1
}

/// One 16-byte IDT gate.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Lazy<Idt> = Lazy::new(|| {
    let mut idt = Idt([Gate::default(); 256]);
    let base = trap_stubs_base();
    let cs = GDT.1.kernel_code.0;
    for (vec, gate) in idt.0.iter_mut().enumerate() {
        let addr = base + vec as u64 * 16;
        *gate = Gate {
            offset_low: addr as u16,
            selector: cs,
            ist: match vec {
                8 => DOUBLE_FAULT_IST as u8,
                2 | 18 => NMI_IST as u8,
                _ => 0,
            },
            // Present, interrupt gate (IF cleared on entry). DPL 3 only for
            // #BP, so user `int3` is a debug trap rather than a #GP.
            flags: if vec == 3 { 0xee } else { 0x8e },
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
    }
    idt
});

fn trap_stubs_base() -> u64 {
    unsafe extern "C" {
        static trap_stubs: u8;
    }
    // Only the address is taken; the stubs are code, never read as data.
    (&raw const trap_stubs) as u64
}

/// Loads the GDT, segment registers, TSS and IDT.
pub fn init() {
    let (gdt, sel) = &*GDT;
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, and name a 64-bit
    // code segment, data segments and an available TSS.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(&IDT.0),
    };
    // SAFETY: the IDT is a 'static table of valid gates pointing at the
    // trap stubs below, all using the kernel code selector.
    unsafe { lidt(&ptr) };
    lock_fpu();
    enable_machine_check();
}

/// Makes every x87, MMX and SSE instruction trap, in ring 3 and ring 0.
///
/// Nothing saves that state per domain, so if it worked it would be a
/// channel between domains. The kernel and Ilwaco are built soft-float
/// (`x86_64-unknown-none`), so nothing legitimate uses it: CR0.EM makes
/// x87 and MMX instructions raise #NM and SSE ones #UD, and clearing
/// CR4.OSFXSR/OSXMMEXCPT/OSXSAVE makes SSE, `fxsave` and `xgetbv`/`xsave`
/// #UD too. A domain that tries faults alone. CR0.NE picks native x87
/// error reporting (never the legacy IRQ 13 path); MP makes `wait` obey TS.
fn lock_fpu() {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    // SAFETY: the kernel executes no x87/MMX/SSE instruction (soft-float
    // target), so trapping them changes nothing for kernel code; the other
    // bits touched only select how such instructions fault.
    unsafe {
        Cr0::update(|f| {
            f.insert(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::MONITOR_COPROCESSOR);
            f.insert(Cr0Flags::NUMERIC_ERROR);
            f.remove(Cr0Flags::TASK_SWITCHED);
        });
        Cr4::update(|f| {
            f.remove(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE | Cr4Flags::OSXSAVE);
        });
    }
}

const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point",
    "alignment check",
    "machine check",
    "SIMD floating-point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Name of CPU exception `vector`.
pub fn exception_name(vector: u64) -> &'static str {
    EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("interrupt")
}

/// Reports a kernel-mode exception on COM1 and exits QEMU with failure.
fn kernel_exception(frame: &TrapFrame) -> ! {
    let mut w = RawWriter;
    let _ = write!(
        w,
        "\r\nEXCEPTION #{} {} error={:#x} rip={:#x}",
        frame.vector,
        exception_name(frame.vector),
        frame.error,
        frame.rip
    );
    if frame.vector == 14 {
        let cr2 = Cr2::read_raw();
        let _ = write!(w, " cr2={cr2:#x}");
    }
    let _ = write!(
        w,
        "\r\n  rsp={:#x} rflags={:#x} cs={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x}\r\n",
        frame.rsp, frame.rflags, frame.cs, frame.rax, frame.rbx, frame.rcx, frame.rdx
    );
    exit(ExitCode::Failure)
}

/// Called by every trap stub and the `syscall` entry, interrupts disabled.
/// For entries from ring 3 the kernel may rewrite `frame` to switch domains.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let from_user = frame.cs & 3 == 3;
    match frame.vector {
        super::user::SYSCALL_VECTOR => crate::kernel::syscall(frame),
        // Not the running domain's doing: kernel events, wherever they hit.
        2 => nmi(),
        18 => machine_check(frame),
        v if (super::apic::PIC_VECTOR_BASE..super::apic::PIC_VECTOR_BASE + 16).contains(&v) => {
            SPURIOUS_PIC.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        }
        0..=31 if from_user => crate::kernel::user_exception(frame, Cr2::read_raw()),
        0..=31 => kernel_exception(frame),
        super::apic::SPURIOUS_VECTOR => {}
        super::apic::TIMER_VECTOR => {
            super::apic::interrupt(super::apic::TIMER_VECTOR);
            crate::kernel::timer(frame, from_user);
        }
        v if (super::apic::IRQ_VECTOR_BASE
            ..super::apic::IRQ_VECTOR_BASE + u64::from(super::apic::MAX_GSI))
            .contains(&v) =>
        {
            crate::kernel::irq(frame, from_user, (v - super::apic::IRQ_VECTOR_BASE) as u32)
        }
        v => super::apic::interrupt(v),
    }
}

/// NMIs taken (counted here, logged later by the scheduler: an NMI can
/// arrive while the console lock is held).
pub static NMIS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Machine checks taken and survived.
pub static MACHINE_CHECKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Spurious interrupts from the (masked) 8259s.
pub static SPURIOUS_PIC: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn nmi() {
    NMIS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

const MSR_MCG_STATUS: u32 = 0x17a;
const MCG_RIPV: u64 = 1;

/// A machine check is the hardware's, not the running domain's: when the
/// interrupted context can resume (`MCG_STATUS.RIPV`) the kernel counts
/// it and resumes; otherwise nothing can be trusted and it stops.
fn machine_check(frame: &TrapFrame) {
    let mut msr = x86_64::registers::model_specific::Msr::new(MSR_MCG_STATUS);
    // SAFETY: MCG_STATUS exists on every CPU that can raise #MC (CR4.MCE is
    // set only when CPUID reports MCE); reading it has no side effects.
    let status = unsafe { msr.read() };
    if status & MCG_RIPV == 0 {
        let mut w = RawWriter;
        let _ = write!(
            w,
            "\r\nMACHINE CHECK mcg_status={status:#x} rip={:#x}: cannot resume\r\n",
            frame.rip
        );
        exit(ExitCode::Failure);
    }
    // SAFETY: clearing MCG_STATUS (MCIP) after handling is what the
    // architecture asks; a second #MC while MCIP is set would shut down.
    unsafe { msr.write(0) };
    MACHINE_CHECKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
}

/// Lets the CPU deliver machine checks as #MC (handled above) instead of
/// shutting down, where it can.
fn enable_machine_check() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // CPUID.1:EDX bit 7 = MCE.
    let edx = core::arch::x86_64::__cpuid(1).edx;
    if edx & (1 << 7) != 0 {
        // SAFETY: #MC has a handler on its own IST stack (`machine_check`).
        unsafe { Cr4::update(|f| f.insert(Cr4Flags::MACHINE_CHECK_EXCEPTION)) };
    }
}

global_asm!(
    r#"
    .text
    .balign 16
    .global trap_stubs
trap_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    .byte 0x6a, 0x00
    .endif
    .byte 0x68
    .long vec
    jmp trap_common
    .set vec, vec + 1
    .endr

    .global trap_common
trap_common:
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
    /* A clean RFLAGS for the kernel, whatever ring 3 left: the CPU clears
       only TF, NT, RF and IF here, not DF, AC or IOPL. */
    push 2
    popfq
    mov rdi, rsp
    call trap_dispatch
    .global trap_return
trap_return:
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
    iretq
"#
);

/// Halts until the next interrupt (enables interrupts atomically with hlt).
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// Reads `addr`, which must be unmapped: for the exception test.
pub fn provoke_page_fault(addr: u64) -> ! {
    // SAFETY: deliberately faults; the page-fault handler reports and exits
    // QEMU, so the read never returns a value to safe code.
    let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
    panic!("read of unmapped {addr:#x} returned {v:#x} instead of faulting")
}
