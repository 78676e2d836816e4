//! Devices for driver domains: the PCI functions the kernel found, and the
//! narrow powers a `Device` handle gives its holder.
//!
//! The kernel hands out nothing by itself: the supervisor grants a function
//! to one domain (`domain_ctl(GrantDevice)`, root handle only). The holder
//! may read and write that function's configuration space through the
//! kernel, except the BARs and the expansion ROM (which decide where the
//! device decodes, so they stay as firmware set them), and map the
//! function's memory BARs uncached into itself. It gets the device's
//! interrupt with `BindIrq` (the supervisor's) and owns DMA frames like any
//! frames (`frames=`); with no IOMMU it can aim DMA anywhere, which is why
//! granting a device is a manifest decision (`docs/CAVEATS.md`).

use alloc::vec::Vec;
use log::warn;
use serac_kcore::handles::HandleEntry;
use serac_kcore::stlb::Mapping;
use serac_protocol::layout::{vpn, PAGE_SIZE, USER_SPACE};
use serac_protocol::syscall::{DeviceOp, PciInfo};
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, PageRights, SysError};

use super::Kernel;
use crate::arch::pci::{self, Function};

/// The PCI functions and who holds each.
#[derive(Debug, Default)]
pub struct Devices {
    funcs: Vec<Function>,
    holder: Vec<Option<DomainId>>,
}

impl Devices {
    /// The functions found at boot. A memory BAR that overlaps usable RAM
    /// (`ram`: frame ranges) is dropped: mapping it would be mapping RAM.
    pub fn new(mut funcs: Vec<Function>, ram: &[(u64, u64)]) -> Self {
        for f in &mut funcs {
            for bar in f.bars.iter_mut().filter(|b| !b.io && b.size != 0) {
                let (first, end) = (
                    bar.base / PAGE_SIZE,
                    (bar.base + bar.size).div_ceil(PAGE_SIZE),
                );
                if ram.iter().any(|&(s, e)| first < e && s < end) {
                    warn!(
                        "pci: a BAR of {:04x} at {:#x} overlaps RAM; dropped",
                        f.bdf.packed(),
                        bar.base
                    );
                    *bar = pci::Bar::default();
                }
            }
        }
        let holder = alloc::vec![None; funcs.len()];
        Devices { funcs, holder }
    }

    fn info(f: &Function) -> u64 {
        PciInfo {
            bdf: f.bdf.packed(),
            vendor: f.vendor,
            device: f.device,
            class: f.class[0],
            subclass: f.class[1],
        }
        .to_raw()
    }

    /// Forgets every grant to `d` (it ended) and turns off bus mastering
    /// of those functions: a request the device was still serving must not
    /// land by DMA in frames that now belong to someone else.
    pub fn release(&mut self, d: DomainId) {
        for (h, f) in self.holder.iter_mut().zip(&self.funcs) {
            if h.is_some_and(|x| x.index == d.index) {
                *h = None;
                let cmd = pci::read(f.bdf, 4, 2);
                pci::write(f.bdf, 4, 2, cmd & !0x4);
            }
        }
    }
}

/// `domain_ctl(PciFunction, index, word)`: word 0 the function packed as
/// `PciInfo`, word 1 its interrupt pin and the line firmware routed it to
/// (`pin | line << 8`), which the supervisor needs to bind its INTx.
pub fn function_info(k: &Kernel, index: u64, word: u64) -> Result<u64, SysError> {
    let i = usize::try_from(index).map_err(|_| SysError::BadArgument)?;
    let f = k.devices.funcs.get(i).ok_or(SysError::BadArgument)?;
    match word {
        0 => Ok(Devices::info(f)),
        1 => Ok(u64::from(f.int_pin) | u64::from(f.int_line) << 8),
        _ => Err(SysError::BadArgument),
    }
}

/// `domain_ctl(GrantDevice, bdf, to)`: a `Device` handle in `to`'s table.
pub fn grant(k: &mut Kernel, bdf: u64, to: DomainId) -> Result<u64, SysError> {
    let j = k
        .devices
        .funcs
        .iter()
        .position(|f| u64::from(f.bdf.packed()) == bdf)
        .ok_or(SysError::BadArgument)?;
    if let Some(h) = k.devices.holder[j] {
        if k.live(h).is_some() && h != to {
            return Err(SysError::AlreadyMapped);
        }
    }
    let d = k.domain_mut(to.index).ok_or(SysError::BadHandle)?;
    let h = d.handles.allocate(HandleEntry {
        kind: HandleKind::Device,
        rights: HandleRights::default(),
        object: j as u64,
        badge: 0,
    })?;
    k.devices.holder[j] = Some(to);
    Ok(h.to_raw())
}

