//! The pager's state machine: one message in, one reply out.
//!
//! The swapper's loop receives a message, hands it to [`Pager::handle`] with
//! an [`Mmu`] (its `map`/`unmap` wrappers) and sends back the [`Response`].
//! Host tests drive the same code with a fake `Mmu`.
//!
//! A fault (label `LABEL_FAULT`, which only the kernel can send) is answered
//! with `FAULT_RESUME` after a zeroed frame is bound at the faulting page
//! through the fault's reply handle, or `FAULT_KILL`. Undecodable faults are
//! killed, never trusted. Requests (label `LABEL_PAGER`) are answered with a
//! `pager::Reply`. `Grant`, `Region` and `Revoke` change what the pager
//! serves, so only the first domain that sends one of them (the supervisor,
//! which alone holds an endpoint to the pager) may send them again; the
//! sender is told apart by the badge the kernel writes.

use serac_protocol::client::{ServiceError, LABEL_PAGER};
use serac_protocol::codec::{decode, encode};
use serac_protocol::header::LABEL_FAULT;
use serac_protocol::layout::PAGE_SIZE;
use serac_protocol::pager::{
    Access, DomainMem, Fault, PagerStats, Reply, FAULT_KILL, FAULT_KILL_LOST, FAULT_RESUME,
};
use serac_protocol::syscall::{FrameRecord, STATUS_BOUND};
use serac_protocol::{DomainId, Handle, SysError};

pub use crate::policy::KillReason;
use crate::policy::Policy;
use crate::pool::{FramePool, GrantError};
use crate::regions::{RegionError, Regions};
use crate::replace::{Page, Replacement, WsClock};
use crate::swap::{self, Block, FaultPlan, Lost, NoDisk, Swap, SwapDisk};
use crate::wire::Request;

/// Frames tried for one fault before giving up (each refused one is lost).
const MAX_TRIES: usize = 8;

/// The page-table work the pager needs from the kernel.
pub trait Mmu {
    /// Fills `frame` (owned by the pager, unbound) with zeros.
    fn zero(&mut self, frame: u64) -> Result<(), SysError>;
    /// Binds `frame` read-write at `page` in the domain whose pending fault
    /// `reply` answers.
    fn bind(&mut self, reply: Handle, page: u64, frame: u64) -> Result<(), SysError>;
    /// Fills `frame` (owned, unbound) with `data`.
    fn write_frame(&mut self, _frame: u64, _data: &Block) -> Result<(), SysError> {
        Err(SysError::BadSyscall)
    }
    /// Copies `frame` (owned, bound or not) into `out`; returns its use
    /// bits (`USED_*`) and takes them (`CopyFrame`).
    fn copy_frame(&mut self, _frame: u64, _out: &mut Block) -> Result<u8, SysError> {
        Err(SysError::BadSyscall)
    }
    /// `Frames`: one answer per frame in `out` (as long as `frames`, at
    /// most `FRAMES_MAX`), with `flags` (`FRAMES_*`).
    fn frames(
        &mut self,
        _frames: &[u64],
        _flags: u64,
        _out: &mut [FrameRecord],
    ) -> Result<(), SysError> {
        Err(SysError::BadSyscall)
    }
    /// `Shrink`: the waiting `domain` gives back its tables.
    fn shrink(&mut self, _domain: DomainId) -> Result<(), SysError> {
        Err(SysError::BadSyscall)
    }
}

/// One received message.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// Header label.
    pub label: u32,
    /// Header badge (kernel-written: who sent it).
    pub badge: u64,
    /// The reply handle `reply_recv` returned (`NONE` for a `send`).
    pub reply: Handle,
    /// The payload.
    pub payload: &'a [u8],
}

/// The answer: send `label` with the first `len` bytes of the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Reply label.
    pub label: u32,
    /// Payload bytes.
    pub len: usize,
}

