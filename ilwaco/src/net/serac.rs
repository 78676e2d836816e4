//! The stack on Serac: the clock page for time, `idle(deadline)` for
//! waiting, the vnic's `RX_NOTIFY` through the pending mask.

use core::future::Future;

use serac_protocol::syscall::IDLE_FOREVER;
use serac_protocol::upcall::NOTIFY;
use serac_protocol::Handle;
use smoltcp::time::Instant;

use super::{exec::Flag, Config, Net, NetError};
use crate::ipc::Endpoint;
use crate::{sys, time};

/// The clock page's calibration turned into fixed-point factors once, so
/// reading the time is `rdtsc` and one multiply (no 128-bit division and
/// no read of the clock page on the per-packet path).
#[derive(Debug, Clone, Copy)]
struct Clock {
    boot_tsc: u64,
    /// Microseconds per tick, times 2^32.
    us_per_tick: u64,
    /// Ticks per microsecond, times 2^32.
    ticks_per_us: u64,
}

static CLOCK: spin::Once<Option<Clock>> = spin::Once::new();

fn clock() -> Option<Clock> {
    *CLOCK.call_once(|| {
        let c = time::clock()?;
        let hz = u128::from(c.tsc_hz.max(1));
        Some(Clock {
            boot_tsc: c.boot_tsc,
            us_per_tick: u64::try_from((1_000_000u128 << 32) / hz).ok()?,
            ticks_per_us: u64::try_from((hz << 32) / 1_000_000).ok()?,
        })
    })
}

/// The stack's clock: microseconds since boot (0 without a clock page).
pub fn now() -> Instant {
    let Some(c) = clock() else {
        return Instant::from_micros(0);
    };
    let ticks = sys::rdtsc().saturating_sub(c.boot_tsc);
    let us = (u128::from(ticks) * u128::from(c.us_per_tick)) >> 32;
    Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

/// The TSC deadline `us` microseconds from now.
fn deadline_after_us(us: u64) -> u64 {
    let Some(c) = clock() else {
        return IDLE_FOREVER;
    };
    let ticks = (u128::from(us) * u128::from(c.ticks_per_us)) >> 32;
    sys::rdtsc().saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
}

/// A stack on the vnic at endpoint `vnic`.
pub fn attach(vnic: Handle, config: Config) -> Result<Net, NetError> {
    Net::new(Endpoint(vnic), config, now(), sys::rdtsc())
}

/// How long after the vnic's last notification waits stay short.
const WARM_US: u64 = 1_000_000;
/// The longest wait while warm: under the kernel's 100 ms, past which an
/// `idle` gives the page tables back (refilled by faults on the next wake,
/// tens of thousands of ticks for a stack's working set).
const WARM_WAIT_US: u64 = 90_000;

/// Runs `fut` (and every task spawned on `net`) until `fut` finishes,
/// idling in between: `idle` until the next deadline the step returned,
/// or until an event (the vnic's notification). For a second after the
/// last notification no wait is longer than [`WARM_WAIT_US`], so a busy
/// guest keeps its page tables; after that an idle guest waits with no
/// deadline at all (no wake-ups, its tables given back).
pub fn run<F: Future>(net: &Net, fut: F) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    let flag = alloc::sync::Arc::new(Flag::default());
    let waker = super::waker(&flag);
    // The first step polls it.
    waker.wake_by_ref();
    let mut out = None;
    let mut last_rx = Instant::from_micros(0);
    loop {
        let mut poll = |cx: &mut core::task::Context<'_>| match fut.as_mut().poll(cx) {
            core::task::Poll::Ready(v) => {
                out = Some(v);
                true
            }
            core::task::Poll::Pending => false,
        };
        let t = now();
        let next = net.step(t, Some((&flag, &mut poll, &waker)));
        if let Some(v) = out.take() {
            return v;
        }
        let warm = (t - last_rx).total_micros() < WARM_US;
        let deadline = match next {
            Some(at) if at <= t => 0,
            Some(at) if !warm => deadline_after_us((at - t).total_micros()),
            Some(at) => deadline_after_us((at - t).total_micros().min(WARM_WAIT_US)),
            None if warm => deadline_after_us(WARM_WAIT_US),
            None => IDLE_FOREVER,
        };
        if deadline == 0 {
            continue;
        }
        if let Ok(mask) = sys::idle(deadline) {
            if mask & NOTIFY != 0 {
                net.notified();
                last_rx = now();
            }
        }
    }
}
