//! CRC-32C (Castagnoli, the iSCSI polynomial) over metadata and image
//! contents, from the `crc` crate (table-driven, no `unsafe`, `no_std`).

use crc::{Crc, Digest, CRC_32_ISCSI};

static CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// A running CRC-32C, for data that arrives block by block.
pub struct Running(Digest<'static, u32>);

impl core::fmt::Debug for Running {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Running(crc32c)")
    }
}

impl Running {
    /// Nothing fed yet.
    pub fn new() -> Self {
        Running(CRC32C.digest())
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The CRC of everything fed.
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }
}

impl Default for Running {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_castagnoli() {
        // The check value of CRC-32C (RFC 3720, B.4).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0; 32]), 0x8a91_36aa);
        let mut r = Running::new();
        r.update(b"1234");
        r.update(b"56789");
        assert_eq!(r.finish(), 0xe306_9283);
    }
}
