//! Paging policy: which faults to serve and with which frame.
//!
//! The [`Pager`](crate::Pager) does the mechanism (decode, zero, bind,
//! reply); a [`Policy`] makes the choices. [`ZeroFill`] is the first pager:
//! it serves data faults inside the domain's regions from the free pool and
//! kills when the pool is dry. [`Quota`] wraps any policy with a per-domain
//! frame limit, so one greedy guest cannot drain the pool that every other
//! guest needs. Which *resident page* leaves memory when the pool is dry is
//! the other half, [`Replacement`](crate::Replacement) (WSClock, 2Q): a
//! swapping `Policy` will own one and, in `pick_frame`, free or write back
//! the victims it names (not wired yet).

use serac_protocol::pager::{Access, Fault};
use serac_protocol::{DomainId, SysError};

use crate::pool::FramePool;
use crate::regions::Regions;

/// Why a fault was answered with `FAULT_KILL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// The fault message did not decode.
    BadMessage,
    /// An instruction fetch: only the supervisor maps code.
    Exec,
    /// The address is outside the domain's zero-fill regions.
    OutsideRegions,
    /// The pool has no free frame.
    OutOfFrames,
    /// The domain holds its quota of frames.
    OverQuota,
    /// The page is already bound: the access broke its rights (e.g. a
    /// write to code), which a fresh frame cannot fix.
    AccessViolation,
    /// The kernel refused to bind or zero a frame for another reason.
    MapFailed(SysError),
    /// The page's swap copy is lost (answered with `FAULT_KILL_LOST`).
    Lost(crate::swap::Lost),
}

/// The choices behind paging.
pub trait Policy {
    /// A short name for logs.
    fn name(&self) -> &'static str;

    /// Whether to serve `fault` at all. By default: never an instruction
    /// fetch, and data accesses only inside the domain's regions.
    fn admit(&mut self, fault: &Fault, regions: &Regions) -> Result<(), KillReason> {
        if fault.access == Access::Exec {
            return Err(KillReason::Exec);
        }
        if !regions.allows(fault.domain, fault.vaddr) {
            return Err(KillReason::OutsideRegions);
        }
        Ok(())
    }

    /// Takes the frame that will back `domain`'s page `vpn` from `pool`
    /// (see [`FramePool::take`]).
    fn pick_frame(
        &mut self,
        pool: &mut FramePool,
        domain: DomainId,
        vpn: u64,
    ) -> Result<u64, KillReason>;

    /// The frame is now bound at `vpn` in `domain`.
    fn on_bound(&mut self, _domain: DomainId, _vpn: u64, _frame: u64) {}

    /// `domain` is gone; its frames are back in the pool.
    fn on_revoke(&mut self, _domain: DomainId) {}
}

/// Zero-fill on demand from the free pool; no swapping.
///
/// The last sixteenth of the pool is a reserve that a domain holding more
/// than half of the pool may not take: the domain that drains the pager
/// runs dry first, and the others can still fault while the pager waits
/// for the supervisor to revoke the greedy one's frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct ZeroFill;

/// Whether `domain` may take a frame from `pool` under [`ZeroFill`]'s
/// reserve rule.
fn may_take_reserve(pool: &FramePool, domain: DomainId) -> bool {
    let reserve = pool.total() / 16;
    pool.free_count() > reserve || pool.bound_to(domain) <= pool.total() / 2
}

impl Policy for ZeroFill {
    fn name(&self) -> &'static str {
        "zero-fill"
    }

    fn pick_frame(
        &mut self,
        pool: &mut FramePool,
        domain: DomainId,
        _vpn: u64,
    ) -> Result<u64, KillReason> {
        if !may_take_reserve(pool, domain) {
            return Err(KillReason::OutOfFrames);
        }
        pool.take().ok_or(KillReason::OutOfFrames)
    }
}

/// Another policy with at most `max_frames` frames bound per domain.
#[derive(Debug, Clone, Copy)]
pub struct Quota<P> {
    /// The policy that picks the frames.
    pub inner: P,
    /// Frames one domain may hold.
    pub max_frames: usize,
}

impl<P: Policy> Policy for Quota<P> {
    fn name(&self) -> &'static str {
        "quota"
    }

    fn admit(&mut self, fault: &Fault, regions: &Regions) -> Result<(), KillReason> {
        self.inner.admit(fault, regions)
    }

    fn pick_frame(
        &mut self,
        pool: &mut FramePool,
        domain: DomainId,
        vpn: u64,
    ) -> Result<u64, KillReason> {
        if pool.bound_to(domain) >= self.max_frames {
            return Err(KillReason::OverQuota);
        }
        self.inner.pick_frame(pool, domain, vpn)
    }

    fn on_bound(&mut self, domain: DomainId, vpn: u64, frame: u64) {
        self.inner.on_bound(domain, vpn, frame);
    }

    fn on_revoke(&mut self, domain: DomainId) {
        self.inner.on_revoke(domain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serac_protocol::layout::USER_START;

    fn fault(access: Access, vaddr: u64) -> Fault {
        Fault {
            domain: DomainId::new(4, 1),
            vaddr,
            access,
            rip: USER_START,
        }
    }

    #[test]
    fn zero_fill_admits_data_in_regions_only() {
        let r = Regions::new();
        let mut p = ZeroFill;
        assert_eq!(p.admit(&fault(Access::Read, USER_START + 8), &r), Ok(()));
        assert_eq!(p.admit(&fault(Access::Write, USER_START), &r), Ok(()));
        assert_eq!(
            p.admit(&fault(Access::Exec, USER_START), &r),
            Err(KillReason::Exec)
        );
        assert_eq!(
            p.admit(&fault(Access::Read, 0x7000_0000_0000), &r),
            Err(KillReason::OutsideRegions)
        );
    }

    #[test]
    fn zero_fill_keeps_a_reserve_from_the_greedy() {
        let mut pool = FramePool::new();
        pool.grant(100, 32).unwrap();
        let (hog, small) = (DomainId::new(1, 1), DomainId::new(2, 1));
        let mut p = ZeroFill;
        let mut got = 0;
        while let Ok(f) = p.pick_frame(&mut pool, hog, 0) {
            assert!(pool.bind(f, hog));
            got += 1;
        }
        // The hog stops at the reserve: 32 / 16 = 2 frames stay.
        assert_eq!(got, 30);
        for _ in 0..2 {
            let f = p.pick_frame(&mut pool, small, 0).unwrap();
            assert!(pool.bind(f, small));
        }
        assert_eq!(
            p.pick_frame(&mut pool, small, 0),
            Err(KillReason::OutOfFrames)
        );
    }

    #[test]
    fn quota_limits_one_domain_not_the_others() {
        let mut pool = FramePool::new();
        pool.grant(100, 10).unwrap();
        let mut q = Quota {
            inner: ZeroFill,
            max_frames: 2,
        };
        let (a, b) = (DomainId::new(1, 1), DomainId::new(2, 1));
        for _ in 0..2 {
            let f = q.pick_frame(&mut pool, a, 0).unwrap();
            assert!(pool.bind(f, a));
        }
        assert_eq!(q.pick_frame(&mut pool, a, 0), Err(KillReason::OverQuota));
        let f = q.pick_frame(&mut pool, b, 0).unwrap();
        assert!(pool.bind(f, b));
        pool.release_domain(a);
        assert!(q.pick_frame(&mut pool, a, 0).is_ok());
    }
}
