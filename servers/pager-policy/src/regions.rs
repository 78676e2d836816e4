//! Where each domain may have pages zero-filled.
//!
//! The supervisor knows a domain's image; the pager does not. For each
//! domain the supervisor may send `Region { domain, start, end }` requests
//! naming the ranges the pager fills on demand (`.bss`, stack, heap). A fault
//! anywhere else is a wild access and kills the domain, which keeps Ilwaco's
//! stack guard page a guard.
//!
//! A domain with no regions recorded gets [`DEFAULT_WINDOW`], which covers
//! the image Ilwaco's `user.ld` links at `USER_START`, so guests work before
//! the supervisor sends regions.

use alloc::vec::Vec;
use core::ops::Range;
use serac_protocol::layout::{is_page_aligned, USER_END, USER_START};
use serac_protocol::DomainId;

/// Faults served for a domain without recorded regions: the first 1 GiB
/// from `USER_START`, where Ilwaco images live.
pub const DEFAULT_WINDOW: Range<u64> = USER_START..0x4000_0000;
/// Most regions one domain may have.
pub const MAX_PER_DOMAIN: usize = 8;
/// Most regions in all: the two an httpd gets (`.bss`, stack) for 200,000
/// domains, past the 100,000 a 1 GiB machine aims at (16 Ki stopped a boot
/// at 8,192 httpd). The table grows as regions come, 24 bytes each.
pub const MAX_REGIONS: usize = 400_000;

/// Heap bytes one region costs.
pub const ENTRY_BYTES: usize = core::mem::size_of::<Entry>();

/// Why a region was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// Unaligned, empty, or outside `USER_START..USER_END`; or no domain.
    Invalid,
    /// [`MAX_PER_DOMAIN`] or [`MAX_REGIONS`] reached, or no memory.
    TooMany,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    domain: DomainId,
    start: u64,
    end: u64,
}

/// The regions of every domain, sorted by domain.
#[derive(Debug, Default)]
pub struct Regions {
    entries: Vec<Entry>,
}

impl Regions {
    /// No regions.
    pub const fn new() -> Regions {
        Regions {
            entries: Vec::new(),
        }
    }

    fn of(&self, domain: DomainId) -> &[Entry] {
        let lo = self.entries.partition_point(|e| e.domain < domain);
        let hi = self.entries.partition_point(|e| e.domain <= domain);
        &self.entries[lo..hi]
    }

    /// Lets `domain` have pages in `start..end` zero-filled.
    pub fn add(&mut self, domain: DomainId, start: u64, end: u64) -> Result<(), RegionError> {
        if domain.is_none()
            || !is_page_aligned(start)
            || !is_page_aligned(end)
            || start >= end
            || start < USER_START
            || end > USER_END
        {
            return Err(RegionError::Invalid);
        }
        if self.of(domain).len() >= MAX_PER_DOMAIN || self.entries.len() >= MAX_REGIONS {
            return Err(RegionError::TooMany);
        }
        self.entries
            .try_reserve(1)
            .map_err(|_| RegionError::TooMany)?;
        let at = self.entries.partition_point(|e| e.domain <= domain);
        self.entries.insert(at, Entry { domain, start, end });
        Ok(())
    }

    /// Makes room for `n` regions in all (at most [`MAX_REGIONS`]), so the
    /// table never reallocates below that: a `Vec` doubling at 65,536
    /// needs 3 MiB in one piece while the old 1.5 MiB is still held.
    pub fn reserve(&mut self, n: usize) -> Result<(), RegionError> {
        let more = n.min(MAX_REGIONS).saturating_sub(self.entries.len());
        self.entries
            .try_reserve_exact(more)
            .map_err(|_| RegionError::TooMany)
    }

    /// Regions the table holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Forgets `domain`'s regions (it is gone, or restarted under a new id).
    pub fn remove_domain(&mut self, domain: DomainId) {
        self.entries.retain(|e| e.domain != domain);
    }

