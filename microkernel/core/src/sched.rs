//! The run queue: two FIFO classes, servers ahead of guests.
//!
//! Domains are named by their slot index in the kernel's domain table. Links
//! live in a caller-provided array indexed by that slot, so enqueue, dequeue
//! and removal are O(1) with no allocation. Only runnable domains are queued:
//! idle and blocked domains cost nothing here. Round-robin comes from the
//! kernel re-enqueueing a preempted domain at its class's tail.
//!
//! Invariants (proptested against a `VecDeque` model): a domain is queued at
//! most once, in one class; `pop` returns servers before guests and FIFO
//! order within a class; `len` equals the number of queued domains.
//! Servers can starve guests: servers are trusted, and weighted shares
//! (performance isolation) are future work.

use serac_protocol::supervisor::DomainClass;
use serac_protocol::SysError;

const NIL: u32 = u32::MAX;

/// Per-domain link storage for the run queue.
#[derive(Debug, Clone, Copy)]
pub struct RunLink {
    next: u32,
    prev: u32,
    /// 0 = not queued, 1 = server list, 2 = guest list.
    queued: u8,
}

impl RunLink {
    /// Not queued (to initialise storage).
    pub const EMPTY: RunLink = RunLink {
        next: NIL,
        prev: NIL,
        queued: 0,
    };
}

impl Default for RunLink {
    fn default() -> Self {
        RunLink::EMPTY
    }
}

fn list_of(c: DomainClass) -> usize {
    match c {
        DomainClass::Server => 0,
        DomainClass::Guest => 1,
    }
}

fn class_of(list: usize) -> DomainClass {
    if list == 0 {
        DomainClass::Server
    } else {
        DomainClass::Guest
    }
}

/// The run queue over caller-provided links (one per domain slot).
#[derive(Debug)]
pub struct RunQueue<'a> {
    links: &'a mut [RunLink],
    head: [u32; 2],
    tail: [u32; 2],
    len: usize,
}

impl<'a> RunQueue<'a> {
    /// An empty queue for domain slots `0..links.len()`.
    pub fn new(links: &'a mut [RunLink]) -> Self {
        links.fill(RunLink::EMPTY);
        RunQueue {
            links,
            head: [NIL; 2],
            tail: [NIL; 2],
            len: 0,
        }
    }

    /// Queued domains.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is runnable.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The class `idx` is queued in, if queued.
    pub fn queued_class(&self, idx: u32) -> Option<DomainClass> {
        match self.links.get(idx as usize)?.queued {
            0 => None,
            q => Some(class_of(usize::from(q - 1))),
        }
    }

    /// Appends `idx` to its class's tail. Returns false (and changes
    /// nothing) if it is already queued; `BadArgument` past the table.
    pub fn enqueue(&mut self, idx: u32, class: DomainClass) -> Result<bool, SysError> {
        let l = list_of(class);
        let tail = self.tail[l];
        let link = self
            .links
            .get_mut(idx as usize)
            .ok_or(SysError::BadArgument)?;
        if idx == NIL {
            return Err(SysError::BadArgument);
        }
        if link.queued != 0 {
            return Ok(false);
        }
        *link = RunLink {
            next: NIL,
            prev: tail,
            queued: if l == 0 { 1 } else { 2 },
        };
        match self.links.get_mut(tail as usize) {
            Some(t) => t.next = idx,
            None => self.head[l] = idx,
        }
        self.tail[l] = idx;
        self.len += 1;
        Ok(true)
    }

    /// Unlinks `idx` (it blocked, idled or died). Returns whether it was queued.
    pub fn remove(&mut self, idx: u32) -> bool {
        let Some(link) = self.links.get(idx as usize).copied() else {
            return false;
        };
        if link.queued == 0 {
            return false;
        }
        let l = usize::from(link.queued - 1);
        match self.links.get_mut(link.prev as usize) {
            Some(p) => p.next = link.next,
            None => self.head[l] = link.next,
        }
        match self.links.get_mut(link.next as usize) {
            Some(n) => n.prev = link.prev,
            None => self.tail[l] = link.prev,
        }
        if let Some(me) = self.links.get_mut(idx as usize) {
            *me = RunLink::EMPTY;
        }
        self.len -= 1;
        true
    }

