//! The upcall dispatcher: one handler receives every batch of pending events.
//!
//! The kernel delivers all of a domain's pending bits in one upcall (see
//! [`serac_protocol::upcall`]): it saves the interrupted context in the
//! upcall page, clears the page's enable flag and enters the trampoline in
//! [`crate::sys`] with the mask and the notification word. The trampoline
//! calls the handler registered here, then restores the saved registers,
//! sets the enable flag again and jumps back, with no syscall.
//!
//! To receive upcalls a domain needs: a handler ([`set_handler`]), the
//! kernel told the entry point ([`install`], or its creator passing
//! [`entry_address`] to `domain_ctl(SetUpcall)`), and the enable flag set
//! ([`enable`]). Until a handler is registered, delivered events are kept and
//! returned by [`take_unhandled`].
//!
//! The handler runs with upcalls disabled, on the interrupted stack below its
//! red zone. It must not block, allocate or take locks the interrupted code
//! may hold; it should record the events and return.

use core::sync::atomic::{AtomicU64, Ordering};

use serac_protocol::syscall::DomainOp;
use serac_protocol::{Handle, SysError};
use spin::Once;

use crate::sys;

/// One delivered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events {
    /// The pending mask ([`serac_protocol::upcall::ALARM`] and friends).
    pub mask: u64,
    /// The notification word (the bits other domains sent with `notify`).
    pub notify: u64,
}

/// A handler was already registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyRegistered;

static HANDLER: Once<fn(Events)> = Once::new();
static UNHANDLED_MASK: AtomicU64 = AtomicU64::new(0);
static UNHANDLED_NOTIFY: AtomicU64 = AtomicU64::new(0);

/// Registers the domain's upcall handler; there is one per domain.
pub fn set_handler(handler: fn(Events)) -> Result<(), AlreadyRegistered> {
    let mut installed = false;
    HANDLER.call_once(|| {
        installed = true;
        handler
    });
    if installed {
        Ok(())
    } else {
        Err(AlreadyRegistered)
    }
}

/// Hands a batch to the handler, or keeps it for [`take_unhandled`].
/// Called by the trampoline; callers may also feed it the mask `idle` returned.
pub fn dispatch(events: Events) {
    match HANDLER.get() {
        Some(h) => h(events),
        None => {
            UNHANDLED_MASK.fetch_or(events.mask, Ordering::Relaxed);
            UNHANDLED_NOTIFY.fetch_or(events.notify, Ordering::Relaxed);
        }
    }
}

/// Takes the events delivered while no handler was registered.
pub fn take_unhandled() -> Events {
    Events {
        mask: UNHANDLED_MASK.swap(0, Ordering::Relaxed),
        notify: UNHANDLED_NOTIFY.swap(0, Ordering::Relaxed),
    }
}

/// The upcall entry point, for `domain_ctl(SetUpcall)`.
pub fn entry_address() -> u64 {
    sys::upcall_entry_address()
}

/// Tells the kernel the entry point through a `DomainCtl` handle (with
/// `CONTROL`) naming this domain.
pub fn install(ctl: Handle) -> Result<u64, SysError> {
    sys::domain_ctl(ctl, DomainOp::SetUpcall, entry_address(), 0)
}

/// Allows upcalls (sets the upcall page's enable flag).
pub fn enable() {
    sys::upcall_set_enabled(true);
}

/// Holds upcalls back; events stay pending (or are returned by `idle`).
pub fn disable() {
    sys::upcall_set_enabled(false);
}

/// Where the interrupted code was (`rip`), for a handler that wants to know.
pub fn interrupted_rip() -> u64 {
    sys::upcall_frame().regs[serac_protocol::upcall::UpcallFrame::RIP]
}
