//! Frame ownership: which domain may bind each physical frame.
//!
//! The owner of a frame is the domain allowed to `map` it (usually a pager,
//! which maps its frames into the domains it serves). Where a frame is
//! *bound* is the software TLB's business; the two together give the `map`
//! rule, implemented once here in [`map`]:
//! the binder must own the frame, and the frame must not be bound anywhere.
//!
//! Invariants: every frame in range has exactly one [`Owner`]; ownership of a
//! bound frame never changes (give it away only after `unmap`); frames
//! outside the table are owned by nobody, so `map` refuses them.
//! Storage is caller-provided, one [`Owner`] per frame from `base` on.

use crate::stlb::{Mapping, Stlb};
use serac_protocol::layout::{is_page_aligned, vpn, USER_SPACE};
use serac_protocol::{DomainId, PageRights, SysError};

/// Who owns a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owner {
    /// Unowned, available to the frame allocator.
    Free,
    /// The kernel's own (page tables, kernel heap, the clock page).
    #[default]
    Kernel,
    /// A domain, which may bind it.
    Domain(DomainId),
    /// A page of shared read-only image `id` (see [`crate::image`]): bound
    /// by the kernel alone, read-only, in the domains the image is
    /// attached to; nobody may bind, give or copy it.
    Shared(u16),
}

/// Frame → owner over caller-provided storage.
#[derive(Debug)]
pub struct FrameOwners<'a> {
    base: u64,
    slots: &'a mut [Owner],
}

impl<'a> FrameOwners<'a> {
    /// Frames `base .. base + slots.len()`, all initially [`Owner::Kernel`]
    /// (nothing is bindable until the kernel hands it out).
    pub fn new(base: u64, slots: &'a mut [Owner]) -> Self {
        slots.fill(Owner::Kernel);
        FrameOwners { base, slots }
    }

    fn slot(&self, frame: u64) -> Option<&Owner> {
        let i = usize::try_from(frame.checked_sub(self.base)?).ok()?;
        self.slots.get(i)
    }

    fn slot_mut(&mut self, frame: u64) -> Option<&mut Owner> {
        let i = usize::try_from(frame.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)
    }

    /// The owner of `frame`; `BadArgument` outside the table.
    pub fn owner(&self, frame: u64) -> Result<Owner, SysError> {
        self.slot(frame).copied().ok_or(SysError::BadArgument)
    }

    /// Whether `domain` may bind `frame`; any frame it does not own, in range
    /// or not, is `FrameNotOwned` (a domain learns nothing about others').
    pub fn may_bind(&self, domain: DomainId, frame: u64) -> Result<(), SysError> {
        match self.slot(frame) {
            Some(Owner::Domain(d)) if *d == domain && !domain.is_none() => Ok(()),
            _ => Err(SysError::FrameNotOwned),
        }
    }

    /// Sets the owner (kernel use: boot, allocation, reclaim). Returns the
    /// previous owner; `BadArgument` outside the table.
    pub fn assign(&mut self, frame: u64, owner: Owner) -> Result<Owner, SysError> {
        let s = self.slot_mut(frame).ok_or(SysError::BadArgument)?;
        Ok(core::mem::replace(s, owner))
    }

    /// Moves `frame` from `from` to `to`. `FrameNotOwned` unless `from` owns
    /// it; `FrameInUse` while it is bound (unmap it first) unless
    /// `bound_ok`: then the binding stays and the new owner may revoke it
    /// (the supervisor handing a restarted pager its frames back).
    pub fn transfer(
        &mut self,
        stlb: &Stlb<'_>,
        frame: u64,
        from: DomainId,
        to: DomainId,
        bound_ok: bool,
    ) -> Result<(), SysError> {
        self.may_bind(from, frame)?;
        if !bound_ok && stlb.frame_binding(frame).is_some() {
            return Err(SysError::FrameInUse);
        }
        if to.is_none() {
            return Err(SysError::BadArgument);
        }
        let s = self.slot_mut(frame).ok_or(SysError::FrameNotOwned)?;
        *s = Owner::Domain(to);
        Ok(())
    }

