//! Boot-image writer: digests the first domain's static ELF into the page
//! runs of `serac_protocol::bootimg`, so the kernel never parses ELF.
//!
//! The pages come from the supervisor's own loading rules
//! (`serac_supervisor_core::plan`, eager: `.bss` and stack included), so
//! the first domain and every other domain are loaded alike: segments that
//! share a page are merged, a page needing W and X is refused. Consecutive
//! pages with the same rights form one run; each run stores its bytes up
//! to the last nonzero one, the kernel zeroes the rest.

use serac_protocol::bootimg::{encode_header, BootImage, Run, HEADER_LEN, MAX_RUNS, RUN_LEN};
use serac_protocol::layout::{PAGE_SIZE, USER_END, USER_START};
use serac_supervisor_core::plan::{Plan, PlanError};

use crate::Error;

const PAGE: usize = PAGE_SIZE as usize;

fn explain(e: PlanError) -> String {
    match e {
        PlanError::BadElf => "not an ELF file".into(),
        PlanError::NotX86_64Executable => "not a 64-bit x86_64 executable".into(),
        PlanError::BadSegment => "a segment's file bytes lie outside the file".into(),
        PlanError::TooManySegments => "too many PT_LOAD segments".into(),
        PlanError::OutOfRange => {
            format!("a segment lies outside the user range {USER_START:#x}..{USER_END:#x}")
        }
        PlanError::Overlap => "two segments overlap".into(),
        PlanError::WriteExec { vaddr } => {
            format!("the page at {vaddr:#x} would need W and X at once")
        }
        PlanError::BadEntry => "the entry point is not in an executable segment".into(),
    }
}

/// A run being built: its table entry and the bytes of its pages.
struct Building {
    run: Run,
    bytes: Vec<u8>,
}

/// Converts a static x86_64 ELF into a boot image, or says why it cannot
/// be one (W and X on one page, overlapping segments, addresses outside
/// `USER_START..USER_END`, ...).
pub fn from_elf(elf: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = |why: String| Error::BadBootImage(why);
    let plan = Plan::new(elf, true).map_err(|e| bad(explain(e)))?;
    let mut runs: Vec<Building> = Vec::new();
    for page in plan.pages() {
        let mut bytes = [0u8; PAGE];
        for c in plan.copies(&page) {
            let src = elf
                .get(c.file_offset..c.file_offset + c.len)
                .ok_or_else(|| bad("a segment's bytes lie outside the file".into()))?;
            bytes[c.page_offset..c.page_offset + c.len].copy_from_slice(src);
        }
        match runs.last_mut() {
            Some(b)
                if b.run.rights == page.rights
                    && b.run.end() == Some(page.vaddr)
                    && b.run.pages < u32::MAX =>
            {
                b.run.pages += 1;
                b.bytes.extend_from_slice(&bytes);
            }
            _ => runs.push(Building {
                run: Run {
                    vaddr: page.vaddr,
                    pages: 1,
                    rights: page.rights,
                    offset: 0,
                    len: 0,
                },
                bytes: bytes.to_vec(),
            }),
        }
    }
    if runs.is_empty() || runs.len() > MAX_RUNS {
        return Err(bad(format!(
            "{} page runs, the format takes 1 to {MAX_RUNS}",
            runs.len()
        )));
    }
    // The kernel checks all this too; saying it here names the problem.
    let mut prev_end = 0;
    for b in &mut runs {
        let r = &mut b.run;
        if r.vaddr < prev_end {
            return Err(bad(format!("two runs share the page at {:#x}", r.vaddr)));
        }
        if r.rights.writable() && r.rights.executable() {
            return Err(bad(format!(
                "the page at {:#x} would need W and X at once",
                r.vaddr
            )));
        }
        prev_end = r.end().unwrap_or(u64::MAX);
        if r.vaddr < USER_START || prev_end > USER_END {
            return Err(bad(format!(
                "pages {:#x}..{prev_end:#x} lie outside the user range {USER_START:#x}..{USER_END:#x}",
                r.vaddr
            )));
        }
        let used = b.bytes.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
        b.bytes.truncate(used);
        r.len = used as u64;
    }
    let mut offset = (HEADER_LEN + runs.len() * RUN_LEN) as u64;
    for b in &mut runs {
        b.run.offset = offset;
        offset += b.run.len;
    }
    let mut out = encode_header(plan.entry, runs.len() as u32).to_vec();
    for b in &runs {
        out.extend_from_slice(&b.run.encode());
    }
    for b in &runs {
        out.extend_from_slice(&b.bytes);
    }
    // What the kernel will see: it must accept it.
    BootImage::parse(&out).map_err(|e| bad(format!("the kernel would reject it: {e:?}")))?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use serac_protocol::PageRights;

    const PHDR: usize = 56;

    /// An ELF with segments `(flags, vaddr, data, memsz)`; entry at the first.
    fn elf(segs: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + PHDR * segs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..32].copy_from_slice(&segs[0].1.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
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

    const RX: u32 = 5;
    const R: u32 = 4;
    const RW: u32 = 6;

    #[test]
    fn pages_become_runs_with_zero_tails() {
        let text = [0x90u8; 5000];
        // rodata shares text's last page (merged, R|X); data then .bss.
        let img = elf(&[
            (RX, 0x40_0000, &text, 5000),
            (R, 0x40_1800, &[3u8; 16], 16),
            (RW, 0x40_3000, &[7u8; 100], 3 * 4096),
        ]);
        let out = from_elf(&img).unwrap();
        let b = BootImage::parse(&out).unwrap();
        assert_eq!(b.entry, 0x40_0000);
        let runs: Vec<Run> = b.runs().collect();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].vaddr, runs[0].pages, runs[0].rights),
            (0x40_0000, 2, PageRights::READ_EXEC)
        );
        assert_eq!(
            (runs[1].vaddr, runs[1].pages, runs[1].rights),
            (0x40_3000, 3, PageRights::READ_WRITE)
        );
        // Only the bytes up to the last nonzero one are stored.
        assert_eq!(runs[0].len, 0x1810);
        assert_eq!(runs[1].len, 100);
        let p1 = b.page_data(&runs[0], 1);
        assert_eq!(&p1[..5000 - 4096], &text[4096..]);
        assert_eq!(&p1[0x800..0x810], &[3u8; 16]);
        assert!(b.page_data(&runs[1], 2).is_empty());
        assert!(out.len() < 2 * PAGE + 200);
    }

    #[test]
    fn refuses_with_a_reason() {
        let err = |img: &[u8]| from_elf(img).unwrap_err().to_string();
        let e = err(&elf(&[
            (RX, 0x40_0000, &[1], 16),
            (RW, 0x40_0800, &[2], 16),
        ]));
        assert!(e.contains("0x400000 would need W and X"), "{e}");
        let e = err(&elf(&[(RX | 2, 0x40_0000, &[1], 16)]));
        assert!(e.contains("W and X"), "{e}");
        let e = err(&elf(&[(RX, 0x1000, &[1], 16)]));
        assert!(e.contains("outside the user range"), "{e}");
        let e = err(&elf(&[(RX, 0x40_0000, &[1], 16), (R, 0x40_0008, &[2], 16)]));
        assert!(e.contains("overlap"), "{e}");
        assert!(err(b"MZ").contains("not an ELF"));
    }
}
