//! Tar headers: one 512-byte block in, a checked [`Header`] out.
//!
//! Reads the ustar layout with the extensions `cargo xtask disk add-image`
//! (the `tar` crate) and GNU or POSIX tar write: GNU long names (`L`),
//! base-256 sizes, and pax `path` and `size` records (`x`). Every function
//! here takes any bytes and returns a typed error instead of panicking
//! (indexing is only into fixed arrays at constant offsets; proptested).

/// Bytes in a tar header, and the unit data is padded to.
pub const HEADER_LEN: usize = 512;

/// What is wrong with an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarError {
    /// A header's checksum does not match its bytes (not a tar header).
    Checksum,
    /// A numeric field is not octal (or base-256) or does not fit.
    Number,
    /// A path is not UTF-8 or holds a NUL.
    Path,
    /// A pax extended header is malformed.
    Pax,
    /// An entry's data runs past the end of the extent.
    Truncated,
}

/// What an entry is, from its type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`, NUL, or contiguous `7`).
    File,
    /// A directory (`5`).
    Dir,
    /// A symbolic link (`2`); not followed.
    Symlink,
    /// A hard link to an earlier entry (`1`); not followed.
    HardLink,
    /// A device, a FIFO, or a type this reader does not know.
    Other,
}

/// A header's type, including the metadata entries that describe the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// An entry of the archive.
    Entry(EntryKind),
    /// GNU: the data is the next entry's path.
    LongName,
    /// GNU: the data is the next entry's link target (ignored).
    LongLink,
    /// pax: records for the next entry.
    Pax,
    /// pax: records for every later entry (ignored).
    PaxGlobal,
}

/// A checked header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    /// An all-zero block: the end of the archive.
    End,
    /// An entry or a metadata header.
    Item {
        /// The ustar prefix (empty unless the POSIX magic is there).
        prefix: &'a [u8],
        /// The name field, up to its first NUL.
        name: &'a [u8],
        /// What it is.
        ty: Type,
        /// The size field.
        size: u64,
    },
}

impl Type {
    fn from_flag(f: u8) -> Type {
        match f {
            b'0' | 0 | b'7' => Type::Entry(EntryKind::File),
            b'1' => Type::Entry(EntryKind::HardLink),
            b'2' => Type::Entry(EntryKind::Symlink),
            b'5' => Type::Entry(EntryKind::Dir),
            b'L' => Type::LongName,
            b'K' => Type::LongLink,
            b'x' => Type::Pax,
            b'g' => Type::PaxGlobal,
            _ => Type::Entry(EntryKind::Other),
        }
    }

    /// Bytes of data after the header. POSIX stores none for links,
    /// devices, FIFOs and directories, whatever the size field says.
    pub(crate) fn data_len(self, size: u64) -> u64 {
        match self {
            Type::Entry(EntryKind::HardLink | EntryKind::Symlink | EntryKind::Dir) => 0,
            _ => size,
        }
    }
}

/// `field` up to its first NUL.
fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    field.get(..end).unwrap_or(field)
}

/// An octal field: optional leading spaces, at least one digit, then only
/// NULs or spaces.
fn octal(field: &[u8]) -> Result<u64, TarError> {
    let mut rest = field;
    while let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let digits = rest
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let (num, tail) = rest.split_at(digits);
    if num.is_empty() || tail.iter().any(|&b| b != 0 && b != b' ') {
        return Err(TarError::Number);
    }
    num.iter().try_fold(0u64, |v, &d| {
        v.checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(TarError::Number)
    })
}

/// A size field: octal, or GNU base-256 (high bit of the first byte set;
/// negative values are refused).
fn number(field: &[u8]) -> Result<u64, TarError> {
    match field.split_first() {
        Some((&first, rest)) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                return Err(TarError::Number);
            }
            rest.iter().try_fold(u64::from(first & 0x3f), |v, &b| {
                v.checked_mul(256)
                    .map(|v| v | u64::from(b))
                    .ok_or(TarError::Number)
            })
        }
        _ => octal(field),
    }
}

/// Sums `block` with the checksum field taken as spaces, as unsigned and
/// as signed bytes (some old tars used the latter).
fn checksums(block: &[u8; HEADER_LEN]) -> (u64, i64) {
    let (mut u, mut s) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        u += u64::from(b);
        s += i64::from(b as i8);
    }
    (u, s)
}

/// Checks one header block.
pub(crate) fn parse(block: &[u8; HEADER_LEN]) -> Result<Header<'_>, TarError> {
    if block.iter().all(|&b| b == 0) {
        return Ok(Header::End);
    }
    let stored = octal(&block[148..156]).map_err(|_| TarError::Checksum)?;
    let (u, s) = checksums(block);
    if stored != u && i64::try_from(stored).ok() != Some(s) {
        return Err(TarError::Checksum);
    }
    // Only POSIX ustar has a prefix; GNU keeps times in those bytes.
    let prefix = if &block[257..263] == b"ustar\0" {
        until_nul(&block[345..500])
    } else {
        &[]
    };
    Ok(Header::Item {
        prefix,
        name: until_nul(&block[0..100]),
        ty: Type::from_flag(block[156]),
        size: number(&block[124..136])?,
    })
}

/// What a pax extended header says about the next entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pax<'a> {
    /// `path`.
    pub path: Option<&'a [u8]>,
    /// `size`.
    pub size: Option<u64>,
}

