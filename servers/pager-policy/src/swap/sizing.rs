//! How big the swapper's tables are: every table is reserved when the
//! engine is built (the slot map when the area opens), so the rule is what
//! bounds frames, domains and slots, not a constant.
//!
//! The swapper sizes them from its first grant ([`Sizing::for_grant`]) and
//! grows its heap with that many of the grant's frames. [`Sizing::for_heap`]
//! is the older rule for a given heap: of the heap, 1/16 (at least 192 KiB) stays for everything else (buffers,
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

/// Heap bytes one zero-fill region costs (the pager's region table).
pub const REGION_BYTES: usize = crate::regions::ENTRY_BYTES;
/// Regions reserved per domain record (not the records' floor): the two
/// an httpd gets (`.bss`, stack); past them the table grows as they come. Reserved up front because the table doubling as it grew found
/// no 3 MiB in the heap at 65,536 regions (a boot of 100,000 httpd).
pub const REGIONS_PER_DOMAIN: usize = 2;

/// Granted frames per domain record when sizing from a grant: one, so
/// that the records outnumber the kernel's domain slots at any memory size
/// (it has one per 10 KiB of RAM; a record is 48 bytes, under 1.2 % of the
/// frame it is sized by). At 16 a 1 GiB machine's swapper held 14,848
/// records (the floor), fewer than the domains it boots.
pub const FRAMES_PER_DOMAIN: usize = 1;
/// Swap slots per granted frame (a bit each).
pub const SLOTS_PER_FRAME: usize = 64;
/// Least spare heap grown beside the tables.
pub const SPARE_MIN: usize = 64 * 1024;
/// Most frames one grant is sized for: its tables (about 300 bytes a
/// frame) stay well inside Ilwaco's 4 GiB growth window.
pub const MAX_GRANT: u64 = 8 << 20;
const PAGE: usize = 4096;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Regions reserved for `domains` records, within the table's bound.
const fn regions_for(domains: usize) -> usize {
    let r = domains.saturating_mul(REGIONS_PER_DOMAIN);
    if r < crate::regions::MAX_REGIONS {
        r
    } else {
        crate::regions::MAX_REGIONS
    }
}

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
    /// Zero-fill regions the pager's table holds without growing (0: it
    /// grows from the spare heap as they come).
    pub regions: usize,
}

