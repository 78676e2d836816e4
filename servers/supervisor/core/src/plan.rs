//! Which pages of an ELF image are bound, with what rights and which
//! bytes: the one set of loading rules. The supervisor uses it for every
//! domain it builds (docs/abi.md section 10, step 2); xtask uses it on the
//! host to digest the first domain's ELF into a boot image, so the kernel
//! parses no ELF.
//!
//! For every `PT_LOAD` segment: the pages that carry file bytes (text,
//! rodata, data, and the partial page at the data/bss boundary), and with
//! `eager` also the zero pages after them (`.bss`, Ilwaco's stack). Rights
//! are `R` plus `W`/`X` from the segment flags. Segments may share a page
//! but not bytes: a shared page is bound once, holds every segment's bytes
//! and gets the union of their rights. A page that would need `W` and `X`
//! is refused (W^X), as is anything outside `USER_START..USER_END`.

use elf::abi::{EM_X86_64, ET_EXEC, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::ElfBytes;
use serac_protocol::layout::{PAGE_SIZE, USER_END, USER_START};
use serac_protocol::PageRights;

/// Most `PT_LOAD` segments in one image.
pub const MAX_SEGMENTS: usize = 16;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// The ELF parser rejected it.
    BadElf,
    /// Not a 64-bit little-endian x86_64 executable.
    NotX86_64Executable,
    /// A segment's file bytes lie outside the image, or `filesz > memsz`.
    BadSegment,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment reaches outside `USER_START..USER_END`.
    OutOfRange,
    /// Two segments claim the same bytes.
    Overlap,
    /// The page at `vaddr` would need `W` and `X` at once.
    WriteExec {
        /// The page.
        vaddr: u64,
    },
    /// The entry point is not in an executable segment.
    BadEntry,
}

/// Bytes to copy into one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    /// Where in the page they go.
    pub page_offset: usize,
    /// Where in the image they come from.
    pub file_offset: usize,
    /// How many.
    pub len: usize,
}

/// One page to bind. Its bytes are [`Plan::copies`]; the rest is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Its virtual address (page aligned).
    pub vaddr: u64,
    /// Its rights (the union over the segments that share it).
    pub rights: PageRights,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seg {
    vaddr: u64,
    file_end: u64,
    mem_end: u64,
    file_offset: usize,
    first_page: u64,
    /// One past the last page to bind.
    bind_end: u64,
    /// One past the last page the segment occupies.
    mem_page_end: u64,
    rights: u8,
}

impl Seg {
    fn occupies(&self, page: u64) -> bool {
        (self.first_page..self.mem_page_end).contains(&page)
    }

    fn binds(&self, page: u64) -> bool {
        (self.first_page..self.bind_end).contains(&page)
    }

    /// Its file bytes in the page at `vaddr`, if any.
    fn copy(&self, vaddr: u64) -> Option<Copy> {
        let start = vaddr.max(self.vaddr);
        let end = vaddr.saturating_add(PAGE_SIZE).min(self.file_end);
        (start < end).then(|| Copy {
            page_offset: (start - vaddr) as usize,
            file_offset: self.file_offset + (start - self.vaddr) as usize,
            len: (end - start) as usize,
        })
    }
}

/// The pages of one image, validated.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Sorted by address; no two share a byte.
    segs: [Seg; MAX_SEGMENTS],
    n: usize,
    /// The entry point.
    pub entry: u64,
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

