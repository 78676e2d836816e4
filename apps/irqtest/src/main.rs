//! Interrupt delivery to a driver domain. Run as the first domain
//! (`serac.init=irqtest`), so handle 1 is the root handle: it binds the
//! legacy timer's line (ISA IRQ 0, GSI 2 on PC chipsets, ticking at 18.2 Hz
//! as the firmware left it) to itself, then waits for the line's pending bit
//! with `idle` and acknowledges it with `irq_ack`, three times.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::{DomainOp, IDLE_FOREVER};
use ilwaco::protocol::upcall::irq_bit;
use ilwaco::protocol::{Handle, SysError};
use ilwaco::sys;

ilwaco::entry!(main);

const ROOT: Handle = Handle::new(1, 1);
const PIT_GSI: u64 = 2;

fn check() -> Result<(), &'static str> {
    // Bad requests first: a line that does not exist, a forged IRQ handle.
    if sys::domain_ctl(ROOT, DomainOp::BindIrq, 200, ROOT.to_raw()) != Err(SysError::BadArgument) {
        return Err("binding line 200 was not refused");
    }
    if sys::irq_ack(Handle::new(9, 1)).is_ok() {
        return Err("irq_ack of a forged handle succeeded");
    }
    let irq = sys::domain_ctl(ROOT, DomainOp::BindIrq, PIT_GSI, ROOT.to_raw())
        .map(Handle::from_raw)
        .map_err(|_| "BindIrq failed")?;
    let bit = irq_bit(0).map_err(|_| "no IRQ bit")?;
    let clock = ilwaco::time::clock().ok_or("no clock")?;
    let mut last = ilwaco::time::tsc();
    for n in 0..3 {
        let mask = sys::idle(IDLE_FOREVER).map_err(|_| "idle failed")?;
        if mask & bit == 0 {
            return Err("woke without the IRQ bit");
        }
        let now = ilwaco::time::tsc();
        let ms = clock
            .ns_since_boot(now)
            .saturating_sub(clock.ns_since_boot(last))
            / 1_000_000;
        ilwaco::println!("irqtest: interrupt {n} after {ms} ms");
        last = now;
        sys::irq_ack(irq).map_err(|_| "irq_ack failed")?;
    }
    Ok(())
}

fn main() -> i32 {
    match check() {
        Ok(()) => {
            ilwaco::println!("TEST irq_delivery ... ok");
            0
        }
        Err(why) => {
            ilwaco::println!("TEST irq_delivery ... FAILED: {why}");
            1
        }
    }
}
