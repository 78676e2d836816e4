//! The swap area's on-disk format (docs/disk-format.md, "The swapper's swap
//! area"). All integers little-endian, CRCs CRC-32C.
//!
//! ```text
//! block 0            header
//! blocks 1 .. 1+D    descriptors, 128 of 32 bytes per block, one per slot
//! blocks 1+D ..      data slots, 4 KiB each
//! ```

use crc::{Crc, CRC_32_ISCSI};

/// Bytes per block and per page.
pub const BLOCK: usize = 4096;
/// One block's bytes.
pub type Block = [u8; BLOCK];
/// Header magic.
pub const MAGIC: [u8; 8] = *b"SERACSWP";
/// Format version (2: zero pages are not written, [`Desc::zero`]).
pub const VERSION: u32 = 2;
/// A descriptor's vpn field: this bit set says the page was all zeros and
/// its slot was not written (vpns have 36 bits).
const ZERO_FLAG: u64 = 1 << 63;
/// Bytes of one descriptor.
pub const DESC_LEN: usize = 32;
/// Descriptors per block.
pub const DESC_PER_BLOCK: u32 = (BLOCK / DESC_LEN) as u32;

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// CRC-32C of `b`.
pub fn crc32c(b: &[u8]) -> u32 {
    CASTAGNOLI.checksum(b)
}

fn desc_crc(boot_id: u64, b: &[u8]) -> u32 {
    let mut d = CASTAGNOLI.digest();
    d.update(&boot_id.to_le_bytes());
    d.update(b);
    d.finalize()
}

/// Where things are in an area of some length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Data slots.
    pub slots: u32,
    /// Descriptor blocks.
    pub desc_blocks: u32,
}

impl Geometry {
    /// The largest layout that fits `blocks` blocks with at most
    /// `max_slots` slots; `None` if not even one slot fits.
    pub fn fit(blocks: u64, max_slots: u32) -> Option<Geometry> {
        // Each slot costs one data block and 1/128 of a descriptor block.
        let avail = blocks.checked_sub(1)?;
        let mut slots =
            u32::try_from((avail * u64::from(DESC_PER_BLOCK)) / (u64::from(DESC_PER_BLOCK) + 1))
                .unwrap_or(u32::MAX)
                .min(max_slots);
        while slots > 0 {
            let g = Geometry {
                slots,
                desc_blocks: slots.div_ceil(DESC_PER_BLOCK),
            };
            if g.total_blocks() <= blocks {
                return Some(g);
            }
            slots -= 1;
        }
        None
    }
    /// Blocks the layout covers.
    pub fn total_blocks(&self) -> u64 {
        1 + u64::from(self.desc_blocks) + u64::from(self.slots)
    }
    /// The block holding slot `s`'s data.
    pub fn data_block(&self, s: u32) -> u64 {
        1 + u64::from(self.desc_blocks) + u64::from(s)
    }
    /// The block holding slot `s`'s descriptor.
    pub fn desc_block(&self, s: u32) -> u64 {
        1 + u64::from(s / DESC_PER_BLOCK)
    }
}

/// The header (block 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The boot this area's contents belong to (the boot TSC).
    pub boot_id: u64,
    /// The layout.
    pub geo: Geometry,
}

impl Header {
    /// The block image.
    pub fn encode(&self) -> Block {
        let mut b = [0u8; BLOCK];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.geo.slots.to_le_bytes());
        b[16..20].copy_from_slice(&self.geo.desc_blocks.to_le_bytes());
        b[24..32].copy_from_slice(&self.boot_id.to_le_bytes());
        let crc = crc32c(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }
    /// Reads a header; `None` unless the magic, version and CRC are right.
    pub fn decode(b: &Block) -> Option<Header> {
        let crc = u32::from_le_bytes(b.get(BLOCK - 4..)?.try_into().ok()?);
        if b.get(0..8)? != MAGIC || crc32c(b.get(..BLOCK - 4)?) != crc {
            return None;
        }
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        if u32_at(8)? != VERSION {
            return None;
        }
        Some(Header {
            geo: Geometry {
                slots: u32_at(12)?,
                desc_blocks: u32_at(16)?,
            },
            boot_id: u64::from_le_bytes(b.get(24..32)?.try_into().ok()?),
        })
    }
}

