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

use super::domain::{self, Reason, State};
use super::{ipc, Kernel};

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
        match k.stlb.lookup(id, vpn(cr2)) {
            Some(m) if !present && m.rights.allows(access) => {
                install(k, i, cr2 & !(PAGE_SIZE - 1), m.frame, m.rights);
                return;
            }
            Some(_) => {
                domain::kill(k, i, Reason::Fault(FaultKind::Protection, cr2, rip, error));
                return;
            }
            None => {}
        }
        let pager = k
            .domain(i)
            .and_then(|d| d.pager)
            .and_then(|p| k.live(p))
            .map(|p| p.id.index);
        if let (Some(p), false) = (pager, present) {
            if let Some(d) = k.domain_mut(i) {
                d.faults += 1;
                d.fault = (cr2, access, rip);
                d.state = State::Faulting {
                    pager: p,
                    delivered: false,
                };
            }
            k.current = None;
            ipc::enqueue_sender(k, i, p);
            ipc::try_deliver(k, p);
            return;
        }
        domain::kill(k, i, Reason::Fault(FaultKind::PageFault, cr2, rip, error));
        return;
    }
    domain::kill(k, i, Reason::Fault(fault_kind(vector), 0, rip, error));
}
