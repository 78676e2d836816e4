//! An extent: a run of blocks with a kind, a name and an id, and its
//! 64-byte entry in a table copy.
//!
//! | offset | field | size | |
//! |---|---|---|---|
//! | 0 | id | u32 | 1 or more, never reused (0: the slot is empty) |
//! | 4 | kind | u8 | 1 swap, 2 disk, 3 image |
//! | 5 | name length | u8 | 1 to 16 |
//! | 6 | flags | u16 | 0 |
//! | 8 | name | 16 | `[A-Za-z0-9._-]`, zero padded |
//! | 24 | start | u64 | first device block |
//! | 32 | blocks | u64 | length in blocks, 1 or more |
//! | 40 | content length | u64 | images: bytes of content; else 0 |
//! | 48 | content CRC | u32 | images: CRC-32C of those bytes; else 0 |
//! | 52 | reserved | 12 | 0 |

use crate::layout::{get, put, BLOCK, ENTRY_LEN};
use serac_protocol::disk::NAME_MAX;
use serac_protocol::syscall::valid_domain_name;

/// What an extent holds (the protocol's enum, so there is one).
pub use serac_protocol::disk::ExtentKind as Kind;

/// One entry's bytes.
pub type Entry = [u8; ENTRY_LEN];

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty.
    Empty,
    /// Over [`NAME_MAX`] bytes.
    TooLong,
    /// A byte outside `[A-Za-z0-9._-]`.
    BadChar,
}

/// An extent's name: 1 to [`NAME_MAX`] bytes of `[A-Za-z0-9._-]`, the
/// rule of the kernel's domain names, so a domain's name from the manifest
/// names its swap area and disk as it is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    len: u8,
    bytes: [u8; NAME_MAX],
}

impl Name {
    /// Checks `s`.
    pub fn new(s: &str) -> Result<Name, NameError> {
        Name::from_bytes(s.as_bytes())
    }

    /// Checks `b`.
    pub fn from_bytes(b: &[u8]) -> Result<Name, NameError> {
        if b.is_empty() {
            return Err(NameError::Empty);
        }
        if b.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        if !valid_domain_name(b) {
            return Err(NameError::BadChar);
        }
        let mut bytes = [0u8; NAME_MAX];
        put(&mut bytes, 0, b);
        Ok(Name {
            len: u8::try_from(b.len()).map_err(|_| NameError::TooLong)?,
            bytes,
        })
    }

    /// The name (ASCII: checked on every construction path).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an image holds: its length in bytes and their CRC-32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    /// Bytes of content from the extent's first block on.
    pub len: u64,
    /// CRC-32C of those bytes.
    pub crc: u32,
}

/// One extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Its id: unique in the table, never reused.
    pub id: u32,
    /// What it holds.
    pub kind: Kind,
    /// Whose it is (a domain) or what it is (an image).
    pub name: Name,
    /// First device block.
    pub start: u64,
    /// Length in blocks.
    pub blocks: u64,
    /// Images only: the content and its checksum.
    pub content: Option<Content>,
}

/// Why an entry's bytes are not an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// Unknown kind byte.
    Kind,
    /// The name's length or bytes.
    Name,
    /// Zero blocks, or content on a non-image, or content longer than the
    /// extent.
    Shape,
    /// A reserved byte is not zero.
    Reserved,
}

impl Extent {
    /// One past the last block (saturating: a decoded extent never wraps).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.blocks)
    }

    /// Whether clients may only read it (images).
    pub const fn read_only(&self) -> bool {
        matches!(self.kind, Kind::Image)
    }

    /// Whether `self` and `other` share a block.
    pub const fn overlaps(&self, other: &Extent) -> bool {
        self.start < other.end() && other.start < self.end()
    }

    /// Whether the fields are consistent: at least one block, no wrap, and
    /// content exactly on images and no longer than the extent.
    pub fn well_formed(&self) -> bool {
        let fits = |c: &Content| {
            self.blocks
                .checked_mul(BLOCK as u64)
                .is_some_and(|cap| c.len <= cap)
        };
        self.id != 0
            && self.blocks != 0
            && self.start.checked_add(self.blocks).is_some()
            && match (self.kind, &self.content) {
                (Kind::Image, Some(c)) => fits(c),
                (Kind::Image, None) => false,
                (_, c) => c.is_none(),
            }
    }

    /// The entry's bytes.
    pub fn encode(&self, out: &mut Entry) {
        out.fill(0);
        put(out, 0, &self.id.to_le_bytes());
        put(out, 4, &[kind_code(self.kind), self.name.len]);
        put(out, 8, self.name.as_bytes());
        put(out, 24, &self.start.to_le_bytes());
        put(out, 32, &self.blocks.to_le_bytes());
        if let Some(c) = self.content {
            put(out, 40, &c.len.to_le_bytes());
            put(out, 48, &c.crc.to_le_bytes());
        }
    }

    /// Reads an entry: `Ok(None)` for an all-zero (empty) slot. Checks
    /// everything [`Extent::well_formed`] does and that the reserved bytes
    /// and the name's padding are zero, so one extent has one encoding.
    pub fn decode(b: &Entry) -> Result<Option<Extent>, EntryError> {
        if b.iter().all(|&x| x == 0) {
            return Ok(None);
        }
        let [kind, len] = get::<2>(b, 4);
        let kind = match kind {
            1 => Kind::Swap,
            2 => Kind::Disk,
            3 => Kind::Image,
            _ => return Err(EntryError::Kind),
        };
        let raw = get::<NAME_MAX>(b, 8);
        let len = usize::from(len);
        let name = raw
            .get(..len)
            .ok_or(EntryError::Name)
            .and_then(|n| Name::from_bytes(n).map_err(|_| EntryError::Name))?;
        if raw.get(len..).is_none_or(|pad| pad.iter().any(|&x| x != 0)) {
            return Err(EntryError::Name);
        }
        if get::<2>(b, 6) != [0; 2] || get::<12>(b, 52) != [0; 12] {
            return Err(EntryError::Reserved);
        }
        let clen = u64::from_le_bytes(get(b, 40));
        let crc = u32::from_le_bytes(get(b, 48));
        let content = match kind {
            Kind::Image => Some(Content { len: clen, crc }),
            _ if clen != 0 || crc != 0 => return Err(EntryError::Shape),
            _ => None,
        };
        let e = Extent {
            id: u32::from_le_bytes(get(b, 0)),
            kind,
            name,
            start: u64::from_le_bytes(get(b, 24)),
            blocks: u64::from_le_bytes(get(b, 32)),
            content,
        };
        if !e.well_formed() {
            return Err(EntryError::Shape);
        }
        Ok(Some(e))
    }
}

