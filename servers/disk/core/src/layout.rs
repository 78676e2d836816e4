//! Where things are on the device, and the superblock.
//!
//! ```text
//! block 0                  superblock (written once, by format)
//! blocks 1 .. 1+T          table copy 0
//! blocks 1+T .. 1+2T       table copy 1
//! blocks 1+2T .. total     extents
//! ```
//!
//! `T` is the table size in blocks, fixed at format time. All integers are
//! little-endian. The superblock (docs/disk-format.md has the table):
//! magic `SERACDSK`, version, block size, total blocks, disk id, `T`, and a
//! CRC-32C of bytes 0..4092 in its last 4 bytes.

use crate::checksum::crc32c;

/// Bytes in a block.
pub const BLOCK: usize = serac_protocol::disk::BLOCK_SIZE;
/// One block of bytes.
pub type Block = [u8; BLOCK];

/// First bytes of the superblock.
pub const SUPER_MAGIC: [u8; 8] = *b"SERACDSK";
/// First bytes of a table copy.
pub const TABLE_MAGIC: [u8; 8] = *b"SERACEXT";
/// Format version of both; a reader refuses any other.
pub const VERSION: u32 = 1;
/// The superblock's block.
pub const SUPERBLOCK: u64 = 0;
/// Number of table copies.
pub const SLOTS: usize = 2;
/// Bytes of a table copy's header, and of one entry.
pub const HEADER_LEN: usize = 64;
/// Bytes of one extent entry.
pub const ENTRY_LEN: usize = 64;
/// Largest table copy, in blocks (16,383 extents). Every update rewrites a
/// whole copy, so this also bounds the cost of one.
pub const MAX_TABLE_BLOCKS: u32 = 256;
/// Table size `format` uses unless told otherwise (1,023 extents, 64 KiB).
pub const DEFAULT_TABLE_BLOCKS: u32 = 16;
/// Largest device, in blocks (4 PiB): keeps all block arithmetic far from
/// overflow.
pub const MAX_BLOCKS: u64 = 1 << 40;

/// Offset of the superblock's CRC (over every byte before it).
const SUPER_CRC_AT: usize = BLOCK - 4;

/// Why a geometry is not possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryError {
    /// The table size is 0 or over [`MAX_TABLE_BLOCKS`].
    TableSize,
    /// No block is left for extents.
    TooSmall,
    /// More than [`MAX_BLOCKS`] blocks.
    TooLarge,
}

/// Why a superblock was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperError {
    /// No Serac magic: not a Serac disk (or never formatted).
    NotFormatted,
    /// The magic is there but the checksum does not match.
    Corrupt,
    /// Another version or block size.
    Unsupported,
    /// The checksum matches but the geometry it states is impossible.
    Geometry(GeometryError),
}

/// The shape of a formatted device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    total_blocks: u64,
    table_blocks: u32,
    disk_id: u64,
}

impl Geometry {
    /// A device of `total_blocks` with table copies of `table_blocks`;
    /// `disk_id` tells this format apart from an earlier one on the same
    /// device, so a table left from it is never taken for this one's.
    pub fn new(total_blocks: u64, table_blocks: u32, disk_id: u64) -> Result<Self, GeometryError> {
        if table_blocks == 0 || table_blocks > MAX_TABLE_BLOCKS {
            return Err(GeometryError::TableSize);
        }
        if total_blocks > MAX_BLOCKS {
            return Err(GeometryError::TooLarge);
        }
        let g = Geometry {
            total_blocks,
            table_blocks,
            disk_id,
        };
        if total_blocks <= g.data_start() {
            return Err(GeometryError::TooSmall);
        }
        Ok(g)
    }

    /// Blocks of the device the format covers.
    pub const fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// Blocks of one table copy.
    pub const fn table_blocks(&self) -> u32 {
        self.table_blocks
    }

    /// This format's id.
    pub const fn disk_id(&self) -> u64 {
        self.disk_id
    }

    /// First block of table copy `slot` (0 or 1; anything else is 1).
    pub const fn slot_start(&self, slot: usize) -> u64 {
        let k = if slot == 0 { 0 } else { 1 };
        1 + k * self.table_blocks as u64
    }

    /// First block extents may use: everything before it is metadata.
    pub const fn data_start(&self) -> u64 {
        1 + 2 * self.table_blocks as u64
    }

    /// Blocks extents may use.
    pub const fn data_blocks(&self) -> u64 {
        self.total_blocks.saturating_sub(self.data_start())
    }

    /// Extents one table copy holds.
    pub const fn capacity(&self) -> usize {
        (self.table_blocks as usize * BLOCK - HEADER_LEN) / ENTRY_LEN
    }

