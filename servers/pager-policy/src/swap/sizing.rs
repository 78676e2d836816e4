//! How big the swapper's tables are, from its heap: every table is
//! reserved at start (the slot map when the area opens), so the rule is
//! what bounds frames, domains and slots, not a constant.
//!
//! Of the heap, 1/16 (at least 192 KiB) stays for everything else (buffers,
//! the grant runs, the region table); of the rest, tracked resident pages
//! (the engine's table and the policy's) take 1/4, domain records 3/8,
//! the frame pool 1/8 (16 bytes a frame: it may hold more frames than are
//! tracked, as a pager without a disk needs), loose pages 1/8 and the slot
//! map 1/8. A domain swapped out whole costs a record and a bit a page, a
//! tracked page a frame's worth of tables, and most domains are meant to
//! be out.

/// Bytes an [`Index`](crate::replace::index::Index) entry costs per id, at
/// most (between two and four `u32` buckets an id).
pub(crate) const INDEX_BYTES: usize = 16;

/// Heap bytes one tracked resident page costs the swapper, at most: the
/// engine's resident entry (48 with its free-list word and index share)
/// and the policy's resident slot and domain record (WSClock and 2Q, under
/// 128; `frames_fit_their_share` checks it).
pub const FRAME_BYTES: usize = 48 + 128;
/// Heap bytes one frame costs the pool.
pub const POOL_BYTES: usize = 16;
/// Heap bytes one domain record costs (record and index share).
pub const DOMAIN_BYTES: usize = 32 + INDEX_BYTES;
/// Heap bytes one loose page costs (entry, free-list word, index share).
pub const LOOSE_BYTES: usize = 32 + 4 + INDEX_BYTES;

/// The tables' sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Resident pages the engine and its policy track (past them a fault
    /// pages something out first).
    pub frames: usize,
    /// Frames the pool takes (at least `frames`).
    pub pool: usize,
    /// Domain records (one per domain with a run or counters).
    pub domains: usize,
    /// Pages paged out alone (not in a run).
    pub loose: usize,
    /// Bytes of the slot map: 8 slots a byte (the area may be smaller).
    pub slot_bytes: usize,
}

impl Sizing {
    /// The tables a heap of `heap` bytes holds.
    pub const fn for_heap(heap: usize) -> Sizing {
        let spare = if heap / 16 > 192 * 1024 {
            heap / 16
        } else {
            192 * 1024
        };
        let b = heap.saturating_sub(spare);
        let frames = b / 4 / FRAME_BYTES;
        let pool = b / 8 / POOL_BYTES;
        Sizing {
            frames,
            pool: if pool > frames { pool } else { frames },
            domains: b / 8 * 3 / DOMAIN_BYTES,
            loose: b / 8 / LOOSE_BYTES,
            slot_bytes: b / 8,
        }
    }

    /// Heap bytes the tables take at most, the slot map full.
    pub const fn bytes(&self) -> usize {
        self.frames * FRAME_BYTES
            + self.pool * POOL_BYTES
            + self.domains * DOMAIN_BYTES
            + self.loose * LOOSE_BYTES
            + self.slot_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DiskError, Swap, SwapConfig, SwapDisk};
    use super::*;
    use crate::pool::FramePool;
    use crate::replace::{Replacement, TwoQ, WsClock};
    use proptest::prelude::*;

    fn cfg() -> SwapConfig {
        SwapConfig {
            boot_id: 1,
            restarted: false,
            idle_after: 100,
            tau: 10,
        }
    }

    /// An area of `blocks` blocks that reads zeros and drops writes.
    struct Void(u64);
    impl SwapDisk for Void {
        fn open(&mut self) -> Result<u64, DiskError> {
            Ok(self.0)
        }
        fn read(&mut self, _: u64, b: &mut [u8; 4096]) -> Result<(), DiskError> {
            b.fill(0);
            Ok(())
        }
        fn write(&mut self, _: u64, _: &[u8; 4096]) -> Result<(), DiskError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), DiskError> {
            Ok(())
        }
    }

    #[test]
    fn the_default_heap_is_what_it_was_and_more() {
        // Ilwaco's default 1 MiB heap: half the resident pages the old
        // constants gave (2,048), far more records (256) and slots (12,288).
        let s = Sizing::for_heap(1 << 20);
        assert!(s.frames >= 1_200 && s.domains >= 6_000, "{s:?}");
        assert!(s.pool >= 6_000, "{s:?}");
        assert!(s.slot_bytes * 8 >= 12_288 * 50, "{s:?}");
        assert!(s.bytes() <= (1 << 20) - 192 * 1024);
    }

    #[test]
    fn a_24_mib_heap_holds_100k_domains_of_60_pages() {
        // SERAC_SWAPPER_HEAP_MIB=24 (servers/swapper/build.rs).
        let s = Sizing::for_heap(24 << 20);
        assert!(s.domains >= 180_000, "{s:?}");
        assert!(s.slot_bytes * 8 >= 6_000_000, "{s:?}");
        assert!(s.frames >= 30_000, "{s:?}");
        // Half a 1 GiB machine's frames, as the supervisor gives them.
        assert!(s.pool >= 131_072, "{s:?}");
        // The swapper's default 2 MiB: more resident pages than the old
        // constants (2,048), 58 times the records (256), more pool frames
        // (12,288), 1.9 M slots.
        let s = Sizing::for_heap(2 << 20);
        assert!(s.domains >= 14_000 && s.frames >= 2_600, "{s:?}");
        assert!(s.pool >= 14_000, "{s:?}");
        assert!(s.slot_bytes * 8 >= 1_900_000, "{s:?}");
    }

    /// The tables as built fit the share the rule gave them, for both
    /// policies, with the area's slot map and the pool full.
    fn built_fits(heap: usize) {
        let s = Sizing::for_heap(heap);
        let mut sw = Swap::new(cfg(), s, |c| WsClock::new(c, 10)).unwrap();
        // An area far bigger than the map's share: the map is capped.
        assert_eq!(sw.ensure_open(&mut Void(1 << 31)), Ok(true));
        assert_eq!(sw.slots() as usize, s.slot_bytes * 8);
        let mut pool = FramePool::with_capacity(s.pool);
        assert_eq!(pool.grant(0x1000, s.pool as u64), Ok(s.pool as u64));
        let used = sw.metadata_bytes() + pool.metadata_bytes();
        assert!(used <= s.bytes(), "{used} > {} for {s:?}", s.bytes());
        let q = Swap::new(cfg(), s, TwoQ::new).unwrap();
        assert!(q.policy().metadata_bytes() / s.frames.max(1) <= 128);
        let w = sw.policy().metadata_bytes() / s.frames.max(1);
        assert!(w <= 128, "{w}");
    }

    #[test]
    fn frames_fit_their_share() {
        built_fits(1 << 20);
        built_fits(4 << 20);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// The rule never promises more than the heap, and grows with it.
        #[test]
        fn never_more_than_the_heap(heap in 0usize..(1 << 34), more in 0usize..(1 << 30)) {
            let s = Sizing::for_heap(heap);
            prop_assert!(s.bytes() <= heap.saturating_sub(192 * 1024) || s.bytes() == 0);
            let t = Sizing::for_heap(heap + more);
            prop_assert!(t.frames >= s.frames && t.domains >= s.domains && t.loose >= s.loose);
            prop_assert!(s.pool >= s.frames && t.pool >= s.pool);
        }
    }
}
