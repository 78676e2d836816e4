//! Time: the TSC (the clock) and the LAPIC timer (the one-shot deadline),
//! both calibrated against the HPET, or the PIT when there is no HPET.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

use super::apic;
use super::paging::phys_to_virt;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);
/// LAPIC ticks per TSC tick, as a 32.32 fixed-point number, so arming the
/// timer on every dispatch costs a multiply, not two 128-bit divisions.
static LAPIC_PER_TSC_32: AtomicU64 = AtomicU64::new(0);

/// Calibration window.
const WINDOW_US: u64 = 10_000;

/// The reference a calibration used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The HPET main counter.
    Hpet,
    /// PIT channel 2.
    Pit,
}

/// Result of calibration.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// TSC frequency.
    pub tsc_hz: u64,
    /// LAPIC timer frequency after its divide-by-16.
    pub lapic_hz: u64,
    /// What we measured against.
    pub reference: Reference,
    /// CPUID says the TSC runs at a constant rate in all states.
    pub invariant_tsc: bool,
}

/// Reads the TSC.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects and is always available on x86_64.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn invariant_tsc() -> bool {
    let max = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max < 0x8000_0007 {
        return false;
    }
    core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// Busy-waits `WINDOW_US` against the HPET. Returns false if the HPET does
/// not count (seen on some firmware).
fn wait_hpet(base_pa: u64) -> bool {
    let base = phys_to_virt(base_pa);
    // SAFETY: the HPET register block from ACPI, in the uncached direct
    // map: capabilities at 0x0, configuration at 0x10, counter at 0xf0.
    let (period_fs, counter) = unsafe {
        let caps = core::ptr::read_volatile(base as *const u64);
        let cfg = (base + 0x10) as *mut u64;
        core::ptr::write_volatile(cfg, core::ptr::read_volatile(cfg) | 1);
        (caps >> 32, (base + 0xf0) as *const u64)
    };
    if period_fs == 0 || period_fs > 100_000_000 {
        return false;
    }
    let ticks = WINDOW_US * 1_000_000_000 / period_fs;
    // SAFETY: reading the main counter has no side effects.
    let start = unsafe { core::ptr::read_volatile(counter) };
    let mut spins = 0u64;
    // SAFETY: as above.
    while unsafe { core::ptr::read_volatile(counter) }.wrapping_sub(start) < ticks {
        spins += 1;
        if spins > 1 << 32 {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Busy-waits `WINDOW_US` with PIT channel 2 in one-shot mode.
fn wait_pit() {
    let count = (1_193_182 * WINDOW_US / 1_000_000) as u16;
    let mut gate: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch2: Port<u8> = Port::new(0x42);
    // SAFETY: the PIT and port 0x61 exist on every PC; channel 2 drives only
    // the speaker, which we keep disconnected (bit 1 clear).
    unsafe {
        let g = gate.read();
        gate.write((g & !0x02) | 0x01);
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        while gate.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
    }
}

/// Calibrates the TSC and the LAPIC timer. The LAPIC must be initialised.
pub fn calibrate(hpet: Option<u64>) -> Calibration {
    apic::timer_start_free_running();
    let mut t0 = rdtsc();
    let reference = match hpet {
        Some(pa) if wait_hpet(pa) => Reference::Hpet,
        _ => {
            apic::timer_start_free_running();
            t0 = rdtsc();
            wait_pit();
            Reference::Pit
        }
    };
    let (t1, lapic) = (rdtsc(), u64::from(apic::timer_elapsed()));
    let tsc_hz = (t1 - t0) * 1_000_000 / WINDOW_US;
    let lapic_hz = lapic * 1_000_000 / WINDOW_US;
    TSC_HZ.store(tsc_hz.max(1), Ordering::Relaxed);
    LAPIC_HZ.store(lapic_hz.max(1), Ordering::Relaxed);
    let ratio = (u128::from(lapic_hz.max(1)) << 32) / u128::from(tsc_hz.max(1));
    LAPIC_PER_TSC_32.store(u64::try_from(ratio).unwrap_or(u64::MAX), Ordering::Relaxed);
    Calibration {
        tsc_hz,
        lapic_hz,
        reference,
        invariant_tsc: invariant_tsc(),
    }
}

/// TSC ticks per second (1 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed).max(1)
}

/// Converts nanoseconds to LAPIC timer ticks, saturating at u32::MAX.
pub fn ns_to_lapic_ticks(ns: u64) -> u32 {
    let hz = LAPIC_HZ.load(Ordering::Relaxed).max(1);
    let t = u128::from(ns) * u128::from(hz) / 1_000_000_000;
    u32::try_from(t).unwrap_or(u32::MAX).max(1)
}

/// Converts a TSC interval to LAPIC timer ticks (at least 1, saturating).
pub fn tsc_to_lapic_ticks(tsc: u64) -> u32 {
    let t = (u128::from(tsc) * u128::from(LAPIC_PER_TSC_32.load(Ordering::Relaxed))) >> 32;
    u32::try_from(t).unwrap_or(u32::MAX).max(1)
}

/// Converts TSC ticks to nanoseconds.
pub fn tsc_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz())) as u64
}
