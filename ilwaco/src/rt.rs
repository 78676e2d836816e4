//! The runtime: the [`entry!`](crate::entry) macro, exit codes and the panic handler.
//!
//! `_start` (in [`crate::sys`]) switches to Ilwaco's stack, sets up the heap,
//! calls the `main` named by `entry!` and halts with its exit code.

/// The `halt` code of a domain that panicked.
pub const PANIC_EXIT_CODE: u64 = 101;
/// The `halt` code of a domain that panicked while panicking.
pub const DOUBLE_PANIC_EXIT_CODE: u64 = 102;

/// The registers the kernel entered the domain with (docs/abi.md section
/// 10). For the first domain (the supervisor): `a0` = boot archive address,
/// `a1` = its length, `a2` = first frame of its memory grant, `a3` = frame
/// count. Every other domain starts with them zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootArgs {
    /// `rdi`.
    pub a0: u64,
    /// `rsi`.
    pub a1: u64,
    /// `rdx`.
    pub a2: u64,
    /// `r10`.
    pub a3: u64,
}

/// The registers `_start` was entered with (saved before anything ran).
pub fn boot_args() -> BootArgs {
    let [a0, a1, a2, a3] = crate::sys::boot_args();
    BootArgs { a0, a1, a2, a3 }
}

/// The frames the supervisor gave this domain (`frames=` in its manifest
/// entry), read from the grant page (`serac_protocol::layout::grant`).
/// Only for such a domain: elsewhere nothing is bound at
/// `GRANT_PAGE_ADDR`, so the read faults to the domain's pager (a zero page
/// reads as `None`) or, without one, ends the domain.
pub fn frame_grant() -> Option<serac_protocol::layout::grant::FrameGrant> {
    use serac_protocol::layout::{grant::FrameGrant, GRANT_PAGE_ADDR};
    FrameGrant::read(|off| crate::sys::peek(GRANT_PAGE_ADDR + off as u64))
}

/// The handle the supervisor granted this domain in `slot` at start (its
/// links from slot 1 in manifest order, then a device and its interrupt
/// line). Generations stay monotonic across restarts, so after a restart
/// they are not 1: this asks the kernel (`DomainCounter::HandleBase`).
pub fn granted(slot: u32) -> serac_protocol::Handle {
    use serac_protocol::syscall::{DomainCounter, DomainOp};
    let base = crate::sys::domain_ctl(
        serac_protocol::Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::HandleBase as u64,
        0,
    )
    .ok()
    .and_then(|g| u32::try_from(g).ok())
    .unwrap_or(1);
    serac_protocol::Handle::new(slot, base)
}

/// What `main` may return: turned into the `halt` code.
pub trait Termination {
    /// The exit code (0 = success).
    fn report(self) -> u64;
}

impl Termination for () {
    fn report(self) -> u64 {
        0
    }
}

impl Termination for u64 {
    fn report(self) -> u64 {
        self
    }
}

/// Negative codes are passed sign-extended (-1 becomes `u64::MAX`).
impl Termination for i32 {
    fn report(self) -> u64 {
        i64::from(self) as u64
    }
}

/// `Err` prints the error and exits with 1.
impl<E: core::fmt::Debug> Termination for Result<(), E> {
    fn report(self) -> u64 {
        match self {
            Ok(()) => 0,
            Err(e) => {
                crate::println!("error: {e:?}");
                1
            }
        }
    }
}

/// Names the binary's `main`: `ilwaco::entry!(main);` at the crate root of a
/// `#![no_std] #![no_main]` binary. `main` takes no arguments and returns
/// `()`, `i32`, `u64`, `Result<(), E: Debug>` or `!`.
///
/// It defines the `ilwaco_main` symbol that Ilwaco's `_start` calls; that
/// symbol name is the only link-level contract between Ilwaco and the app.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        #[no_mangle]
        pub extern "C" fn ilwaco_main() -> u64 {
            $crate::rt::Termination::report($main())
        }
    };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if PANICKING.swap(true, Ordering::Relaxed) {
        crate::sys::halt(DOUBLE_PANIC_EXIT_CODE);
    }
    match info.location() {
        Some(l) => crate::println!("panic: {} at {}:{}", info.message(), l.file(), l.line()),
        None => crate::println!("panic: {} at <unknown>", info.message()),
    }
    crate::sys::halt(PANIC_EXIT_CODE)
}