    /// Takes the next domain to run: the first server, else the first guest.
    pub fn pop(&mut self) -> Option<(u32, DomainClass)> {
        let l = if self.head[0] != NIL { 0 } else { 1 };
        let idx = self.head[l];
        if idx == NIL {
            return None;
        }
        self.remove(idx);
        Some((idx, class_of(l)))
    }

    /// Whether a domain of `running`'s class should be preempted now,
    /// without waiting for its quantum: a guest yields to a waiting server.
    pub fn should_preempt(&self, running: DomainClass) -> bool {
        running == DomainClass::Guest && self.head[0] != NIL
    }
}

/// End of a quantum of `quantum` ticks starting at `now` (saturating).
pub fn quantum_end(now: u64, quantum: u64) -> u64 {
    now.saturating_add(quantum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn servers_first_then_fifo() {
        let mut links = [RunLink::EMPTY; 8];
        let mut q = RunQueue::new(&mut links);
        assert_eq!(q.enqueue(3, DomainClass::Guest), Ok(true));
        assert_eq!(q.enqueue(5, DomainClass::Guest), Ok(true));
        assert!(!q.should_preempt(DomainClass::Guest));
        assert_eq!(q.enqueue(1, DomainClass::Server), Ok(true));
        assert!(q.should_preempt(DomainClass::Guest));
        assert!(!q.should_preempt(DomainClass::Server));
        assert_eq!(q.enqueue(1, DomainClass::Guest), Ok(false));
        assert_eq!(q.enqueue(8, DomainClass::Guest), Err(SysError::BadArgument));
        assert_eq!(q.queued_class(1), Some(DomainClass::Server));
        assert_eq!(q.pop(), Some((1, DomainClass::Server)));
        assert_eq!(q.pop(), Some((3, DomainClass::Guest)));
        assert!(q.remove(5));
        assert!(!q.remove(5));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
        assert_eq!(quantum_end(u64::MAX - 1, 10), u64::MAX);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(u32, bool),
        Remove(u32),
        Pop,
    }

    proptest! {
        #[test]
        fn matches_a_two_deque_model(ops in proptest::collection::vec(prop_oneof![
            (0u32..10, any::<bool>()).prop_map(|(i, s)| Op::Enqueue(i, s)),
            (0u32..10).prop_map(Op::Remove),
            Just(Op::Pop),
        ], 0..200)) {
            let mut links = [RunLink::EMPTY; 8];
            let mut q = RunQueue::new(&mut links);
            let mut model: [VecDeque<u32>; 2] = [VecDeque::new(), VecDeque::new()];
            for op in ops {
                match op {
                    Op::Enqueue(i, server) => {
                        let class = if server { DomainClass::Server } else { DomainClass::Guest };
                        let queued = model.iter().any(|m| m.contains(&i));
                        let want = if i >= 8 { Err(SysError::BadArgument) } else { Ok(!queued) };
                        prop_assert_eq!(q.enqueue(i, class), want);
                        if want == Ok(true) {
                            model[list_of(class)].push_back(i);
                        }
                    }
                    Op::Remove(i) => {
                        let was = model.iter().any(|m| m.contains(&i));
                        prop_assert_eq!(q.remove(i), was);
                        for m in &mut model { m.retain(|x| *x != i); }
                    }
                    Op::Pop => {
                        let want = match model[0].pop_front() {
                            Some(i) => Some((i, DomainClass::Server)),
                            None => model[1].pop_front().map(|i| (i, DomainClass::Guest)),
                        };
                        prop_assert_eq!(q.pop(), want);
                    }
                }
                prop_assert_eq!(q.len(), model[0].len() + model[1].len());
                for i in 0..8 {
                    let c = if model[0].contains(&i) { Some(DomainClass::Server) } else if model[1].contains(&i) { Some(DomainClass::Guest) } else { None };
                    prop_assert_eq!(q.queued_class(i), c);
                }
            }
        }
    }
}
