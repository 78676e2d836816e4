//! On a disk whose table copies both rotted (`disk_corrupt`): every
//! request is answered with `Corrupt`, again and again, by a server that
//! stays up.
#![no_std]
#![no_main]

use ilwaco::protocol::disk::{DiskHandle, ExtentKind, ServiceError};
use serac_diskclient::{disk, refused, report};

ilwaco::entry!(main);

fn check() -> Result<(), &'static str> {
    let mut c = disk();
    for _ in 0..3 {
        refused(
            c.open(ExtentKind::Disk, "diskclient"),
            ServiceError::Corrupt,
            "opening our disk",
        )?;
        refused(
            c.open(ExtentKind::Image, "www"),
            ServiceError::Corrupt,
            "opening an image",
        )?;
        refused(
            c.info(DiskHandle::default()),
            ServiceError::Corrupt,
            "a request on a handle",
        )?;
    }
    Ok(())
}

fn main() -> i32 {
    i32::from(!report("disk_corrupt", check()))
}
