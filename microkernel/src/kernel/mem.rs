//! Secure bindings: `map`, `unmap`, and what a page fault becomes.
//!
//! The software TLB is the kernel's only record of translations; a
//! domain's page tables are a cache filled from it on faults (and on `map`).
//! A miss becomes a fault message to the domain's pager.

use serac_kcore::owner;
use serac_protocol::exit::FaultKind;
use serac_protocol::layout::{self, vpn, PAGE_SIZE};
use serac_protocol::pager::Access;
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, PageRights, SysError};

use serac_protocol::header::HEADER_LEN;
use serac_protocol::syscall::{
    FrameRecord, FRAMES_IF_CLEAN, FRAMES_MAX, FRAMES_TAKE, FRAMES_UNBIND, FRAME_RECORD_LEN,
    IMAGE_RECORD_LEN, STATUS_ACCESSED, STATUS_BOUND, STATUS_DIRTY, STATUS_UNBOUND,
    TRANSLATE_SHARED, USED_ACCESSED, USED_DIRTY,
};

use super::domain::{self, Reason, State};

/// Most pages one image may have (64 MiB of code).
const IMAGE_PAGES_MAX: u64 = 16384;
use super::{ipc, Kernel};
use crate::arch::paging::{copy_phys, read_phys, write_phys};

/// The domain a `map`/`unmap` target handle names: `NONE` is the caller; a
/// `DomainCtl` handle with `MAP`; or the `Reply` handle of a fault the caller
/// is serving as pager (authority to bind into exactly that domain).
fn target(k: &Kernel, i: u32, h: Handle) -> Result<DomainId, SysError> {
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    if h.is_none() {
        return Ok(d.id);
    }
    let e = d.handles.lookup(h)?;
    let id = DomainId::from_raw(e.object);
    match e.kind {
        HandleKind::DomainCtl if e.rights.contains(HandleRights::MAP) => {}
        HandleKind::DomainCtl => return Err(SysError::NoRights),
        HandleKind::Reply => {
            let t = k.live(id).ok_or(SysError::PeerDead)?;
            if !matches!(t.state, State::Faulting { pager, .. } if pager == i) {
                return Err(SysError::NoRights);
            }
        }
        _ => return Err(SysError::WrongHandleKind),
    }
    k.live(id).map(|t| t.id).ok_or(SysError::StaleHandle)
}

/// `map(target, vaddr, frame, rights)`.
pub fn map(
    k: &mut Kernel,
    i: u32,
    h: Handle,
    vaddr: u64,
    frame: u64,
    rights: u64,
) -> Result<Option<u64>, SysError> {
    let rights = PageRights::from_bits(rights)?;
    let t = target(k, i, h)?;
    let binder = k.domain(i).ok_or(SysError::BadHandle)?.id;
    owner::map(&k.owners, &mut k.stlb, binder, t, vaddr, frame, rights)?;
    install(k, t.index, vaddr, frame, rights);
    Ok(Some(0))
}

/// `unmap(target, vaddr)`: returns the frame.
pub fn unmap(k: &mut Kernel, i: u32, h: Handle, vaddr: u64) -> Result<Option<u64>, SysError> {
    let t = target(k, i, h)?;
    let binder = k.domain(i).ok_or(SysError::BadHandle)?.id;
    let m = owner::unmap(&k.owners, &mut k.stlb, binder, t, vaddr)?;
    if let Some(d) = k.domain_mut(t.index) {
        if let Some(space) = d.space.as_mut() {
            let _ = space.unmap(vaddr);
        }
    }
    Ok(Some(m.frame))
}

/// `ImageCreate`: `n` records at `addr` in the caller.
pub fn image_create(k: &mut Kernel, i: u32, n: u64, addr: u64) -> Result<Option<u64>, SysError> {
    let me = k.domain(i).ok_or(SysError::BadHandle)?.id;
    if n == 0 || n > IMAGE_PAGES_MAX {
        return Err(SysError::BadArgument);
    }
    let mut recs = alloc::vec![0u8; n as usize * IMAGE_RECORD_LEN];
    super::syscall::read_user(k, i, addr, &mut recs)?;
    let word = |j: usize| {
        let b = recs.get(j * 8..j * 8 + 8).and_then(|b| b.try_into().ok());
        b.map_or(0, u64::from_le_bytes)
    };
    let read = |j: u64| Ok((word(2 * j as usize), word(2 * j as usize + 1)));
    k.images
        .create(&mut k.owners, &k.stlb, me, n, read)
        .map(Some)
}

/// `Translate`: what backs page `vaddr` of domain `t`.
pub fn translate(k: &Kernel, t: DomainId, vaddr: u64) -> Result<u64, SysError> {
    let image = k.live(t).ok_or(SysError::StaleHandle)?.image;
    if let Some(m) = k.stlb.lookup(t, vpn(vaddr)) {
        return Ok(m.frame << 12 | u64::from(m.rights.bits()));
    }
    let (f, r) = k
        .images
        .lookup(image.into(), vpn(vaddr))
        .ok_or(SysError::NotMapped)?;
    Ok(f << 12 | u64::from(r.bits()) | TRANSLATE_SHARED)
}

