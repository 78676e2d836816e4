//! The vnic's interrupt helper. The kernel ends a `reply_recv` only for a
//! message, so the vnic, which waits for requests there, cannot also wait
//! for its device's interrupt. This domain takes the device's INTx line
//! instead (`irq-of=vnic` in the manifest: an `Irq` handle after its
//! `endpoint=vnic`), sleeps in `idle` until the line fires, and then calls
//! the vnic with an empty message: the vnic reads the device's ISR (which
//! de-asserts the level-triggered line), and once it has answered this
//! domain unmasks the line with `irq_ack`. A frame that lands after the
//! ISR read asserts the line again, which fires once unmasked, so none is
//! missed.
//!
//! It holds no device and no memory of anyone's; what it can do with its
//! endpoint is what any domain can: make the vnic look at its rings.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::{Transport, LABEL_NET};
use ilwaco::protocol::upcall::irq_bit;
use ilwaco::protocol::{Handle, SysError};
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

/// The vnic (`endpoint=vnic`, the first link).
const VNIC_SLOT: u32 = 1;
/// The `Irq` handle, after the links.
const IRQ_SLOT: u32 = 2;

/// Tells the vnic to look at its device; retried once across a restart.
fn kick(vnic: Handle) -> Result<usize, SysError> {
    let mut back = [0u8; 16];
    match Endpoint(vnic).call(LABEL_NET, &[], &mut back) {
        Err(SysError::ServerRestarted) => Endpoint(vnic).call(LABEL_NET, &[], &mut back),
        r => r,
    }
}

fn main() -> i32 {
    let vnic = ilwaco::rt::granted(VNIC_SLOT);
    let irq = ilwaco::rt::granted(IRQ_SLOT);
    let Ok(bit) = irq_bit(0) else { return 1 };
    if let Err(e) = sys::irq_ack(irq) {
        println!("vnic-irq: no Irq handle ({e:?}): the manifest gave no irq-of=; ending");
        return 1;
    }
    // The vnic learns from the first call that interrupts will come.
    if let Err(e) = kick(vnic) {
        println!("vnic-irq: the vnic does not answer: {e:?}");
    }
    println!("vnic-irq: waiting for the device's interrupts");
    let mut failures = 0u32;
    loop {
        let mask = sys::idle(u64::MAX).unwrap_or(0);
        if mask & bit == 0 {
            continue;
        }
        if let Err(e) = kick(vnic) {
            failures += 1;
            if failures <= 3 {
                println!("vnic-irq: the vnic did not answer: {e:?}");
            }
            // A vnic being restarted: let it come up before the line
            // (still asserted) fires again.
            let _ = time::sleep_ns(10_000_000);
        }
        let _ = sys::irq_ack(irq);
    }
}
