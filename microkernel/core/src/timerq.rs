//! The timer queue: at most one alarm per domain, earliest first.
//!
//! A binary min-heap of domain slot indices ordered by (deadline, index),
//! with each domain's heap position stored beside it so `set` and `cancel`
//! are O(log n) and need no search. Storage is caller-provided, one
//! [`TimerSlot`] per domain slot (the same slice holds the heap array).
//!
//! The scheduler is tickless: the kernel programs one one-shot deadline,
//! [`next_event`] = min(end of quantum, earliest alarm).
//! Invariants (proptested against a model): each domain is in the heap at
//! most once; `pop_expired` yields alarms in (deadline, index) order and
//! only those due at `now`; `next_deadline` is the minimum of the set.

use serac_protocol::SysError;

const NIL: u32 = u32::MAX;

/// Per-domain timer storage.
#[derive(Debug, Clone, Copy)]
pub struct TimerSlot {
    /// This domain's deadline (valid while `pos != NIL`).
    deadline: u64,
    /// This domain's heap position, or NIL.
    pos: u32,
    /// The domain index at heap position `i` (for slot `i`).
    heap: u32,
}

impl TimerSlot {
    /// No alarm (to initialise storage).
    pub const EMPTY: TimerSlot = TimerSlot {
        deadline: 0,
        pos: NIL,
        heap: NIL,
    };
}

impl Default for TimerSlot {
    fn default() -> Self {
        TimerSlot::EMPTY
    }
}

/// The timer queue over caller-provided slots.
#[derive(Debug)]
pub struct TimerQueue<'a> {
    s: &'a mut [TimerSlot],
    len: usize,
}

impl<'a> TimerQueue<'a> {
    /// An empty queue for domain slots `0..slots.len()`.
    pub fn new(slots: &'a mut [TimerSlot]) -> Self {
        slots.fill(TimerSlot::EMPTY);
        TimerQueue { s: slots, len: 0 }
    }

    /// Pending alarms.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no alarm is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn key(&self, heap_pos: usize) -> (u64, u32) {
        let d = self.s.get(heap_pos).map_or(NIL, |s| s.heap);
        (self.s.get(d as usize).map_or(u64::MAX, |s| s.deadline), d)
    }

    fn put(&mut self, heap_pos: usize, d: u32) {
        if let Some(s) = self.s.get_mut(heap_pos) {
            s.heap = d;
        }
        if let Some(s) = self.s.get_mut(d as usize) {
            s.pos = u32::try_from(heap_pos).unwrap_or(NIL);
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        let da = self.s.get(a).map_or(NIL, |s| s.heap);
        let db = self.s.get(b).map_or(NIL, |s| s.heap);
        self.put(a, db);
        self.put(b, da);
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if self.key(i) >= self.key(p) {
                break;
            }
            self.swap(i, p);
            i = p;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.len && self.key(l) < self.key(m) {
                m = l;
            }
            if r < self.len && self.key(r) < self.key(m) {
                m = r;
            }
            if m == i {
                break;
            }
            self.swap(i, m);
            i = m;
        }
    }

    /// The alarm of domain `idx`, if set.
    pub fn deadline_of(&self, idx: u32) -> Option<u64> {
        let s = self.s.get(idx as usize)?;
        (s.pos != NIL).then_some(s.deadline)
    }

    /// Sets (or moves) the alarm of domain `idx`; returns the previous one.
    /// `BadArgument` past the table.
    pub fn set(&mut self, idx: u32, deadline: u64) -> Result<Option<u64>, SysError> {
        if idx == NIL || idx as usize >= self.s.len() {
            return Err(SysError::BadArgument);
        }
        let prev = self.cancel(idx);
        let at = self.len;
        if let Some(s) = self.s.get_mut(idx as usize) {
            s.deadline = deadline;
        }
        self.put(at, idx);
        self.len += 1;
        self.sift_up(at);
        Ok(prev)
    }

    /// Removes the alarm of domain `idx`; returns it if there was one.
    pub fn cancel(&mut self, idx: u32) -> Option<u64> {
        let s = *self.s.get(idx as usize)?;
        if s.pos == NIL {
            return None;
        }
        let at = s.pos as usize;
        let last = self.len - 1;
        self.swap(at, last);
        self.len = last;
        if let Some(me) = self.s.get_mut(idx as usize) {
            me.pos = NIL;
        }
        if let Some(h) = self.s.get_mut(last) {
            h.heap = NIL;
        }
        if at < self.len {
            self.sift_down(at);
            self.sift_up(at);
        }
        Some(s.deadline)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.len > 0).then(|| self.key(0).0)
    }

    /// Removes and returns one alarm due at `now` (deadline <= now), earliest
    /// first; call until `None`.
    pub fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        let (deadline, idx) = (self.len > 0).then(|| self.key(0))?;
        if deadline > now {
            return None;
        }
        self.cancel(idx);
        Some((idx, deadline))
    }
}