/// Puts a binding into the target's page-table cache, if it has tables.
/// A cache grown past its table budget is dropped and rebuilt: the cost
/// of mapping at fresh strides falls on the domain that does it.
fn install(k: &mut Kernel, t: u32, vaddr: u64, frame: u64, rights: PageRights) {
    let Some(d) = k.domain_mut(t) else { return };
    let Some(space) = d.space.as_mut() else {
        return;
    };
    let _ = space.map(
        vaddr,
        frame * PAGE_SIZE,
        rights.writable(),
        rights.executable(),
        rights.uncached(),
    );
    if space.over_budget() {
        domain::rebuild_space(k, t);
    }
}

fn fault_kind(vector: u64) -> FaultKind {
    match vector {
        0 => FaultKind::DivideError,
        1 | 3 => FaultKind::Debug,
        6 => FaultKind::InvalidOpcode,
        12 => FaultKind::StackSegment,
        13 => FaultKind::GeneralProtection,
        14 => FaultKind::PageFault,
        16 | 19 => FaultKind::FloatingPoint,
        17 => FaultKind::Alignment,
        v => FaultKind::Other(v as u8),
    }
}

/// A CPU exception in domain `i`. A page fault that hits the software TLB
/// is a cache fill; one that misses goes to the pager; anything else stops
/// the domain (and only it).
pub fn exception(k: &mut Kernel, i: u32, vector: u64, error: u64, cr2: u64) {
    let rip = k.domain(i).map_or(0, |d| d.ctx.rip);
    if vector == 14 {
        let present = error & 1 != 0;
        let access = if error & 16 != 0 {
            Access::Exec
        } else if error & 2 != 0 {
            Access::Write
        } else {
            Access::Read
        };
        let Some(id) = k.domain(i).map(|d| d.id) else {
            return;
        };
        // First touch of a fixed page: allocate it now.
        let page = cr2 & !(PAGE_SIZE - 1);
        if !present && (page == layout::IPC_BUFFER_ADDR || page == layout::UPCALL_PAGE_ADDR) {
            let made = k.domain_mut(i).map(|d| {
                if page == layout::IPC_BUFFER_ADDR {
                    d.ipc_frame()
                } else {
                    d.upcall_frame()
                }
            });
            if let Some(Ok(_)) = made {
                return;
            }
            domain::kill(k, i, Reason::Fault(FaultKind::PageFault, cr2, rip, error));
            return;
        }
        // The software TLB, then the domain's shared image.
        let image = k.domain(i).map_or(0, |d| d.image);
        let hit = k
            .stlb
            .lookup(id, vpn(cr2))
            .map(|m| (m.frame, m.rights))
            .or_else(|| k.images.lookup(image.into(), vpn(cr2)));
        match hit {
            Some((frame, rights)) if !present && rights.allows(access) => {
                install(k, i, page, frame, rights);
                return;
            }
            Some(_) => {
                domain::kill(k, i, Reason::Fault(FaultKind::Protection, cr2, rip, error));
                return;
            }
            None => {}
        }
        // The pager by slot and lineage, so faults follow its restarts; a
        // dead one (awaiting restart) parks the fault.
        let pager = k
            .domain(i)
            .and_then(|d| d.pager())
            .and_then(|p| k.domain(p.index).filter(|x| x.lineage <= p.gen))
            .map(|p| (p.id.index, p.state == State::Dead));
        if let (Some((p, dead)), false) = (pager, present) {
            if let Some(d) = k.domain_mut(i) {
                d.faults += 1;
                d.set_fault(cr2, access);
                d.state = State::Faulting {
                    pager: p,
                    delivered: false,
                };
            }
            k.current = None;
            if !dead {
                ipc::enqueue_sender(k, i, p);
                ipc::try_deliver(k, p);
            }
            return;
        }
        domain::kill(k, i, Reason::Fault(FaultKind::PageFault, cr2, rip, error));
        return;
    }
    domain::kill(k, i, Reason::Fault(fault_kind(vector), 0, rip, error));
}

/// The use bits of frame `f`, bound at `vpn` in `d`: those harvested into
/// the software TLB and those in the live page tables, cleared if `take`.
fn frame_used(k: &mut Kernel, d: DomainId, vpn: u64, take: bool) -> u8 {
    let mut used = k.stlb.used_mut(d, vpn).map_or(0, |u| {
        let v = *u;
        if take {
            *u = 0;
        }
        v
    });
    if let Some(space) = k.domain_mut(d.index).and_then(|x| x.space.as_mut()) {
        used |= space.used(vpn * PAGE_SIZE, take).unwrap_or(0);
    }
    used
}

