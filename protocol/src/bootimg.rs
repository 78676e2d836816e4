//! The first domain's image format ("boot image"): page runs, digested from
//! an ELF at build time, so the kernel never parses ELF (docs/abi.md
//! section 10).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header : magic "SERACBIM" (8) | version u32 | run_count u32 | entry u64
//! run[i] : vaddr u64 | pages u32 | rights u32 | offset u64 | len u64
//! data   : each run's first `len` bytes at `offset`; the rest of its pages is zero
//! ```
//!
//! Rules, all checked by [`BootImage::parse`]: at most [`MAX_RUNS`] runs,
//! sorted by address and disjoint (no two share a page); each run page
//! aligned, at least one page, inside `USER_START..USER_END`; rights `R`
//! plus `W` or `X`, never both; `len` at most the run's bytes and its data
//! inside the image, after the run table; the entry point inside an
//! executable run. Parsing never panics.

use crate::layout::{is_page_aligned, PAGE_SIZE, USER_END, USER_START};
use crate::PageRights;

/// A first-domain program `NAME` is packed in the boot archive as `NAME.boot`.
pub const ARCHIVE_SUFFIX: &str = ".boot";
/// First 8 bytes of a boot image.
pub const MAGIC: [u8; 8] = *b"SERACBIM";
/// The format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;
/// Length of one run in the table.
pub const RUN_LEN: usize = 32;
/// Most runs in one image, so a corrupt count cannot make the kernel loop.
pub const MAX_RUNS: usize = 64;

/// Why a boot image was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootImageError {
    /// Shorter than its header or run table.
    Truncated,
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// A version other than [`VERSION`].
    BadVersion,
    /// No runs, or more than [`MAX_RUNS`].
    BadRunCount,
    /// A run's address is not page aligned, or it has no pages.
    Misaligned,
    /// A run reaches outside `USER_START..USER_END`.
    OutOfRange,
    /// Unknown rights bits, no `R`, or `W` and `X` together.
    BadRights,
    /// A run starts before the previous one ends (they would share a page).
    Overlap,
    /// A run's data is longer than the run or lies outside the image.
    BadData,
    /// The entry point is not in an executable run.
    BadEntry,
}

/// One run of pages with the same rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Address of the first page.
    pub vaddr: u64,
    /// Number of pages.
    pub pages: u32,
    /// Rights of every page.
    pub rights: PageRights,
    /// Where its bytes start in the image.
    pub offset: u64,
    /// How many bytes the image holds for it (the rest is zero).
    pub len: u64,
}

impl Run {
    /// The run as it is written in the table.
    pub fn encode(&self) -> [u8; RUN_LEN] {
        let mut b = [0u8; RUN_LEN];
        b[0..8].copy_from_slice(&self.vaddr.to_le_bytes());
        b[8..12].copy_from_slice(&self.pages.to_le_bytes());
        b[12..16].copy_from_slice(&u32::from(self.rights.bits()).to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// One past its last byte; `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.vaddr
            .checked_add(u64::from(self.pages).checked_mul(PAGE_SIZE)?)
    }

    /// Checks the run on its own (everything but order, data bounds and entry).
    pub fn check(&self) -> Result<(), BootImageError> {
        if !is_page_aligned(self.vaddr) || self.pages == 0 {
            return Err(BootImageError::Misaligned);
        }
        let end = self.end().ok_or(BootImageError::OutOfRange)?;
        if self.vaddr < USER_START || end > USER_END {
            return Err(BootImageError::OutOfRange);
        }
        if self.rights.writable() && self.rights.executable() {
            return Err(BootImageError::BadRights);
        }
        if self.len > end - self.vaddr {
            return Err(BootImageError::BadData);
        }
        Ok(())
    }
}

/// The header as it is written.
pub fn encode_header(entry: u64, runs: u32) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&runs.to_le_bytes());
    b[16..24].copy_from_slice(&entry.to_le_bytes());
    b
}

/// A validated boot image.
#[derive(Debug, Clone, Copy)]
pub struct BootImage<'a> {
    bytes: &'a [u8],
    count: usize,
    /// The entry point.
    pub entry: u64,
}

