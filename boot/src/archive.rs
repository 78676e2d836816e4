//! Boot-archive ("SAR") writer: the inverse of `serac_protocol::bootarc`.
//!
//! The layout is defined in `serac_protocol::bootarc`; this module only
//! writes it. Each file's data starts at a multiple of [`DATA_ALIGN`] from the
//! start of the archive, so a loader that places the archive on a page
//! boundary (QEMU's initrd and GRUB's multiboot2 modules both do) can map a
//! file's pages in place instead of copying them.

use std::collections::HashSet;

use serac_protocol::bootarc::{crc32, ENTRY_LEN, HEADER_LEN, MAGIC, MAX_ENTRIES, NAME_LEN};

use crate::Error;

/// Alignment of each file's data within the archive (one 4 KiB page).
pub const DATA_ALIGN: usize = 4096;

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > NAME_LEN || name.contains('\0') {
        return Err(Error::BadName(name.to_owned()));
    }
    Ok(())
}

fn le32(x: usize) -> Result<[u8; 4], Error> {
    u32::try_from(x)
        .map(u32::to_le_bytes)
        .map_err(|_| Error::TooLarge)
}

/// Packs `files` (name, contents), in the given order, into one archive.
///
/// Names must be 1 to `NAME_LEN` (48) bytes without NUL, and unique.
pub fn build<N: AsRef<str>, D: AsRef<[u8]>>(files: &[(N, D)]) -> Result<Vec<u8>, Error> {
    if files.len() > MAX_ENTRIES {
        return Err(Error::TooManyEntries(files.len()));
    }
    let mut seen = HashSet::new();
    for (name, _) in files {
        let name = name.as_ref();
        check_name(name)?;
        if !seen.insert(name) {
            return Err(Error::DuplicateName(name.to_owned()));
        }
    }

    // Lay out the data first so the table can name every offset.
    let table_end = HEADER_LEN + files.len() * ENTRY_LEN;
    let mut offsets = Vec::with_capacity(files.len());
    let mut end = table_end;
    for (_, data) in files {
        let at = align_up(end, DATA_ALIGN);
        offsets.push(at);
        end = at.checked_add(data.as_ref().len()).ok_or(Error::TooLarge)?;
    }
    let total = end;

    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&le32(files.len())?);
    out.extend_from_slice(&le32(total)?);
    for ((name, data), &offset) in files.iter().zip(&offsets) {
        let mut field = [0u8; NAME_LEN];
        let name = name.as_ref().as_bytes();
        field[..name.len()].copy_from_slice(name);
        out.extend_from_slice(&field);
        out.extend_from_slice(&le32(offset)?);
        out.extend_from_slice(&le32(data.as_ref().len())?);
        out.extend_from_slice(&crc32(data.as_ref()).to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
    }
    for ((_, data), &offset) in files.iter().zip(&offsets) {
        out.resize(offset, 0);
        out.extend_from_slice(data.as_ref());
    }
    debug_assert_eq!(out.len(), total);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use serac_protocol::bootarc::{Archive, ArchiveError};

    fn sample() -> Vec<(String, Vec<u8>)> {
        vec![
            ("manifest".into(), b"# serac boot manifest v0\n".to_vec()),
            (
                "supervisor".into(),
                (0..=255u8).cycle().take(5000).collect(),
            ),
            ("empty".into(), Vec::new()),
            ("n".repeat(NAME_LEN), b"long name".to_vec()),
        ]
    }

    #[test]
    fn round_trips_through_the_protocol_parser() {
        let files = sample();
        let bytes = build(&files).unwrap();
        let arc = Archive::parse(&bytes).unwrap();
        assert_eq!(arc.len(), files.len());
        for (i, (name, data)) in files.iter().enumerate() {
            let e = arc.entry(i).unwrap();
            assert_eq!(e.name, name);
            assert_eq!(e.data, &data[..]);
        }
        assert_eq!(arc.find("supervisor").unwrap().data, &files[1].1[..]);
        assert_eq!(arc.find("nope").unwrap_err(), ArchiveError::NotFound);
    }

    #[test]
    fn data_is_page_aligned() {
        let bytes = build(&sample()).unwrap();
        let arc = Archive::parse(&bytes).unwrap();
        for e in arc.entries() {
            let e = e.unwrap();
            let off = e.data.as_ptr() as usize - bytes.as_ptr() as usize;
            assert_eq!(off % DATA_ALIGN, 0, "{}", e.name);
        }
    }

    #[test]
    fn empty_archive_parses() {
        let bytes = build::<&str, &[u8]>(&[]).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert!(Archive::parse(&bytes).unwrap().is_empty());
    }

    #[test]
    fn flipped_data_byte_gives_bad_checksum() {
        let files = sample();
        let mut bytes = build(&files).unwrap();
        // Flip one bit in the middle of the second file's data.
        let arc = Archive::parse(&bytes).unwrap();
        let data = arc.entry(1).unwrap().data;
        let at = data.as_ptr() as usize - bytes.as_ptr() as usize + data.len() / 2;
        bytes[at] ^= 0x01;
        let arc = Archive::parse(&bytes).unwrap();
        assert_eq!(arc.entry(1).unwrap_err(), ArchiveError::BadChecksum);
        assert_eq!(
            arc.find("supervisor").unwrap_err(),
            ArchiveError::BadChecksum
        );
        // The other entries are still readable.
        assert_eq!(arc.entry(0).unwrap().data, &files[0].1[..]);
    }

    #[test]
    fn rejects_bad_names() {
        let long = "x".repeat(NAME_LEN + 1);
        for bad in ["", "a\0b", long.as_str()] {
            assert!(matches!(build(&[(bad, b"x")]), Err(Error::BadName(_))));
        }
        assert!(matches!(
            build(&[("a", b"1"), ("a", b"2")]),
            Err(Error::DuplicateName(_))
        ));
    }
}