/// Whether a configuration write at `off..off + width` touches registers
/// the kernel keeps: the BARs and the ROM of a type-0 header, everything
/// from 0x10 to 0x40 of a bridge (its windows and bus numbers).
fn protected(f: &Function, off: u16, width: u16) -> bool {
    let header = pci::read(f.bdf, 0x0e, 1) & 0x7f;
    let hit = |a: u16, b: u16| off < b && a < off + width;
    if header == 0 {
        hit(0x10, 0x28) || hit(0x30, 0x34)
    } else {
        hit(0x10, 0x40)
    }
}

/// The `device(handle, op, a, b)` syscall.
pub fn call(
    k: &mut Kernel,
    i: u32,
    h: Handle,
    op: u64,
    a: u64,
    b: u64,
) -> Result<Option<u64>, SysError> {
    let op = DeviceOp::try_from(op)?;
    let d = k.domain(i).ok_or(SysError::BadHandle)?;
    let id = d.id;
    let e = d
        .handles
        .lookup_as(h, HandleKind::Device, HandleRights::default())?;
    let j = usize::try_from(e.object).map_err(|_| SysError::BadHandle)?;
    if k.devices.holder.get(j).copied().flatten() != Some(id) {
        return Err(SysError::StaleHandle);
    }
    let f = *k.devices.funcs.get(j).ok_or(SysError::BadHandle)?;
    let sized = |off: u64, width: u64| -> Result<(u16, u8), SysError> {
        let w = u8::try_from(width).map_err(|_| SysError::BadArgument)?;
        let off = u16::try_from(off).map_err(|_| SysError::BadArgument)?;
        let ok = matches!(w, 1 | 2 | 4) && off % u16::from(w) == 0;
        if !ok || u32::from(off) + u32::from(w) > u32::from(pci::config_len()) {
            return Err(SysError::BadArgument);
        }
        Ok((off, w))
    };
    match op {
        DeviceOp::Info => Ok(Some(Devices::info(&f))),
        DeviceOp::ConfigRead => {
            let (off, w) = sized(a, b)?;
            Ok(Some(u64::from(pci::read(f.bdf, off, w))))
        }
        DeviceOp::ConfigWrite => {
            let (off, w) = sized(a & 0xffff, a >> 16)?;
            if protected(&f, off, u16::from(w)) {
                return Err(SysError::NoRights);
            }
            let v = u32::try_from(b & (u64::MAX >> (64 - 8 * u32::from(w))))
                .map_err(|_| SysError::BadArgument)?;
            pci::write(f.bdf, off, w, v);
            Ok(Some(0))
        }
        DeviceOp::BarInfo => {
            let bar = f
                .bars
                .get(usize::try_from(a).map_err(|_| SysError::BadArgument)?)
                .ok_or(SysError::BadArgument)?;
            Ok(Some(bar.size | u64::from(bar.io && bar.size != 0)))
        }
        DeviceOp::MapBar => {
            let bar = *f
                .bars
                .get(usize::try_from(a).map_err(|_| SysError::BadArgument)?)
                .ok_or(SysError::BadArgument)?;
            if bar.io || bar.size == 0 || !bar.base.is_multiple_of(PAGE_SIZE) {
                return Err(SysError::BadArgument);
            }
            let pages = bar.size.div_ceil(PAGE_SIZE);
            let end = b
                .checked_add(pages * PAGE_SIZE)
                .ok_or(SysError::BadPointer)?;
            if !b.is_multiple_of(PAGE_SIZE) {
                return Err(SysError::BadArgument);
            }
            if !USER_SPACE.contains(&b) || end > USER_SPACE.end {
                return Err(SysError::BadPointer);
            }
            map_bar(k, id, b, bar.base / PAGE_SIZE, pages)?;
            Ok(Some(0))
        }
    }
}

/// Binds `pages` device frames from `frame` at `va` in domain `id`, all
/// or none.
fn map_bar(k: &mut Kernel, id: DomainId, va: u64, frame: u64, pages: u64) -> Result<(), SysError> {
    for p in 0..pages {
        let m = Mapping {
            domain: id,
            vpn: vpn(va) + p,
            frame: frame + p,
            rights: PageRights::DEVICE,
            used: 0,
        };
        let r = if k.stlb.lookup(id, m.vpn).is_some() {
            Err(SysError::AlreadyMapped)
        } else if k.stlb.frame_binding(m.frame).is_some() {
            Err(SysError::FrameInUse)
        } else {
            k.stlb.insert(m)
        };
        if let Err(e) = r {
            for q in 0..p {
                let _ = k.stlb.remove(id, vpn(va) + q);
            }
            return Err(e);
        }
    }
    // Page tables fill from the software TLB on first touch.
    Ok(())
}
