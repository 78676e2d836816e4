//! Checked claims on user memory.
//!
//! A pointer a domain passes is a claim, not a reference. The kernel turns
//! `(addr, len)` into a [`UserRange`] before any access; a `UserRange` only
//! exists if the whole range is canonical, inside the caller's space and does
//! not wrap. It says nothing about whether the pages are bound: the kernel
//! still resolves each page through the software TLB (see [`UserRange::pages`]).

use crate::layout::{is_canonical, PAGE_SHIFT};
use crate::SysError;
use core::ops::Range;

/// A validated `[addr, addr + len)` inside some address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRange {
    addr: u64,
    len: u64,
}

impl UserRange {
    /// Validates a claim against `space` (usually [`crate::layout::USER_SPACE`]).
    ///
    /// Fails with `BadPointer` if `addr + len` overflows, either end is
    /// non-canonical, or the range is not inside `space`. A zero-length range
    /// is valid where its address is (it touches no page).
    pub fn check(addr: u64, len: u64, space: &Range<u64>) -> Result<UserRange, SysError> {
        let end = addr.checked_add(len).ok_or(SysError::BadPointer)?;
        if !is_canonical(addr) || (len > 0 && !is_canonical(end - 1)) {
            return Err(SysError::BadPointer);
        }
        if addr < space.start || end > space.end {
            return Err(SysError::BadPointer);
        }
        Ok(UserRange { addr, len })
    }

    /// Like [`UserRange::check`] and also requires `len <= max`
    /// (`MessageTooLarge` otherwise), e.g. for `debug_write`.
    pub fn check_max(
        addr: u64,
        len: u64,
        max: u64,
        space: &Range<u64>,
    ) -> Result<UserRange, SysError> {
        if len > max {
            return Err(SysError::MessageTooLarge);
        }
        UserRange::check(addr, len, space)
    }

    /// First address.
    pub const fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One past the last address (cannot overflow: checked at construction).
    pub const fn end(&self) -> u64 {
        self.addr + self.len
    }

    /// The virtual page numbers the range touches, in order.
    pub fn pages(&self) -> Range<u64> {
        if self.len == 0 {
            return 0..0;
        }
        (self.addr >> PAGE_SHIFT)..((self.end() - 1) >> PAGE_SHIFT) + 1
    }

    /// The part of the range inside page `vpn`, as (offset in page, length);
    /// `None` if the range does not touch that page.
    pub fn chunk_in_page(&self, vpn: u64) -> Option<(u64, u64)> {
        if !self.pages().contains(&vpn) {
            return None;
        }
        let page_start = vpn << PAGE_SHIFT;
        let page_end = page_start + (1 << PAGE_SHIFT);
        let lo = self.addr.max(page_start);
        let hi = self.end().min(page_end);
        Some((lo - page_start, hi - lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{USER_END, USER_SPACE, USER_START};
    use proptest::prelude::*;

    #[test]
    fn edges() {
        let s = &USER_SPACE;
        assert!(UserRange::check(USER_START, 1, s).is_ok());
        assert!(UserRange::check(USER_START - 1, 1, s).is_err());
        assert!(UserRange::check(USER_END - 1, 1, s).is_ok());
        assert!(UserRange::check(USER_END - 1, 2, s).is_err());
        assert!(UserRange::check(USER_END, 0, s).is_ok());
        assert!(UserRange::check(u64::MAX, 1, s).is_err());
        assert!(UserRange::check(USER_START, u64::MAX, s).is_err());
        assert!(UserRange::check(0xffff_8000_0000_0000, 8, &(0..u64::MAX)).is_ok());
        assert!(UserRange::check(0x0000_8000_0000_0000, 8, &(0..u64::MAX)).is_err());
        assert_eq!(
            UserRange::check_max(USER_START, 9, 8, s),
            Err(SysError::MessageTooLarge)
        );
        let r = UserRange::check(USER_START + 4090, 10, s).unwrap();
        assert_eq!(r.pages().count(), 2);
        assert_eq!(r.chunk_in_page(USER_START >> 12), Some((4090, 6)));
        assert_eq!(r.chunk_in_page((USER_START >> 12) + 1), Some((0, 4)));
        assert_eq!(r.chunk_in_page(0), None);
    }

    fn addr() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            (USER_START - 8192)..(USER_START + 8192),
            (USER_END - 8192)..(USER_END + 8192),
            (u64::MAX - 8192)..=u64::MAX,
        ]
    }

    fn len() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..10_000, any::<u64>(), (u64::MAX - 8192)..=u64::MAX]
    }

    proptest! {
        #[test]
        fn accepted_ranges_are_inside_and_canonical(a in addr(), l in len()) {
            let model = (a as u128) >= USER_START as u128 && (a as u128) + (l as u128) <= USER_END as u128;
            let r = UserRange::check(a, l, &USER_SPACE);
            prop_assert_eq!(r.is_ok(), model);
            if let Ok(r) = r {
                prop_assert!(is_canonical(r.addr()) && is_canonical(r.end()));
                let bytes: u64 = r.pages().map(|p| r.chunk_in_page(p).unwrap().1).sum();
                prop_assert_eq!(bytes, l);
            }
        }

        #[test]
        fn arbitrary_spaces_never_wrap(a in any::<u64>(), l in any::<u64>(), s in any::<u64>(), e in any::<u64>()) {
            if let Ok(r) = UserRange::check(a, l, &(s..e)) {
                prop_assert!(r.addr() >= s && r.end() <= e && r.end() >= r.addr());
                prop_assert!(is_canonical(r.addr()));
            }
        }
    }
}
