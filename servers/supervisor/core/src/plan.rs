//! Which pages of an ELF image the supervisor binds, with what rights and
//! which bytes (docs/abi.md section 10, step 2).
//!
//! For every `PT_LOAD` segment: the pages that carry file bytes (text,
//! rodata, data, and the partial page at the data/bss boundary), and with
//! `eager` also the zero pages after them (`.bss`, Ilwaco's stack). Rights
//! are `R` plus `W`/`X` from the segment flags. Segments may not share a
//! page (Ilwaco's `user.ld` page-aligns them) and must lie in
//! `USER_START..USER_END`.

use serac_kcore::elf::{flags, Elf, ElfError};
use serac_protocol::layout::{PAGE_SIZE, USER_END, USER_START};
use serac_protocol::PageRights;

/// Most `PT_LOAD` segments in one image.
pub const MAX_SEGMENTS: usize = 16;

/// Why an image cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// The ELF parser rejected it.
    Elf(ElfError),
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment reaches outside `USER_START..USER_END`.
    OutOfRange,
    /// Two segments touch one page.
    Overlap,
    /// The entry point is not in an executable segment.
    BadEntry,
}

impl From<ElfError> for PlanError {
    fn from(e: ElfError) -> Self {
        PlanError::Elf(e)
    }
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

/// One page to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Its virtual address (page aligned).
    pub vaddr: u64,
    /// Its rights.
    pub rights: PageRights,
    /// The image bytes it holds; the rest of the page is zero.
    pub copy: Option<Copy>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seg {
    vaddr: u64,
    file_end: u64,
    file_offset: usize,
    first_page: u64,
    /// One past the last page to bind.
    end_page: u64,
    /// One past the last page the segment occupies.
    mem_page_end: u64,
    /// One past the last page that carries file bytes (`first_page` if none).
    lazy_end: u64,
    rights: u8,
}

/// The pages of one image, validated.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
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

impl Plan {
    /// Plans the image; `eager` also binds the zero-filled tail of every segment.
    pub fn new(image: &[u8], eager: bool) -> Result<Plan, PlanError> {
        let elf = Elf::parse(image)?;
        let mut plan = Plan {
            segs: [Seg::default(); MAX_SEGMENTS],
            n: 0,
            entry: elf.entry,
        };
        let mut entry_ok = false;
        for s in elf.segments() {
            let s = s?;
            let file_end = s.vaddr + s.file_len as u64; // no wrap: checked by Elf
            let mem_end = s.vaddr + s.mem_len;
            let first_page = page_down(s.vaddr);
            let file_page_end = page_up(file_end).ok_or(PlanError::OutOfRange)?;
            let mem_page_end = page_up(mem_end).ok_or(PlanError::OutOfRange)?;
            if s.mem_len == 0 {
                continue;
            }
            if first_page < USER_START || mem_page_end > USER_END {
                return Err(PlanError::OutOfRange);
            }
            let mut rights = PageRights::R;
            if s.flags & flags::W != 0 {
                rights |= PageRights::W;
            }
            if s.flags & flags::X != 0 {
                rights |= PageRights::X;
                if (s.vaddr..mem_end).contains(&elf.entry) {
                    entry_ok = true;
                }
            }
            // Overlap is judged on the pages the segment occupies at all,
            // whether or not this load binds them.
            if plan
                .segments()
                .iter()
                .any(|o| first_page < o.mem_page_end && o.first_page < mem_page_end)
            {
                return Err(PlanError::Overlap);
            }
            let lazy_end = if s.file_len == 0 {
                first_page
            } else {
                file_page_end
            };
            let seg = plan
                .segs
                .get_mut(plan.n)
                .ok_or(PlanError::TooManySegments)?;
            *seg = Seg {
                lazy_end,
                vaddr: s.vaddr,
                file_end,
                file_offset: s.file_offset,
                first_page,
                end_page: if eager { mem_page_end } else { lazy_end },
                mem_page_end,
                rights,
            };
            plan.n += 1;
        }
        if !entry_ok {
            return Err(PlanError::BadEntry);
        }
        Ok(plan)
    }

    fn segments(&self) -> &[Seg] {
        self.segs.get(..self.n).unwrap_or(&[])
    }

    /// How many pages [`Plan::pages`] yields.
    pub fn page_count(&self) -> u64 {
        self.segments()
            .iter()
            .map(|s| s.end_page.saturating_sub(s.first_page) / PAGE_SIZE)
            .sum()
    }

    /// The zero-filled page ranges `[start, end)` after each segment's file
    /// bytes (`.bss`, Ilwaco's stack): what a pager fills on faults when the
    /// load is not eager.
    pub fn zero_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.segments()
            .iter()
            .filter(|s| s.lazy_end < s.mem_page_end)
            .map(|s| (s.lazy_end, s.mem_page_end))
    }

    /// The pages to bind, segment by segment in ascending address order
    /// within each segment.
    pub fn pages(&self) -> impl Iterator<Item = Page> + '_ {
        self.segments().iter().flat_map(|s| {
            let n = s.end_page.saturating_sub(s.first_page) / PAGE_SIZE;
            (0..n).map(move |i| s.page(s.first_page + i * PAGE_SIZE))
        })
    }
}

