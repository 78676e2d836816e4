//! A minimal ELF64 reader: just what loading a static domain image needs
//! (the entry point and the `PT_LOAD` segments). Untrusted bytes go raw →
//! checked: every offset and size is bounds-checked, so no input panics.

/// Why an image was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than its headers claim.
    Truncated,
    /// Not ELF, not 64-bit little-endian x86_64, or not an executable.
    NotX86_64Executable,
    /// A program header entry size we do not understand.
    BadPhdrSize,
    /// A segment's file range lies outside the image, or `filesz > memsz`.
    BadSegment,
}

/// Segment permission bits (`p_flags`).
pub mod flags {
    /// Executable.
    pub const X: u32 = 1;
    /// Writable.
    pub const W: u32 = 2;
    /// Readable.
    pub const R: u32 = 4;
}

/// One loadable segment, validated against the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Bytes in memory (the tail beyond `file_len` is zero).
    pub mem_len: u64,
    /// Offset of the segment's bytes in the image.
    pub file_offset: usize,
    /// Bytes taken from the image.
    pub file_len: usize,
    /// `flags::{R, W, X}`.
    pub flags: u32,
}

/// A validated ELF64 executable.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    /// Entry point.
    pub entry: u64,
    phoff: usize,
    phnum: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b.get(at..at + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b.get(at..at + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    let s = b.get(at..at + 8).ok_or(ElfError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

const PT_LOAD: u32 = 1;
const PHDR_LEN: usize = 56;

impl<'a> Elf<'a> {
    /// Checks the ELF header.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let ident = bytes.get(..16).ok_or(ElfError::Truncated)?;
        // Magic, ELFCLASS64, little-endian.
        if ident[..4] != *b"\x7fELF" || ident[4] != 2 || ident[5] != 1 {
            return Err(ElfError::NotX86_64Executable);
        }
        // ET_EXEC, EM_X86_64.
        if u16_at(bytes, 16)? != 2 || u16_at(bytes, 18)? != 62 {
            return Err(ElfError::NotX86_64Executable);
        }
        let entry = u64_at(bytes, 24)?;
        let phoff = usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?;
        if usize::from(u16_at(bytes, 54)?) != PHDR_LEN {
            return Err(ElfError::BadPhdrSize);
        }
        let phnum = usize::from(u16_at(bytes, 56)?);
        let end = phnum
            .checked_mul(PHDR_LEN)
            .and_then(|n| n.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        if end > bytes.len() {
            return Err(ElfError::Truncated);
        }
        Ok(Self {
            bytes,
            entry,
            phoff,
            phnum,
        })
    }

    /// The `PT_LOAD` segments, each validated on its own.
    pub fn segments(&self) -> impl Iterator<Item = Result<Segment, ElfError>> + '_ {
        (0..self.phnum).filter_map(move |i| {
            let ph = self.phoff + i * PHDR_LEN;
            match self.segment(ph) {
                Ok(Some(s)) => Some(Ok(s)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            }
        })
    }

    fn segment(&self, ph: usize) -> Result<Option<Segment>, ElfError> {
        let b = self.bytes;
        if u32_at(b, ph)? != PT_LOAD {
            return Ok(None);
        }
        let flags = u32_at(b, ph + 4)?;
        let offset = u64_at(b, ph + 8)?;
        let vaddr = u64_at(b, ph + 16)?;
        let filesz = u64_at(b, ph + 32)?;
        let memsz = u64_at(b, ph + 40)?;
        let end = offset.checked_add(filesz).ok_or(ElfError::BadSegment)?;
        if end > b.len() as u64 || filesz > memsz || vaddr.checked_add(memsz).is_none() {
            return Err(ElfError::BadSegment);
        }
        Ok(Some(Segment {
            vaddr,
            mem_len: memsz,
            file_offset: offset as usize,
            file_len: filesz as usize,
            flags,
        }))
    }

    /// The bytes of `seg` in the image (validated by `segments`).
    pub fn data(&self, seg: &Segment) -> &'a [u8] {
        self.bytes
            .get(seg.file_offset..seg.file_offset + seg.file_len)
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn image(vaddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
        let mut b = std::vec![0u8; 64 + PHDR_LEN];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&vaddr.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR_LEN as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&(flags::R | flags::X).to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&((64 + PHDR_LEN) as u64).to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_a_segment() {
        let img = image(0x40_0000, b"code", 0x2000);
        let elf = Elf::parse(&img).unwrap();
        assert_eq!(elf.entry, 0x40_0000);
        let segs: Vec<_> = elf.segments().collect::<Result<_, _>>().unwrap();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].vaddr, 0x40_0000);
        assert_eq!(segs[0].mem_len, 0x2000);
        assert_eq!(elf.data(&segs[0]), b"code");
    }

    #[test]
    fn rejects_lies() {
        let mut img = image(0x40_0000, b"code", 2);
        let segs: Vec<_> = Elf::parse(&img).unwrap().segments().collect();
        assert_eq!(segs, std::vec![Err(ElfError::BadSegment)]);
        img[18] = 3; // EM_386
        assert_eq!(Elf::parse(&img).unwrap_err(), ElfError::NotX86_64Executable);
        assert_eq!(Elf::parse(&img[..10]).unwrap_err(), ElfError::Truncated);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400), fix in proptest::bool::ANY) {
            if fix && bytes.len() >= 64 {
                let good = image(0x40_0000, b"", 0);
                bytes[..20].copy_from_slice(&good[..20]);
            }
            if let Ok(e) = Elf::parse(&bytes) {
                for s in e.segments().flatten() {
                    let _ = e.data(&s);
                }
            }
        }
    }
}
