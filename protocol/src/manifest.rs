//! The boot manifest as the archive entry `manifest` carries it: a
//! postcard-encoded [`Manifest`], which xtask packs from a `configs/*.toml`
//! file (docs/operating.md, "The manifest").
//!
//! This is the raw form, one field per TOML key, checked by nobody yet:
//! `serac_supervisor_core::manifest` validates it (the same rules for xtask
//! and the supervisor) into the resolved manifest the supervisor builds
//! from. Strings borrow from the encoded bytes. Decoding never panics; a
//! sequence longer than its bound is a decode error.

use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Most domains in one manifest.
pub const MAX_DOMAINS: usize = 32;
/// Most `endpoint` plus `notify` names on one domain.
pub const MAX_LINKS: usize = 8;

/// The whole manifest: the `[[domain]]` tables in order, and the globals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest<'a> {
    /// The domains, in file order (= build order, = slot order).
    #[serde(borrow)]
    pub domains: Vec<Domain<'a>, MAX_DOMAINS>,
    /// `test-end`: a domain name.
    pub test_end: Option<&'a str>,
    /// `test-end-after-ms`.
    pub test_end_after_ms: Option<u64>,
    /// `test-linger-ms`.
    pub test_linger_ms: Option<u64>,
    /// `operator-keys`: ed25519 public keys, 64 hex digits each, whose
    /// signatures the push service accepts.
    #[serde(borrow)]
    pub operator_keys: Vec<&'a str, { crate::supervisor::MAX_OPERATOR_KEYS }>,
}

/// One `[[domain]]` table, as written (`None`: the key is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain<'a> {
    /// `name`.
    pub name: Option<&'a str>,
    /// `image`: the archive entry holding its ELF.
    pub image: Option<&'a str>,
    /// `class`: `server` or `guest`.
    pub class: Option<&'a str>,
    /// `count`.
    pub count: Option<u64>,
    /// `restart`.
    pub restart: Option<bool>,
    /// `pager`: a domain name.
    pub pager: Option<&'a str>,
    /// `eager`.
    pub eager: Option<bool>,
    /// `operator`.
    pub operator: Option<bool>,
    /// `frames`.
    pub frames: Option<u64>,
    /// `until-full`.
    pub until_full: Option<bool>,
    /// `endpoint`: domain names (or `supervisor`), in handle order.
    #[serde(borrow)]
    pub endpoint: Vec<&'a str, MAX_LINKS>,
    /// `notify`: domain names, in handle order after the endpoints.
    #[serde(borrow)]
    pub notify: Vec<&'a str, MAX_LINKS>,
    /// `device`: `virtio-blk`, `virtio-net` or `BB:DD.F`.
    pub device: Option<&'a str>,
    /// `net`.
    pub net: Option<bool>,
    /// `swap-idle`.
    pub swap_idle: Option<bool>,
    /// `push`: the push service (may install and start services).
    pub push: Option<bool>,
    /// The line of its `[[domain]]` header in the source file (1-based; 0
    /// when unknown), so the supervisor's messages can point there.
    pub line: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_borrowed;

    #[test]
    fn round_trips_and_borrows() {
        let mut m = Manifest::default();
        let mut d = Domain {
            name: Some("httpd"),
            count: Some(4),
            line: 7,
            ..Domain::default()
        };
        d.endpoint.push("vnic").unwrap();
        m.domains.push(d).unwrap();
        m.test_end_after_ms = Some(5);
        let mut buf = [0u8; 256];
        let bytes = postcard::to_slice(&m, &mut buf).unwrap();
        let back: Manifest<'_> = decode_borrowed(bytes).unwrap();
        assert_eq!(back, m);
        // Truncated or trailing bytes are errors, never a panic.
        for n in 0..bytes.len() {
            assert!(decode_borrowed::<Manifest<'_>>(&bytes[..n]).is_err());
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(decode_borrowed::<Manifest<'_>>(&long).is_err());
    }

    #[test]
    fn bounds_are_decode_errors() {
        // An empty domain is 17 bytes (16 absent fields, line 0).
        let of = |n: u8| {
            let mut bytes = std::vec![n];
            for _ in 0..n {
                bytes.extend_from_slice(&[0; 17]);
            }
            bytes.extend_from_slice(&[0, 0, 0, 0]);
            bytes
        };
        let ok = of(32);
        assert_eq!(
            decode_borrowed::<Manifest<'_>>(&ok).unwrap().domains.len(),
            32
        );
        assert!(decode_borrowed::<Manifest<'_>>(&of(33)).is_err());
    }
}
