//! Every policy against a model of the swapper and the hardware bits
//! (proptest), and each policy's known behaviour (unit tests).

use alloc::vec::Vec;
use proptest::prelude::*;
use serac_protocol::DomainId;
use std::collections::{BTreeMap, BTreeSet};

use super::*;

const DOMAINS: u32 = 4;
const VPNS: u64 = 12;

fn dom(i: u32) -> DomainId {
    DomainId::new(i + 1, 1)
}

fn pg(d: u32, vpn: u64) -> Page {
    Page::new(dom(d), vpn)
}

/// What the model knows of one resident page.
#[derive(Debug, Default, Clone, Copy)]
struct Truth {
    /// Holds data the disk does not.
    dirty: bool,
    /// Accessed / stored since the last harvest (the x86 A and D bits).
    hw_ref: bool,
    hw_dirty: bool,
    /// A write-back is in flight: the page is write-protected until the
    /// first store faults.
    writing: bool,
    protected: bool,
    /// Stored to since the write-back's snapshot.
    dirty_since_snapshot: bool,
}

#[derive(Debug, Clone)]
enum Ev {
    Access { d: u32, vpn: u64, write: bool },
    Harvest,
    Tick(u64),
    Pressure(usize),
    Complete(usize),
    SwapOut(u32),
    Forget(u32),
    Idle,
}

fn event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        8 => (0..DOMAINS, 0..VPNS, any::<bool>()).prop_map(|(d, vpn, write)| Ev::Access { d, vpn, write }),
        2 => Just(Ev::Harvest),
        2 => (0u64..8).prop_map(Ev::Tick),
        2 => (1usize..4).prop_map(Ev::Pressure),
        2 => (0usize..8).prop_map(Ev::Complete),
        1 => (0..DOMAINS).prop_map(Ev::SwapOut),
        1 => (0..DOMAINS).prop_map(Ev::Forget),
        1 => Just(Ev::Idle),
    ]
}

/// The swapper as the contract describes it, with the truth beside it.
struct Model<P> {
    p: P,
    frames: usize,
    idle_after: u64,
    now: u64,
    pages: BTreeMap<Page, Truth>,
    in_flight: Vec<Page>,
    last_active: BTreeMap<DomainId, u64>,
    writes: u64,
}

impl<P: Replacement> Model<P> {
    fn new(p: P, frames: usize, idle_after: u64) -> Model<P> {
        Model {
            p,
            frames,
            idle_after,
            now: 0,
            pages: BTreeMap::new(),
            in_flight: Vec::new(),
            last_active: BTreeMap::new(),
            writes: 0,
        }
    }

    fn harvest(&mut self) {
        for (&page, t) in self.pages.iter_mut() {
            if t.hw_ref || t.hw_dirty {
                self.p.harvest(
                    page,
                    Bits {
                        referenced: t.hw_ref,
                        dirty: t.hw_dirty,
                    },
                );
                if t.hw_ref {
                    self.last_active.insert(page.domain, self.now);
                }
                t.hw_ref = false;
                t.hw_dirty = false;
            }
        }
    }

    /// Carries out the victims, checking each against the truth.
    fn apply(&mut self, out: &Victims, only: Option<DomainId>) -> Result<(), TestCaseError> {
        for v in out.as_slice() {
            if let Some(d) = only {
                prop_assert_eq!(v.page.domain, d);
            }
            let t = self.pages.get_mut(&v.page);
            prop_assert!(t.is_some(), "victim {:?} is not resident", v);
            let t = t.unwrap();
            prop_assert!(!t.writing, "victim {:?} is already being written", v);
            match v.action {
                Action::Free => {
                    prop_assert!(!t.dirty, "dirty page dropped without a write: {:?}", v);
                    self.pages.remove(&v.page);
                    prop_assert!(!self.p.is_resident(v.page));
                }
                Action::WriteBack => {
                    prop_assert!(t.dirty, "clean page written back: {:?}", v);
                    t.writing = true;
                    t.protected = true;
                    t.dirty_since_snapshot = false;
                    self.in_flight.push(v.page);
                    prop_assert!(self.p.is_resident(v.page));
                }
            }
        }
        Ok(())
    }

