//! Checking a client's request against its extent, and translating it to
//! device blocks. Pure: the server looks the handle up, then asks here.
//!
//! Offsets a client names are relative to its extent; an accepted request
//! always lands inside `extent.start .. extent.end()` on the device, so no
//! client can reach the metadata or another extent.

use core::ops::Range;

use serac_protocol::client::ServiceError;
use serac_protocol::disk::{Request, MAX_IO, SECTOR_SIZE};

use crate::extent::Extent;
use crate::layout::BLOCK;

/// Most blocks one device request the server builds may span.
pub const MAX_REQUEST_BLOCKS: u64 = 64;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// Outside the extent, or past the end of the block.
    OutOfRange,
    /// A write to an image.
    ReadOnly,
    /// Not whole sectors, or empty.
    Misaligned,
    /// Over the bound of one request.
    TooLarge,
}

impl From<IoError> for ServiceError {
    fn from(e: IoError) -> ServiceError {
        match e {
            IoError::OutOfRange => ServiceError::OutOfRange,
            IoError::ReadOnly => ServiceError::ReadOnly,
            IoError::Misaligned => ServiceError::Misaligned,
            IoError::TooLarge => ServiceError::TooLarge,
        }
    }
}

/// Part of one device block: what a `Read` or `Write` message moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The absolute device block.
    pub block: u64,
    /// Byte offset in it (whole sectors).
    pub offset: usize,
    /// Bytes (whole sectors, 1 to `MAX_IO`).
    pub len: usize,
}

impl Piece {
    /// First device sector.
    pub const fn sector(&self) -> u64 {
        self.block * (BLOCK / SECTOR_SIZE) as u64 + (self.offset / SECTOR_SIZE) as u64
    }

    /// Sectors it spans.
    pub const fn sectors(&self) -> u64 {
        (self.len / SECTOR_SIZE) as u64
    }
}

/// A request, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Read this piece.
    Read(Piece),
    /// Write this piece (the data is the request's).
    Write(Piece),
    /// Flush the device.
    Flush,
    /// Not a data request (`Open`, `Info`, `Close`): nothing to check here.
    Other,
}

/// Blocks `block .. block + count` of `extent`, for a write if `write`, as
/// device blocks. Order of checks: read-only, empty, size, range.
pub fn check_blocks(
    extent: &Extent,
    write: bool,
    block: u64,
    count: u64,
) -> Result<Range<u64>, IoError> {
    if write && extent.read_only() {
        return Err(IoError::ReadOnly);
    }
    if count == 0 {
        return Err(IoError::Misaligned);
    }
    if count > MAX_REQUEST_BLOCKS {
        return Err(IoError::TooLarge);
    }
    let end = block.checked_add(count).ok_or(IoError::OutOfRange)?;
    if end > extent.blocks {
        return Err(IoError::OutOfRange);
    }
    let start = extent.start.checked_add(block).ok_or(IoError::OutOfRange)?;
    let stop = extent.start.checked_add(end).ok_or(IoError::OutOfRange)?;
    Ok(start..stop)
}

/// `len` bytes at `offset` of `block` of `extent`, for a write if `write`.
pub fn check_piece(
    extent: &Extent,
    write: bool,
    block: u64,
    offset: u16,
    len: usize,
) -> Result<Piece, IoError> {
    if write && extent.read_only() {
        return Err(IoError::ReadOnly);
    }
    let offset = usize::from(offset);
    if len == 0 || !len.is_multiple_of(SECTOR_SIZE) || !offset.is_multiple_of(SECTOR_SIZE) {
        return Err(IoError::Misaligned);
    }
    if len > MAX_IO {
        return Err(IoError::TooLarge);
    }
    if offset + len > BLOCK {
        return Err(IoError::OutOfRange);
    }
    let range = check_blocks(extent, write, block, 1)?;
    Ok(Piece {
        block: range.start,
        offset,
        len,
    })
}