fn page_up(a: u64) -> Option<u64> {
    Some(a.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

fn write_exec(rights: u8) -> bool {
    rights & PageRights::W != 0 && rights & PageRights::X != 0
}

impl Plan {
    /// Plans the image; `eager` also binds the zero-filled tail of every segment.
    pub fn new(image: &[u8], eager: bool) -> Result<Plan, PlanError> {
        let elf = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| PlanError::BadElf)?;
        let h = &elf.ehdr;
        if h.class != Class::ELF64 || h.e_type != ET_EXEC || h.e_machine != EM_X86_64 {
            return Err(PlanError::NotX86_64Executable);
        }
        let mut plan = Plan {
            segs: [Seg::default(); MAX_SEGMENTS],
            n: 0,
            entry: h.e_entry,
        };
        let mut entry_ok = false;
        for ph in elf.segments().into_iter().flatten() {
            if ph.p_type != PT_LOAD || ph.p_memsz == 0 {
                continue;
            }
            if ph.p_filesz > ph.p_memsz {
                return Err(PlanError::BadSegment);
            }
            // The file bytes must lie in the image (checked by the parser).
            let file_offset = if ph.p_filesz == 0 {
                0
            } else {
                elf.segment_data(&ph).map_err(|_| PlanError::BadSegment)?;
                usize::try_from(ph.p_offset).map_err(|_| PlanError::BadSegment)?
            };
            let vaddr = ph.p_vaddr;
            let mem_end = vaddr.checked_add(ph.p_memsz).ok_or(PlanError::OutOfRange)?;
            let file_end = vaddr + ph.p_filesz; // filesz <= memsz
            let first_page = page_down(vaddr);
            let mem_page_end = page_up(mem_end).ok_or(PlanError::OutOfRange)?;
            if first_page < USER_START || mem_page_end > USER_END {
                return Err(PlanError::OutOfRange);
            }
            let mut rights = PageRights::R;
            if ph.p_flags & PF_W != 0 {
                rights |= PageRights::W;
            }
            if ph.p_flags & PF_X != 0 {
                rights |= PageRights::X;
                entry_ok |= (vaddr..mem_end).contains(&plan.entry);
            }
            if write_exec(rights) {
                return Err(PlanError::WriteExec { vaddr: first_page });
            }
            let bind_end = if eager {
                mem_page_end
            } else if ph.p_filesz == 0 {
                first_page
            } else {
                // In range: file_end <= mem_end.
                page_up(file_end).ok_or(PlanError::OutOfRange)?
            };
            plan.insert(Seg {
                vaddr,
                file_end,
                mem_end,
                file_offset,
                first_page,
                bind_end,
                mem_page_end,
                rights,
            })?;
        }
        if !entry_ok {
            return Err(PlanError::BadEntry);
        }
        let segs = plan.segments();
        for (i, a) in segs.iter().enumerate() {
            // Sorted: only a neighbour can share bytes.
            if segs.get(i + 1).is_some_and(|b| a.mem_end > b.vaddr) {
                return Err(PlanError::Overlap);
            }
            for b in segs.iter().skip(i + 1) {
                if b.first_page < a.mem_page_end && write_exec(a.rights | b.rights) {
                    return Err(PlanError::WriteExec {
                        vaddr: b.first_page,
                    });
                }
            }
        }
        Ok(plan)
    }

    /// Adds `s`, keeping the segments sorted by address.
    fn insert(&mut self, s: Seg) -> Result<(), PlanError> {
        if self.n >= MAX_SEGMENTS {
            return Err(PlanError::TooManySegments);
        }
        let at = self
            .segments()
            .iter()
            .position(|o| o.vaddr > s.vaddr)
            .unwrap_or(self.n);
        self.segs.copy_within(at..self.n, at + 1);
        self.segs[at] = s;
        self.n += 1;
        Ok(())
    }

    fn segments(&self) -> &[Seg] {
        self.segs.get(..self.n).unwrap_or(&[])
    }

    /// Whether some segment binds the page at `vaddr`.
    fn bound(&self, vaddr: u64) -> bool {
        self.segments().iter().any(|s| s.binds(vaddr))
    }

    /// Each segment's pages to bind that no earlier segment bound:
    /// `[start, end)`, ascending and disjoint.
    fn bind_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut cursor = 0;
        self.segments().iter().filter_map(move |s| {
            let start = s.first_page.max(cursor);
            cursor = cursor.max(s.bind_end);
            (start < s.bind_end).then_some((start, s.bind_end))
        })
    }

    /// How many pages [`Plan::pages`] yields.
    pub fn page_count(&self) -> u64 {
        self.bind_ranges().map(|(a, b)| (b - a) / PAGE_SIZE).sum()
    }

    /// The zero-filled page ranges `[start, end)` that are part of a
    /// segment but not bound (`.bss`, Ilwaco's stack): what a pager fills
    /// on faults when the load is not eager. Ascending and disjoint.
    pub fn zero_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut cursor = 0;
        self.segments().iter().filter_map(move |s| {
            // Only a segment's first and last page can be bound by another.
            let mut start = s.bind_end.max(cursor);
            let mut end = s.mem_page_end;
            while start < end && self.bound(start) {
                start += PAGE_SIZE;
            }
            while start < end && self.bound(end - PAGE_SIZE) {
                end -= PAGE_SIZE;
            }
            cursor = cursor.max(end);
            (start < end).then_some((start, end))
        })
    }

    /// The pages to bind, in ascending address order, each once.
    pub fn pages(&self) -> impl Iterator<Item = Page> + '_ {
        self.bind_ranges().flat_map(move |(start, end)| {
            let n = (end - start) / PAGE_SIZE;
            (0..n).map(move |i| self.page(start + i * PAGE_SIZE))
        })
    }

    fn page(&self, vaddr: u64) -> Page {
        let bits = self
            .segments()
            .iter()
            .filter(|s| s.occupies(vaddr))
            .fold(0, |r, s| r | s.rights);
        Page {
            vaddr,
            rights: PageRights::from_bits(u64::from(bits)).unwrap_or(PageRights::READ),
        }
    }

    /// The image bytes of `page`, one copy per segment with file bytes in
    /// it, in address order and never overlapping; the rest of the page is zero.
    pub fn copies(&self, page: &Page) -> impl Iterator<Item = Copy> + '_ {
        let vaddr = page.vaddr;
        self.segments().iter().filter_map(move |s| s.copy(vaddr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const PHDR: usize = 56;
    const R: u32 = elf::abi::PF_R;
    const RX: u32 = R | PF_X;
    const RW: u32 = R | PF_W;

    /// An ELF with segments `(flags, vaddr, data, memsz)`, entry `entry`.
    fn image(entry: u64, segs: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let mut b = std::vec![0u8; 64 + PHDR * segs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        b[58..60].copy_from_slice(&64u16.to_le_bytes());
        for (i, (fl, vaddr, data, memsz)) in segs.iter().enumerate() {
            let off = b.len() as u64;
            let ph = 64 + i * PHDR;
            b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            b[ph + 4..ph + 8].copy_from_slice(&fl.to_le_bytes());
            b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    fn user_ld_like() -> Vec<u8> {
        let text = [0x90u8; 5000];
        let ro = [1u8; 10];
        let data = [2u8; 4100];
        image(
            0x40_0000,
            &[
                (RX, 0x40_0000, &text, 5000),
                (R, 0x40_2000, &ro, 10),
                // data: 4100 file bytes, then .bss up to 3 pages
                (RW, 0x40_3000, &data, 3 * 4096),
                // stack: no file bytes
                (RW, 0x40_7000, &[], 16 * 4096),
            ],
        )
    }

    /// The bytes of every page of `p`, as a loader would fill them.
    fn contents(p: &Plan, img: &[u8]) -> Vec<(Page, Vec<u8>)> {
        p.pages()
            .map(|pg| {
                let mut buf = std::vec![0u8; PAGE_SIZE as usize];
                for c in p.copies(&pg) {
                    buf[c.page_offset..c.page_offset + c.len]
                        .copy_from_slice(&img[c.file_offset..c.file_offset + c.len]);
                }
                (pg, buf)
            })
            .collect()
    }

    #[test]
    fn lazy_plan_binds_file_pages_only() {
        let img = user_ld_like();
        let p = Plan::new(&img, false).unwrap();
        let pages: Vec<Page> = p.pages().collect();
        let addrs: Vec<u64> = pages.iter().map(|p| p.vaddr).collect();
        assert_eq!(
            addrs,
            [0x40_0000, 0x40_1000, 0x40_2000, 0x40_3000, 0x40_4000]
        );
        assert_eq!(p.page_count(), 5);
        assert_eq!(p.entry, 0x40_0000);
        assert_eq!(pages[0].rights, PageRights::READ_EXEC);
        assert_eq!(pages[2].rights, PageRights::READ);
        assert_eq!(pages[3].rights, PageRights::READ_WRITE);
        let c: Vec<Copy> = p.copies(&pages[1]).collect();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].page_offset, c[0].len), (0, 5000 - 4096));
        assert_eq!(
            &img[c[0].file_offset..c[0].file_offset + c[0].len],
            &[0x90; 904][..]
        );
        // The partial page at the data/bss boundary carries 4 bytes.
        let c: Vec<Copy> = p.copies(&pages[4]).collect();
        assert_eq!((c[0].page_offset, c[0].len), (0, 4));
        assert_eq!(img[c[0].file_offset], 2);
        let zero: Vec<(u64, u64)> = p.zero_ranges().collect();
        assert_eq!(
            zero,
            [(0x40_5000, 0x40_6000), (0x40_7000, 0x40_7000 + 16 * 4096)]
        );
    }

    #[test]
    fn eager_plan_binds_everything() {
        let img = user_ld_like();
        let p = Plan::new(&img, true).unwrap();
        assert_eq!(p.page_count(), 2 + 1 + 3 + 16);
        assert_eq!(p.pages().count(), 22);
        // Everything is bound: nothing is left for a pager.
        assert_eq!(p.zero_ranges().count(), 0);
        let last = p.pages().last().unwrap();
        assert_eq!(
            (last.vaddr, last.rights, p.copies(&last).count()),
            (0x40_7000 + 15 * 4096, PageRights::READ_WRITE, 0)
        );
        assert!(p
            .pages()
            .filter(|pg| pg.vaddr == 0x40_5000)
            .all(|pg| p.copies(&pg).count() == 0));
    }

    #[test]
    fn unaligned_segment_copies_at_its_offset() {
        let img = image(0x40_0010, &[(RX, 0x40_0010, &[7u8; 8192], 8192)]);
        let p = Plan::new(&img, false).unwrap();
        let pages: Vec<Page> = p.pages().collect();
        assert_eq!(pages.len(), 3);
        let c: Vec<Copy> = pages.iter().flat_map(|pg| p.copies(pg)).collect();
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].page_offset, c[0].len), (0x10, 4096 - 0x10));
        assert_eq!((c[1].page_offset, c[1].len), (0, 4096));
        assert_eq!((c[2].page_offset, c[2].len), (0, 0x10));
        assert_eq!(c[1].file_offset, c[0].file_offset + c[0].len);
        assert_eq!(c.iter().map(|c| c.len).sum::<usize>(), 8192);
    }

    #[test]
    fn segments_sharing_a_page_merge_into_one_frame() {
        // Text ends in page 0x40_1000 and rodata starts in it; data ends in
        // page 0x40_3000 (with .bss) and more data starts in it. The program
        // headers are out of order on purpose.
        let text = [0xaau8; 0x1800];
        let ro = [0xbbu8; 0x100];
        let data = [0xccu8; 0x10];
        let more = [0xddu8; 0x20];
        let img = image(
            0x40_0000,
            &[
                (R, 0x40_1800, &ro, 0x100),
                (RX, 0x40_0000, &text, 0x1800),
                (RW, 0x40_3000, &data, 0x400),
                (RW, 0x40_3800, &more, 0x20),
            ],
        );
        for eager in [false, true] {
            let p = Plan::new(&img, eager).unwrap();
            let pages = contents(&p, &img);
            let addrs: Vec<u64> = pages.iter().map(|(pg, _)| pg.vaddr).collect();
            assert_eq!(addrs, [0x40_0000, 0x40_1000, 0x40_3000]);
            assert_eq!(p.page_count(), 3);
            // The shared page holds both segments' bytes, with both rights.
            let (pg, bytes) = &pages[1];
            assert_eq!(pg.rights, PageRights::READ_EXEC);
            assert_eq!(&bytes[..0x800], &[0xaa; 0x800][..]);
            assert_eq!(&bytes[0x800..0x900], &[0xbb; 0x100][..]);
            assert!(bytes[0x900..].iter().all(|&b| b == 0));
            let (pg, bytes) = &pages[2];
            assert_eq!(pg.rights, PageRights::READ_WRITE);
            assert_eq!(&bytes[..0x10], &[0xcc; 0x10][..]);
            assert!(bytes[0x10..0x800].iter().all(|&b| b == 0));
            assert_eq!(&bytes[0x800..0x820], &[0xdd; 0x20][..]);
            // The .bss on the shared page is bound, so no zero range covers it.
            assert_eq!(p.zero_ranges().count(), 0);
        }
        // Two bss-only segments on one page: that page in one zero range only.
        let img = image(
            0x40_0000,
            &[
                (RX, 0x40_0000, &[1], 1),
                (RW, 0x40_1000, &[], 0x800),
                (RW, 0x40_1800, &[], 0x1800),
            ],
        );
        let p = Plan::new(&img, false).unwrap();
        assert_eq!(
            p.zero_ranges().collect::<Vec<_>>(),
            [(0x40_1000, 0x40_2000), (0x40_2000, 0x40_3000)]
        );
    }

    #[test]
    fn rejects_bad_images() {
        let e = |img: &[u8]| Plan::new(img, true).unwrap_err();
        assert_eq!(e(b"not an elf at all, clearly not"), PlanError::BadElf);
        let mut i386 = image(0x40_0000, &[(RX, 0x40_0000, &[1], 1)]);
        i386[18] = 3;
        assert_eq!(e(&i386), PlanError::NotX86_64Executable);
        assert_eq!(
            e(&image(0x1000, &[(RX, 0x1000, &[1], 1)])),
            PlanError::OutOfRange
        );
        assert_eq!(
            e(&image(0x40_0000, &[(RX, 0x7fff_ffff_e000, &[1], 0x2000)])),
            PlanError::OutOfRange
        );
        assert_eq!(
            e(&image(0x40_0000, &[(RX, 0x40_0000, &[1, 2], 1)])),
            PlanError::BadSegment
        );
        assert_eq!(
            e(&image(
                0x40_0000,
                &[(RX, 0x40_0000, &[1], 0x10), (R, 0x40_0008, &[2], 0x10)]
            )),
            PlanError::Overlap
        );
        // A writable and an executable segment on one page.
        assert_eq!(
            e(&image(
                0x40_0000,
                &[(RX, 0x40_0000, &[1], 0x10), (RW, 0x40_0800, &[2], 0x10)]
            )),
            PlanError::WriteExec { vaddr: 0x40_0000 }
        );
        assert_eq!(
            e(&image(0x40_0000, &[(RX | PF_W, 0x40_0000, &[1], 0x10)])),
            PlanError::WriteExec { vaddr: 0x40_0000 }
        );
        // Entry in a non-executable segment.
        assert_eq!(
            e(&image(0x40_0000, &[(RW, 0x40_0000, &[1], 0x10)])),
            PlanError::BadEntry
        );
        let many: Vec<(u32, u64, &[u8], u64)> = (0..17)
            .map(|i| (RX, 0x40_0000 + i * 0x1000, &[1u8][..], 1))
            .collect();
        assert_eq!(e(&image(0x40_0000, &many)), PlanError::TooManySegments);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600), eager in proptest::bool::ANY) {
            if let Ok(p) = Plan::new(&bytes, eager) {
                for pg in p.pages().take(64) {
                    for c in p.copies(&pg) {
                        proptest::prop_assert!(c.page_offset + c.len <= PAGE_SIZE as usize);
                        proptest::prop_assert!(bytes.get(c.file_offset..c.file_offset + c.len).is_some());
                    }
                }
            }
        }

        /// Random segment layouts: every plan binds each page once, in
        /// order, never W and X, and its zero ranges are disjoint from it.
        #[test]
        fn plans_are_consistent(
            segs in proptest::collection::vec((0u64..8, 0u64..0x3000, 0usize..0x1800, 0u64..0x3000, 0u32..3), 1..5),
            eager in proptest::bool::ANY,
        ) {
            let data = [0x5au8; 0x1800];
            let flags = [RX, R, RW];
            let s: Vec<(u32, u64, &[u8], u64)> = segs
                .iter()
                .map(|&(page, off, fl, extra, f)| {
                    let vaddr = 0x40_0000 + page * 0x1000 + off;
                    (flags[f as usize], vaddr, &data[..fl], fl as u64 + extra)
                })
                .collect();
            let img = image(s[0].1, &s);
            if let Ok(p) = Plan::new(&img, eager) {
                let pages: Vec<Page> = p.pages().collect();
                proptest::prop_assert_eq!(pages.len() as u64, p.page_count());
                for w in pages.windows(2) {
                    proptest::prop_assert!(w[0].vaddr < w[1].vaddr);
                }
                for pg in &pages {
                    proptest::prop_assert!(!(pg.rights.writable() && pg.rights.executable()));
                    let mut end = 0;
                    for c in p.copies(pg) {
                        proptest::prop_assert!(c.page_offset >= end);
                        end = c.page_offset + c.len;
                    }
                }
                let mut prev = 0;
                for (a, b) in p.zero_ranges() {
                    proptest::prop_assert!(prev <= a && a < b);
                    proptest::prop_assert!(!pages.iter().any(|pg| (a..b).contains(&pg.vaddr)));
                    prev = b;
                }
            }
        }
    }
}
