//! The disk server: a virtio-blk driver in ring 3 serving extents of a
//! Serac disk (docs/disk-format.md) to other domains over `protocol::disk`.
//!
//! The manifest makes it a driver domain: `device=virtio-blk` grants the
//! PCI function (a `Device` handle after its link handles) and, right
//! after it, the function's INTx line (an `Irq` handle); `frames=N` gives
//! the DMA memory. It brings the device up through virtio-drivers 0.13
//! (`PciTransport`, `VirtIOBlk`), reads the superblock and extent table
//! with `serac-disk-core`, then serves (`serve`): who may open what is
//! `serac_disk_core::clients`, every read and write is checked and
//! translated by `serac_disk_core::check_request`, and several clients'
//! requests are in flight at once, each answered when the device's
//! interrupt says it is done.
//!
//! If the device or the table cannot be opened it still serves, answering
//! every request with the error (`Io`, or `Corrupt` for a disk that is not
//! a valid Serac disk), so clients see a typed failure, not a dead server.
//!
//! Unsafe code is confined to `mod hal` (the `Hal` of virtio-drivers, the
//! DMA window and the request buffers the device shares); the crate denies
//! it everywhere else and each other module forbids it outright.
//!
//! Two binaries share all of it: `serac-disk` (`src/main.rs`), the server,
//! and `bench-disk` (`src/bin/bench-disk.rs`), the same server with the
//! disk benchmark's measurements ([`bench`]).
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod hal;

pub mod bench;
pub mod device;
pub mod serve;

use ilwaco::println;
use ilwaco::protocol::disk::ServiceError;
use ilwaco::protocol::syscall::{DeviceOp, DomainCounter, DomainOp};
use ilwaco::protocol::{Handle, SysError};
use ilwaco::sys;
use serac_disk_core::{Error as VolError, Volume};

use device::{Irq, SyncDisk, FALLBACK_US};
use hal::blk::Blk;
use serve::Backend;

/// Handle slots searched for the `Device` handle (links come first).
const MAX_LINKS: u32 = 16;
/// Generations tried per slot. A restarted domain's table starts above
/// every generation its previous table reached, so after a restart the
/// handles are not at generation 1 and must be found.
const MAX_GEN: u32 = 1024;

/// The handle at `slot` that `try_it` accepts, whatever its generation:
/// `StaleHandle` means another generation, anything else but success
/// means the slot holds no such handle.
fn find(slot: u32, try_it: impl Fn(Handle) -> Result<u64, SysError>) -> Option<Handle> {
    for gen in 1..=MAX_GEN {
        let h = Handle::new(slot, gen);
        match try_it(h) {
            Ok(_) => return Some(h),
            Err(SysError::StaleHandle) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Finds the device, brings it up and reads the table: the server's
/// incarnation (its generation, the epoch its handles carry) and what it
/// serves from (or the error every request gets).
pub fn start() -> (u32, Result<Backend, ServiceError>) {
    let epoch = sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    )
    .map_or(0, |id| (id >> 32) as u32);
    let dev = (1..=MAX_LINKS).find_map(|i| find(i, |h| sys::device(h, DeviceOp::Info, 0, 0)));
    let backend = match dev {
        Some(d) => open(d),
        None => {
            println!("disk: no Device handle: the manifest gave no device=; every request fails");
            Err(ServiceError::Io)
        }
    };
    (epoch, backend)
}

/// Brings up the device and reads the table.
fn open(dev: Handle) -> Result<Backend, ServiceError> {
    let mut blk = Blk::new(dev).map_err(|e| {
        println!("disk: cannot bring up the device: {e:?}; every request fails with Io");
        ServiceError::Io
    })?;
    let irq = Irq::probe(find(dev.index + 1, sys::irq_ack).unwrap_or(Handle::NONE));
    let bdf = blk.bdf();
    println!(
        "disk: virtio-blk {:02x}:{:02x}.{}, {} sectors{}",
        bdf >> 8,
        (bdf >> 3) & 0x1f,
        bdf & 7,
        blk.sectors(),
        if blk.read_only() { ", read-only" } else { "" }
    );
    if irq.is_line() {
        println!("disk: interrupts through the bound INTx line");
    } else {
        println!(
            "disk: no Irq handle after the Device handle: FALLBACK, waiting for the device with {FALLBACK_US} us deadlines"
        );
    }
    let mut corrupt_images = alloc::vec::Vec::new();
    let table = match Volume::open(SyncDisk { blk: &mut blk, irq }) {
        Ok(mut v) => {
            let t = v.table().clone();
            // Every image's content against the CRC its entry records, once
            // at start (images are small and read-only): a rotten image is
            // refused with `Corrupt`, never served.
            for e in t.extents() {
                match v.verify_image(e) {
                    Ok(true) => {}
                    Ok(false) => {
                        println!(
                            "disk: image {} does not match its checksum: refused (Corrupt)",
                            e.name
                        );
                        corrupt_images.push(e.id);
                    }
                    Err(err) => {
                        println!(
                            "disk: image {} cannot be read ({err:?}): refused (Corrupt)",
                            e.name
                        );
                        corrupt_images.push(e.id);
                    }
                }
            }
            println!(
                "disk: table copy {} current, sequence {}, {} extent(s), {} free blocks",
                v.current_slot(),
                t.seq(),
                t.extents().len(),
                t.free_blocks()
            );
            t
        }
        Err(e) => {
            let err = match e {
                VolError::Io(_) => ServiceError::Io,
                _ => ServiceError::Corrupt,
            };
            println!("disk: cannot open the disk: {e:?}; every request fails with {err:?}");
            return Err(err);
        }
    };
    Ok(Backend {
        blk,
        irq,
        table,
        corrupt_images,
    })
}
