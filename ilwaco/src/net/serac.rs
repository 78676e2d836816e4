//! The stack on Serac: the clock page for time, `idle(deadline)` for
//! waiting, the vnic's `RX_NOTIFY` through the pending mask.

use alloc::boxed::Box;
use core::future::Future;

use serac_protocol::syscall::IDLE_FOREVER;
use serac_protocol::upcall::NOTIFY;
use serac_protocol::Handle;
use smoltcp::time::Instant;

use super::{exec::Flag, Config, Net, NetError};
use crate::ipc::Endpoint;
use crate::{sys, time};

/// The stack's clock: microseconds since boot (0 without a clock page).
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns().unwrap_or(0) / 1000) as i64)
}

/// A stack on the vnic at endpoint `vnic`.
pub fn attach(vnic: Handle, config: Config) -> Result<Net, NetError> {
    Net::new(Box::new(Endpoint(vnic)), config, now(), sys::rdtsc())
}

/// Runs `fut` (and every task spawned on `net`) until `fut` finishes,
/// idling in between: `idle` until the next deadline the step returned,
/// or until an event (the vnic's notification).
pub fn run<F: Future>(net: &Net, fut: F) -> F::Output {
    let mut fut = core::pin::pin!(fut);
    let flag = alloc::sync::Arc::new(Flag::default());
    let waker = super::waker(&flag);
    // The first step polls it.
    waker.wake_by_ref();
    let mut out = None;
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
        let deadline = match (next, time::clock()) {
            (None, _) | (_, None) => IDLE_FOREVER,
            (Some(at), Some(c)) => {
                let us = (at - t).total_micros();
                if at <= t {
                    0
                } else {
                    c.deadline_after_ns(sys::rdtsc(), us.saturating_mul(1000))
                }
            }
        };
        if deadline == 0 {
            continue;
        }
        if let Ok(mask) = sys::idle(deadline) {
            if mask & NOTIFY != 0 {
                net.notified();
            }
        }
    }
}