    /// Frees every frame `domain` owns, handing each to `f` (domain death).
    /// The caller unbinds them from the software TLB first. Returns the count.
    pub fn release_all(&mut self, domain: DomainId, mut f: impl FnMut(u64)) -> usize {
        let mut n = 0;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if *s == Owner::Domain(domain) {
                *s = Owner::Free;
                n += 1;
                f(self.base + i as u64);
            }
        }
        n
    }

    /// Hands every frame `from` owns to `to` (domain death: its frames go
    /// back to whoever gave them). The caller unbinds them first. Returns
    /// the count. O(frames).
    pub fn reassign_all(&mut self, from: DomainId, to: Owner) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if *s == Owner::Domain(from) {
                *s = to;
                n += 1;
            }
        }
        n
    }

    /// The first frame at or after `from` that `domain` owns (for walks
    /// that change other tables as they go). O(frames) over a whole walk.
    pub fn next_owned(&self, domain: DomainId, from: u64) -> Option<u64> {
        let start = usize::try_from(from.saturating_sub(self.base)).ok()?;
        let skip = self.slots.get(start..)?;
        let i = skip.iter().position(|s| *s == Owner::Domain(domain))?;
        Some(self.base + (start + i) as u64)
    }

    /// Frames `domain` owns. O(frames).
    pub fn count_owned(&self, domain: DomainId) -> usize {
        self.slots
            .iter()
            .filter(|s| **s == Owner::Domain(domain))
            .count()
    }
}

/// The `map` rule: `binder` binds its `frame` at `vaddr` in `target`.
///
/// `binder` is the caller; `target` is the caller itself or a domain it holds
/// a `DomainCtl` handle with `MAP` for (the kernel checks the handle first).
/// Errors: `BadArgument` (unaligned), `BadPointer` (outside the mappable
/// range), `FrameNotOwned`, `AlreadyMapped`, `FrameInUse`, `TableFull`.
pub fn map(
    owners: &FrameOwners<'_>,
    stlb: &mut Stlb<'_>,
    binder: DomainId,
    target: DomainId,
    vaddr: u64,
    frame: u64,
    rights: PageRights,
) -> Result<(), SysError> {
    check_vaddr(vaddr)?;
    owners.may_bind(binder, frame)?;
    stlb.insert(Mapping {
        domain: target,
        vpn: vpn(vaddr),
        frame,
        rights,
        used: 0,
    })
}

/// The `unmap` rule: removes the binding at `vaddr` in `target` and returns
/// it. `binder` must own the bound frame, so a domain cannot unbind pages
/// its pager placed unless it owns them. The caller invalidates the TLB.
pub fn unmap(
    owners: &FrameOwners<'_>,
    stlb: &mut Stlb<'_>,
    binder: DomainId,
    target: DomainId,
    vaddr: u64,
) -> Result<Mapping, SysError> {
    check_vaddr(vaddr)?;
    let m = stlb.lookup(target, vpn(vaddr)).ok_or(SysError::NotMapped)?;
    owners.may_bind(binder, m.frame)?;
    stlb.remove(target, m.vpn)
}