/// One slot's descriptor. `owner` 0 is a free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Desc {
    /// Packed `DomainId` of the page's domain (0: free).
    pub owner: u64,
    /// Virtual page number.
    pub vpn: u64,
    /// Write sequence: the newest copy of a page wins.
    pub seq: u64,
    /// CRC-32C of the slot's 4 KiB.
    pub data_crc: u32,
    /// The page was all zeros: the slot's data was not written (and may
    /// hold anything), `data_crc` is that of a zero block.
    pub zero: bool,
}

impl Desc {
    /// The 32 bytes: owner, vpn, seq, data CRC, and a CRC of the boot id
    /// followed by bytes 0..28 (so a descriptor of another boot fails it).
    /// A free slot is all zeros.
    pub fn encode(&self, boot_id: u64, out: &mut [u8]) {
        let Some(b) = out.get_mut(..DESC_LEN) else {
            return;
        };
        if self.owner == 0 {
            b.fill(0);
            return;
        }
        b[0..8].copy_from_slice(&self.owner.to_le_bytes());
        let vpn = self.vpn | if self.zero { ZERO_FLAG } else { 0 };
        b[8..16].copy_from_slice(&vpn.to_le_bytes());
        b[16..24].copy_from_slice(&self.seq.to_le_bytes());
        b[24..28].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = desc_crc(boot_id, &b[..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
    }
    /// Reads a descriptor of boot `boot_id`; `None` for a free slot, a
    /// torn one or one of another boot (its CRC fails): all are free.
    pub fn decode(boot_id: u64, b: &[u8]) -> Option<Desc> {
        let b = b.get(..DESC_LEN)?;
        let w = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        let crc = u32::from_le_bytes(b.get(28..32)?.try_into().ok()?);
        if desc_crc(boot_id, b.get(..28)?) != crc {
            return None;
        }
        let vpn = w(8)?;
        let d = Desc {
            owner: w(0)?,
            vpn: vpn & !ZERO_FLAG,
            seq: w(16)?,
            data_crc: u32::from_le_bytes(b.get(24..28)?.try_into().ok()?),
            zero: vpn & ZERO_FLAG != 0,
        };
        (d.owner != 0).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn geometry_fits() {
        assert_eq!(Geometry::fit(1, 100), None);
        assert_eq!(
            Geometry::fit(3, 100),
            Some(Geometry {
                slots: 1,
                desc_blocks: 1
            })
        );
        let g = Geometry::fit(16_384, u32::MAX).unwrap();
        assert!(g.total_blocks() <= 16_384);
        assert_eq!(g.desc_blocks, g.slots.div_ceil(128));
        assert_eq!(Geometry::fit(16_384, 4096).unwrap().slots, 4096);
    }

    #[test]
    fn header_and_desc_round_trip() {
        let h = Header {
            boot_id: 77,
            geo: Geometry {
                slots: 9,
                desc_blocks: 1,
            },
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        let mut b = h.encode();
        b[30] ^= 1;
        assert_eq!(Header::decode(&b), None);
        let d = Desc {
            owner: 0x1_0000_0004,
            vpn: 0x400,
            seq: 5,
            data_crc: 0xdead,
            zero: false,
        };
        let mut x = [0u8; 32];
        d.encode(9, &mut x);
        assert_eq!(Desc::decode(9, &x), Some(d));
        let z = Desc { zero: true, ..d };
        let mut y = [0u8; 32];
        z.encode(9, &mut y);
        assert_eq!(Desc::decode(9, &y), Some(z));
        assert_ne!(x, y);
        assert_eq!(Desc::decode(10, &x), None, "another boot");
        x[3] ^= 0x10;
        assert_eq!(Desc::decode(9, &x), None, "torn");
        Desc::default().encode(9, &mut x);
        assert_eq!(x, [0; 32]);
        assert_eq!(Desc::decode(9, &x), None, "free");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Desc::decode(1, &v);
            let mut b = [0u8; BLOCK];
            b[..v.len()].copy_from_slice(&v);
            let _ = Header::decode(&b);
        }
    }
}