/// One record of `Frames`: frame `f` of `me`, answered in place.
fn frame_record(k: &mut Kernel, me: DomainId, f: u64, flags: u64) -> [u8; FRAME_RECORD_LEN] {
    if let Err(e) = k.owners.may_bind(me, f) {
        return FrameRecord::encode_answer(u64::from(e.code()) << 8, 0, 0);
    }
    let Some((d, vpn)) = k.stlb.frame_binding(f) else {
        return FrameRecord::encode_answer(0, 0, 0);
    };
    let used = frame_used(k, d, vpn, false);
    let dirty = used & USED_DIRTY != 0;
    let mut status = STATUS_BOUND;
    if used & USED_ACCESSED != 0 {
        status |= STATUS_ACCESSED;
    }
    if dirty {
        status |= STATUS_DIRTY;
    }
    let unbind = flags & FRAMES_UNBIND != 0 && !(dirty && flags & FRAMES_IF_CLEAN != 0);
    if unbind {
        if k.stlb.remove(d, vpn).is_ok() {
            if let Some(space) = k.domain_mut(d.index).and_then(|x| x.space.as_mut()) {
                // Flushes the TLB entry: no stale translation survives.
                let _ = space.unmap(vpn * PAGE_SIZE);
            }
            status |= STATUS_UNBOUND;
        }
    } else if flags & FRAMES_TAKE != 0 && !(dirty && flags & FRAMES_UNBIND != 0) {
        // A refused unbind keeps its bits: the page is still dirty.
        frame_used(k, d, vpn, true);
    }
    FrameRecord::encode_answer(status, d.to_raw(), vpn * PAGE_SIZE)
}

/// `domain_ctl(NONE, Frames, n, flags)`: the first `n` records of the
/// caller's IPC payload, each about a frame it owns.
pub fn frames(k: &mut Kernel, i: u32, n: u64, flags: u64) -> Result<Option<u64>, SysError> {
    if n > FRAMES_MAX as u64 || flags & !(FRAMES_TAKE | FRAMES_UNBIND | FRAMES_IF_CLEAN) != 0 {
        return Err(SysError::BadArgument);
    }
    let d = k.domain_mut(i).ok_or(SysError::BadHandle)?;
    let me = d.id;
    let buf = d.ipc_frame()? + HEADER_LEN as u64;
    for r in 0..n {
        let at = buf + r * FRAME_RECORD_LEN as u64;
        let mut w = [0u8; 8];
        read_phys(at, &mut w);
        let answer = frame_record(k, me, u64::from_le_bytes(w), flags);
        write_phys(at, &answer);
    }
    Ok(Some(n))
}

/// `domain_ctl(NONE, CopyFrame, frame, dst)`: copies the caller's frame
/// (bound anywhere) into its own writable page `dst`; returns and takes
/// the frame's use bits.
pub fn copy_frame(k: &mut Kernel, i: u32, f: u64, dst: u64) -> Result<Option<u64>, SysError> {
    let me = k.domain(i).ok_or(SysError::BadHandle)?.id;
    k.owners.may_bind(me, f)?;
    if !dst.is_multiple_of(PAGE_SIZE) {
        return Err(SysError::BadArgument);
    }
    let m = k.stlb.lookup(me, vpn(dst)).ok_or(SysError::BadPointer)?;
    if !m.rights.writable() || m.rights.uncached() {
        return Err(SysError::BadPointer);
    }
    if m.frame == f {
        return Err(SysError::BadArgument);
    }
    copy_phys(f * PAGE_SIZE, m.frame * PAGE_SIZE, PAGE_SIZE as usize);
    if let Some(u) = k.stlb.used_mut(me, vpn(dst)) {
        *u |= USED_ACCESSED | USED_DIRTY;
    }
    let used = match k.stlb.frame_binding(f) {
        Some((d, v)) => frame_used(k, d, v, true),
        None => 0,
    };
    Ok(Some(u64::from(used)))
}

/// `domain_ctl(NONE, Shrink, domain)`: the pager of a waiting domain takes
/// back its page tables and fixed pages (rebuilt when it runs again).
pub fn shrink(k: &mut Kernel, i: u32, target: u64) -> Result<Option<u64>, SysError> {
    let me = k.domain(i).ok_or(SysError::BadHandle)?;
    let (me_index, me_lineage) = (me.id.index, me.lineage);
    let t = DomainId::from_raw(target);
    let d = k.live(t).ok_or(SysError::StaleHandle)?;
    // Its pager endpoint names this slot, of this lineage (restarts keep it).
    match d.pager() {
        Some(p) if p.index == me_index && p.gen >= me_lineage => {}
        _ => return Err(SysError::NoRights),
    }
    if !matches!(d.state, State::Idle | State::Receiving | State::Stopped) {
        return Err(SysError::WouldBlock);
    }
    domain::drop_space(k, t.index);
    if let Some(d) = k.domain_mut(t.index) {
        d.drop_fixed_pages();
    }
    Ok(Some(0))
}
