//! The local APIC (the one-shot timer the scheduler runs on) and the I/O
//! APICs (all pins masked until a driver server binds an IRQ). The legacy
//! 8259 PICs are masked for good.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

use super::paging::phys_to_virt;

/// Vector of the LAPIC timer.
pub const TIMER_VECTOR: u64 = 32;
/// Spurious-interrupt vector (must end in 0xf on old APICs).
pub const SPURIOUS_VECTOR: u64 = 0xff;

const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;

static LAPIC_VA: AtomicU64 = AtomicU64::new(0);

/// First vector used for device interrupts: vector = `IRQ_VECTOR_BASE + gsi`.
pub const IRQ_VECTOR_BASE: u64 = 0x30;
/// Global system interrupts a driver domain can bind (vectors 0x30..0x70).
pub const MAX_GSI: u32 = 64;

/// The I/O APICs: (direct-map address, first GSI, pins).
static IOAPICS: spin::Mutex<[(u64, u32, u32); 8]> = spin::Mutex::new([(0, 0, 0); 8]);
/// Timer interrupts taken since boot.
pub static TIMER_FIRED: AtomicU64 = AtomicU64::new(0);

fn lapic_write(reg: u64, v: u32) {
    let base = LAPIC_VA.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: base is the LAPIC's MMIO page in the (uncached) direct map;
    // `reg` is one of the architectural register offsets above.
    unsafe { core::ptr::write_volatile((base + reg) as *mut u32, v) };
}

fn lapic_read(reg: u64) -> u32 {
    let base = LAPIC_VA.load(Ordering::Relaxed);
    if base == 0 {
        return 0;
    }
    // SAFETY: as for `lapic_write`.
    unsafe { core::ptr::read_volatile((base + reg) as *const u32) }
}

/// Where the 8259s are remapped: masked for good, they can still raise a
/// spurious IRQ 7 or 15, which must not land on an exception vector (where
/// it would pass for the running domain's fault).
pub const PIC_VECTOR_BASE: u64 = 0xe0;

/// Remaps and masks the 8259s, enables the local APIC, masks every I/O
/// APIC pin. Returns the number of I/O APIC pins masked.
pub fn init(lapic_pa: u64, ioapics: &[(u64, u32)]) -> u32 {
    let mut cmd1: Port<u8> = Port::new(0x20);
    let mut cmd2: Port<u8> = Port::new(0xa0);
    let mut pic1: Port<u8> = Port::new(0x21);
    let mut pic2: Port<u8> = Port::new(0xa1);
    // SAFETY: the standard 8259 initialisation sequence on their fixed
    // ports: ICW1 (edge, cascade, ICW4 follows), ICW2 (vector base), ICW3
    // (slave on IRQ 2), ICW4 (8086 mode), then mask every line.
    unsafe {
        cmd1.write(0x11);
        cmd2.write(0x11);
        pic1.write(PIC_VECTOR_BASE as u8);
        pic2.write(PIC_VECTOR_BASE as u8 + 8);
        pic1.write(4);
        pic2.write(2);
        pic1.write(1);
        pic2.write(1);
        pic1.write(0xff);
        pic2.write(0xff);
    }
    LAPIC_VA.store(phys_to_virt(lapic_pa), Ordering::Relaxed);
    lapic_write(REG_SVR, (1 << 8) | SPURIOUS_VECTOR as u32);
    lapic_write(REG_LVT_TIMER, LVT_MASKED);
    let mut pins = 0;
    for (n, &(pa, gsi_base)) in ioapics.iter().enumerate() {
        let base = phys_to_virt(pa);
        let sel = base as *mut u32;
        let win = (base + 0x10) as *mut u32;
        // SAFETY: IOREGSEL/IOWIN of an I/O APIC from the MADT, in the
        // uncached direct map. Register 1 holds the redirection count.
        let max = unsafe {
            core::ptr::write_volatile(sel, 1);
            (core::ptr::read_volatile(win) >> 16) & 0xff
        };
        for i in 0..=max {
            // SAFETY: redirection entry i (low word) exists for i <= max;
            // setting bit 16 masks the pin.
            unsafe {
                core::ptr::write_volatile(sel, 0x10 + 2 * i);
                core::ptr::write_volatile(win, LVT_MASKED);
            }
            pins += 1;
        }
        if let Some(slot) = IOAPICS.lock().get_mut(n) {
            *slot = (base, gsi_base, max + 1);
        }
    }
    pins
}

