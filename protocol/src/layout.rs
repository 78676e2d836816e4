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
/// Where the supervisor binds, read-only, the list of frames it gave a
/// domain whose manifest entry has `frames=` (see [`grant`]). Nothing is
/// bound there in other domains, so only such a domain may read it.
pub const GRANT_PAGE_ADDR: u64 = 0x0000_0d00_0000_0000;

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

/// The grant page at [`GRANT_PAGE_ADDR`]: which frames the supervisor gave
/// the domain (`domain_ctl(GiveFrame)`; the domain owns them, unbound and
/// zeroed, and may `map` them in its own space). Little-endian `u64`s: the
/// version at 0, the frame count at 8, the frame holding this page at 16
/// (the supervisor's, not the domain's: a frame it can name but not bind),
/// a run of heap frames (first at 24, count at 32: given too, for the
/// domain to grow its heap with; the vnic's port tables), then the listed
/// frame numbers. The run is not listed frame by frame, so it may be far
/// larger than [`MAX_FRAMES`].
pub mod grant {
    /// Layout version, currently [`VERSION`].
    pub const OFF_VERSION: usize = 0;
    /// Number of frames listed.
    pub const OFF_COUNT: usize = 8;
    /// The frame the page itself is in.
    pub const OFF_PAGE_FRAME: usize = 16;
    /// The heap run's first frame.
    pub const OFF_RUN_FIRST: usize = 24;
    /// The heap run's length in frames (0: none).
    pub const OFF_RUN_COUNT: usize = 32;
    /// The first frame number; the rest follow.
    pub const OFF_FRAMES: usize = 40;
    /// Current layout version (2 added the heap run).
    pub const VERSION: u64 = 2;
    /// Most frames one grant lists (`frames=` in the manifest).
    pub const MAX_FRAMES: usize = 256;
    /// Bytes of the page a full grant uses.
    pub const BYTES: usize = OFF_FRAMES + 8 * MAX_FRAMES;
    const _: () = assert!(BYTES as u64 <= super::PAGE_SIZE);

    /// A grant page's contents.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FrameGrant {
        /// The frame holding the grant page (not the domain's).
        pub page_frame: u64,
        count: usize,
        frames: [u64; MAX_FRAMES],
        run: (u64, u64),
    }

    impl FrameGrant {
        /// A grant of `frames`; `None` for more than [`MAX_FRAMES`].
        pub fn new(page_frame: u64, frames: &[u64]) -> Option<FrameGrant> {
            let mut all = [0u64; MAX_FRAMES];
            all.get_mut(..frames.len())?.copy_from_slice(frames);
            Some(FrameGrant {
                page_frame,
                count: frames.len(),
                frames: all,
                run: (0, 0),
            })
        }

        /// The same grant with `count` heap frames from `first` on.
        pub fn with_run(mut self, first: u64, count: u64) -> FrameGrant {
            self.run = if count == 0 { (0, 0) } else { (first, count) };
            self
        }

        /// The heap run: its frames in order (empty without one).
        pub fn run(&self) -> core::ops::Range<u64> {
            self.run.0..self.run.0.saturating_add(self.run.1)
        }

        /// The frames given, in the supervisor's order.
        pub fn frames(&self) -> &[u64] {
            self.frames.get(..self.count).unwrap_or(&[])
        }

        /// Writes the page image; returns the bytes used, `None` if `page`
        /// is shorter than that.
        pub fn write(&self, page: &mut [u8]) -> Option<usize> {
            let used = OFF_FRAMES + 8 * self.count;
            let b = page.get_mut(..used)?;
            let words = [
                VERSION,
                self.count as u64,
                self.page_frame,
                self.run.0,
                self.run.1,
            ];
            for (w, v) in words.iter().chain(self.frames()).enumerate() {
                b[8 * w..8 * w + 8].copy_from_slice(&v.to_le_bytes());
            }
            Some(used)
        }

        /// Reads a page through `word(offset)`, which returns the `u64` at
        /// that byte offset; `None` for another version or a count over
        /// [`MAX_FRAMES`] (a zero page is not a grant).
        pub fn read(mut word: impl FnMut(usize) -> u64) -> Option<FrameGrant> {
            if word(OFF_VERSION) != VERSION {
                return None;
            }
            let count = usize::try_from(word(OFF_COUNT)).ok()?;
            if count > MAX_FRAMES {
                return None;
            }
            let mut frames = [0u64; MAX_FRAMES];
            for (i, f) in frames.iter_mut().take(count).enumerate() {
                *f = word(OFF_FRAMES + 8 * i);
            }
            let run = (word(OFF_RUN_FIRST), word(OFF_RUN_COUNT));
            run.0.checked_add(run.1)?;
            Some(FrameGrant {
                page_frame: word(OFF_PAGE_FRAME),
                count,
                frames,
                run: if run.1 == 0 { (0, 0) } else { run },
            })
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
            GRANT_PAGE_ADDR,
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

    #[test]
    fn grant_page_round_trips() {
        use super::grant::{FrameGrant, MAX_FRAMES, OFF_COUNT};
        let g = FrameGrant::new(77, &[5, 6, 9]).unwrap();
        let mut page = [0u8; 4096];
        assert_eq!(g.write(&mut page), Some(64));
        let word = |p: &[u8; 4096], off: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&p[off..off + 8]);
            u64::from_le_bytes(a)
        };
        let back = FrameGrant::read(|off| word(&page, off)).unwrap();
        assert_eq!(back, g);
        assert_eq!((back.frames(), back.page_frame), (&[5u64, 6, 9][..], 77));
        assert!(g.write(&mut page[..63]).is_none());
        assert!(back.run().is_empty());
        // With a heap run: read back whole, past what the page could list.
        let r = FrameGrant::new(77, &[5]).unwrap().with_run(1000, 20_000);
        r.write(&mut page).unwrap();
        let back = FrameGrant::read(|off| word(&page, off)).unwrap();
        assert_eq!((back.run(), back.frames()), (1000..21_000, &[5u64][..]));
        // A run that wraps is no grant.
        page[super::grant::OFF_RUN_FIRST..][..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(FrameGrant::read(|off| word(&page, off)).is_none());
        // Version 1 pages (no run words) are not read as version 2.
        page[..8].copy_from_slice(&1u64.to_le_bytes());
        assert!(FrameGrant::read(|off| word(&page, off)).is_none());
        g.write(&mut page).unwrap();
        assert!(FrameGrant::read(|_| 0).is_none(), "a zero page is no grant");
        page[OFF_COUNT..OFF_COUNT + 8].copy_from_slice(&(MAX_FRAMES as u64 + 1).to_le_bytes());
        assert!(FrameGrant::read(|off| word(&page, off)).is_none());
        assert!(FrameGrant::new(0, &[1; MAX_FRAMES + 1]).is_none());
        let full = FrameGrant::new(0, &[3; MAX_FRAMES]).unwrap();
        assert_eq!(full.write(&mut page), Some(super::grant::BYTES));
    }
}
