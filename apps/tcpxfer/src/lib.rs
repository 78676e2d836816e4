//! What both ends of the transfer agree on.
#![no_std]

/// Bytes sent.
pub const TOTAL: usize = 1 << 20;
/// The judge's port.
pub const PORT: u16 = 5001;
/// The discovery name of the judge.
pub const NAME: &str = "net-judge";

/// The byte at offset `i` of the stream: a hash of the offset, so a
/// lost, repeated or reordered segment shows.
pub fn pattern(i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i >> 12) as u8
}

/// A running FNV-1a of the stream.
pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
