//! The push protocol: how a service author's signed bundle reaches the
//! push service over TCP (docs/operating.md, "Pushing a service").
//!
//! A bundle is one byte string, sent on a fresh TCP connection to the push
//! service's [`PORT`] and stored on the disk as it came (a read-only image
//! named after the service), so that it is checked again at every boot:
//!
//! ```text
//! offset 0   magic       8   "SERACPSH"
//!        8   version     u32 1
//!       12   fragment    u32 bytes of the fragment (1 to MAX_FRAGMENT)
//!       16   image       u32 bytes of the ELF image (1 to MAX_IMAGE)
//!       20   signature   64  ed25519, over every byte of the bundle but these 64
//!       84   fragment        postcard `Fragment`
//!       84+f image           the ELF
//! ```
//!
//! Integers are little-endian. The answer is text, one line each: any
//! number of `progress ...` lines, then `ok NAME N` and one `copy ID ADDR`
//! line per started copy (`ID` is `index:generation`, `ADDR` the copy's
//! IPv4 address, or `-` without `net`), then `end`; or one `error KIND:
//! what` line. Either way the connection then closes.

use serde::{Deserialize, Serialize};

/// The push service's TCP port.
pub const PORT: u16 = 7070;
/// The bundle's first bytes.
pub const MAGIC: [u8; 8] = *b"SERACPSH";
/// The bundle format's version.
pub const VERSION: u32 = 1;
/// Bytes before the fragment.
pub const PREFIX_LEN: usize = 84;
/// Where the signature lies in the prefix.
pub const SIGNATURE_AT: usize = 20;
/// Longest fragment.
pub const MAX_FRAGMENT: u32 = 512;
/// Longest ELF image (the push service holds a whole bundle in memory).
pub const MAX_IMAGE: u32 = 768 * 1024;
/// Most copies one push starts.
pub const MAX_COUNT: u32 = 1000;
/// Most memory one copy may ask for, in KiB.
pub const MAX_MEMORY_KIB: u32 = 16 * 1024;

/// The manifest fragment of a pushed service: what its `[[domain]]`
/// table would say. Each copy is a guest paged by the push service's
/// pager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment<'a> {
    /// The service's domain name (1 to 16 bytes of `A-Z a-z 0-9 _ . -`);
    /// its copies are `name#0`, `name#1`, ...
    pub name: &'a str,
    /// Copies to start (1 to [`MAX_COUNT`]).
    pub count: u32,
    /// Memory each copy may use, in KiB (its image, `.bss` and stack must
    /// fit; at most [`MAX_MEMORY_KIB`]).
    pub memory_kib: u32,
    /// A port on the host's virtual network for each copy (its handle 1:
    /// an endpoint to the vnic).
    pub net: bool,
    /// An endpoint to the host's disk server (after the vnic's, if any),
    /// to mount read-only images such as `www`.
    pub disk: bool,
}

/// The fixed part of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Bytes of the fragment.
    pub fragment_len: u32,
    /// Bytes of the ELF image.
    pub image_len: u32,
    /// The signature.
    pub signature: [u8; 64],
}

/// What is wrong with a bundle's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// Fewer than [`PREFIX_LEN`] bytes.
    Short,
    /// Not [`MAGIC`].
    BadMagic,
    /// Another version.
    BadVersion(u32),
    /// A fragment of 0 or more than [`MAX_FRAGMENT`] bytes.
    BadFragmentLen(u32),
    /// An image of 0 or more than [`MAX_IMAGE`] bytes.
    BadImageLen(u32),
}

impl core::fmt::Display for PrefixError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PrefixError::Short => write!(f, "shorter than the {PREFIX_LEN}-byte prefix"),
            PrefixError::BadMagic => f.write_str("not a Serac push bundle (bad magic)"),
            PrefixError::BadVersion(v) => write!(f, "bundle version {v}, expected {VERSION}"),
            PrefixError::BadFragmentLen(n) => {
                write!(f, "fragment of {n} bytes, expected 1 to {MAX_FRAGMENT}")
            }
            PrefixError::BadImageLen(n) => {
                write!(f, "image of {n} bytes, expected 1 to {MAX_IMAGE}")
            }
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

impl Prefix {
    /// Reads and checks the first [`PREFIX_LEN`] bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<Prefix, PrefixError> {
        if b.len() < PREFIX_LEN {
            return Err(PrefixError::Short);
        }
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err(PrefixError::BadMagic);
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(PrefixError::BadVersion(version));
        }
        let fragment_len = u32_at(b, 12);
        if fragment_len == 0 || fragment_len > MAX_FRAGMENT {
            return Err(PrefixError::BadFragmentLen(fragment_len));
        }
        let image_len = u32_at(b, 16);
        if image_len == 0 || image_len > MAX_IMAGE {
            return Err(PrefixError::BadImageLen(image_len));
        }
        let mut signature = [0u8; 64];
        if let Some(s) = b.get(SIGNATURE_AT..PREFIX_LEN) {
            signature.copy_from_slice(s);
        }
        Ok(Prefix {
            fragment_len,
            image_len,
            signature,
        })
    }

    /// Bytes of the whole bundle.
    pub fn total(&self) -> usize {
        PREFIX_LEN + self.fragment_len as usize + self.image_len as usize
    }

    /// Where the ELF starts.
    pub fn image_offset(&self) -> usize {
        PREFIX_LEN + self.fragment_len as usize
    }

    /// The prefix's bytes, the signature included.
    pub fn encode(&self) -> [u8; PREFIX_LEN] {
        let mut b = [0u8; PREFIX_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.fragment_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.image_len.to_le_bytes());
        b[SIGNATURE_AT..PREFIX_LEN].copy_from_slice(&self.signature);
        b
    }
}

/// The parts of `bundle` the signature covers, in order: the prefix
/// before the signature, then everything after it.
pub fn signed_parts(bundle: &[u8]) -> [&[u8]; 2] {
    [
        bundle.get(..SIGNATURE_AT).unwrap_or(&[]),
        bundle.get(PREFIX_LEN..).unwrap_or(&[]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_round_trips_and_rejects() {
        let p = Prefix {
            fragment_len: 20,
            image_len: 1000,
            signature: [7; 64],
        };
        let b = p.encode();
        assert_eq!(Prefix::parse(&b), Ok(p));
        assert_eq!(p.total(), PREFIX_LEN + 1020);
        assert_eq!(Prefix::parse(&b[..83]), Err(PrefixError::Short));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Prefix::parse(&bad), Err(PrefixError::BadMagic));
        let mut bad = b;
        bad[8] = 2;
        assert_eq!(Prefix::parse(&bad), Err(PrefixError::BadVersion(2)));
        let mut bad = b;
        bad[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(Prefix::parse(&bad), Err(PrefixError::BadFragmentLen(0)));
        let mut bad = b;
        bad[16..20].copy_from_slice(&(MAX_IMAGE + 1).to_le_bytes());
        assert_eq!(
            Prefix::parse(&bad),
            Err(PrefixError::BadImageLen(MAX_IMAGE + 1))
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Prefix::parse(&b);
            let _ = crate::codec::decode_borrowed::<Fragment<'_>>(&b);
        }
    }
}