impl Sizing {
    /// What the old static 2 MiB heap held: the floor of
    /// [`Sizing::for_frames`].
    pub const MIN: Sizing = Sizing::for_heap(2 << 20);

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
            regions: 0,
        }
    }

    /// The tables for a grant of `n` frames: every frame tracked, a
    /// domain record per [`FRAMES_PER_DOMAIN`] frames, a loose entry per
    /// frame, [`SLOTS_PER_FRAME`] slots a frame, each at least what the
    /// old static 2 MiB heap gave ([`Sizing::MIN`]).
    pub const fn for_frames(n: usize) -> Sizing {
        let m = Sizing::MIN;
        Sizing {
            frames: n,
            pool: n,
            domains: max(n / FRAMES_PER_DOMAIN, m.domains),
            loose: max(n, m.loose),
            slot_bytes: max(n.saturating_mul(SLOTS_PER_FRAME / 8), m.slot_bytes),
            regions: regions_for(n / FRAMES_PER_DOMAIN),
        }
    }

    /// [`Sizing::for_frames`] without the floors, for a grant too small to
    /// pay for them.
    const fn bare(n: usize) -> Sizing {
        Sizing {
            frames: n,
            pool: n,
            domains: max(n / FRAMES_PER_DOMAIN, 1),
            loose: n,
            slot_bytes: n.saturating_mul(SLOTS_PER_FRAME / 8),
            regions: regions_for(max(n / FRAMES_PER_DOMAIN, 1)),
        }
    }

    /// Bytes of heap to grow for these tables: [`Sizing::bytes`] and a
    /// sixteenth (at least [`SPARE_MIN`]) for the allocator's headers and
    /// what grows later (regions, buffers).
    pub const fn heap_bytes(&self) -> usize {
        let b = self.bytes();
        b.saturating_add(max(b / 16, SPARE_MIN))
    }

    /// The tables for a first grant of `count` frames and how many of its
    /// frames they take as heap (the rest go to the pool): `None` when the
    /// grant is too small to pay for even bare tables with half of it.
    pub const fn for_grant(count: u64) -> Option<(Sizing, usize)> {
        if count > MAX_GRANT {
            return Sizing::for_grant(MAX_GRANT);
        }
        let n = count as usize;
        let full = Sizing::for_frames(n);
        let k = full.heap_bytes().div_ceil(PAGE);
        if k <= n / 2 {
            return Some((full, k));
        }
        let bare = Sizing::bare(n);
        let k = bare.heap_bytes().div_ceil(PAGE);
        if n > 0 && k <= n / 2 {
            Some((bare, k))
        } else {
            None
        }
    }

    /// Heap bytes the tables take at most, the slot map full.
    pub const fn bytes(&self) -> usize {
        self.frames * FRAME_BYTES
            + self.pool * POOL_BYTES
            + self.domains * DOMAIN_BYTES
            + self.loose * LOOSE_BYTES
            + self.slot_bytes
            + self.regions * REGION_BYTES
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
        fits(s);
        let q = Swap::new(cfg(), s, TwoQ::new).unwrap();
        assert!(q.policy().metadata_bytes() / s.frames.max(1) <= 128);
        let sw = Swap::new(cfg(), s, |c| WsClock::new(c, 10)).unwrap();
        let w = sw.policy().metadata_bytes() / s.frames.max(1);
        assert!(w <= 128, "{w}");
    }

    /// Builds the tables `s` gives, the area's slot map and the pool full,
    /// and checks WSClock's take no more than `s.bytes()`.
    fn fits(s: Sizing) {
        let mut sw = Swap::new(cfg(), s, |c| WsClock::new(c, 10)).unwrap();
        // An area far bigger than the map's share: the map is capped.
        assert_eq!(sw.ensure_open(&mut Void(1 << 31)), Ok(true));
        assert_eq!(sw.slots() as usize, s.slot_bytes * 8);
        let mut pool = FramePool::with_capacity(s.pool);
        assert_eq!(pool.grant(0x1000, s.pool as u64), Ok(s.pool as u64));
        let used = sw.metadata_bytes() + pool.metadata_bytes();
        assert!(used <= s.bytes(), "{used} > {} for {s:?}", s.bytes());
        let mut q = Swap::new(cfg(), s, TwoQ::new).unwrap();
        assert_eq!(q.ensure_open(&mut Void(1 << 31)), Ok(true));
        let used = q.metadata_bytes() + pool.metadata_bytes();
        // 2Q's ghosts may pass the tables' share, not the heap grown.
        assert!(
            used <= s.heap_bytes(),
            "2Q: {used} > {} for {s:?}",
            s.heap_bytes()
        );
    }

    #[test]
    fn frames_fit_their_share() {
        built_fits(1 << 20);
        built_fits(4 << 20);
    }

    #[test]
    fn grants_of_the_test_machines_and_a_1_gib_one() {
        // About what a 64 MiB machine's swapper is given, and a 1 GiB one's
        // (1,536 of its frames reserve 262,144 regions).
        for (count, most_taken) in [(6_000u64, 800usize), (131_072, 12_000)] {
            let (s, k) = Sizing::for_grant(count).unwrap();
            assert_eq!(s.frames, count as usize, "every frame tracked");
            assert!(s.domains >= Sizing::MIN.domains && s.loose >= Sizing::MIN.loose);
            assert!(s.slot_bytes >= Sizing::MIN.slot_bytes);
            assert!(k <= most_taken, "{k} frames for {s:?}");
            assert!(k * 4096 >= s.heap_bytes());
        }
        // A 1 GiB machine's grant (the 10,000-httpd boot's): a record for
        // every one of the kernel's 104,218 domain slots there.
        let (s, _) = Sizing::for_grant(150_525).unwrap();
        assert!(s.domains >= 104_218, "{s:?}");
        // And two regions each for 100,000 httpd, reserved: the table
        // grown by doubling found no room at 65,536.
        assert!(s.regions >= 200_000, "{s:?}");
        assert!(s.bytes() >= s.regions * REGION_BYTES);
        // Too small for the floors: bare tables; too small for those: none.
        let (s, k) = Sizing::for_grant(400).unwrap();
        assert!(s.domains < Sizing::MIN.domains && k <= 200, "{s:?} {k}");
        assert_eq!(Sizing::for_grant(20), None);
        assert_eq!(Sizing::for_grant(0), None);
        assert_eq!(Sizing::for_grant(u64::MAX), Sizing::for_grant(MAX_GRANT));
    }

    /// A kernel for the grant test: owns every frame, none bound.
    struct NoMmu;
    impl crate::Mmu for NoMmu {
        fn zero(&mut self, _: u64) -> Result<(), serac_protocol::SysError> {
            Ok(())
        }
        fn bind(
            &mut self,
            _: serac_protocol::Handle,
            _: u64,
            _: u64,
        ) -> Result<(), serac_protocol::SysError> {
            Ok(())
        }
        fn frames(
            &mut self,
            _: &[u64],
            _: u64,
            out: &mut [serac_protocol::syscall::FrameRecord],
        ) -> Result<(), serac_protocol::SysError> {
            out.fill(serac_protocol::syscall::FrameRecord::default());
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        /// A first grant: the tables it pays for fit the heap its frames
        /// grow, and the pager's pool takes every frame the tables left.
        #[test]
        fn a_grant_pays_for_its_tables(count in 21u64..200_000, first in 0x100u64..0x10_0000) {
            use crate::{Incoming, Pager, ZeroFill};
            use serac_protocol::client::LABEL_PAGER;
            use serac_protocol::pager::{Reply, Request};
            let Some((s, k)) = Sizing::for_grant(count) else {
                prop_assert!(Sizing::bare(count as usize).heap_bytes().div_ceil(PAGE) > count as usize / 2);
                return Ok(());
            };
            prop_assert!(k <= count as usize / 2);
            prop_assert!(k * PAGE >= s.heap_bytes() && s.heap_bytes() > s.bytes());
            fits(s);
            let mut p = Pager::new(ZeroFill);
            p.set_early_room(MAX_GRANT);
            prop_assert_eq!(p.stats().room, MAX_GRANT);
            let mut buf = [0u8; 32];
            let whole = serac_protocol::codec::encode(&Request::Grant { first, count }, &mut buf).unwrap().to_vec();
            let msg = Incoming { label: LABEL_PAGER, badge: 7, reply: serac_protocol::Handle::NONE, payload: &whole };
            prop_assert_eq!(p.first_grant(&msg), Some((first, count)));
            let sw = Swap::new(cfg(), s, |c| WsClock::new(c, 10)).unwrap();
            prop_assert!(p.set_swap(sw).is_ok());
            let rest = Request::Grant { first: first + k as u64, count: count - k as u64 };
            let mut buf = [0u8; 32];
            let payload = serac_protocol::codec::encode(&rest, &mut buf).unwrap().to_vec();
            let mut out = [0u8; 64];
            let msg = Incoming { payload: &payload, ..msg };
            let (resp, _) = p.handle(&msg, &mut NoMmu, &mut out);
            prop_assert_eq!(serac_protocol::codec::decode::<Reply>(&out[..resp.len]), Ok(Reply::Ok));
            prop_assert_eq!(p.pool.total() + k, count as usize);
            // Only once; the room is the pool's from now on.
            prop_assert_eq!(p.first_grant(&msg), None);
            prop_assert_eq!(p.stats().room, k as u64);
        }

        /// More frames never give smaller tables.
        #[test]
        fn grants_grow_monotonically(count in 0u64..(1 << 24), more in 0u64..(1 << 20)) {
            if let (Some((s, k)), Some((t, j))) = (Sizing::for_grant(count), Sizing::for_grant(count + more)) {
                prop_assert!(t.frames >= s.frames && t.domains >= s.domains && t.slot_bytes >= s.slot_bytes);
                prop_assert!(j >= k);
            }
        }
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