/// Something worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Frames were granted; `first_grant` is true the first time.
    Granted {
        /// Frames in the grant.
        count: u64,
        /// Of those, how many the pool took (the rest exceed its capacity
        /// and stay unused).
        taken: u64,
        /// Frames in the pool now.
        total: usize,
        /// Whether this was the first grant.
        first_grant: bool,
        /// Of those, how many the kernel says are still bound (resident
        /// pages of an earlier incarnation of this pager).
        adopted: usize,
    },
    /// A grant was refused.
    GrantRefused(GrantError),
    /// A region was refused.
    RegionRefused(RegionError),
    /// A fault was served.
    Served {
        /// Faults served so far, this one included.
        nth: u64,
        /// The domain.
        domain: DomainId,
        /// The faulting address.
        vaddr: u64,
        /// The frame bound.
        frame: u64,
    },
    /// A fault was answered with `FAULT_KILL`.
    Killed {
        /// The domain (`NONE` if the message did not decode).
        domain: DomainId,
        /// The faulting address.
        vaddr: u64,
        /// Why.
        reason: KillReason,
    },
    /// A fault outside the known regions was resumed unserved during the
    /// region grace period (see [`Pager::set_region_grace`]).
    Retried {
        /// The domain.
        domain: DomainId,
        /// The faulting address.
        vaddr: u64,
    },
    /// A domain's frames went back to the pool.
    Revoked {
        /// The domain.
        domain: DomainId,
        /// Frames freed.
        frames: usize,
    },
    /// A request came from someone other than the controller.
    NotPermitted {
        /// The sender's badge.
        badge: u64,
    },
    /// A message that was not understood.
    BadRequest {
        /// Its label.
        label: u32,
    },
}

/// [`Pager::set_swap`] after the first grant or a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFirst;

/// The pager: pool, regions, policy, the swap engine and counters.
#[derive(Debug)]
pub struct Pager<P, R = WsClock> {
    /// The choices.
    pub policy: P,
    /// The frames.
    pub pool: FramePool,
    /// Where each domain may be zero-filled.
    pub regions: Regions,
    swap: Option<Swap<R>>,
    controller: Option<u64>,
    faults: u64,
    served: u64,
    killed: u64,
    now: u64,
    grace_until: u64,
    early_room: u64,
}

impl<P: Policy> Pager<P> {
    /// A zero-fill pager with no frames yet.
    pub const fn new(policy: P) -> Pager<P> {
        Pager {
            policy,
            pool: FramePool::new(),
            regions: Regions::new(),
            swap: None,
            controller: None,
            faults: 0,
            served: 0,
            killed: 0,
            now: 0,
            grace_until: 0,
            early_room: 0,
        }
    }
}

impl<P: Policy, R: Replacement> Pager<P, R> {
    /// A pager that swaps through `swap` (its disk is passed to
    /// [`Pager::handle_with`]).
    pub fn with_swap(policy: P, swap: Swap<R>) -> Pager<P, R> {
        Pager {
            policy,
            pool: FramePool::with_capacity(swap.sizing().pool),
            regions: Regions::new(),
            swap: Some(swap),
            controller: None,
            faults: 0,
            served: 0,
            killed: 0,
            now: 0,
            grace_until: 0,
            early_room: 0,
        }
    }

    /// Installs the swap engine a pager built at its first grant (sized
    /// from it), keeping the regions already announced; the pool takes
    /// the engine's capacity. Refused (the engine dropped) once the
    /// pool holds frames or an engine is in place.
    pub fn set_swap(&mut self, swap: Swap<R>) -> Result<(), NotFirst> {
        if self.swap.is_some() || self.pool.total() > 0 {
            return Err(NotFirst);
        }
        self.pool = FramePool::with_capacity(swap.sizing().pool);
        // Best effort: a table not reserved still grows as regions come,
        // and a refusal is reported to the supervisor.
        let _ = self.regions.reserve(swap.sizing().regions);
        self.swap = Some(swap);
        Ok(())
    }

    /// Regions the table holds without growing.
    pub fn region_capacity(&self) -> usize {
        self.regions.capacity()
    }

    /// The room `stats` reports until the first grant (0: the pool's):
    /// a pager that sizes its tables from that grant can take more than
    /// its pool holds now.
    pub fn set_early_room(&mut self, frames: u64) {
        self.early_room = frames;
    }

