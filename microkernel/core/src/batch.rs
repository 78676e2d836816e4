//! Interrupt batching: a domain's pending-event mask and its counters.
//!
//! Events (alarm, wake-up after a switch, notifications, bound IRQs) only set
//! bits; nothing is delivered until the domain is next dispatched, when
//! [`Pending::take_all`] hands over every pending bit in one upcall. Bits of
//! the same kind coalesce, which is the point: the batching factor is
//! `events_raised / upcalls_delivered`.
//!
//! Invariants (proptested): every raised bit is returned by exactly the next
//! `take_all`; notification words are OR-ed, never lost; the counters add up.
//! One `Pending` lives in each domain's kernel state (a few words).

use serac_protocol::upcall::{irq_bit, ALL_BITS, NOTIFY};
use serac_protocol::SysError;

/// What one dispatch delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Pending bits (`rdi` of the upcall, `rdx` of `idle`).
    pub mask: u64,
    /// Accumulated notification bits (`rsi` of the upcall).
    pub notify_word: u64,
}

/// A domain's pending events and batching counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    mask: u64,
    notify_word: u64,
    events_raised: u64,
    upcalls_delivered: u64,
}

impl Pending {
    /// Nothing pending, counters at zero.
    pub const fn new() -> Self {
        Pending {
            mask: 0,
            notify_word: 0,
            events_raised: 0,
            upcalls_delivered: 0,
        }
    }

    /// Raises `bits` (unknown bits ignored). Returns true if the mask was
    /// empty before, i.e. the caller may need to wake the domain.
    pub fn raise(&mut self, bits: u64) -> bool {
        let bits = bits & ALL_BITS;
        if bits == 0 {
            return false;
        }
        let was_empty = self.mask == 0;
        self.mask |= bits;
        self.events_raised = self.events_raised.saturating_add(1);
        was_empty
    }

    /// A notification: ORs `word` into the notification word and raises NOTIFY.
    pub fn notify(&mut self, word: u64) -> bool {
        self.notify_word |= word;
        self.raise(NOTIFY)
    }

    /// The domain's `n`th bound IRQ fired.
    pub fn irq(&mut self, n: u32) -> Result<bool, SysError> {
        Ok(self.raise(irq_bit(n)?))
    }

    /// The pending bits, without taking them.
    pub const fn mask(&self) -> u64 {
        self.mask
    }

    /// Whether anything is pending.
    pub const fn any(&self) -> bool {
        self.mask != 0
    }

    /// Takes everything pending for delivery in one upcall; `None` (and no
    /// upcall counted) if nothing is pending.
    pub fn take_all(&mut self) -> Option<Delivery> {
        if self.mask == 0 {
            return None;
        }
        let d = Delivery {
            mask: self.mask,
            notify_word: self.notify_word,
        };
        self.mask = 0;
        self.notify_word = 0;
        self.upcalls_delivered = self.upcalls_delivered.saturating_add(1);
        Some(d)
    }

    /// Events raised so far.
    pub const fn events_raised(&self) -> u64 {
        self.events_raised
    }

    /// Upcalls (or `idle` returns) that delivered events.
    pub const fn upcalls_delivered(&self) -> u64 {
        self.upcalls_delivered
    }

    /// Batching factor × 1000 (events per upcall, fixed point); 0 before any upcall.
    pub fn batching_milli(&self) -> u64 {
        if self.upcalls_delivered == 0 {
            return 0;
        }
        let ratio = u128::from(self.events_raised) * 1000 / u128::from(self.upcalls_delivered);
        u64::try_from(ratio).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serac_protocol::upcall::{ALARM, WAKEUP};

    #[test]
    fn coalesces_and_counts() {
        let mut p = Pending::new();
        assert!(p.raise(ALARM));
        assert!(!p.raise(ALARM));
        assert!(!p.notify(0b10));
        assert!(!p.notify(0b01));
        assert_eq!(p.irq(3), Ok(false));
        assert!(p.irq(99).is_err());
        assert!(!p.raise(1 << 5)); // a reserved bit: ignored, not counted
        assert_eq!(
            p.take_all(),
            Some(Delivery {
                mask: ALARM | NOTIFY | 1 << 11,
                notify_word: 0b11
            })
        );
        assert_eq!(p.take_all(), None);
        assert_eq!((p.events_raised(), p.upcalls_delivered()), (5, 1));
        assert_eq!(p.batching_milli(), 5000);
        assert!(p.raise(WAKEUP));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Raise(u64),
        Notify(u64),
        Take,
    }

    proptest! {
        #[test]
        fn no_event_is_lost_or_delivered_twice(ops in proptest::collection::vec(prop_oneof![
            any::<u64>().prop_map(Op::Raise),
            any::<u64>().prop_map(Op::Notify),
            Just(Op::Take),
        ], 0..100)) {
            let mut p = Pending::new();
            let (mut since_mask, mut since_word) = (0u64, 0u64);
            let (mut events, mut upcalls) = (0u64, 0u64);
            let mut delivered_per_bit = [0u64; 64];
            let mut raised_per_bit = [0u64; 64];
            for op in ops {
                match op {
                    Op::Raise(b) => {
                        let b = b & ALL_BITS;
                        prop_assert_eq!(p.raise(b), b != 0 && since_mask == 0);
                        if b != 0 { events += 1; }
                        // Count a raise of a bit only when it was not already pending.
                        for (i, r) in raised_per_bit.iter_mut().enumerate() {
                            if b >> i & 1 == 1 && since_mask >> i & 1 == 0 { *r += 1; }
                        }
                        since_mask |= b;
                    }
                    Op::Notify(w) => {
                        p.notify(w);
                        events += 1;
                        if since_mask & NOTIFY == 0 { raised_per_bit[2] += 1; }
                        since_mask |= NOTIFY;
                        since_word |= w;
                    }
                    Op::Take => {
                        let got = p.take_all();
                        if since_mask == 0 {
                            prop_assert_eq!(got, None);
                        } else {
                            prop_assert_eq!(got, Some(Delivery { mask: since_mask, notify_word: since_word }));
                            upcalls += 1;
                            for (i, d) in delivered_per_bit.iter_mut().enumerate() {
                                *d += since_mask >> i & 1;
                            }
                        }
                        since_mask = 0;
                        since_word = 0;
                    }
                }
                prop_assert_eq!(p.mask(), since_mask);
                prop_assert_eq!((p.events_raised(), p.upcalls_delivered()), (events, upcalls));
            }
            // Drain: afterwards each coalesced raise was delivered exactly once.
            if let Some(d) = p.take_all() {
                for (i, c) in delivered_per_bit.iter_mut().enumerate() {
                    *c += d.mask >> i & 1;
                }
            }
            prop_assert_eq!(delivered_per_bit, raised_per_bit);
        }
    }
}
