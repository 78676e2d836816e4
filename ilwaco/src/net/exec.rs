//! A small executor of async tasks on one thread, with timers.
//!
//! Wakers are `Arc<Flag>` through `alloc::task::Wake`, so it needs no
//! `unsafe`: waking sets the task's flag, and a step polls the tasks whose
//! flag is set. Timers are a short list of (deadline, waker); the nearest
//! one bounds the owner's `idle`.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use smoltcp::time::Instant;

/// A task's wake flag.
#[derive(Debug, Default)]
pub struct Flag(AtomicBool);

impl Flag {
    /// A flag that is already set (a new task runs once).
    pub fn set() -> Arc<Flag> {
        Arc::new(Flag(AtomicBool::new(true)))
    }

    /// Takes the flag: whether it was set.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A spawned task.
pub(crate) struct Task {
    fut: Pin<Box<dyn Future<Output = ()>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

impl Task {
    pub(crate) fn new(fut: Pin<Box<dyn Future<Output = ()>>>) -> Task {
        let flag = Flag::set();
        let waker = Waker::from(flag.clone());
        Task { fut, flag, waker }
    }

    /// Whether it was woken and not yet run.
    pub(crate) fn woken(&self) -> bool {
        self.flag.is_set()
    }

    /// Polls the task if it was woken; `Some(done)` if it ran.
    pub(crate) fn run(&mut self) -> Option<bool> {
        if !self.flag.take() {
            return None;
        }
        let mut cx = Context::from_waker(&self.waker);
        Some(self.fut.as_mut().poll(&mut cx).is_ready())
    }
}

/// One timer: a deadline and whom to wake.
#[derive(Debug)]
struct Timer {
    id: u64,
    at: Instant,
    waker: Waker,
}

/// The timers of one stack.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    list: Vec<Timer>,
    next_id: u64,
}

impl Timers {
    /// Sets (or moves) timer `id` (0: a new one); returns its id.
    pub(crate) fn set(&mut self, id: u64, at: Instant, waker: &Waker) -> u64 {
        if let Some(t) = self.list.iter_mut().find(|t| id != 0 && t.id == id) {
            t.at = at;
            if !t.waker.will_wake(waker) {
                t.waker = waker.clone();
            }
            return id;
        }
        self.next_id += 1;
        let id = self.next_id;
        // A full heap loses the timer: the task then only wakes on other
        // events, which the caller's deadline checks catch.
        if self.list.try_reserve(1).is_ok() {
            self.list.push(Timer {
                id,
                at,
                waker: waker.clone(),
            });
        }
        id
    }

    /// Drops timer `id`.
    pub(crate) fn cancel(&mut self, id: u64) {
        self.list.retain(|t| t.id != id);
    }

    /// Wakes (and drops) every timer due at `now`.
    pub(crate) fn fire(&mut self, now: Instant) {
        self.list.retain(|t| {
            if t.at <= now {
                t.waker.wake_by_ref();
                false
            } else {
                true
            }
        });
    }

    /// The nearest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.list.iter().map(|t| t.at).min()
    }

    /// Timers set.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }
}

/// Polls `f` once more after it returned `Pending` once: a yield.
#[derive(Debug, Default)]
pub struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
