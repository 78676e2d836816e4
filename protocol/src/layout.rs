//! The user address-space layout every domain shares, and the clock page.
//!
//! ```text
//! 0x0000_0000_0000_0000 .. 0x0020_0000   never mapped (null-pointer guard)
//! 0x0000_0000_0020_0000                   clock page   (global, read-only)
//! 0x0000_0000_0020_1000                   IPC buffer   (per domain, RW)
//! 0x0000_0000_0020_2000                   upcall page  (per domain, RW)
//! 0x0000_0000_0040_0000 .. 0x7fff_ffff_f000   mappable by `map` (USER_START..USER_END)
//! ```
//!
//! The fixed pages lie below [`USER_START`], so `map`/`unmap` can never
//! replace them. [`USER_END`] stops one page short of the canonical limit:
//! a `syscall` in the last canonical page would return to a non-canonical
//! `rip`, and `sysret` to such an address faults in ring 0 on Intel CPUs.

use core::ops::Range;

/// Bytes in a page (the only page size bindings use).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// The global read-only clock page (see [`clock`]).
pub const CLOCK_PAGE_ADDR: u64 = 0x0000_0000_0020_0000;
/// The domain's IPC buffer: [`crate::header::HEADER_LEN`] header, then payload.
pub const IPC_BUFFER_ADDR: u64 = 0x0000_0000_0020_1000;
/// Size of the IPC buffer.
pub const IPC_BUFFER_SIZE: u64 = PAGE_SIZE;
/// The domain's upcall page (see [`crate::upcall`]).
pub const UPCALL_PAGE_ADDR: u64 = 0x0000_0000_0020_2000;

/// Where the kernel binds the boot archive (read-only) in the first domain.
pub const BOOT_ARCHIVE_ADDR: u64 = 0x0000_1000_0000_0000;
/// Top of the first domain's initial stack (16 pages below it are bound).
pub const INITIAL_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;

/// First address `map` accepts.
pub const USER_START: u64 = 0x0000_0000_0040_0000;
/// One past the last address `map` accepts (exclusive).
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// The mappable range, as the argument of [`crate::user::UserRange::check`].
pub const USER_SPACE: Range<u64> = USER_START..USER_END;

/// Where a syscall's pointer argument may point: the mappable range plus
/// the fixed pages (so a domain can e.g. `debug_write` from its IPC buffer).
pub const SYSCALL_SPACE: Range<u64> = CLOCK_PAGE_ADDR..USER_END;

/// Largest payload one message carries: the IPC buffer minus its header.
#[allow(
    clippy::cast_possible_truncation,
    reason = "a page size fits any usize"
)]
pub const MAX_PAYLOAD: usize = IPC_BUFFER_SIZE as usize - crate::header::HEADER_LEN;

// The fixed pages must stay below what `map` can touch.
const _: () = assert!(UPCALL_PAGE_ADDR + PAGE_SIZE <= USER_START && USER_START < USER_END);

/// Whether `addr` is canonical for 48-bit virtual addresses (bits 63..47 equal).
pub const fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1_ffff
}

/// The virtual page number of an address.
pub const fn vpn(addr: u64) -> u64 {
    addr >> PAGE_SHIFT
}

/// Whether an address is page aligned.
pub const fn is_page_aligned(addr: u64) -> bool {
    addr & (PAGE_SIZE - 1) == 0
}

/// The clock page: the TSC calibration, so domains read time with `rdtsc`
/// and no syscall. The kernel writes it once at boot; all fields are
/// little-endian `u64`s at the offsets below.
pub mod clock {
    /// Layout version, currently [`VERSION`].
    pub const OFF_VERSION: usize = 0;
    /// TSC ticks per second.
    pub const OFF_TSC_HZ: usize = 8;
    /// TSC value at the kernel's boot (the zero of "time since boot").
    pub const OFF_BOOT_TSC: usize = 16;
    /// Current layout version.
    pub const VERSION: u64 = 1;

    /// The clock page's contents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ClockInfo {
        /// TSC ticks per second; never 0 in a valid page.
        pub tsc_hz: u64,
        /// TSC at boot.
        pub boot_tsc: u64,
    }

    impl ClockInfo {
        /// Writes the page image's first 24 bytes; `None` if `page` is shorter.
        pub fn write(&self, page: &mut [u8]) -> Option<()> {
            let b = page.get_mut(..24)?;
            b[OFF_VERSION..OFF_VERSION + 8].copy_from_slice(&VERSION.to_le_bytes());
            b[OFF_TSC_HZ..OFF_TSC_HZ + 8].copy_from_slice(&self.tsc_hz.to_le_bytes());
            b[OFF_BOOT_TSC..OFF_BOOT_TSC + 8].copy_from_slice(&self.boot_tsc.to_le_bytes());
            Some(())
        }

        /// Reads a page image; `None` if short, of another version, or `tsc_hz` is 0.
        pub fn read(page: &[u8]) -> Option<ClockInfo> {
            let word = |off: usize| -> Option<u64> {
                let s = page.get(off..off + 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                Some(u64::from_le_bytes(a))
            };
            if word(OFF_VERSION)? != VERSION {
                return None;
            }
            let tsc_hz = word(OFF_TSC_HZ)?;
            if tsc_hz == 0 {
                return None;
            }
            Some(ClockInfo {
                tsc_hz,
                boot_tsc: word(OFF_BOOT_TSC)?,
            })
        }

        /// Nanoseconds since boot at TSC value `tsc` (saturating, no overflow).
        pub fn ns_since_boot(&self, tsc: u64) -> u64 {
            let ticks = tsc.saturating_sub(self.boot_tsc);
            let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.tsc_hz.max(1));
            u64::try_from(ns).unwrap_or(u64::MAX)
        }

        /// The TSC value `ns` nanoseconds after `tsc` (an `idle` deadline).
        pub fn deadline_after_ns(&self, tsc: u64, ns: u64) -> u64 {
            let ticks = u128::from(ns) * u128::from(self.tsc_hz) / 1_000_000_000;
            tsc.saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clock::ClockInfo;
    use super::*;

    #[test]
    fn layout_is_consistent() {
        for a in [
            CLOCK_PAGE_ADDR,
            IPC_BUFFER_ADDR,
            UPCALL_PAGE_ADDR,
            USER_START,
            USER_END,
        ] {
            assert!(is_page_aligned(a) && is_canonical(a));
            assert!(a <= USER_END);
        }
        assert!(is_canonical(0xffff_8000_0000_0000));
        assert!(!is_canonical(0x0000_8000_0000_0000));
        assert_eq!(MAX_PAYLOAD, 4096 - 24);
    }

    #[test]
    fn clock_page_round_trips() {
        let c = ClockInfo {
            tsc_hz: 2_000_000_000,
            boot_tsc: 1000,
        };
        let mut page = [0u8; 64];
        assert_eq!(ClockInfo::read(&page), None);
        c.write(&mut page).unwrap();
        assert_eq!(ClockInfo::read(&page), Some(c));
        assert_eq!(c.ns_since_boot(1000 + 2_000_000_000), 1_000_000_000);
        assert_eq!(c.deadline_after_ns(0, 1000), 2000);
        assert_eq!(c.ns_since_boot(0), 0);
        assert_eq!(c.deadline_after_ns(u64::MAX, u64::MAX), u64::MAX);
    }
}
