//! What the disk server's test guests share (`src/bin/`; the QEMU tests
//! that run them are `disk_*` in `tests/src/spec.rs`).
//!
//! Each guest's manifest entry gives it `endpoint=disk` (handle 1) and,
//! for the pair that must take turns, `notify=` the other (handle 2). The
//! extents they use are made by the test's disk image step: a private
//! disk per guest, named as the guest, and the image `www`, whose bytes
//! are [`image_byte`] (the test harness writes the same).
#![no_std]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::ClientError;
use ilwaco::protocol::disk::{DiskClient, BLOCK_SIZE};
use ilwaco::protocol::upcall::NOTIFY;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

/// The disk server's endpoint.
pub const DISK: Handle = Handle::new(1, 1);
/// The other guest's notification, where there is one.
pub const PEER: Handle = Handle::new(2, 1);

/// The image the tests put on the disk: this line, repeated.
pub const IMAGE_LINE: &[u8] = b"serac disk image www\n";
/// Its length: more than a block, so it spans two.
pub const IMAGE_LEN: usize = 6000;

/// Byte `i` of the image `www`.
pub fn image_byte(i: usize) -> u8 {
    IMAGE_LINE[i % IMAGE_LINE.len()]
}

/// A client of the disk server.
pub fn disk() -> DiskClient<Endpoint> {
    DiskClient::new(Endpoint(DISK))
}

/// What a guest writes to block `b` of its disk: different in every
/// block and every byte position, never all zeros.
pub fn pattern(b: u64, out: &mut [u8; BLOCK_SIZE]) {
    for (i, x) in out.iter_mut().enumerate() {
        *x = (b as usize * 37 + i * 7 + 1) as u8 ^ (i >> 8) as u8;
    }
}

/// Prints the verdict line of check `name` and says whether it passed.
pub fn report(name: &str, r: Result<(), &'static str>) -> bool {
    match r {
        Ok(()) => println!("TEST {name} ... ok"),
        Err(why) => println!("TEST {name} ... FAILED: {why}"),
    }
    r.is_ok()
}

/// `Err(what)` unless `r` is exactly the service error `want`.
pub fn refused<T>(
    r: Result<T, ClientError>,
    want: ilwaco::protocol::disk::ServiceError,
    what: &'static str,
) -> Result<(), &'static str> {
    match r {
        Err(ClientError::Service(e)) if e == want => Ok(()),
        Err(e) => {
            println!("diskclient: {what}: got {e:?}, wanted {want:?}");
            Err(what)
        }
        Ok(_) => {
            println!("diskclient: {what}: succeeded, wanted {want:?}");
            Err(what)
        }
    }
}

/// Waits up to `ms` for a notification; whether one came.
pub fn wait_notify(ms: u64) -> bool {
    let Some(hz) = time::tsc_hz() else {
        return false;
    };
    let until = time::tsc().saturating_add(hz / 1000 * ms);
    while time::tsc() < until {
        if sys::idle(until).is_ok_and(|m| m & NOTIFY != 0) {
            return true;
        }
    }
    false
}
