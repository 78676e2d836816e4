//! The swapper, Serac's first pager: it answers software-TLB misses.
//!
//! The supervisor gives it frames with `domain_ctl(GiveFrame)`, announces
//! them with a `Grant` request, and names it the pager of guests with
//! `SetPager`. A miss blocks the guest and arrives here as a `Fault` (label
//! `LABEL_FAULT`); the swapper takes a frame from its pool, zeroes it through
//! a scratch page of its own, binds it at the faulting page through the
//! fault's reply handle and answers `FAULT_RESUME`, or `FAULT_KILL` when the
//! access is invalid or the pool is dry. The decisions are the
//! [`serac_pager_policy::Policy`]'s; this file is only the syscall loop and
//! the log lines.
//!
//! It must be loaded eagerly (`eager=yes`): it has no pager of its own.
#![no_std]
#![no_main]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::println;
use ilwaco::protocol::header::MsgHeader;
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::{DomainId, Handle, PageRights, SysError};
use ilwaco::sys;
use serac_pager_policy::{Event, Incoming, KillReason, Mmu, Pager, ZeroFill};

ilwaco::entry!(main);

/// Served faults that get a log line; after these the swapper stays quiet.
const LOGGED_FAULTS: u64 = 3;
/// Kills and refused requests that get a log line.
const LOGGED_PROBLEMS: u64 = 32;
/// Consecutive failed receives before the swapper gives up.
const MAX_RECV_ERRORS: u32 = 3;

/// `map`/`unmap` through the kernel, zeroing through one scratch page.
struct Kernel;

impl Kernel {
    const SCRATCH: u64 = sys::SCRATCH_BASE;

    fn zero_once(frame: u64) -> Result<(), SysError> {
        sys::map(Handle::NONE, Self::SCRATCH, frame, PageRights::READ_WRITE)?;
        let zeroed = sys::scratch_zero(Self::SCRATCH);
        let unmapped = sys::unmap(Handle::NONE, Self::SCRATCH);
        zeroed?;
        unmapped.map(|_| ())
    }
}

impl Mmu for Kernel {
    fn zero(&mut self, frame: u64) -> Result<(), SysError> {
        match Self::zero_once(frame) {
            // A binding left behind by an earlier failure: clear it, retry.
            Err(SysError::AlreadyMapped) => {
                let _ = sys::unmap(Handle::NONE, Self::SCRATCH);
                Self::zero_once(frame)
            }
            r => r,
        }
    }

    fn bind(&mut self, reply: Handle, page: u64, frame: u64) -> Result<(), SysError> {
        sys::map(reply, page, frame, PageRights::READ_WRITE).map(|_| ())
    }
}

/// `index:gen`, as the operator console shows domains.
struct Dom(DomainId);

impl core::fmt::Display for Dom {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.0.index, self.0.gen)
    }
}

fn log(ev: Event, problems: &mut u64) {
    match ev {
        Event::Granted {
            count,
            taken,
            total,
            first_grant,
        } => {
            if taken < count {
                println!(
                    "swapper: can track only {taken} of {count} granted frames; the rest stay unused"
                );
            }
            if first_grant {
                println!("swapper: up, {total} frames");
            } else {
                println!("swapper: now {total} frames");
            }
        }
        Event::Served {
            nth,
            domain,
            vaddr,
            frame,
        } => {
            if nth <= LOGGED_FAULTS {
                println!(
                    "swapper: fault #{nth} domain {} vaddr={vaddr:#x} -> frame {frame:#x}",
                    Dom(domain)
                );
            }
        }
        Event::Killed {
            domain,
            reason: KillReason::OutOfFrames,
            ..
        } => println!("swapper: out of frames, killing {}", Dom(domain)),
        other => {
            *problems += 1;
            if *problems > LOGGED_PROBLEMS {
                return;
            }
            match other {
                Event::Killed {
                    domain,
                    vaddr,
                    reason,
                } => println!(
                    "swapper: killing {} at vaddr={vaddr:#x}: {reason:?}",
                    Dom(domain)
                ),
                Event::Revoked { domain, frames } => {
                    println!("swapper: {} gone, {frames} frames free again", Dom(domain));
                }
                e => println!("swapper: {e:?}"),
            }
        }
    }
}

fn main() -> i32 {
    let mut pager = Pager::new(ZeroFill);
    let mut kernel = Kernel;
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut out = [0u8; MAX_PAYLOAD];
    let mut reply = Handle::NONE;
    let mut recv_errors = 0u32;
    let mut problems = 0u64;
    loop {
        let raw = match sys::reply_recv(reply) {
            Ok(raw) => {
                recv_errors = 0;
                raw
            }
            Err(e) => {
                // The reply could not be delivered (e.g. the caller died), or
                // receiving failed: drop the reply and receive afresh.
                recv_errors += 1;
                println!("swapper: reply_recv failed: {e:?}");
                if recv_errors >= MAX_RECV_ERRORS {
                    println!("swapper: cannot receive, stopping");
                    return 1;
                }
                reply = Handle::NONE;
                continue;
            }
        };
        reply = Handle::from_raw(raw);
        let (h, len): (MsgHeader, usize) = match get_message(&mut payload) {
            Ok(m) => m,
            Err(_) => {
                // A header that does not decode cannot come from the kernel.
                let _ = put_message(0, Handle::NONE, &[]);
                continue;
            }
        };
        let msg = Incoming {
            label: h.label,
            badge: h.badge,
            reply,
            payload: payload.get(..len).unwrap_or(&[]),
        };
        let (resp, ev) = pager.handle(&msg, &mut kernel, &mut out);
        if let Some(ev) = ev {
            log(ev, &mut problems);
        }
        let body = out.get(..resp.len).unwrap_or(&[]);
        if put_message(resp.label, Handle::NONE, body).is_err() {
            let _ = put_message(resp.label, Handle::NONE, &[]);
        }
    }
}