fn check_vaddr(vaddr: u64) -> Result<(), SysError> {
    if !is_page_aligned(vaddr) {
        return Err(SysError::BadArgument);
    }
    if !USER_SPACE.contains(&vaddr) {
        return Err(SysError::BadPointer);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassign_moves_only_the_dead_domains_frames() {
        let a = DomainId::new(1, 1);
        let b = DomainId::new(2, 1);
        let mut slots = [Owner::Free; 8];
        let mut o = FrameOwners::new(100, &mut slots);
        o.assign(100, Owner::Domain(a)).unwrap();
        o.assign(101, Owner::Domain(a)).unwrap();
        o.assign(102, Owner::Domain(b)).unwrap();
        assert_eq!(o.reassign_all(a, Owner::Domain(b)), 2);
        assert_eq!(o.count_owned(b), 3);
        assert_eq!(o.count_owned(a), 0);
        assert_eq!(o.reassign_all(a, Owner::Kernel), 0);
    }
    use crate::stlb::StlbSlot;
    use proptest::prelude::*;
    use serac_protocol::layout::USER_START;
    use std::collections::HashMap;

    const PAGER: DomainId = DomainId::new(1, 1);
    const GUEST: DomainId = DomainId::new(2, 1);
    const OTHER: DomainId = DomainId::new(3, 1);

    #[test]
    fn map_needs_ownership_and_a_free_frame() {
        let mut own = [Owner::Free; 8];
        let mut owners = FrameOwners::new(100, &mut own);
        let mut slots = [StlbSlot::EMPTY; 16];
        let mut stlb = Stlb::new(&mut slots, 3);
        owners.assign(100, Owner::Domain(PAGER)).unwrap();
        let rw = PageRights::READ_WRITE;
        assert_eq!(
            map(&owners, &mut stlb, GUEST, GUEST, USER_START, 100, rw),
            Err(SysError::FrameNotOwned)
        );
        assert_eq!(
            map(&owners, &mut stlb, PAGER, GUEST, USER_START + 1, 100, rw),
            Err(SysError::BadArgument)
        );
        assert_eq!(
            map(&owners, &mut stlb, PAGER, GUEST, 0, 100, rw),
            Err(SysError::BadPointer)
        );
        assert_eq!(
            map(&owners, &mut stlb, PAGER, GUEST, 1 << 47, 100, rw),
            Err(SysError::BadPointer)
        );
        assert_eq!(
            map(&owners, &mut stlb, PAGER, GUEST, USER_START, 99, rw),
            Err(SysError::FrameNotOwned)
        );
        assert_eq!(
            map(&owners, &mut stlb, PAGER, GUEST, USER_START, 108, rw),
            Err(SysError::FrameNotOwned)
        );
        map(&owners, &mut stlb, PAGER, GUEST, USER_START, 100, rw).unwrap();
        // Same frame into a second domain: refused.
        assert_eq!(
            map(&owners, &mut stlb, PAGER, OTHER, USER_START, 100, rw),
            Err(SysError::FrameInUse)
        );
        assert_eq!(
            owners.transfer(&stlb, 100, PAGER, OTHER, false),
            Err(SysError::FrameInUse)
        );
        assert_eq!(
            unmap(&owners, &mut stlb, GUEST, GUEST, USER_START),
            Err(SysError::FrameNotOwned)
        );
        assert_eq!(
            unmap(&owners, &mut stlb, PAGER, GUEST, USER_START)
                .unwrap()
                .frame,
            100
        );
        owners.transfer(&stlb, 100, PAGER, OTHER, false).unwrap();
        assert_eq!(owners.may_bind(PAGER, 100), Err(SysError::FrameNotOwned));
        assert_eq!(owners.count_owned(OTHER), 1);
        let mut freed = std::vec::Vec::new();
        assert_eq!(owners.release_all(OTHER, |f| freed.push(f)), 1);
        assert_eq!(freed, [100]);
        assert_eq!(owners.owner(100), Ok(Owner::Free));
        assert_eq!(owners.owner(5), Err(SysError::BadArgument));
    }

    proptest! {
        /// Whatever sequence of maps by whichever domain, no frame is ever
        /// bound in two domains, and only owners' frames are ever bound.
        #[test]
        fn frames_never_shared(ops in proptest::collection::vec((0u32..4, 0u32..4, 0u64..16, 0u64..12, any::<bool>()), 0..120)) {
            let mut own = [Owner::Free; 12];
            let mut owners = FrameOwners::new(0, &mut own);
            for f in 0..12u64 {
                owners.assign(f, Owner::Domain(DomainId::new((f % 3) as u32 + 1, 1))).unwrap();
            }
            let mut slots = [StlbSlot::EMPTY; 32];
            let mut stlb = Stlb::new(&mut slots, 9);
            for (binder, target, page, frame, is_map) in ops {
                let (b, t) = (DomainId::new(binder, 1), DomainId::new(target, 1));
                let va = USER_START + page * 4096;
                if is_map {
                    let r = map(&owners, &mut stlb, b, t, va, frame, PageRights::READ);
                    if r.is_ok() {
                        prop_assert_eq!(owners.owner(frame), Ok(Owner::Domain(b)));
                    }
                } else {
                    let _ = unmap(&owners, &mut stlb, b, t, va);
                }
                let mut seen: HashMap<u64, DomainId> = HashMap::new();
                for m in stlb.iter() {
                    prop_assert!(seen.insert(m.frame, m.domain).is_none());
                    prop_assert!(matches!(owners.owner(m.frame), Ok(Owner::Domain(_))));
                }
            }
        }
    }
}
