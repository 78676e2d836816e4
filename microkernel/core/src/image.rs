//! Shared read-only images: the code and read-only data of one program,
//! bound to the same frames in every domain that runs it.
//!
//! The owner (the supervisor) fills frames with an image's read-only pages
//! and makes them an image; from then on the frames are
//! [`Owner::Shared`]: nobody may bind, give, copy or unbind them, and no
//! translation to them is ever writable. A domain the image is attached
//! to gets them on a software-TLB miss in the image's pages, read-only or
//! read-exec, at no per-domain cost beyond its page tables. An image is
//! released (its frames go back to the owner) only when no domain has it
//! attached, so a shared page is never paged out from under a domain.
//!
//! Invariants (proptested): a frame is in at most one image, and is
//! `Shared` exactly while that image exists; no image page is writable;
//! an image is never released while attached.
//!
//! Storage is caller-provided: image slots, and one arena of pages in
//! which each image holds a contiguous, vpn-sorted run.

use crate::owner::{FrameOwners, Owner};
use crate::stlb::Stlb;
use serac_protocol::layout::{is_page_aligned, vpn, USER_SPACE};
use serac_protocol::{DomainId, PageRights, SysError};

/// One page of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImagePage {
    /// Its virtual page number.
    pub vpn: u64,
    /// Its frame.
    pub frame: u32,
    /// `R` or `R|X`, never `W`.
    pub rights: PageRights,
}

/// One image's record.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageSlot {
    owner: Option<DomainId>,
    start: u32,
    len: u32,
    attached: u32,
}

/// Every image, over caller-provided storage.
#[derive(Debug)]
pub struct Images<'a> {
    slots: &'a mut [ImageSlot],
    pages: &'a mut [ImagePage],
}

fn index(id: u64) -> Option<usize> {
    usize::try_from(id.checked_sub(1)?).ok()
}

impl<'a> Images<'a> {
    /// No images; at most `slots.len()` of them and `pages.len()` pages in all.
    pub fn new(slots: &'a mut [ImageSlot], pages: &'a mut [ImagePage]) -> Self {
        slots.fill(ImageSlot::default());
        Images { slots, pages }
    }

    fn live(&self, id: u64) -> Result<&ImageSlot, SysError> {
        self.slots
            .get(index(id).ok_or(SysError::BadArgument)?)
            .filter(|s| s.owner.is_some())
            .ok_or(SysError::BadArgument)
    }

    fn owned_mut(&mut self, id: u64, caller: DomainId) -> Result<&mut ImageSlot, SysError> {
        let s = self
            .slots
            .get_mut(index(id).ok_or(SysError::BadArgument)?)
            .filter(|s| s.owner.is_some())
            .ok_or(SysError::BadArgument)?;
        if s.owner != Some(caller) {
            return Err(SysError::NoRights);
        }
        Ok(s)
    }

    /// A free run of `n` pages in the arena (first fit between live images).
    fn room(&self, n: u32) -> Option<u32> {
        let mut at = 0u32;
        loop {
            let end = at.checked_add(n)?;
            if end as usize > self.pages.len() {
                return None;
            }
            // The first live image overlapping [at, end), if any.
            let clash = self
                .slots
                .iter()
                .filter(|s| s.owner.is_some() && s.len > 0)
                .filter(|s| s.start < end && at < s.start + s.len)
                .map(|s| s.start + s.len)
                .max();
            match clash {
                None => return Some(at),
                Some(next) => at = next,
            }
        }
    }