fn le32(b: &[u8], at: usize) -> Result<u32, BootImageError> {
    let s = b.get(at..at + 4).ok_or(BootImageError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> Result<u64, BootImageError> {
    let s = b.get(at..at + 8).ok_or(BootImageError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

impl<'a> BootImage<'a> {
    /// Checks the header and every run (see the module docs).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BootImageError> {
        let magic = bytes.get(..8).ok_or(BootImageError::Truncated)?;
        if magic != MAGIC {
            return Err(BootImageError::BadMagic);
        }
        if le32(bytes, 8)? != VERSION {
            return Err(BootImageError::BadVersion);
        }
        let count = le32(bytes, 12)? as usize;
        if count == 0 || count > MAX_RUNS {
            return Err(BootImageError::BadRunCount);
        }
        let entry = le64(bytes, 16)?;
        let table_end = HEADER_LEN + count * RUN_LEN; // small: count <= MAX_RUNS
        if bytes.len() < table_end {
            return Err(BootImageError::Truncated);
        }
        let img = BootImage {
            bytes,
            count,
            entry,
        };
        let mut prev_end = USER_START;
        let mut entry_ok = false;
        for i in 0..count {
            let r = img.decode(i)?;
            r.check()?;
            if r.vaddr < prev_end {
                return Err(BootImageError::Overlap);
            }
            let data_end = r.offset.checked_add(r.len).ok_or(BootImageError::BadData)?;
            if r.len > 0 && (r.offset < table_end as u64 || data_end > bytes.len() as u64) {
                return Err(BootImageError::BadData);
            }
            // `check` proved the end exists.
            prev_end = r.end().ok_or(BootImageError::OutOfRange)?;
            entry_ok |= r.rights.executable() && (r.vaddr..prev_end).contains(&entry);
        }
        if !entry_ok {
            return Err(BootImageError::BadEntry);
        }
        Ok(img)
    }

    fn decode(&self, i: usize) -> Result<Run, BootImageError> {
        let at = HEADER_LEN + i * RUN_LEN;
        let rights = PageRights::from_bits(u64::from(le32(self.bytes, at + 12)?))
            .map_err(|_| BootImageError::BadRights)?;
        Ok(Run {
            vaddr: le64(self.bytes, at)?,
            pages: le32(self.bytes, at + 8)?,
            rights,
            offset: le64(self.bytes, at + 16)?,
            len: le64(self.bytes, at + 24)?,
        })
    }

    /// The runs, in address order (all validated by `parse`).
    pub fn runs(&self) -> impl Iterator<Item = Run> + '_ {
        (0..self.count).filter_map(move |i| self.decode(i).ok())
    }

    /// Pages over all runs.
    pub fn page_count(&self) -> u64 {
        self.runs().map(|r| u64::from(r.pages)).sum()
    }

    /// The image bytes of page `k` of `run` (shorter than a page, or empty,
    /// where the page ends in or lies in its zero tail).
    pub fn page_data(&self, run: &Run, k: u32) -> &'a [u8] {
        let start = u64::from(k).saturating_mul(PAGE_SIZE);
        let end = start.saturating_add(PAGE_SIZE).min(run.len);
        if start >= end {
            return &[];
        }
        let (Some(from), Some(to)) = (run.offset.checked_add(start), run.offset.checked_add(end))
        else {
            return &[];
        };
        match (usize::try_from(from), usize::try_from(to)) {
            (Ok(from), Ok(to)) => self.bytes.get(from..to).unwrap_or(&[]),
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const RX: PageRights = PageRights::READ_EXEC;
    const RW: PageRights = PageRights::READ_WRITE;

    /// An image of `runs` (offsets assigned in order) with `data` per run.
    fn image(entry: u64, runs: &[(u64, u32, PageRights, &[u8])]) -> Vec<u8> {
        let mut b = encode_header(entry, runs.len() as u32).to_vec();
        let mut off = (HEADER_LEN + runs.len() * RUN_LEN) as u64;
        for &(vaddr, pages, rights, data) in runs {
            let r = Run {
                vaddr,
                pages,
                rights,
                offset: off,
                len: data.len() as u64,
            };
            b.extend_from_slice(&r.encode());
            off += data.len() as u64;
        }
        for &(_, _, _, data) in runs {
            b.extend_from_slice(data);
        }
        b
    }

    #[test]
    fn reads_runs_and_pages() {
        let text = [0x90u8; 5000];
        let img = image(
            0x40_0000,
            &[(0x40_0000, 2, RX, &text), (0x40_3000, 3, RW, &[7u8; 10])],
        );
        let b = BootImage::parse(&img).unwrap();
        assert_eq!(b.entry, 0x40_0000);
        assert_eq!(b.page_count(), 5);
        let runs: Vec<Run> = b.runs().collect();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[1].vaddr, runs[1].pages, runs[1].rights),
            (0x40_3000, 3, RW)
        );
        assert_eq!(b.page_data(&runs[0], 0), &text[..4096]);
        assert_eq!(b.page_data(&runs[0], 1), &text[4096..]);
        assert_eq!(b.page_data(&runs[1], 0), &[7u8; 10]);
        assert!(b.page_data(&runs[1], 1).is_empty());
        assert!(b.page_data(&runs[1], u32::MAX).is_empty());
    }

    #[test]
    fn rejects_bad_images() {
        let e = |img: &[u8]| BootImage::parse(img).unwrap_err();
        let ok = image(0x40_0000, &[(0x40_0000, 1, RX, &[1])]);
        assert!(BootImage::parse(&ok).is_ok());
        assert_eq!(e(&ok[..5]), BootImageError::Truncated);
        assert_eq!(e(&ok[..HEADER_LEN + 4]), BootImageError::Truncated);
        let mut bad = ok.clone();
        bad[0] = b'X';
        assert_eq!(e(&bad), BootImageError::BadMagic);
        let mut bad = ok.clone();
        bad[8] = 2;
        assert_eq!(e(&bad), BootImageError::BadVersion);
        assert_eq!(e(&image(0x40_0000, &[])), BootImageError::BadRunCount);
        let mut bad = ok.clone();
        bad[12..16].copy_from_slice(&(MAX_RUNS as u32 + 1).to_le_bytes());
        assert_eq!(e(&bad), BootImageError::BadRunCount);
        assert_eq!(
            e(&image(0x40_0010, &[(0x40_0010, 1, RX, &[])])),
            BootImageError::Misaligned
        );
        assert_eq!(
            e(&image(0x40_0000, &[(0x40_0000, 0, RX, &[])])),
            BootImageError::Misaligned
        );
        assert_eq!(
            e(&image(0x1000, &[(0x1000, 1, RX, &[])])),
            BootImageError::OutOfRange
        );
        assert_eq!(
            e(&image(0x40_0000, &[(USER_END - 0x1000, 2, RX, &[])])),
            BootImageError::OutOfRange
        );
        assert_eq!(
            e(&image(
                0x40_0000,
                &[(0xffff_ffff_ffff_f000, u32::MAX, RX, &[])]
            )),
            BootImageError::OutOfRange
        );
        let rwx = PageRights::from_bits(7).unwrap();
        assert_eq!(
            e(&image(0x40_0000, &[(0x40_0000, 1, rwx, &[])])),
            BootImageError::BadRights
        );
        let mut bad = ok.clone();
        bad[HEADER_LEN + 12] = 2; // W without R
        assert_eq!(e(&bad), BootImageError::BadRights);
        assert_eq!(
            e(&image(
                0x40_0000,
                &[(0x40_0000, 2, RX, &[]), (0x40_1000, 1, RW, &[])]
            )),
            BootImageError::Overlap
        );
        assert_eq!(
            e(&image(
                0x40_1000,
                &[(0x40_1000, 1, RX, &[]), (0x40_0000, 1, RW, &[])]
            )),
            BootImageError::Overlap
        );
        assert_eq!(
            e(&image(0x40_0000, &[(0x40_0000, 1, RX, &[0u8; 4097])])),
            BootImageError::BadData
        );
        let mut bad = ok.clone();
        bad.pop();
        assert_eq!(e(&bad), BootImageError::BadData);
        let mut bad = ok.clone();
        bad[HEADER_LEN + 16..HEADER_LEN + 24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(e(&bad), BootImageError::BadData);
        let mut bad = ok.clone();
        bad[HEADER_LEN + 16..HEADER_LEN + 24].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(e(&bad), BootImageError::BadData);
        assert_eq!(
            e(&image(
                0x40_1000,
                &[(0x40_0000, 1, RX, &[]), (0x40_1000, 1, RW, &[])]
            )),
            BootImageError::BadEntry
        );
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            fix in proptest::bool::ANY,
        ) {
            // Half the time, a valid header so the run checks are reached.
            if fix && bytes.len() >= HEADER_LEN {
                let n = (bytes[12] as u32 % 4) + 1;
                bytes[..16].copy_from_slice(&encode_header(0, n)[..16]);
            }
            if let Ok(b) = BootImage::parse(&bytes) {
                let mut prev = 0;
                for r in b.runs() {
                    proptest::prop_assert!(r.vaddr >= prev);
                    prev = r.end().unwrap();
                    for k in 0..r.pages.min(4) {
                        proptest::prop_assert!(b.page_data(&r, k).len() <= PAGE_SIZE as usize);
                    }
                }
            }
        }
    }
}
