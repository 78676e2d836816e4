//! The disk server's main test client (domain `diskclient`, which has a
//! private disk of its own name and may read the image `www`).
//!
//! It opens its disk (claiming it) and tells `diskthief` (handle 2) so the
//! thief's attempt comes after the claim; checks that a new disk reads as
//! zeros, writes two blocks and reads them back (`disk_rw`), then provokes
//! every refusal the server has, reading its data back after each to show
//! the server carried on (`disk_errors`). It halts once the thief is done.
#![no_std]
#![no_main]

use ilwaco::ipc::{put_message, Endpoint};
use ilwaco::protocol::client::{ClientError, LABEL_DISK};
use ilwaco::protocol::disk::{
    DiskClient, DiskHandle, ExtentKind, Reply, Request, ServiceError, BLOCK_SIZE,
};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};
use serac_diskclient::{
    disk, image_byte, pattern, refused, report, wait_notify, DISK, IMAGE_LEN, PEER,
};

ilwaco::entry!(main);

/// The blocks the test writes (the first and the last of a 4-block disk).
const BLOCKS: [u64; 2] = [0, 3];

fn fresh(c: &mut DiskClient<Endpoint>, h: DiskHandle) -> Result<(), &'static str> {
    let mut b = [0xffu8; BLOCK_SIZE];
    for blk in BLOCKS {
        c.read_block(h, blk, &mut b)
            .map_err(|_| "reading a new disk failed")?;
        if b.iter().any(|x| *x != 0) {
            return Err("a new disk does not read as zeros");
        }
    }
    Ok(())
}

fn rw(c: &mut DiskClient<Endpoint>, h: DiskHandle) -> Result<(), &'static str> {
    let mut want = [0u8; BLOCK_SIZE];
    for blk in BLOCKS {
        pattern(blk, &mut want);
        c.write_block(h, blk, &want)
            .map_err(|_| "write_block failed")?;
    }
    c.flush(h).map_err(|_| "flush failed")?;
    intact(c, h)
}

/// The written blocks read back as written: after every refusal too.
fn intact(c: &mut DiskClient<Endpoint>, h: DiskHandle) -> Result<(), &'static str> {
    let (mut want, mut got) = ([0u8; BLOCK_SIZE], [0u8; BLOCK_SIZE]);
    for blk in BLOCKS {
        pattern(blk, &mut want);
        c.read_block(h, blk, &mut got)
            .map_err(|_| "read_block failed")?;
        if got != want {
            return Err("a block read back differs from what was written");
        }
    }
    Ok(())
}

/// Sends `payload` as a disk request as it is (no stub): the reply.
fn raw(payload: &[u8]) -> Result<Reply, &'static str> {
    put_message(LABEL_DISK, Handle::NONE, payload).map_err(|_| "put_message")?;
    sys::call(DISK).map_err(|_| "call failed")?;
    let mut back = [0u8; 64];
    let (_, len) = ilwaco::ipc::get_message(&mut back).map_err(|_| "reply too long")?;
    ilwaco::protocol::codec::decode(back.get(..len).unwrap_or(&[])).map_err(|_| "reply garbled")
}