/// Checks a decoded protocol request (its data held or borrowed) against
/// the extent its handle names.
pub fn check_request<D: AsRef<[u8]>>(
    extent: &Extent,
    req: &Request<D>,
) -> Result<Checked, IoError> {
    Ok(match req {
        Request::Read {
            block, offset, len, ..
        } => Checked::Read(check_piece(
            extent,
            false,
            *block,
            *offset,
            usize::from(*len),
        )?),
        Request::Write {
            block,
            offset,
            data,
            ..
        } => Checked::Write(check_piece(
            extent,
            true,
            *block,
            *offset,
            data.as_ref().len(),
        )?),
        Request::Flush { .. } => Checked::Flush,
        Request::Open { .. }
        | Request::Info { .. }
        | Request::Close { .. }
        | Request::Name { .. }
        | Request::NameCreator { .. }
        | Request::CreateImage { .. }
        | Request::CommitImage { .. }
        | Request::ListImages { .. } => Checked::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::{Content, Kind, Name};
    use proptest::prelude::*;
    use serac_protocol::disk::{Data, DiskHandle};

    fn ext(kind: Kind, start: u64, blocks: u64) -> Extent {
        Extent {
            id: 1,
            kind,
            name: Name::new("httpd").unwrap(),
            start,
            blocks,
            content: (kind == Kind::Image).then_some(Content { len: 0, crc: 0 }),
        }
    }

    #[test]
    fn pieces() {
        let e = ext(Kind::Disk, 100, 4);
        assert_eq!(
            check_piece(&e, true, 3, 2048, 2048),
            Ok(Piece {
                block: 103,
                offset: 2048,
                len: 2048
            })
        );
        assert_eq!(check_piece(&e, false, 4, 0, 512), Err(IoError::OutOfRange));
        assert_eq!(
            check_piece(&e, false, 0, 3584, 1024),
            Err(IoError::OutOfRange)
        );
        assert_eq!(
            check_piece(&e, false, 0, 100, 512),
            Err(IoError::Misaligned)
        );
        assert_eq!(check_piece(&e, false, 0, 0, 500), Err(IoError::Misaligned));
        assert_eq!(check_piece(&e, false, 0, 0, 0), Err(IoError::Misaligned));
        assert_eq!(check_piece(&e, false, 0, 0, 2560), Err(IoError::TooLarge));
        assert_eq!(
            check_piece(&e, false, u64::MAX, 0, 512),
            Err(IoError::OutOfRange)
        );
        let img = ext(Kind::Image, 100, 4);
        assert_eq!(check_piece(&img, true, 0, 0, 512), Err(IoError::ReadOnly));
        assert!(check_piece(&img, false, 0, 0, 512).is_ok());
        let p = check_piece(&e, false, 1, 1024, 1024).unwrap();
        assert_eq!((p.sector(), p.sectors()), (101 * 8 + 2, 2));
    }

    #[test]
    fn requests() {
        let h = DiskHandle::default();
        let img = ext(Kind::Image, 10, 2);
        let w = Request::Write {
            handle: h,
            block: 0,
            offset: 0,
            data: Data::from_slice(&[0; 512]).unwrap(),
        };
        assert_eq!(check_request(&img, &w), Err(IoError::ReadOnly));
        assert_eq!(
            ServiceError::from(check_request(&img, &w).unwrap_err()),
            ServiceError::ReadOnly
        );
        assert_eq!(
            check_request(&ext(Kind::Swap, 10, 2), &w),
            Ok(Checked::Write(Piece {
                block: 10,
                offset: 0,
                len: 512
            }))
        );
        assert_eq!(
            check_request(&img, &Request::<Data>::Flush { handle: h }),
            Ok(Checked::Flush)
        );
        let r = Request::<Data>::Read {
            handle: h,
            block: 2,
            offset: 0,
            len: 512,
        };
        assert_eq!(check_request(&img, &r), Err(IoError::OutOfRange));
    }

    proptest! {
        #[test]
        fn accepted_blocks_stay_inside(start in 0u64..1 << 40, blocks in 1u64..1 << 20, block in any::<u64>(), count in any::<u64>(), write in any::<bool>()) {
            let e = ext(Kind::Disk, start, blocks);
            match check_blocks(&e, write, block, count) {
                Ok(r) => {
                    prop_assert!(e.start <= r.start && r.end <= e.end());
                    prop_assert_eq!(r.end - r.start, count);
                    prop_assert!(count <= MAX_REQUEST_BLOCKS);
                }
                Err(IoError::OutOfRange) => prop_assert!(block.saturating_add(count) > blocks),
                Err(IoError::TooLarge) => prop_assert!(count > MAX_REQUEST_BLOCKS),
                Err(IoError::Misaligned) => prop_assert_eq!(count, 0),
                Err(IoError::ReadOnly) => prop_assert!(false),
            }
        }

        #[test]
        fn accepted_pieces_stay_inside(start in 0u64..1 << 40, blocks in 1u64..64, block in 0u64..70, offset in any::<u16>(), len in 0usize..5000, kind in crate::extent::tests::kind(), write in any::<bool>()) {
            let e = ext(kind, start, blocks);
            if let Ok(p) = check_piece(&e, write, block, offset, len) {
                prop_assert!(!(write && e.read_only()));
                prop_assert!(e.start <= p.block && p.block < e.end());
                prop_assert!(p.offset + p.len <= BLOCK && p.len <= MAX_IO && p.len > 0);
                prop_assert_eq!(p.offset % SECTOR_SIZE + p.len % SECTOR_SIZE, 0);
                prop_assert!(p.sector() >= e.start * 8 && p.sector() + p.sectors() <= e.end() * 8);
            }
        }
    }
}