impl Seg {
    fn page(&self, vaddr: u64) -> Page {
        let start = vaddr.max(self.vaddr);
        let end = (vaddr + PAGE_SIZE).min(self.file_end);
        let copy = (start < end).then(|| Copy {
            page_offset: (start - vaddr) as usize,
            file_offset: self.file_offset + (start - self.vaddr) as usize,
            len: (end - start) as usize,
        });
        Page {
            vaddr,
            rights: PageRights::from_bits(u64::from(self.rights)).unwrap_or(PageRights::READ),
            copy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const PHDR: usize = 56;

    /// An ELF with segments `(flags, vaddr, data, memsz)`, entry `entry`.
    fn image(entry: u64, segs: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let mut b = std::vec![0u8; 64 + PHDR * segs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
        b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (fl, vaddr, data, memsz)) in segs.iter().enumerate() {
            let off = b.len() as u64;
            let ph = 64 + i * PHDR;
            b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
            b[ph + 4..ph + 8].copy_from_slice(&fl.to_le_bytes());
            b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    const RX: u32 = flags::R | flags::X;
    const RW: u32 = flags::R | flags::W;

    fn user_ld_like() -> Vec<u8> {
        let text = [0x90u8; 5000];
        let ro = [1u8; 10];
        let data = [2u8; 4100];
        image(
            0x40_0000,
            &[
                (RX, 0x40_0000, &text, 5000),
                (flags::R, 0x40_2000, &ro, 10),
                // data: 4100 file bytes, then .bss up to 3 pages
                (RW, 0x40_3000, &data, 3 * 4096),
                // stack: no file bytes
                (RW, 0x40_7000, &[], 16 * 4096),
            ],
        )
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
        let c = pages[1].copy.unwrap();
        assert_eq!((c.page_offset, c.len), (0, 5000 - 4096));
        assert_eq!(&img[c.file_offset..c.file_offset + c.len], &[0x90; 904][..]);
        // The partial page at the data/bss boundary carries 4 bytes.
        let c = pages[4].copy.unwrap();
        assert_eq!((c.page_offset, c.len), (0, 4));
        assert_eq!(img[c.file_offset], 2);
        let zero: Vec<(u64, u64)> = p.zero_ranges().collect();
        assert_eq!(
            zero,
            [(0x40_5000, 0x40_6000), (0x40_7000, 0x40_7000 + 16 * 4096)]
        );
        assert_eq!(Plan::new(&img, true).unwrap().zero_ranges().count(), 2);
    }

    #[test]
    fn eager_plan_binds_everything() {
        let img = user_ld_like();
        let p = Plan::new(&img, true).unwrap();
        assert_eq!(p.page_count(), 2 + 1 + 3 + 16);
        assert_eq!(p.pages().count(), 22);
        let last = p.pages().last().unwrap();
        assert_eq!(
            (last.vaddr, last.copy, last.rights),
            (0x40_7000 + 15 * 4096, None, PageRights::READ_WRITE)
        );
        assert!(p
            .pages()
            .filter(|p| p.vaddr == 0x40_5000)
            .all(|p| p.copy.is_none()));
    }

    #[test]
    fn unaligned_segment_copies_at_its_offset() {
        let img = image(0x40_0010, &[(RX, 0x40_0010, &[7u8; 8192], 8192)]);
        let p = Plan::new(&img, false).unwrap();
        let pages: Vec<Page> = p.pages().collect();
        assert_eq!(pages.len(), 3);
        let c: Vec<Copy> = pages.iter().map(|p| p.copy.unwrap()).collect();
        assert_eq!((c[0].page_offset, c[0].len), (0x10, 4096 - 0x10));
        assert_eq!((c[1].page_offset, c[1].len), (0, 4096));
        assert_eq!((c[2].page_offset, c[2].len), (0, 0x10));
        assert_eq!(c[1].file_offset, c[0].file_offset + c[0].len);
        assert_eq!(c.iter().map(|c| c.len).sum::<usize>(), 8192);
    }

    #[test]
    fn rejects_bad_images() {
        let e = |img: &[u8]| Plan::new(img, true).unwrap_err();
        assert!(matches!(
            e(b"not an elf at all, clearly not"),
            PlanError::Elf(_)
        ));
        assert_eq!(
            e(&image(0x1000, &[(RX, 0x1000, &[1], 1)])),
            PlanError::OutOfRange
        );
        assert_eq!(
            e(&image(0x40_0000, &[(RX, 0x7fff_ffff_e000, &[1], 0x2000)])),
            PlanError::OutOfRange
        );
        assert_eq!(
            e(&image(
                0x40_0000,
                &[(RX, 0x40_0000, &[1], 0x10), (RW, 0x40_0800, &[2], 0x10)]
            )),
            PlanError::Overlap
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
                    if let Some(c) = pg.copy {
                        proptest::prop_assert!(c.page_offset + c.len <= PAGE_SIZE as usize);
                        proptest::prop_assert!(bytes.get(c.file_offset..c.file_offset + c.len).is_some());
                    }
                }
            }
        }
    }
}
