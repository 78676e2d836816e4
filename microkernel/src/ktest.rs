//! In-kernel tests, selected with `serac.test=<name>` on the command line.
//! Each prints `TEST <name> ... ok|FAILED: why` and exits QEMU through
//! isa-debug-exit; the host runner (`cargo xtask test`) judges the lines.

use crate::arch;
use crate::arch::exit::{exit, ExitCode};
use crate::kprintln;
use core::sync::atomic::Ordering;

/// Runs test `name` and exits QEMU.
pub fn run(name: &str) {
    match name {
        "boot" => {
            let mut failed = false;
            failed |= !report("heap", heap());
            failed |= !report("lapic_timer", lapic_timer());
            if failed {
                kprintln!("TEST boot ... FAILED: a boot check failed");
                exit(ExitCode::Failure)
            }
            kprintln!("TEST boot ... ok");
            exit(ExitCode::Success)
        }
        "panic" => panic!("deliberate panic (serac.test=panic)"),
        "exception" => {
            // The lower half is empty in the kernel tables: a read there is a
            // page fault that must be reported with CR2.
            arch::cpu::provoke_page_fault(0x0000_0dea_dbee_f000)
        }
        other => {
            kprintln!("TEST {other} ... FAILED: no such test");
            exit(ExitCode::Failure)
        }
    }
}

fn report(name: &str, r: Result<(), &'static str>) -> bool {
    match r {
        Ok(()) => {
            kprintln!("TEST {name} ... ok");
            true
        }
        Err(why) => {
            kprintln!("TEST {name} ... FAILED: {why}");
            false
        }
    }
}

fn heap() -> Result<(), &'static str> {
    let v: alloc::vec::Vec<u64> = (0..10_000).collect();
    if v.iter().sum::<u64>() != 10_000 * 9_999 / 2 {
        return Err("heap contents corrupted");
    }
    let (used, _) = arch::heap::usage();
    if used < 80_000 {
        return Err("heap reports less in use than allocated");
    }
    Ok(())
}

/// Arms a 5 ms one-shot and waits for it: the interrupt must arrive, and
/// not before the deadline (by more than calibration error).
fn lapic_timer() -> Result<(), &'static str> {
    let before = arch::apic::TIMER_FIRED.load(Ordering::Relaxed);
    let t0 = arch::time::rdtsc();
    arch::apic::timer_oneshot(arch::time::ns_to_lapic_ticks(5_000_000));
    let limit = t0 + arch::time::tsc_hz() * 2;
    while arch::apic::TIMER_FIRED.load(Ordering::Relaxed) == before {
        if arch::time::rdtsc() > limit {
            return Err("no timer interrupt within 2 s");
        }
        arch::cpu::wait_for_interrupt();
    }
    let ns = arch::time::tsc_to_ns(arch::time::rdtsc() - t0);
    if ns < 4_000_000 {
        return Err("timer fired early");
    }
    log::info!("ktest: 5 ms one-shot fired after {} us", ns / 1000);
    Ok(())
}
