//! The vnic: the virtual Ethernet switch of `serac-vnic-core` in ring 3,
//! serving `protocol::net` to the domains the supervisor gives a port,
//! with a virtio-net uplink to the outside.
//!
//! The manifest makes it a driver domain: `device=virtio-net` grants the
//! PCI function (a `Device` handle after its link handles, then its INTx
//! line's `Irq` handle, which the server waits on with its requests) and
//! `frames=N` the DMA memory. It brings the
//! device up through virtio-drivers 0.13 (`PciTransport`, `VirtIONetRaw`),
//! then serves (`serve`). Without a device it still switches between
//! guests, with no uplink.
//!
//! Unsafe code is confined to `mod hal`; the crate denies it everywhere
//! else and `serve` forbids it outright.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod hal;
mod serve;

use ilwaco::println;
use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::sys;

ilwaco::entry!(main);

/// Handle slots searched for the `Device` handle (links come first).
const MAX_LINKS: u32 = 16;

fn main() -> i32 {
    // Handles granted at start carry the table's first generation, which
    // after a restart is above everything the old table reached (every
    // request made a reply handle there).
    let dev = (1..=MAX_LINKS)
        .map(ilwaco::rt::granted)
        .find(|&h| sys::device(h, DeviceOp::Info, 0, 0).is_ok());
    // Its INTx line: an `Irq` handle right after the `Device` handle (an
    // `irq_ack` of it, unmasked or not, leaves it ready to fire).
    let irq = dev
        .map(|d| ilwaco::rt::granted(d.index + 1))
        .filter(|&h| sys::irq_ack(h).is_ok());
    let net = match dev {
        None => {
            println!("vnic: no Device handle (no device= in the manifest): switching between guests only, no uplink");
            None
        }
        Some(d) => match hal::net::Net::new(d) {
            Ok(n) => {
                // Interrupts stay on: the server waits for them
                // (serve's module docs).
                let bdf = n.bdf();
                let m = n.mac();
                println!(
                    "vnic: virtio-net {:02x}:{:02x}.{}, uplink MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    bdf >> 8,
                    (bdf >> 3) & 0x1f,
                    bdf & 7,
                    m[0], m[1], m[2], m[3], m[4], m[5]
                );
                Some(n)
            }
            Err(e) => {
                println!("vnic: cannot bring up the device: {e:?}; no uplink");
                None
            }
        },
    };
    grow_heap();
    match serve::Server::new(net, irq) {
        Some(s) => s.run(),
        None => {
            println!("vnic: no memory for the switch's tables");
            1
        }
    }
}

/// Grows the heap with the grant's heap run: the supervisor sizes it for
/// the port tables of every port its manifest puts on this vnic, past
/// what the static heap holds.
fn grow_heap() {
    let Some(run) = ilwaco::rt::frame_grant().map(|g| g.run()) else {
        return;
    };
    let want = run.end - run.start;
    let mut grown = 0u64;
    for f in run {
        if let Err(e) = sys::grow_heap(f) {
            println!("vnic: growing the heap with frame {f:#x} failed: {e:?}");
            break;
        }
        grown += 1;
    }
    if want > 0 {
        println!(
            "vnic: heap grown by {} KiB of {} KiB given, for port tables",
            grown * 4,
            want * 4
        );
    }
}