/// Parses pax records, `"<len> <key>=<value>\n"` each, `len` counting the
/// whole record. Keys other than `path` and `size` are ignored.
pub(crate) fn parse_pax(mut data: &[u8]) -> Result<Pax<'_>, TarError> {
    let mut pax = Pax::default();
    while !data.is_empty() {
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        let len = data
            .get(..digits)
            .and_then(|d| core::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<usize>().ok())
            .ok_or(TarError::Pax)?;
        let record = data.get(..len).ok_or(TarError::Pax)?;
        let body = match record.get(digits..) {
            Some([b' ', body @ .., b'\n']) => body,
            _ => return Err(TarError::Pax),
        };
        let eq = body.iter().position(|&b| b == b'=').ok_or(TarError::Pax)?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value),
            b"size" => {
                let v = core::str::from_utf8(value).map_err(|_| TarError::Pax)?;
                pax.size = Some(v.parse::<u64>().map_err(|_| TarError::Pax)?);
            }
            _ => {}
        }
        data = data.get(len..).ok_or(TarError::Pax)?;
    }
    Ok(pax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn header(name: &str, flag: u8, size: u64) -> [u8; HEADER_LEN] {
        let mut h = ::tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_entry_type(::tar::EntryType::new(flag));
        h.set_cksum();
        *h.as_bytes()
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let h = header("dir/file.txt", b'0', 1234);
        assert_eq!(
            parse(&h),
            Ok(Header::Item {
                prefix: b"",
                name: b"dir/file.txt",
                ty: Type::Entry(EntryKind::File),
                size: 1234
            })
        );
        let long = format!("{}/{}", "p".repeat(120), "n".repeat(90));
        let h = header(&long, b'5', 0);
        let Ok(Header::Item {
            prefix, name, ty, ..
        }) = parse(&h)
        else {
            panic!("{:?}", parse(&h))
        };
        assert_eq!(prefix, "p".repeat(120).as_bytes());
        assert_eq!(name, "n".repeat(90).as_bytes());
        assert_eq!(ty, Type::Entry(EntryKind::Dir));
        assert_eq!(Type::Entry(EntryKind::Dir).data_len(4096), 0);
        assert_eq!(parse(&[0; HEADER_LEN]), Ok(Header::End));
    }

    #[test]
    fn refuses_a_bad_checksum_and_bad_numbers() {
        let mut h = header("a", b'0', 1);
        h[0] = b'b';
        assert_eq!(parse(&h), Err(TarError::Checksum));
        assert_eq!(octal(b"  17 \0"), Ok(15));
        assert_eq!(octal(b"\0\0\0"), Err(TarError::Number));
        assert_eq!(octal(b"18"), Err(TarError::Number));
        assert_eq!(octal(b"1 1"), Err(TarError::Number));
        assert_eq!(octal(b"7777777777777777777777"), Err(TarError::Number));
        // Base-256: 0x80 marks it; a negative value (0xff) is refused.
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[11] = 5;
        f[10] = 1;
        assert_eq!(number(&f), Ok(261));
        f[0] = 0xff;
        assert_eq!(number(&f), Err(TarError::Number));
        f = [0xbf; 12];
        assert_eq!(number(&f), Err(TarError::Number));
    }

    #[test]
    fn pax_records() {
        let d = b"19 path=a/b/c.html\n11 size=42\n13 mtime=1.5\n";
        assert_eq!(
            parse_pax(d),
            Ok(Pax {
                path: Some(b"a/b/c.html"),
                size: Some(42)
            })
        );
        assert_eq!(parse_pax(b""), Ok(Pax::default()));
        for bad in [
            &b"20 path=a/b/c.html"[..],
            b"5 a=b\n",
            b"x path=a\n",
            b"9 path=a\n\n",
            b"8 nokey\n",
            b"12 size=-1\n",
            b"0 ",
        ] {
            assert_eq!(parse_pax(bad), Err(TarError::Pax), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn garbage_headers_never_panic(v in proptest::collection::vec(any::<u8>(), HEADER_LEN)) {
            let mut b = [0u8; HEADER_LEN];
            b.copy_from_slice(&v);
            let _ = parse(&b);
        }

        // A random block with a correct checksum reaches the field parsers.
        #[test]
        fn garbage_with_a_valid_checksum_never_panics(v in proptest::collection::vec(any::<u8>(), HEADER_LEN)) {
            let mut b = [0u8; HEADER_LEN];
            b.copy_from_slice(&v);
            let (u, _) = checksums(&b);
            b[148..156].copy_from_slice(format!("{u:06o}\0 ").as_bytes());
            prop_assert!(!matches!(parse(&b), Err(TarError::Checksum)));
        }

        #[test]
        fn garbage_pax_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_pax(&v);
        }

        #[test]
        fn sizes_round_trip(size in 0u64..(1 << 33) * 1024, name in "[a-z]{1,99}") {
            // The tar crate writes base-256 above 8 GiB.
            let h = header(&name, b'0', size);
            let Ok(Header::Item { size: got, name: n, .. }) = parse(&h) else {
                return Err(TestCaseError::fail("header did not parse"));
            };
            prop_assert_eq!(got, size);
            prop_assert_eq!(n, name.as_bytes());
        }

        #[test]
        fn pax_round_trips(path in "[a-z/.]{0,300}", size in any::<u64>()) {
            let mut d = Vec::new();
            for (k, v) in [("path", path.clone()), ("size", size.to_string())] {
                let body = format!(" {k}={v}\n");
                // The length counts its own digits.
                let mut len = body.len() + 1;
                while len.to_string().len() + body.len() != len {
                    len += 1;
                }
                d.extend_from_slice(format!("{len}{body}").as_bytes());
            }
            let p = parse_pax(&d).unwrap();
            prop_assert_eq!(p.path, Some(path.as_bytes()));
            prop_assert_eq!(p.size, Some(size));
        }
    }
}