    /// `Some((first, count))` when `msg` is the controller's first `Grant`
    /// (nothing granted yet, no engine): the moment to size the tables
    /// from it before [`Pager::handle_with`] sees the rest of the run.
    /// Makes the sender the controller, as handling it would.
    pub fn first_grant(&mut self, msg: &Incoming<'_>) -> Option<(u64, u64)> {
        if msg.label != LABEL_PAGER || self.swap.is_some() || self.pool.total() > 0 {
            return None;
        }
        match decode::<Request>(msg.payload) {
            Ok(Request::Grant { first, count }) if self.controller_ok(msg.badge) => {
                Some((first, count))
            }
            _ => None,
        }
    }

    /// Until the clock reaches `until` (the unit of [`Pager::tick`]), a
    /// fault outside the regions the pager knows is resumed unserved, to
    /// come back, instead of killed: a restarted pager is told its
    /// clients' regions again while they run.
    pub fn set_region_grace(&mut self, until: u64) {
        self.grace_until = until;
    }

    /// The swap engine, if this pager swaps.
    pub fn swap(&self) -> Option<&Swap<R>> {
        self.swap.as_ref()
    }

    /// The clock moved: idle domains may be swapped out whole.
    pub fn tick(&mut self, now: u64, mmu: &mut impl Mmu, disk: &mut impl SwapDisk) {
        self.now = self.now.max(now);
        if let Some(sw) = self.swap.as_mut() {
            sw.tick(now, mmu, disk, &mut self.pool);
        }
    }

    /// Faults received.
    pub fn faults(&self) -> u64 {
        self.faults
    }
    /// Faults served with a frame.
    pub fn served(&self) -> u64 {
        self.served
    }
    /// Faults answered with `FAULT_KILL`.
    pub fn killed(&self) -> u64 {
        self.killed
    }

    /// The counters as the protocol reports them.
    pub fn stats(&self) -> PagerStats {
        let c = self.swap.as_ref().map(Swap::counters).unwrap_or_default();
        PagerStats {
            resident: u32::try_from(self.pool.bound_count()).unwrap_or(u32::MAX),
            swapped: c.swapped,
            faults: self.faults,
            page_ins: c.page_ins,
            page_outs: c.page_outs,
            io_errors: c.io_errors,
            room: if self.early_room > 0 && self.swap.is_none() && self.pool.total() == 0 {
                self.early_room
            } else {
                self.pool.capacity().saturating_sub(self.pool.total()) as u64
            },
            free: self.pool.free_count() as u64,
        }
    }

    /// Handles one message without a swap area (see [`Pager::handle_with`]).
    pub fn handle(
        &mut self,
        msg: &Incoming<'_>,
        mmu: &mut impl Mmu,
        out: &mut [u8],
    ) -> (Response, Option<Event>) {
        self.handle_with(msg, mmu, &mut NoDisk, out)
    }

    /// Handles one message; the reply payload is written to `out` (which
    /// should hold `Reply::POSTCARD_MAX_SIZE` bytes).
    pub fn handle_with(
        &mut self,
        msg: &Incoming<'_>,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
        out: &mut [u8],
    ) -> (Response, Option<Event>) {
        match msg.label {
            LABEL_FAULT => {
                let (label, ev) = self.fault(msg, mmu, disk);
                (Response { label, len: 0 }, Some(ev))
            }
            LABEL_PAGER => {
                let (reply, ev) = self.request(msg, mmu, disk);
                let len = encode(&reply, out).map(<[u8]>::len).unwrap_or(0);
                (
                    Response {
                        label: LABEL_PAGER,
                        len,
                    },
                    ev,
                )
            }
            _ => {
                let reply = Reply::Err(ServiceError::BadRequest);
                let len = encode(&reply, out).map(<[u8]>::len).unwrap_or(0);
                (
                    Response {
                        label: LABEL_PAGER,
                        len,
                    },
                    Some(Event::BadRequest { label: msg.label }),
                )
            }
        }
    }