fn errors(c: &mut DiskClient<Endpoint>, h: DiskHandle, blocks: u64) -> Result<(), &'static str> {
    let mut buf = [0u8; 512];
    refused(
        c.read(h, blocks, 0, &mut buf),
        ServiceError::OutOfRange,
        "a read past the extent",
    )?;
    intact(c, h)?;
    refused(
        c.write(h, u64::MAX, 0, &buf),
        ServiceError::OutOfRange,
        "a write at block 2^64-1",
    )?;
    refused(
        c.read(h, 0, 3584, &mut [0; 1024]),
        ServiceError::OutOfRange,
        "a read past the block",
    )?;
    intact(c, h)?;
    refused(
        c.read(h, 0, 100, &mut buf),
        ServiceError::Misaligned,
        "a read at offset 100",
    )?;
    refused(
        c.write(h, 0, 0, &[7; 100]),
        ServiceError::Misaligned,
        "a write of 100 bytes",
    )?;
    refused(
        c.read(h, 0, 0, &mut []),
        ServiceError::Misaligned,
        "an empty read",
    )?;
    intact(c, h)?;
    // Over a piece: the stub refuses it locally, so send it raw.
    let mut enc = [0u8; 64];
    let big = Request::<ilwaco::protocol::disk::Data>::Read {
        handle: h,
        block: 0,
        offset: 0,
        len: 4096,
    };
    let bytes = ilwaco::protocol::codec::encode(&big, &mut enc).map_err(|_| "encode")?;
    match raw(bytes)? {
        Reply::Err(ServiceError::TooLarge) => {}
        _ => return Err("a 4096-byte piece was not TooLarge"),
    }
    match raw(&[0xff, 0xff, 0xff])? {
        Reply::Err(ServiceError::BadRequest) => {}
        _ => return Err("garbage was not BadRequest"),
    }
    intact(c, h)?;
    // The image: open to all, its bytes as made, and read-only.
    let (img, info) = c
        .open(ExtentKind::Image, "www")
        .map_err(|_| "opening the image failed")?;
    if !info.read_only || info.kind != ExtentKind::Image {
        return Err("the image is not read-only");
    }
    let mut b = [0u8; BLOCK_SIZE];
    c.read_block(img, 1, &mut b)
        .map_err(|_| "reading the image failed")?;
    let tail = IMAGE_LEN - BLOCK_SIZE;
    if (0..tail).any(|i| b[i] != image_byte(BLOCK_SIZE + i)) || b[tail..].iter().any(|x| *x != 0) {
        return Err("the image's second block is not its content");
    }
    refused(
        c.write(img, 0, 0, &[0; 512]),
        ServiceError::ReadOnly,
        "a write to the image",
    )?;
    refused(
        c.write_block(img, 0, &b),
        ServiceError::ReadOnly,
        "a block write to the image",
    )?;
    intact(c, h)?;
    // Names and handles that name nothing of ours.
    refused(
        c.open(ExtentKind::Disk, "nobody"),
        ServiceError::NoSuchExtent,
        "opening a missing extent",
    )?;
    refused(
        c.open(ExtentKind::Swap, "diskclient"),
        ServiceError::NoSuchExtent,
        "opening a missing swap area",
    )?;
    let forged = DiskHandle {
        slot: h.slot + 7,
        ..h
    };
    refused(
        c.read(forged, 0, 0, &mut buf),
        ServiceError::BadHandle,
        "a forged handle",
    )?;
    let stale = DiskHandle {
        gen: h.gen + 1,
        ..h
    };
    refused(
        c.info(stale),
        ServiceError::BadHandle,
        "a handle of another generation",
    )?;
    let old = DiskHandle {
        epoch: h.epoch.wrapping_add(1),
        ..h
    };
    refused(
        c.read(old, 0, 0, &mut buf),
        ServiceError::ServerRestarted,
        "a handle of another incarnation",
    )?;
    // Close is idempotent; the claim stays ours, so we open it again.
    c.close(img).map_err(|_| "close failed")?;
    c.close(img).map_err(|_| "a second close failed")?;
    // An image's handle names the image, which every client may read:
    // closing it takes nothing away (the server keeps no state for it).
    if c.info(img).is_err() {
        return Err("a closed image handle no longer names the image");
    }
    intact(c, h)?;
    let (again, _) = c
        .open(ExtentKind::Disk, "diskclient")
        .map_err(|_| "reopening our disk failed")?;
    if again != h {
        return Err("opening an open extent gave another handle");
    }
    Ok(())
}

fn main() -> i32 {
    let mut c = disk();
    let (h, info) = match c.open(ExtentKind::Disk, "diskclient") {
        Ok(x) => x,
        Err(e) => {
            println!("diskclient: open failed: {e:?}");
            report("disk_rw", Err("cannot open our disk"));
            return 1;
        }
    };
    println!("diskclient: opened disk diskclient, {} blocks", info.blocks);
    let _ = sys::notify(PEER, 1);
    let ok = report("disk_rw", fresh(&mut c, h).and_then(|()| rw(&mut c, h)))
        & report("disk_errors", errors(&mut c, h, info.blocks));
    if let Err(ClientError::Service(e)) = c.flush(h) {
        println!("diskclient: final flush failed: {e:?}");
    }
    // The thief's verdict line comes before this domain ends the test.
    if !wait_notify(10_000) {
        println!("diskclient: diskthief never said it was done");
    }
    i32::from(!ok)
}
