//! Leaving QEMU: the isa-debug-exit device at port 0xf4.
//!
//! QEMU exits with status `(v << 1) | 1` for a written value `v`; on real
//! hardware the write goes nowhere and we halt instead.

use x86_64::instructions::port::Port;

/// How the kernel ends a test run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exit status 33.
    Success = 0x10,
    /// QEMU exit status 35.
    Failure = 0x11,
}

/// Exits QEMU (or halts forever on hardware).
pub fn exit(code: ExitCode) -> ! {
    let mut port: Port<u32> = Port::new(0xf4);
    // SAFETY: port 0xf4 is the isa-debug-exit device under QEMU and unused
    // on PCs; writing it has no other effect.
    unsafe { port.write(code as u32) };
    halt_forever()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