    /// Makes an image of `owner`'s frames from `count` records that `read`
    /// yields in order, each `(vaddr | rights, frame)`: page-aligned
    /// strictly increasing addresses in user space, rights `R` or `R|X`,
    /// frames `owner` owns and has bound nowhere, none twice. Returns its
    /// id (1 and up). Nothing changes on an error: `BadArgument`,
    /// `BadPointer`, `FrameNotOwned`, `FrameInUse`, `TableFull`.
    pub fn create(
        &mut self,
        owners: &mut FrameOwners<'_>,
        stlb: &Stlb<'_>,
        owner: DomainId,
        count: u64,
        mut read: impl FnMut(u64) -> Result<(u64, u64), SysError>,
    ) -> Result<u64, SysError> {
        let n = u32::try_from(count).map_err(|_| SysError::BadArgument)?;
        if n == 0 || owner.is_none() {
            return Err(SysError::BadArgument);
        }
        let slot = self
            .slots
            .iter()
            .position(|s| s.owner.is_none())
            .ok_or(SysError::TableFull)?;
        let id = u16::try_from(slot + 1).map_err(|_| SysError::TableFull)?;
        let start = self.room(n).ok_or(SysError::TableFull)?;
        // Read and check into the free run; it counts only once committed.
        let mut last = None;
        for k in 0..n {
            let (word, frame) = read(u64::from(k))?;
            let vaddr = word & !0xfff;
            let rights = PageRights::from_bits(word & 0xfff)?;
            if rights.writable() || rights.bits() & PageRights::R == 0 || rights.uncached() {
                return Err(SysError::BadArgument);
            }
            if !is_page_aligned(vaddr) || !USER_SPACE.contains(&vaddr) {
                return Err(SysError::BadPointer);
            }
            if last.is_some_and(|l| vpn(vaddr) <= l) {
                return Err(SysError::BadArgument);
            }
            last = Some(vpn(vaddr));
            owners.may_bind(owner, frame)?;
            if stlb.frame_binding(frame).is_some() {
                return Err(SysError::FrameInUse);
            }
            let frame = u32::try_from(frame).map_err(|_| SysError::BadArgument)?;
            if let Some(p) = self.pages.get_mut((start + k) as usize) {
                *p = ImagePage {
                    vpn: vpn(vaddr),
                    frame,
                    rights,
                };
            }
        }
        // Commit; a frame named twice is found owned already, and undone.
        let run = (start as usize)..(start + n) as usize;
        let mut done = 0;
        for p in self.pages.get(run.clone()).unwrap_or(&[]) {
            if owners.may_bind(owner, u64::from(p.frame)).is_err() {
                break;
            }
            let _ = owners.assign(u64::from(p.frame), Owner::Shared(id));
            done += 1;
        }
        if done < n as usize {
            for p in self.pages.get(run).unwrap_or(&[]).iter().take(done) {
                let _ = owners.assign(u64::from(p.frame), Owner::Domain(owner));
            }
            return Err(SysError::FrameInUse);
        }
        if let Some(s) = self.slots.get_mut(slot) {
            *s = ImageSlot {
                owner: Some(owner),
                start,
                len: n,
                attached: 0,
            };
        }
        Ok(u64::from(id))
    }

    /// `caller`, the image's owner, attaches it to one more domain.
    pub fn attach(&mut self, id: u64, caller: DomainId) -> Result<(), SysError> {
        let s = self.owned_mut(id, caller)?;
        s.attached = s.attached.checked_add(1).ok_or(SysError::TableFull)?;
        Ok(())
    }

    /// A domain that had image `id` attached is gone.
    pub fn detach(&mut self, id: u64) {
        if let Some(s) = index(id).and_then(|i| self.slots.get_mut(i)) {
            s.attached = s.attached.saturating_sub(1);
        }
    }

    /// Domains image `id` is attached to.
    pub fn attached(&self, id: u64) -> Result<u32, SysError> {
        Ok(self.live(id)?.attached)
    }

    /// `caller`, the owner, ends image `id`: its frames are the owner's
    /// again. `FrameInUse` while any domain has it attached. Returns its
    /// page count.
    pub fn release(
        &mut self,
        owners: &mut FrameOwners<'_>,
        id: u64,
        caller: DomainId,
    ) -> Result<u32, SysError> {
        let s = *self.owned_mut(id, caller)?;
        if s.attached > 0 {
            return Err(SysError::FrameInUse);
        }
        let run = (s.start as usize)..(s.start + s.len) as usize;
        for p in self.pages.get(run).unwrap_or(&[]) {
            let _ = owners.assign(u64::from(p.frame), Owner::Domain(caller));
        }
        if let Some(x) = index(id).and_then(|i| self.slots.get_mut(i)) {
            *x = ImageSlot::default();
        }
        Ok(s.len)
    }