/// The kind's byte on disk.
pub const fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::Swap => 1,
        Kind::Disk => 2,
        Kind::Image => 3,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::Swap), Just(Kind::Disk), Just(Kind::Image)]
    }

    pub(crate) fn name() -> impl Strategy<Value = Name> {
        "[A-Za-z0-9._-]{1,16}".prop_map(|s| Name::new(&s).unwrap())
    }

    fn extent() -> impl Strategy<Value = Extent> {
        (
            1u32..,
            kind(),
            name(),
            0u64..1 << 40,
            1u64..1 << 20,
            any::<(u64, u32)>(),
        )
            .prop_map(|(id, kind, name, start, blocks, (len, crc))| Extent {
                id,
                kind,
                name,
                start,
                blocks,
                content: (kind == Kind::Image).then_some(Content {
                    len: len % (blocks * BLOCK as u64 + 1),
                    crc,
                }),
            })
    }

    #[test]
    fn names() {
        assert_eq!(Name::new("httpd").unwrap().as_str(), "httpd");
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("a/b"), Err(NameError::BadChar));
        assert_eq!(Name::new("a b"), Err(NameError::BadChar));
        assert_eq!(Name::new(&"x".repeat(17)), Err(NameError::TooLong));
        assert!(Name::new(&"x".repeat(16)).is_ok());
    }

    #[test]
    fn shapes() {
        let e = Extent {
            id: 1,
            kind: Kind::Image,
            name: Name::new("www").unwrap(),
            start: 40,
            blocks: 2,
            content: Some(Content {
                len: 2 * BLOCK as u64,
                crc: 0,
            }),
        };
        assert!(e.well_formed());
        assert!(!Extent { content: None, ..e }.well_formed());
        assert!(!Extent {
            content: Some(Content {
                len: 2 * BLOCK as u64 + 1,
                crc: 0
            }),
            ..e
        }
        .well_formed());
        assert!(!Extent {
            kind: Kind::Disk,
            ..e
        }
        .well_formed());
        assert!(!Extent { blocks: 0, ..e }.well_formed());
        assert!(!Extent { id: 0, ..e }.well_formed());
        let mut b = [0u8; ENTRY_LEN];
        e.encode(&mut b);
        assert_eq!(Extent::decode(&b), Ok(Some(e)));
        assert_eq!(Extent::decode(&[0; ENTRY_LEN]), Ok(None));
        let mut bad = b;
        bad[60] = 1;
        assert_eq!(Extent::decode(&bad), Err(EntryError::Reserved));
        let mut bad = b;
        bad[4] = 9;
        assert_eq!(Extent::decode(&bad), Err(EntryError::Kind));
        let mut bad = b;
        bad[5] = 17;
        assert_eq!(Extent::decode(&bad), Err(EntryError::Name));
        let mut bad = b;
        bad[20] = b'x';
        assert_eq!(Extent::decode(&bad), Err(EntryError::Name));
    }

    proptest! {
        #[test]
        fn entries_round_trip(e in extent()) {
            prop_assert!(e.well_formed());
            let mut b = [0u8; ENTRY_LEN];
            e.encode(&mut b);
            prop_assert_eq!(Extent::decode(&b), Ok(Some(e)));
        }

        #[test]
        fn entry_garbage_never_panics(v in proptest::collection::vec(any::<u8>(), ENTRY_LEN), kind in 0u8..5) {
            let mut b = [0u8; ENTRY_LEN];
            b.copy_from_slice(&v);
            let _ = Extent::decode(&b);
            b[4] = kind;
            if let Ok(Some(e)) = Extent::decode(&b) {
                prop_assert!(e.well_formed());
            }
        }
    }
}