/// Starts the timer counting down from its maximum, masked (for calibration).
pub fn timer_start_free_running() {
    lapic_write(REG_TIMER_DIVIDE, 0b0011); // divide by 16
    lapic_write(REG_LVT_TIMER, LVT_MASKED);
    lapic_write(REG_TIMER_INIT, u32::MAX);
}

/// Ticks elapsed since [`timer_start_free_running`].
pub fn timer_elapsed() -> u32 {
    u32::MAX - lapic_read(REG_TIMER_CURRENT)
}

/// Arms a one-shot timer interrupt after `ticks` LAPIC ticks (0 disarms).
pub fn timer_oneshot(ticks: u32) {
    lapic_write(REG_TIMER_DIVIDE, 0b0011);
    lapic_write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    lapic_write(REG_TIMER_INIT, ticks);
}

/// Trigger mode and polarity per GSI (bit 0 level-triggered, bit 1
/// active-low), set when a line is bound; ISA lines default to edge, high.
static GSI_MODE: [core::sync::atomic::AtomicU8; MAX_GSI as usize] =
    [const { core::sync::atomic::AtomicU8::new(0) }; MAX_GSI as usize];

/// Sets how `gsi` signals (PCI INTx lines are level-triggered).
pub fn set_gsi_mode(gsi: u32, level: bool, active_low: bool) {
    if let Some(m) = GSI_MODE.get(gsi as usize) {
        m.store(
            u8::from(level) | u8::from(active_low) << 1,
            Ordering::Relaxed,
        );
    }
}

/// Routes `gsi` to its vector on the boot CPU (in the mode `set_gsi_mode`
/// gave it), masked or not. False if no I/O APIC has that pin or it is
/// out of range.
pub fn route_gsi(gsi: u32, masked: bool) -> bool {
    if gsi >= MAX_GSI {
        return false;
    }
    let mode = GSI_MODE
        .get(gsi as usize)
        .map_or(0, |m| u32::from(m.load(Ordering::Relaxed)));
    // Redirection entry bits 15 (level) and 13 (active low).
    let mode_bits = (mode & 1) << 15 | (mode >> 1 & 1) << 13;
    let apics = *IOAPICS.lock();
    for (base, first, pins) in apics {
        if base == 0 || gsi < first || gsi - first >= pins {
            continue;
        }
        let pin = gsi - first;
        let low = (IRQ_VECTOR_BASE as u32 + gsi) | mode_bits | if masked { LVT_MASKED } else { 0 };
        let sel = base as *mut u32;
        let win = (base + 0x10) as *mut u32;
        // SAFETY: IOREGSEL/IOWIN of an I/O APIC found in the MADT, in the
        // uncached direct map; redirection entry `pin` exists (pin < pins).
        // High word first (destination: APIC id 0, the boot CPU), then the
        // low word, which unmasks last.
        unsafe {
            core::ptr::write_volatile(sel, 0x10 + 2 * pin + 1);
            core::ptr::write_volatile(win, 0);
            core::ptr::write_volatile(sel, 0x10 + 2 * pin);
            core::ptr::write_volatile(win, low);
        }
        return true;
    }
    false
}

/// Acknowledges an interrupt at the local APIC.
pub fn eoi() {
    lapic_write(REG_EOI, 0);
}

/// Handles a device or timer interrupt.
pub fn interrupt(vector: u64) {
    if vector == TIMER_VECTOR {
        TIMER_FIRED.fetch_add(1, Ordering::Relaxed);
    }
    lapic_write(REG_EOI, 0);
}