    fn complete(&mut self, k: usize) {
        if self.in_flight.is_empty() {
            return;
        }
        let page = self.in_flight.remove(k % self.in_flight.len());
        if let Some(t) = self.pages.get_mut(&page) {
            t.writing = false;
            t.protected = false;
            t.dirty = t.dirty_since_snapshot;
            self.writes += 1;
        }
        self.p.written(page);
    }

    fn evict(&mut self, need: usize) -> Result<usize, TestCaseError> {
        self.harvest();
        let mut out = Victims::with_capacity(8).unwrap();
        self.p.evict(need, &mut out);
        let evictable = self.pages.values().any(|t| !t.writing);
        if evictable {
            prop_assert!(!out.is_empty(), "no victim though a page is evictable");
        }
        self.apply(&out, None)?;
        Ok(out.freed())
    }

    fn access(&mut self, page: Page, write: bool) -> Result<(), TestCaseError> {
        if let Some(t) = self.pages.get_mut(&page) {
            if write && t.writing {
                t.dirty_since_snapshot = true;
                t.dirty = true;
                if t.protected {
                    // The store faults; the swapper lets it write again.
                    t.protected = false;
                    self.p.fault(page, true).unwrap();
                    self.last_active.insert(page.domain, self.now);
                    return Ok(());
                }
            }
            t.hw_ref = true;
            if write {
                t.hw_dirty = true;
                t.dirty = true;
            }
            return Ok(());
        }
        if self.frames == 0 {
            prop_assert_eq!(self.p.fault(page, write), Err(ReplaceError::Full));
            return Ok(());
        }
        // Make room the way the swapper will: evict, and when only writes
        // are left, wait for them.
        for _ in 0..4 {
            if self.pages.len() < self.frames {
                break;
            }
            if self.evict(1)? == 0 {
                while !self.in_flight.is_empty() {
                    self.complete(0);
                }
            }
        }
        prop_assert!(self.pages.len() < self.frames, "no frame after evicting");
        prop_assert_eq!(self.p.fault(page, write), Ok(()));
        self.last_active.insert(page.domain, self.now);
        self.pages.insert(
            page,
            Truth {
                dirty: write,
                hw_ref: true,
                hw_dirty: write,
                ..Truth::default()
            },
        );
        Ok(())
    }