    fn kill(&mut self, domain: DomainId, vaddr: u64, reason: KillReason) -> (u32, Event) {
        self.killed += 1;
        (
            if matches!(reason, KillReason::Lost(_)) {
                FAULT_KILL_LOST
            } else {
                FAULT_KILL
            },
            Event::Killed {
                domain,
                vaddr,
                reason,
            },
        )
    }

    fn resume(&mut self, domain: DomainId, vaddr: u64, frame: u64) -> (u32, Event) {
        self.served += 1;
        (
            FAULT_RESUME,
            Event::Served {
                nth: self.served,
                domain,
                vaddr,
                frame,
            },
        )
    }

    fn fault(
        &mut self,
        msg: &Incoming<'_>,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
    ) -> (u32, Event) {
        self.faults += 1;
        let Ok(f) = decode::<Fault>(msg.payload) else {
            return self.kill(DomainId::NONE, 0, KillReason::BadMessage);
        };
        if let Err(why) = self.policy.admit(&f, &self.regions) {
            if why == KillReason::OutsideRegions && self.now < self.grace_until {
                return (
                    FAULT_RESUME,
                    Event::Retried {
                        domain: f.domain,
                        vaddr: f.vaddr,
                    },
                );
            }
            return self.kill(f.domain, f.vaddr, why);
        }
        let page = f.vaddr & !(PAGE_SIZE - 1);
        let vpn = page / PAGE_SIZE;
        let write = f.access == Access::Write;
        if let Some(sw) = self.swap.as_mut() {
            let (policy, domain) = (&mut self.policy, f.domain);
            let mut take = |pool: &mut FramePool| policy.pick_frame(pool, domain, vpn).ok();
            let plan = sw.fault(
                mmu,
                disk,
                &mut self.pool,
                msg.reply,
                Page::new(domain, vpn),
                write,
                &mut take,
            );
            match plan {
                FaultPlan::Bound { frame } => return self.resume(f.domain, f.vaddr, frame),
                FaultPlan::Lost(Lost::NoFrame) => {
                    return self.kill(f.domain, f.vaddr, KillReason::OutOfFrames)
                }
                FaultPlan::Lost(l) => return self.kill(f.domain, f.vaddr, KillReason::Lost(l)),
                FaultPlan::ZeroFill => sw.make_room(mmu, disk, &mut self.pool, f.domain),
            }
        }
        let mut reclaimed = false;
        for _ in 0..MAX_TRIES {
            let frame = match self.policy.pick_frame(&mut self.pool, f.domain, vpn) {
                Ok(fr) => fr,
                Err(KillReason::OutOfFrames) if !reclaimed && self.swap.is_some() => {
                    // Under pressure: page out, then try again once.
                    reclaimed = true;
                    if let Some(sw) = self.swap.as_mut() {
                        let need = swap::low_watermark(&self.pool);
                        sw.reclaim(mmu, disk, &mut self.pool, need);
                    }
                    continue;
                }
                Err(why) => return self.kill(f.domain, f.vaddr, why),
            };
            match mmu.zero(frame) {
                Ok(()) => {}
                // A grant that lied, or a frame still bound elsewhere:
                // never use it again, try another.
                Err(SysError::FrameNotOwned | SysError::FrameInUse) => {
                    self.pool.lose(frame);
                    continue;
                }
                Err(e) => {
                    self.pool.put_back(frame);
                    return self.kill(f.domain, f.vaddr, KillReason::MapFailed(e));
                }
            }
            return match mmu.bind(msg.reply, page, frame) {
                Ok(()) => {
                    self.pool.bind(frame, f.domain);
                    self.policy.on_bound(f.domain, vpn, frame);
                    if let Some(sw) = self.swap.as_mut() {
                        sw.zero_filled(Page::new(f.domain, vpn), frame, write);
                    }
                    self.resume(f.domain, f.vaddr, frame)
                }
                Err(SysError::AlreadyMapped) => {
                    self.pool.put_back(frame);
                    self.kill(f.domain, f.vaddr, KillReason::AccessViolation)
                }
                Err(e) => {
                    self.pool.put_back(frame);
                    self.kill(f.domain, f.vaddr, KillReason::MapFailed(e))
                }
            };
        }
        self.kill(f.domain, f.vaddr, KillReason::OutOfFrames)
    }