/// The one-shot timer deadline to program: the earlier of the running
/// domain's quantum end (if any) and the next alarm, never before `now`.
/// `None`: nothing to wake for (halt until an interrupt).
pub fn next_event(now: u64, quantum_end: Option<u64>, timers: &TimerQueue<'_>) -> Option<u64> {
    let t = match (quantum_end, timers.next_deadline()) {
        (Some(q), Some(a)) => q.min(a),
        (q, a) => q.or(a)?,
    };
    Some(t.max(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn basics() {
        let mut slots = [TimerSlot::EMPTY; 4];
        let mut q = TimerQueue::new(&mut slots);
        assert_eq!(next_event(5, None, &q), None);
        assert_eq!(next_event(5, Some(10), &q), Some(10));
        q.set(2, 30).unwrap();
        q.set(1, 20).unwrap();
        assert_eq!(q.set(2, 10), Ok(Some(30)));
        assert_eq!(q.set(4, 1), Err(SysError::BadArgument));
        assert_eq!(next_event(5, Some(15), &q), Some(10));
        assert_eq!(next_event(50, Some(15), &q), Some(50));
        assert_eq!(q.pop_expired(9), None);
        assert_eq!(q.pop_expired(25), Some((2, 10)));
        assert_eq!(q.pop_expired(25), Some((1, 20)));
        assert_eq!(q.pop_expired(25), None);
        assert!(q.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u32, u64),
        Cancel(u32),
        Pop(u64),
    }

    proptest! {
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(prop_oneof![
            (0u32..7, 0u64..50).prop_map(|(i, d)| Op::Set(i, d)),
            (0u32..7).prop_map(Op::Cancel),
            (0u64..60).prop_map(Op::Pop),
        ], 0..200)) {
            let mut slots = [TimerSlot::EMPTY; 6];
            let mut q = TimerQueue::new(&mut slots);
            let mut model: BTreeMap<u32, u64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Set(i, d) => {
                        let want = if i >= 6 { Err(SysError::BadArgument) } else { Ok(model.insert(i, d)) };
                        prop_assert_eq!(q.set(i, d), want);
                    }
                    Op::Cancel(i) => prop_assert_eq!(q.cancel(i), model.remove(&i)),
                    Op::Pop(now) => {
                        let want = model.iter().map(|(i, d)| (*d, *i)).min().filter(|(d, _)| *d <= now);
                        let got = q.pop_expired(now);
                        prop_assert_eq!(got, want.map(|(d, i)| (i, d)));
                        if let Some((_, i)) = want { model.remove(&i); }
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.next_deadline(), model.values().min().copied());
                for i in 0..6 {
                    prop_assert_eq!(q.deadline_of(i), model.get(&i).copied());
                }
                let qe = 25;
                let want = model.values().min().map_or(qe, |a| (*a).min(qe)).max(10);
                prop_assert_eq!(next_event(10, Some(qe), &q), Some(want));
            }
        }
    }
}