    fn step(&mut self, ev: &Ev) -> Result<(), TestCaseError> {
        match *ev {
            Ev::Access { d, vpn, write } => self.access(pg(d, vpn), write)?,
            Ev::Harvest => self.harvest(),
            Ev::Tick(dt) => {
                self.now += dt;
                self.p.tick(self.now);
            }
            Ev::Pressure(n) => {
                self.evict(n)?;
            }
            Ev::Complete(k) => self.complete(k),
            Ev::SwapOut(d) => {
                self.harvest();
                let mut out = Victims::with_capacity(64).unwrap();
                self.p.swap_out(dom(d), &mut out);
                self.apply(&out, Some(dom(d)))?;
                let left = self
                    .pages
                    .iter()
                    .filter(|(p, t)| p.domain == dom(d) && !t.writing);
                prop_assert_eq!(left.count(), 0, "swap-out left pages behind");
            }
            Ev::Forget(d) => {
                let n = self.pages.keys().filter(|p| p.domain == dom(d)).count();
                prop_assert_eq!(self.p.forget(dom(d)), n);
                self.pages.retain(|p, _| p.domain != dom(d));
                self.in_flight.retain(|p| p.domain != dom(d));
            }
            Ev::Idle => {
                let mut out = Vec::with_capacity(DOMAINS as usize);
                let n = self.p.idle_domains(&mut out);
                let want: BTreeSet<DomainId> = if self.idle_after == 0 {
                    BTreeSet::new()
                } else {
                    self.pages
                        .keys()
                        .map(|p| p.domain)
                        .filter(|d| self.now - self.last_active[d] >= self.idle_after)
                        .collect()
                };
                prop_assert_eq!(n, want.len());
                prop_assert_eq!(out.into_iter().collect::<BTreeSet<_>>(), want);
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        prop_assert!(self.p.resident() <= self.frames);
        prop_assert_eq!(self.p.resident(), self.pages.len());
        for d in 0..DOMAINS {
            for vpn in 0..VPNS {
                let page = pg(d, vpn);
                let t = self.pages.get(&page);
                prop_assert_eq!(self.p.is_resident(page), t.is_some(), "{:?}", page);
                if let Some(t) = t {
                    if t.dirty && !t.hw_dirty {
                        prop_assert!(self.p.is_dirty(page), "{:?}: the policy lost a store", page);
                    }
                }
            }
        }
        Ok(())
    }
}

fn run<P: Replacement>(
    p: P,
    frames: usize,
    idle_after: u64,
    evs: &[Ev],
) -> Result<(), TestCaseError> {
    let mut m = Model::new(p, frames, idle_after);
    for ev in evs {
        m.step(ev)?;
    }
    Ok(())
}

fn cfg(frames: usize, idle_after: u64) -> Config {
    Config { frames, idle_after }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn wsclock_keeps_the_contract(frames in 0usize..10, idle in 0u64..20, tau in 0u64..20,
                                  evs in proptest::collection::vec(event(), 0..300)) {
        run(WsClock::new(cfg(frames, idle), tau).unwrap(), frames, idle, &evs)?;
    }

    #[test]
    fn twoq_keeps_the_contract(frames in 0usize..10, idle in 0u64..20, kin in 0usize..6, kout in 0usize..12,
                               evs in proptest::collection::vec(event(), 0..300)) {
        run(TwoQ::with_sizes(cfg(frames, idle), kin, kout).unwrap(), frames, idle, &evs)?;
    }

    #[test]
    fn fifo_keeps_the_contract(frames in 0usize..10, idle in 0u64..20,
                               evs in proptest::collection::vec(event(), 0..300)) {
        run(Fifo::new(cfg(frames, idle)).unwrap(), frames, idle, &evs)?;
    }

    /// Calls in any order, outside the contract too (writes reported for
    /// pages never written, evictions into no room): nothing panics, the
    /// budget holds and freed pages are gone.
    #[test]
    fn no_panic_on_any_calls(frames in 0usize..6, room in 0usize..4,
                             calls in proptest::collection::vec((0u8..9, 0u32..3, 0u64..8, any::<bool>(), 0usize..5), 0..200)) {
        let mut ps: Vec<alloc::boxed::Box<dyn Replacement>> = alloc::vec![
            alloc::boxed::Box::new(WsClock::new(cfg(frames, 3), 2).unwrap()),
            alloc::boxed::Box::new(TwoQ::new(cfg(frames, 3)).unwrap()),
            alloc::boxed::Box::new(Fifo::new(cfg(frames, 3)).unwrap()),
        ];
        for p in &mut ps {
            for &(op, d, vpn, b, n) in &calls {
                let page = pg(d, vpn);
                let mut out = Victims::with_capacity(room).unwrap();
                match op {
                    0 | 1 => { let _ = p.fault(page, b); }
                    2 => p.harvest(page, Bits { referenced: b, dirty: !b }),
                    3 => p.written(page),
                    4 => p.tick(vpn * 3),
                    5 => p.evict(n, &mut out),
                    6 => p.swap_out(dom(d), &mut out),
                    7 => { p.forget(dom(d)); }
                    _ => { let mut v = Vec::with_capacity(n); p.idle_domains(&mut v); prop_assert!(v.len() <= n); }
                }
                prop_assert!(out.len() <= room);
                for v in out.as_slice() {
                    prop_assert_eq!(p.is_resident(v.page), v.action == Action::WriteBack);
                }
                prop_assert!(p.resident() <= frames);
            }
        }
    }
}

/// The swapper's loop for the unit tests: fault `page`, evicting first
/// when full (writing back synchronously). Returns the pages freed.
fn fault_in(p: &mut dyn Replacement, page: Page, write: bool) -> Vec<Page> {
    let mut freed = Vec::new();
    while p.resident() >= p.capacity() {
        let mut out = Victims::with_capacity(4).unwrap();
        p.evict(1, &mut out);
        assert!(!out.is_empty());
        for v in out.as_slice() {
            match v.action {
                Action::Free => freed.push(v.page),
                Action::WriteBack => p.written(v.page),
            }
        }
    }
    p.fault(page, write).unwrap();
    freed
}

fn evict_one(p: &mut dyn Replacement) -> Vec<Victim> {
    let mut out = Victims::with_capacity(4).unwrap();
    p.evict(1, &mut out);
    out.as_slice().to_vec()
}

fn free(page: Page) -> Victim {
    Victim {
        page,
        action: Action::Free,
    }
}

fn write_back(page: Page) -> Victim {
    Victim {
        page,
        action: Action::WriteBack,
    }
}

const REF: Bits = Bits {
    referenced: true,
    dirty: false,
};

#[test]
fn wsclock_keeps_a_page_referenced_within_tau() {
    let (a, b, c) = (pg(0, 1), pg(0, 2), pg(0, 3));
    let mut w = WsClock::new(cfg(2, 0), 10).unwrap();
    w.fault(a, false).unwrap();
    w.fault(b, false).unwrap();
    w.tick(20);
    w.harvest(a, REF);
    // The hand meets a first: referenced, so it stays (and is young now);
    // b was last used 20 ago, more than tau.
    assert_eq!(evict_one(&mut w), [free(b)]);
    w.tick(25);
    w.fault(c, false).unwrap();
    // Both are within tau now: the working sets exceed memory, and the
    // least recently used page (a, used at 20) goes.
    assert_eq!(evict_one(&mut w), [free(a)]);
    assert!(w.is_resident(c));
}

#[test]
fn wsclock_writes_back_an_old_dirty_page_before_freeing_it() {
    let a = pg(0, 1);
    let mut w = WsClock::new(cfg(1, 0), 0).unwrap();
    w.fault(a, true).unwrap();
    w.tick(5);
    assert_eq!(evict_one(&mut w), [write_back(a)]);
    assert!(w.is_resident(a));
    // In flight: never named again until written.
    assert_eq!(evict_one(&mut w), []);
    // A store during the write faults (the page was write-protected).
    w.fault(a, true).unwrap();
    w.written(a);
    assert!(w.is_dirty(a));
    w.tick(10);
    assert_eq!(evict_one(&mut w), [write_back(a)]);
    w.written(a);
    assert!(!w.is_dirty(a));
    assert_eq!(evict_one(&mut w), [free(a)]);
    assert_eq!(w.resident(), 0);
}

#[test]
fn idle_domains_are_those_quiet_for_the_idle_period() {
    let mut w = WsClock::new(cfg(4, 10), 5).unwrap();
    w.fault(pg(0, 1), false).unwrap();
    w.tick(8);
    w.fault(pg(1, 1), false).unwrap();
    w.tick(12);
    let mut out = Vec::with_capacity(4);
    assert_eq!(w.idle_domains(&mut out), 1);
    assert_eq!(out, [dom(0)]);
    w.harvest(pg(0, 1), REF);
    out.clear();
    assert_eq!(w.idle_domains(&mut out), 0);
    w.tick(30);
    assert_eq!(w.idle_domains(&mut out), 2);
    // Swapped out whole, a domain is no longer idle: it is not resident.
    let mut v = Victims::with_capacity(8).unwrap();
    w.swap_out(dom(0), &mut v);
    assert_eq!(v.as_slice(), [free(pg(0, 1))]);
    out.clear();
    assert_eq!(w.idle_domains(&mut out), 1);
    assert_eq!(out, [dom(1)]);
}

/// More idle domains than asked for: the longest idle come first, in
/// order, whatever their place in the table.
#[test]
fn idle_domains_come_longest_idle_first() {
    let mut w = WsClock::new(cfg(64, 10), 5).unwrap();
    // Domains 7, 6, ..., 0 first active at times 1, 2, ..., 8: the table
    // holds them in that order, domain 7 (the oldest) first.
    for (t, i) in (0..8u32).rev().enumerate() {
        w.tick(t as u64 + 1);
        w.fault(pg(i, 1), false).unwrap();
    }
    // Then the table order is turned around: 7 active last.
    w.tick(20);
    w.fault(pg(7, 1), false).unwrap();
    w.tick(100);
    let mut out = Vec::with_capacity(3);
    assert_eq!(w.idle_domains(&mut out), 8);
    assert_eq!(out, [dom(6), dom(5), dom(4)]);
    let mut all = Vec::with_capacity(16);
    assert_eq!(w.idle_domains(&mut all), 8);
    let want: Vec<_> = (0..7).rev().chain([7]).map(dom).collect();
    assert_eq!(all, want);
}

/// A hot set of 4 pages made hot (faulted, freed, faulted again), then a
/// scan of 100 pages used once, with no reference to the hot set meanwhile.
fn hot_then_scan(p: &mut dyn Replacement) -> usize {
    let hot: Vec<Page> = (0..4).map(|v| pg(0, v)).collect();
    for &h in &hot {
        fault_in(p, h, false);
    }
    // Pushed out by 8 other pages, then back.
    for v in 100..108 {
        fault_in(p, pg(1, v), false);
    }
    for &h in &hot {
        fault_in(p, h, false);
    }
    for v in 0..100 {
        fault_in(p, pg(2, v), false);
    }
    hot.iter().filter(|&&h| p.is_resident(h)).count()
}

#[test]
fn twoq_resists_a_scan_and_fifo_does_not() {
    let mut q = TwoQ::with_sizes(cfg(8, 0), 2, 8).unwrap();
    assert_eq!(hot_then_scan(&mut q), 4);
    assert!((0..4).all(|v| q.is_hot(pg(0, v))));
    let mut f = Fifo::new(cfg(8, 0)).unwrap();
    assert_eq!(hot_then_scan(&mut f), 0);
}

#[test]
fn twoq_does_not_promote_on_correlated_references() {
    let a = pg(0, 1);
    let mut q = TwoQ::with_sizes(cfg(2, 0), 1, 4).unwrap();
    fault_in(&mut q, a, false);
    for _ in 0..5 {
        q.harvest(a, REF);
    }
    assert!(!q.is_hot(a));
    fault_in(&mut q, pg(0, 2), false);
    // A1in holds 2 > kin = 1: a, its oldest, goes, though referenced.
    assert_eq!(fault_in(&mut q, pg(0, 3), false), [a]);
    // Its ghost makes the next fault on it hot.
    fault_in(&mut q, a, false);
    assert!(q.is_hot(a));
}

#[test]
fn twoq_gives_the_hot_queue_a_second_chance() {
    // kin = 0: every eviction comes from A1in while it has pages, so make
    // two hot pages first, then evict with A1in empty.
    let (a, b) = (pg(0, 1), pg(0, 2));
    let mut q = TwoQ::with_sizes(cfg(2, 0), 0, 4).unwrap();
    for &p in &[a, b] {
        fault_in(&mut q, p, false);
    }
    fault_in(&mut q, pg(0, 3), false); // frees a (ghost)
    fault_in(&mut q, pg(0, 4), false); // frees b (ghost)
    fault_in(&mut q, a, false); // frees 3; a is hot
    fault_in(&mut q, b, false); // frees 4; b is hot
    assert!(q.is_hot(a) && q.is_hot(b));
    q.harvest(a, REF);
    // The clock passes a (referenced) and takes b.
    assert_eq!(evict_one(&mut q), [free(b)]);
}

#[test]
fn fifo_shows_beladys_anomaly() {
    // The textbook string: FIFO faults 9 times with 3 frames, 10 with 4.
    let refs = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5];
    let faults = |frames| {
        let mut f = Fifo::new(cfg(frames, 0)).unwrap();
        refs.iter()
            .filter(|&&v| {
                let miss = !f.is_resident(pg(0, v));
                if miss {
                    fault_in(&mut f, pg(0, v), false);
                }
                miss
            })
            .count()
    };
    assert_eq!(faults(3), 9);
    assert_eq!(faults(4), 10);
}

#[test]
fn metadata_is_bounded_per_frame() {
    let n = 4096;
    let w = WsClock::new(cfg(n, 0), 1).unwrap();
    let q = TwoQ::new(cfg(n, 0)).unwrap();
    // Slot, free-list entry, two buckets, and the same for a domain record.
    assert!(w.metadata_bytes() <= n * 96, "{}", w.metadata_bytes());
    assert!(q.metadata_bytes() <= n * 128, "{}", q.metadata_bytes());
    assert!(w.metadata_bytes() >= n * 32);
}