    /// Whether a fault of `domain` at `vaddr` may be zero-filled.
    pub fn allows(&self, domain: DomainId, vaddr: u64) -> bool {
        let mine = self.of(domain);
        if mine.is_empty() {
            return DEFAULT_WINDOW.contains(&vaddr);
        }
        mine.iter().any(|e| (e.start..e.end).contains(&vaddr))
    }

    /// Regions recorded in all.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: DomainId = DomainId::new(3, 1);
    const B: DomainId = DomainId::new(3, 2);

    #[test]
    fn a_reserved_table_never_reallocates() {
        let mut r = Regions::new();
        r.reserve(1_000).unwrap();
        let cap = r.capacity();
        assert!(cap >= 1_000);
        for i in 0..500u32 {
            let d = DomainId::new(i + 1, 1);
            r.add(d, 0x40_0000, 0x41_0000).unwrap();
            r.add(d, 0x50_0000, 0x51_0000).unwrap();
        }
        assert_eq!((r.len(), r.capacity()), (1_000, cap));
        assert!(r.allows(DomainId::new(77, 1), 0x50_0000));
        // Past the bound it reserves no more than the bound.
        let mut big = Regions::new();
        big.reserve(MAX_REGIONS + 5).unwrap();
        assert_eq!(big.capacity(), MAX_REGIONS);
    }

    #[test]
    fn default_window_then_explicit_regions() {
        let mut r = Regions::new();
        assert!(r.allows(A, USER_START));
        assert!(r.allows(A, 0x3fff_ffff));
        assert!(!r.allows(A, 0x7000_0000_0000));
        assert!(!r.allows(A, 0x1000));
        r.add(A, 0x50_0000, 0x52_0000).unwrap();
        assert!(r.allows(A, 0x51_0fff));
        assert!(!r.allows(A, 0x52_0000));
        assert!(
            !r.allows(A, USER_START),
            "explicit regions replace the window"
        );
        assert!(
            r.allows(B, USER_START),
            "another generation is another domain"
        );
        r.remove_domain(A);
        assert!(r.allows(A, USER_START));
        assert!(r.is_empty());
    }

    #[test]
    fn bad_regions_are_refused() {
        let mut r = Regions::new();
        for (s, e) in [
            (0x50_0001, 0x51_0000),
            (0x50_0000, 0x50_0000),
            (0x51_0000, 0x50_0000),
            (0x1000, 0x50_0000),
            (USER_START, USER_END + 0x1000),
        ] {
            assert_eq!(r.add(A, s, e), Err(RegionError::Invalid));
        }
        assert_eq!(
            r.add(DomainId::NONE, USER_START, USER_START + 0x1000),
            Err(RegionError::Invalid)
        );
        for i in 0..MAX_PER_DOMAIN as u64 {
            let s = USER_START + i * 0x1000;
            r.add(A, s, s + 0x1000).unwrap();
        }
        assert_eq!(r.add(A, 0x90_0000, 0x91_0000), Err(RegionError::TooMany));
        r.add(B, 0x90_0000, 0x91_0000).unwrap();
        assert_eq!(r.len(), MAX_PER_DOMAIN + 1);
    }

    #[test]
    fn the_table_holds_two_regions_for_each_of_200_000_domains() {
        let mut r = Regions::new();
        let n = (MAX_REGIONS / 2) as u32;
        assert!(n >= 200_000);
        for i in 0..n {
            let d = DomainId::new(i + 1, 1);
            r.add(d, 0x50_0000, 0x52_0000).unwrap();
            r.add(d, 0x60_0000, 0x61_0000).unwrap();
        }
        assert_eq!(r.len(), MAX_REGIONS);
        let last = DomainId::new(n, 1);
        assert!(r.allows(last, 0x60_0000) && !r.allows(last, USER_START));
        let next = DomainId::new(n + 1, 1);
        assert_eq!(r.add(next, 0x50_0000, 0x52_0000), Err(RegionError::TooMany));
        assert!(
            r.allows(next, USER_START),
            "a refused domain keeps the window"
        );
    }
}