    /// The frame and rights of page `vpn` in image `id`, if it has one.
    pub fn lookup(&self, id: u64, vpn: u64) -> Option<(u64, PageRights)> {
        let s = self.live(id).ok()?;
        let run = self
            .pages
            .get((s.start as usize)..(s.start + s.len) as usize)?;
        let p = run.get(run.binary_search_by_key(&vpn, |p| p.vpn).ok()?)?;
        Some((u64::from(p.frame), p.rights))
    }

    /// The images `from` owned pass to `to` (the owner died).
    pub fn reassign(&mut self, from: DomainId, to: DomainId) {
        for s in self.slots.iter_mut() {
            if s.owner == Some(from) {
                s.owner = Some(to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stlb::{Mapping, StlbSlot};
    use proptest::prelude::*;
    use serac_protocol::layout::USER_START;
    use std::vec::Vec;

    const SUP: DomainId = DomainId::new(0, 1);
    const OTHER: DomainId = DomainId::new(5, 1);

    fn rec(page: u64, frame: u64, rights: u8) -> (u64, u64) {
        ((USER_START + page * 4096) | u64::from(rights), frame)
    }

    #[test]
    fn create_lookup_release() {
        let mut own = [Owner::Free; 16];
        let mut owners = FrameOwners::new(100, &mut own);
        for f in 100..116 {
            owners.assign(f, Owner::Domain(SUP)).unwrap();
        }
        let mut ss = [StlbSlot::EMPTY; 16];
        let mut stlb = Stlb::new(&mut ss, 1);
        let (mut slots, mut pages) = ([ImageSlot::default(); 2], [ImagePage::default(); 8]);
        let mut im = Images::new(&mut slots, &mut pages);
        let recs = [rec(0, 100, 5), rec(1, 101, 5), rec(3, 102, 1)];
        let id = im
            .create(&mut owners, &stlb, SUP, 3, |k| Ok(recs[k as usize]))
            .unwrap();
        assert_eq!(owners.owner(101), Ok(Owner::Shared(1)));
        assert_eq!(owners.may_bind(SUP, 101), Err(SysError::FrameNotOwned));
        let base = vpn(USER_START);
        assert_eq!(im.lookup(id, base + 1), Some((101, PageRights::READ_EXEC)));
        assert_eq!(im.lookup(id, base + 3), Some((102, PageRights::READ)));
        assert_eq!(im.lookup(id, base + 2), None);
        // A writable page, a bound frame, a frame named twice: refused, no change.
        let w = [rec(0, 103, 3)];
        assert_eq!(
            im.create(&mut owners, &stlb, SUP, 1, |k| Ok(w[k as usize])),
            Err(SysError::BadArgument)
        );
        stlb.insert(Mapping {
            domain: OTHER,
            vpn: 7,
            frame: 104,
            rights: PageRights::READ,
            used: 0,
        })
        .unwrap();
        let b = [rec(0, 104, 1)];
        assert_eq!(
            im.create(&mut owners, &stlb, SUP, 1, |k| Ok(b[k as usize])),
            Err(SysError::FrameInUse)
        );
        let twice = [rec(0, 105, 1), rec(1, 105, 1)];
        assert_eq!(
            im.create(&mut owners, &stlb, SUP, 2, |k| Ok(twice[k as usize])),
            Err(SysError::FrameInUse)
        );
        assert_eq!(owners.owner(105), Ok(Owner::Domain(SUP)));
        // Attached: only the owner may attach; no release until detached.
        assert_eq!(im.attach(id, OTHER), Err(SysError::NoRights));
        im.attach(id, SUP).unwrap();
        assert_eq!(im.release(&mut owners, id, SUP), Err(SysError::FrameInUse));
        im.detach(id);
        assert_eq!(im.release(&mut owners, id, OTHER), Err(SysError::NoRights));
        assert_eq!(im.release(&mut owners, id, SUP), Ok(3));
        assert_eq!(owners.owner(101), Ok(Owner::Domain(SUP)));
        assert_eq!(im.lookup(id, base), None);
    }

    /// An image in the model: its records and how many domains have it.
    type Model = (Vec<(u64, u64, u8)>, u32);

    #[derive(Debug, Clone)]
    enum Op {
        Create(Vec<(u64, u64, u8)>),
        Attach(u64),
        Detach(u64),
        Release(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => proptest::collection::vec((0u64..12, 0u64..24, prop_oneof![Just(1u8), Just(5), Just(3)]), 1..6)
                .prop_map(Op::Create),
            2 => (1u64..5).prop_map(Op::Attach),
            2 => (1u64..5).prop_map(Op::Detach),
            2 => (1u64..5).prop_map(Op::Release),
        ]
    }

    proptest! {
        #[test]
        fn frames_are_shared_exactly_while_their_image_lives(ops in proptest::collection::vec(op(), 0..60)) {
            let mut own = [Owner::Free; 24];
            let mut owners = FrameOwners::new(0, &mut own);
            for f in 0..20 {
                owners.assign(f, Owner::Domain(SUP)).unwrap();
            }
            let mut ss = [StlbSlot::EMPTY; 4];
            let stlb = Stlb::new(&mut ss, 1);
            let (mut slots, mut pages) = ([ImageSlot::default(); 4], [ImagePage::default(); 12]);
            let mut im = Images::new(&mut slots, &mut pages);
            // Model: id -> (pages, attached).
            let mut model: std::collections::HashMap<u64, Model> = Default::default();
            for op in ops {
                match op {
                    Op::Create(recs) => {
                        let got = im.create(&mut owners, &stlb, SUP, recs.len() as u64, |k| {
                            let (p, f, r) = recs[k as usize];
                            Ok(rec(p, f, r))
                        });
                        let sorted = recs.windows(2).all(|w| w[0].0 < w[1].0);
                        let mut fs: Vec<u64> = recs.iter().map(|r| r.1).collect();
                        fs.sort_unstable();
                        let distinct = fs.windows(2).all(|w| w[0] != w[1]);
                        let free = recs.iter().all(|r| r.1 < 20 && !model.values().any(|m| m.0.iter().any(|x| x.1 == r.1)));
                        let ok = sorted && distinct && free && recs.iter().all(|r| r.2 != 3);
                        if let Ok(id) = got {
                            prop_assert!(ok);
                            model.insert(id, (recs, 0));
                        } else {
                            // Refused only for a reason: bad records, or no room.
                            let used: usize = model.values().map(|m| m.0.len()).sum();
                            prop_assert!(!ok || model.len() == 4 || used + recs.len() > 12 || got == Err(SysError::TableFull));
                        }
                    }
                    Op::Attach(id) => {
                        let got = im.attach(id, SUP);
                        prop_assert_eq!(got.is_ok(), model.contains_key(&id));
                        if let Some(m) = model.get_mut(&id) { m.1 += 1; }
                    }
                    Op::Detach(id) => {
                        if let Some(m) = model.get_mut(&id) {
                            if m.1 > 0 { m.1 -= 1; im.detach(id); }
                        }
                    }
                    Op::Release(id) => {
                        let got = im.release(&mut owners, id, SUP);
                        match model.get(&id) {
                            Some(m) if m.1 == 0 => { prop_assert!(got.is_ok()); model.remove(&id); }
                            Some(_) => prop_assert_eq!(got, Err(SysError::FrameInUse)),
                            None => prop_assert!(got.is_err()),
                        }
                    }
                }
                for f in 0..20u64 {
                    let holder = model.iter().find(|(_, m)| m.0.iter().any(|r| r.1 == f)).map(|(id, _)| *id);
                    let want = match holder {
                        Some(id) => Owner::Shared(id as u16),
                        None => Owner::Domain(SUP),
                    };
                    prop_assert_eq!(owners.owner(f), Ok(want));
                }
                for (id, m) in &model {
                    prop_assert_eq!(im.attached(*id), Ok(m.1));
                    for r in &m.0 {
                        let got = im.lookup(*id, vpn(USER_START) + r.0);
                        prop_assert_eq!(got.map(|g| g.0), Some(r.1));
                        prop_assert!(!got.is_some_and(|g| g.1.writable()));
                    }
                }
            }
        }
    }
}