    /// The superblock for this geometry.
    pub fn encode(&self, out: &mut Block) {
        out.fill(0);
        put(out, 0, &SUPER_MAGIC);
        put(out, 8, &VERSION.to_le_bytes());
        put(out, 12, &(BLOCK as u32).to_le_bytes());
        put(out, 16, &self.total_blocks.to_le_bytes());
        put(out, 24, &self.disk_id.to_le_bytes());
        put(out, 32, &self.table_blocks.to_le_bytes());
        let crc = crc32c(out.get(..SUPER_CRC_AT).unwrap_or(&[]));
        put(out, SUPER_CRC_AT, &crc.to_le_bytes());
    }

    /// Reads a superblock; any bytes give a typed error, never a panic.
    /// Every byte but the fields above must be zero (one encoding).
    pub fn decode(b: &Block) -> Result<Self, SuperError> {
        if get::<8>(b, 0) != SUPER_MAGIC {
            return Err(SuperError::NotFormatted);
        }
        let crc = u32::from_le_bytes(get(b, SUPER_CRC_AT));
        if crc != crc32c(b.get(..SUPER_CRC_AT).unwrap_or(&[])) {
            return Err(SuperError::Corrupt);
        }
        if u32::from_le_bytes(get(b, 8)) != VERSION
            || u32::from_le_bytes(get(b, 12)) as usize != BLOCK
        {
            return Err(SuperError::Unsupported);
        }
        if b.get(36..SUPER_CRC_AT)
            .is_none_or(|r| r.iter().any(|&x| x != 0))
        {
            return Err(SuperError::Unsupported);
        }
        Geometry::new(
            u64::from_le_bytes(get(b, 16)),
            u32::from_le_bytes(get(b, 32)),
            u64::from_le_bytes(get(b, 24)),
        )
        .map_err(SuperError::Geometry)
    }
}

/// `N` bytes at `at` (zeros if out of range: callers pass constant offsets
/// inside the buffer, so that never happens, but nothing here can panic).
pub(crate) fn get<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = at.checked_add(N).and_then(|end| b.get(at..end)) {
        out.copy_from_slice(src);
    }
    out
}

/// Writes `bytes` at `at` (ignored if out of range; see [`get`]).
pub(crate) fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = at
        .checked_add(bytes.len())
        .and_then(|end| b.get_mut(at..end))
    {
        dst.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn geometry_bounds() {
        assert_eq!(Geometry::new(100, 0, 1), Err(GeometryError::TableSize));
        assert_eq!(
            Geometry::new(100, MAX_TABLE_BLOCKS + 1, 1),
            Err(GeometryError::TableSize)
        );
        // Superblock + 2 × 4 table blocks = 9 metadata blocks: 9 is too few.
        assert_eq!(Geometry::new(9, 4, 1), Err(GeometryError::TooSmall));
        let g = Geometry::new(10, 4, 1).unwrap();
        assert_eq!(
            (g.slot_start(0), g.slot_start(1), g.data_start()),
            (1, 5, 9)
        );
        assert_eq!(g.data_blocks(), 1);
        assert_eq!(g.capacity(), 255);
        assert_eq!(
            Geometry::new(MAX_BLOCKS + 1, 4, 1),
            Err(GeometryError::TooLarge)
        );
        assert_eq!(
            Geometry::new(100, MAX_TABLE_BLOCKS, 1).map(|g| g.capacity()),
            Err(GeometryError::TooSmall)
        );
    }

    #[test]
    fn superblock_round_trip_and_damage() {
        let g = Geometry::new(1 << 20, DEFAULT_TABLE_BLOCKS, 0xfeed).unwrap();
        let mut b = [0u8; BLOCK];
        g.encode(&mut b);
        assert_eq!(Geometry::decode(&b), Ok(g));
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(Geometry::decode(&bad), Err(SuperError::Corrupt));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Geometry::decode(&bad), Err(SuperError::NotFormatted));
        assert_eq!(Geometry::decode(&[0; BLOCK]), Err(SuperError::NotFormatted));
    }

    proptest! {
        #[test]
        fn superblock_garbage_never_panics(v in proptest::collection::vec(any::<u8>(), BLOCK), magic in any::<bool>()) {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(&v);
            if magic {
                b[..8].copy_from_slice(&SUPER_MAGIC);
            }
            let _ = Geometry::decode(&b);
        }

        #[test]
        fn any_single_bit_flip_is_caught(total in 34u64..MAX_BLOCKS, t in 1u32..=16, id in any::<u64>(), bit in 0usize..BLOCK * 8) {
            let g = Geometry::new(total, t, id).unwrap();
            let mut b = [0u8; BLOCK];
            g.encode(&mut b);
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Geometry::decode(&b).is_err());
        }
    }
}