    /// Whether `badge` may change what the pager serves (the first sender
    /// of such a request becomes the only one who may).
    fn controller_ok(&mut self, badge: u64) -> bool {
        *self.controller.get_or_insert(badge) == badge
    }

    /// Frames just granted that the kernel says are bound: a restarted
    /// pager's resident pages, which stay where they are.
    fn adopt(&mut self, mmu: &mut impl Mmu, first: u64, count: u64) -> usize {
        let (pool, sw) = (&mut self.pool, &mut self.swap);
        let mut n = 0;
        swap::query(mmu, first, count, |recs| {
            let mut pairs = [(0u64, DomainId::NONE); serac_protocol::syscall::FRAMES_MAX];
            let mut k = 0;
            for r in recs {
                if r.error().is_some() || !r.has(STATUS_BOUND) {
                    continue;
                }
                let d = DomainId::from_raw(r.domain);
                if let Some(p) = pairs.get_mut(k) {
                    *p = (r.frame, d);
                    k += 1;
                }
                if let Some(sw) = sw.as_mut() {
                    sw.adopt(r.frame, d, r.vaddr);
                }
            }
            n += pool.adopt(pairs.get(..k).unwrap_or(&[]));
        });
        n
    }

    fn request(
        &mut self,
        msg: &Incoming<'_>,
        mmu: &mut impl Mmu,
        disk: &mut impl SwapDisk,
    ) -> (Reply, Option<Event>) {
        let Ok(req) = decode::<Request>(msg.payload) else {
            return (
                Reply::Err(ServiceError::BadRequest),
                Some(Event::BadRequest { label: msg.label }),
            );
        };
        let privileged = matches!(
            req,
            Request::Grant { .. }
                | Request::Region { .. }
                | Request::Revoke { .. }
                | Request::SwapOut { .. }
                | Request::SwapIdle { .. }
        );
        if privileged && !self.controller_ok(msg.badge) {
            return (
                Reply::Err(ServiceError::NotPermitted),
                Some(Event::NotPermitted { badge: msg.badge }),
            );
        }
        match req {
            Request::Stats => (Reply::Stats(self.stats()), None),
            Request::DomainMem { domain } => {
                let m = self.swap.as_ref().map(|s| s.domain_mem(domain));
                // The pool counts every bound frame, tracked or not.
                let m = swap::DomMem {
                    resident: u32::try_from(self.pool.bound_to(domain)).unwrap_or(u32::MAX),
                    ..m.unwrap_or_default()
                };
                (
                    Reply::DomainMem(DomainMem {
                        resident: m.resident,
                        swapped: m.swapped,
                        swap_ins: m.swap_ins,
                        swap_outs: m.swap_outs,
                        swapped_out: m.swapped_out,
                    }),
                    None,
                )
            }
            Request::Grant { first, count } => {
                let first_grant = self.pool.total() == 0;
                match self.pool.grant(first, count) {
                    Ok(taken) => {
                        let adopted = self.adopt(mmu, first, taken);
                        (
                            Reply::Ok,
                            Some(Event::Granted {
                                count,
                                taken,
                                total: self.pool.total(),
                                first_grant,
                                adopted,
                            }),
                        )
                    }
                    Err(e) => {
                        let se = match e {
                            GrantError::TooMany | GrantError::NoMemory => ServiceError::NoResources,
                            _ => ServiceError::BadRequest,
                        };
                        (Reply::Err(se), Some(Event::GrantRefused(e)))
                    }
                }
            }
            Request::Region { domain, start, end } => match self.regions.add(domain, start, end) {
                Ok(()) => (Reply::Ok, None),
                Err(e) => {
                    let se = match e {
                        RegionError::TooMany => ServiceError::NoResources,
                        RegionError::Invalid => ServiceError::BadRequest,
                    };
                    (Reply::Err(se), Some(Event::RegionRefused(e)))
                }
            },
            Request::Revoke { domain } => {
                let frames = self.pool.release_domain(domain);
                self.regions.remove_domain(domain);
                self.policy.on_revoke(domain);
                if let Some(sw) = self.swap.as_mut() {
                    sw.revoke(disk, domain);
                }
                (Reply::Ok, Some(Event::Revoked { domain, frames }))
            }
            Request::SwapOut { domain } => {
                let Some(sw) = self.swap.as_mut() else {
                    return (Reply::Err(ServiceError::Unsupported), None);
                };
                match sw.swap_out(mmu, disk, &mut self.pool, domain, true) {
                    Ok(()) => (Reply::Ok, None),
                    Err(e) => (
                        Reply::Err(match e {
                            swap::SwapOutError::NoArea => ServiceError::Unsupported,
                            swap::SwapOutError::Io => ServiceError::Io,
                            _ => ServiceError::NoResources,
                        }),
                        None,
                    ),
                }
            }
            Request::SwapIdle { always } => match self.swap.as_mut() {
                Some(sw) => {
                    sw.set_idle_always(always);
                    (Reply::Ok, None)
                }
                None if !always => (Reply::Ok, None),
                None => (Reply::Err(ServiceError::Unsupported), None),
            },
            // Prefetch on request and single-page moves: the faults and
            // the idle swap-out do these; not offered on their own.
            Request::PageIn { .. } | Request::PageOut { .. } | Request::SwapIn { .. } => {
                (Reply::Err(ServiceError::Unsupported), None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ZeroFill;
    use postcard::experimental::max_size::MaxSize;
    use serac_protocol::layout::USER_START;
    use serac_protocol::pager::Access;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    /// A kernel in miniature: which frames the pager really owns, what is
    /// bound where, and which frames were zeroed.
    #[derive(Default)]
    struct FakeMmu {
        owned: BTreeSet<u64>,
        bound: BTreeMap<(u64, u64), u64>,
        zeroed: Vec<u64>,
        fail_bind: Option<SysError>,
    }

    impl Mmu for FakeMmu {
        fn zero(&mut self, frame: u64) -> Result<(), SysError> {
            if !self.owned.contains(&frame) {
                return Err(SysError::FrameNotOwned);
            }
            if self.bound.values().any(|f| *f == frame) {
                return Err(SysError::FrameInUse);
            }
            self.zeroed.push(frame);
            Ok(())
        }
        fn bind(&mut self, reply: Handle, page: u64, frame: u64) -> Result<(), SysError> {
            if let Some(e) = self.fail_bind {
                return Err(e);
            }
            if self.bound.contains_key(&(reply.to_raw(), page)) {
                return Err(SysError::AlreadyMapped);
            }
            self.bound.insert((reply.to_raw(), page), frame);
            Ok(())
        }
    }

    const SUP: u64 = 0x1_0000_0001;
    const D: DomainId = DomainId::new(5, 2);
    /// The fake binds per "reply handle"; one handle per domain is enough.
    const R: Handle = Handle::new(9, 1);

    fn request(p: &mut Pager<ZeroFill>, mmu: &mut FakeMmu, badge: u64, r: &Request) -> Reply {
        let mut buf = [0u8; 64];
        let payload = encode(r, &mut buf).unwrap().to_vec();
        let mut out = [0u8; Reply::POSTCARD_MAX_SIZE];
        let (resp, _) = p.handle(
            &Incoming {
                label: LABEL_PAGER,
                badge,
                reply: Handle::new(2, 1),
                payload: &payload,
            },
            mmu,
            &mut out,
        );
        assert_eq!(resp.label, LABEL_PAGER);
        decode(&out[..resp.len]).unwrap()
    }

    fn fault_bytes(vaddr: u64, access: Access) -> Vec<u8> {
        let f = Fault {
            domain: D,
            vaddr,
            access,
            rip: USER_START,
        };
        let mut buf = [0u8; serac_protocol::pager::FAULT_MSG_MAX];
        encode(&f, &mut buf).unwrap().to_vec()
    }

    fn fault(p: &mut Pager<ZeroFill>, mmu: &mut FakeMmu, payload: &[u8]) -> (u32, Event) {
        let mut out = [0u8; 16];
        let (resp, ev) = p.handle(
            &Incoming {
                label: LABEL_FAULT,
                badge: 0,
                reply: R,
                payload,
            },
            mmu,
            &mut out,
        );
        assert_eq!(resp.len, 0, "fault replies are empty");
        (resp.label, ev.unwrap())
    }

    fn granted(first: u64, count: u64) -> (Pager<ZeroFill>, FakeMmu) {
        let mut p = Pager::new(ZeroFill);
        let mut mmu = FakeMmu {
            owned: (first..first + count).collect(),
            ..FakeMmu::default()
        };
        assert_eq!(
            request(&mut p, &mut mmu, SUP, &Request::Grant { first, count }),
            Reply::Ok
        );
        (p, mmu)
    }

    #[test]
    fn serves_faults_with_zeroed_frames_until_dry() {
        let (mut p, mut mmu) = granted(0x800, 2);
        let (l, ev) = fault(
            &mut p,
            &mut mmu,
            &fault_bytes(USER_START + 0x1234, Access::Write),
        );
        assert_eq!(l, FAULT_RESUME);
        assert_eq!(
            ev,
            Event::Served {
                nth: 1,
                domain: D,
                vaddr: USER_START + 0x1234,
                frame: 0x800
            }
        );
        assert_eq!(
            mmu.bound.get(&(R.to_raw(), USER_START + 0x1000)),
            Some(&0x800)
        );
        assert_eq!(mmu.zeroed, [0x800]);
        let (l, _) = fault(&mut p, &mut mmu, &fault_bytes(USER_START, Access::Read));
        assert_eq!(l, FAULT_RESUME);
        let (l, ev) = fault(
            &mut p,
            &mut mmu,
            &fault_bytes(USER_START + 0x5000, Access::Read),
        );
        assert_eq!(l, FAULT_KILL);
        assert!(matches!(
            ev,
            Event::Killed {
                reason: KillReason::OutOfFrames,
                ..
            }
        ));
        let s = match request(&mut p, &mut mmu, 77, &Request::Stats) {
            Reply::Stats(s) => s,
            r => panic!("{r:?}"),
        };
        assert_eq!((s.resident, s.faults), (2, 3));
        assert_eq!((p.served(), p.killed()), (2, 1));
    }

    #[test]
    fn kills_what_it_must_not_serve() {
        let (mut p, mut mmu) = granted(0x800, 8);
        for (payload, why) in [
            (fault_bytes(USER_START, Access::Exec), KillReason::Exec),
            (
                fault_bytes(0x7000_0000_0000, Access::Read),
                KillReason::OutsideRegions,
            ),
            (std::vec![0xff; 5], KillReason::BadMessage),
            (Vec::new(), KillReason::BadMessage),
        ] {
            let (l, ev) = fault(&mut p, &mut mmu, &payload);
            assert_eq!(l, FAULT_KILL);
            assert!(matches!(ev, Event::Killed { reason, .. } if reason == why));
        }
        // A page that is already bound: a fresh frame cannot help.
        fault(&mut p, &mut mmu, &fault_bytes(USER_START, Access::Read));
        let (l, ev) = fault(
            &mut p,
            &mut mmu,
            &fault_bytes(USER_START + 8, Access::Write),
        );
        assert_eq!(l, FAULT_KILL);
        assert!(matches!(
            ev,
            Event::Killed {
                reason: KillReason::AccessViolation,
                ..
            }
        ));
        assert_eq!(p.pool.free_count(), 7, "the frame went back");
        mmu.fail_bind = Some(SysError::StaleHandle);
        let (l, _) = fault(
            &mut p,
            &mut mmu,
            &fault_bytes(USER_START + 0x3000, Access::Read),
        );
        assert_eq!(l, FAULT_KILL);
        assert_eq!(p.pool.free_count(), 7);
    }

    #[test]
    fn a_lying_grant_loses_frames_instead_of_using_them() {
        let (mut p, mut mmu) = granted(0x800, 2);
        // Claims frames the pager does not own.
        assert_eq!(
            request(
                &mut p,
                &mut mmu,
                SUP,
                &Request::Grant {
                    first: 0x10,
                    count: 3
                }
            ),
            Reply::Ok
        );
        // The newest grant is on top of the free stack, so the three bad
        // frames are tried first, refused by the kernel and lost.
        let (l, ev) = fault(&mut p, &mut mmu, &fault_bytes(USER_START, Access::Write));
        assert_eq!(l, FAULT_RESUME);
        assert!(matches!(
            ev,
            Event::Served {
                frame: 0x800 | 0x801,
                ..
            }
        ));
        assert_eq!(p.pool.lost_count(), 3);
    }

    #[test]
    fn only_the_controller_changes_the_pool_and_revoke_frees() {
        let (mut p, mut mmu) = granted(0x800, 4);
        let intruder = 0x2_0000_0009;
        assert_eq!(
            request(&mut p, &mut mmu, intruder, &Request::Revoke { domain: D }),
            Reply::Err(ServiceError::NotPermitted)
        );
        assert_eq!(
            request(
                &mut p,
                &mut mmu,
                intruder,
                &Request::Grant {
                    first: 0x900,
                    count: 1
                }
            ),
            Reply::Err(ServiceError::NotPermitted)
        );
        assert!(matches!(
            request(&mut p, &mut mmu, intruder, &Request::Stats),
            Reply::Stats(_)
        ));
        fault(&mut p, &mut mmu, &fault_bytes(USER_START, Access::Read));
        fault(
            &mut p,
            &mut mmu,
            &fault_bytes(USER_START + 0x1000, Access::Read),
        );
        assert_eq!(p.pool.free_count(), 2);
        assert_eq!(
            request(&mut p, &mut mmu, SUP, &Request::Revoke { domain: D }),
            Reply::Ok
        );
        mmu.bound.clear(); // the kernel dropped the dead domain's bindings
        assert_eq!(p.pool.free_count(), 4);
        assert_eq!(
            request(
                &mut p,
                &mut mmu,
                SUP,
                &Request::Grant {
                    first: 0x800,
                    count: 1
                }
            ),
            Reply::Err(ServiceError::BadRequest),
            "overlapping grant"
        );
    }

    #[test]
    fn regions_restrict_and_garbage_is_refused() {
        let (mut p, mut mmu) = granted(0x800, 4);
        assert_eq!(
            request(
                &mut p,
                &mut mmu,
                SUP,
                &Request::Region {
                    domain: D,
                    start: 0x60_0000,
                    end: 0x61_0000
                }
            ),
            Reply::Ok
        );
        let (l, _) = fault(&mut p, &mut mmu, &fault_bytes(USER_START, Access::Read));
        assert_eq!(l, FAULT_KILL);
        let (l, _) = fault(&mut p, &mut mmu, &fault_bytes(0x60_0010, Access::Write));
        assert_eq!(l, FAULT_RESUME);
        let mut out = [0u8; Reply::POSTCARD_MAX_SIZE];
        for (label, payload) in [(LABEL_PAGER, &[0xffu8, 1][..]), (42, &[][..])] {
            let (resp, ev) = p.handle(
                &Incoming {
                    label,
                    badge: SUP,
                    reply: Handle::NONE,
                    payload,
                },
                &mut mmu,
                &mut out,
            );
            assert_eq!(
                decode::<Reply>(&out[..resp.len]),
                Ok(Reply::Err(ServiceError::BadRequest))
            );
            assert_eq!(ev, Some(Event::BadRequest { label }));
        }
        assert_eq!(
            request(&mut p, &mut mmu, SUP, &Request::SwapOut { domain: D }),
            Reply::Err(ServiceError::Unsupported)
        );
    }

    proptest::proptest! {
        #[test]
        fn garbage_faults_never_panic_and_never_resume(v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let (mut p, mut mmu) = granted(0x800, 4);
            let (l, _) = fault(&mut p, &mut mmu, &v);
            if decode::<Fault>(&v).is_err() {
                proptest::prop_assert_eq!(l, FAULT_KILL);
            }
        }
    }
}
