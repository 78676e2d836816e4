//! The boot archive ("SAR"): the servers, guests and manifest packed at build
//! time and handed to the kernel as the initrd / multiboot2 module.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! header   : magic "SERACAR1" (8) | count u32 | total_len u32
//! entry[i] : name [u8; 48] (NUL-padded UTF-8) | offset u32 | len u32 | crc32 u32 | reserved u32
//! data     : file bytes, each at its `offset` from the start of the archive
//! ```
//!
//! Parsing never panics: every offset and length is checked against the
//! archive length, and each file's CRC-32 is verified on access.

/// Archive magic, first 8 bytes.
pub const MAGIC: [u8; 8] = *b"SERACAR1";
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;
/// Length of the name field of an entry.
pub const NAME_LEN: usize = 48;
/// Length of one entry in the table.
pub const ENTRY_LEN: usize = NAME_LEN + 16;
/// Upper bound on entries, so a corrupt count cannot make us loop for long.
pub const MAX_ENTRIES: usize = 4096;

/// Why an archive or one of its entries was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveError {
    /// Shorter than its header or its entry table.
    Truncated,
    /// The first 8 bytes are not [`MAGIC`].
    BadMagic,
    /// `total_len` disagrees with the bytes given.
    BadLength,
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// An entry's name is not NUL-padded UTF-8.
    BadName,
    /// An entry's data lies outside the archive.
    EntryOutOfBounds,
    /// An entry's CRC-32 does not match its data.
    BadChecksum,
    /// No entry has the requested name.
    NotFound,
}

/// A validated view of an archive.
#[derive(Debug, Clone, Copy)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// One file in the archive. Its checksum has been verified.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The file name, e.g. `supervisor` or `manifest`.
    pub name: &'a str,
    /// The file contents.
    pub data: &'a [u8],
}

fn le32(b: &[u8], at: usize) -> Result<u32, ArchiveError> {
    let s = b.get(at..at + 4).ok_or(ArchiveError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> Archive<'a> {
    /// Validates the header and entry table. Entries are checked when read.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ArchiveError> {
        if bytes.len() < HEADER_LEN {
            return Err(ArchiveError::Truncated);
        }
        if bytes[..8] != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let count = le32(bytes, 8)? as usize;
        let total = le32(bytes, 12)? as usize;
        if total != bytes.len() {
            return Err(ArchiveError::BadLength);
        }
        if count > MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries);
        }
        if bytes.len() < HEADER_LEN + count * ENTRY_LEN {
            return Err(ArchiveError::Truncated);
        }
        Ok(Self { bytes, count })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the archive holds no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `i`, validated (bounds, name, checksum).
    pub fn entry(&self, i: usize) -> Result<Entry<'a>, ArchiveError> {
        if i >= self.count {
            return Err(ArchiveError::NotFound);
        }
        let base = HEADER_LEN + i * ENTRY_LEN;
        let raw_name = &self.bytes[base..base + NAME_LEN];
        let name_len = raw_name.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        if raw_name[name_len..].iter().any(|&c| c != 0) {
            return Err(ArchiveError::BadName);
        }
        let name =
            core::str::from_utf8(&raw_name[..name_len]).map_err(|_| ArchiveError::BadName)?;
        let offset = le32(self.bytes, base + NAME_LEN)? as usize;
        let len = le32(self.bytes, base + NAME_LEN + 4)? as usize;
        let crc = le32(self.bytes, base + NAME_LEN + 8)?;
        let end = offset
            .checked_add(len)
            .ok_or(ArchiveError::EntryOutOfBounds)?;
        let data = self
            .bytes
            .get(offset..end)
            .ok_or(ArchiveError::EntryOutOfBounds)?;
        if crc32(data) != crc {
            return Err(ArchiveError::BadChecksum);
        }
        Ok(Entry { name, data })
    }

    /// The entry called `name`.
    pub fn find(&self, name: &str) -> Result<Entry<'a>, ArchiveError> {
        for i in 0..self.count {
            let e = self.entry(i)?;
            if e.name == name {
                return Ok(e);
            }
        }
        Err(ArchiveError::NotFound)
    }

    /// Iterates over entries; each item is validated independently.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry<'a>, ArchiveError>> + '_ {
        (0..self.count).map(move |i| self.entry(i))
    }
}

/// The CRC-32 lookup table, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32 (IEEE 802.3, reflected, as used by zlib), one table lookup per
/// byte: the whole archive is checked at boot, and a bitwise CRC was a sixth
/// of the boot's instructions.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn rejects_short_and_bad_magic() {
        assert_eq!(
            Archive::parse(b"SERAC").unwrap_err(),
            ArchiveError::Truncated
        );
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(b"NOTSERAC");
        assert_eq!(Archive::parse(&b).unwrap_err(), ArchiveError::BadMagic);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(a) = Archive::parse(&bytes) {
                for e in a.entries() { let _ = e; }
            }
        }
    }
}
