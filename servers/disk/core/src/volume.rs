//! A formatted device: format, open, the update protocol, and fsck.
//!
//! **Update protocol.** The table lives in two copies. An update writes the
//! whole new table, with the next sequence number, into the copy that does
//! *not* hold the current table, then flushes; only then is it current (and
//! only then does the operation report success). A crash before the flush
//! completes leaves the other copy, the previous table, untouched; the
//! half-written copy fails its CRC and is ignored. Data an extent names is
//! written and flushed before the table that names it (an image's content,
//! the zeros of a new disk or swap area), so a table never points at blocks
//! that do not yet hold what it says. docs/disk-format.md has the argument.

use alloc::vec::Vec;
use core::fmt::Debug;

use crate::checksum::{crc32c, Running};
use crate::extent::{Content, Extent, Kind, Name};
use crate::layout::{Block, Geometry, GeometryError, SuperError, BLOCK, SLOTS, SUPERBLOCK};
use crate::table::{AllocError, CopyError, Table};

/// A device of [`BLOCK`]-sized blocks (virtio-blk in the server, a file
/// on the host, a fake in tests).
pub trait BlockDevice {
    /// The device's error.
    type Error: Debug;
    /// Blocks on the device.
    fn block_count(&self) -> u64;
    /// Reads block `block` into `buf`.
    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), Self::Error>;
    /// Writes `buf` to block `block` (durable only after [`flush`](Self::flush)).
    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), Self::Error>;
    /// Returns once every write before it is on stable storage.
    fn flush(&mut self) -> Result<(), Self::Error>;
    /// Zeroes `count` blocks from `start` (a device may do it faster).
    fn zero_blocks(&mut self, start: u64, count: u64) -> Result<(), Self::Error> {
        let zero = [0u8; BLOCK];
        for b in start..start.saturating_add(count) {
            self.write_block(b, &zero)?;
        }
        Ok(())
    }
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    type Error = D::Error;
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), Self::Error> {
        (**self).read_block(block, buf)
    }
    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), Self::Error> {
        (**self).write_block(block, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush()
    }
    fn zero_blocks(&mut self, start: u64, count: u64) -> Result<(), Self::Error> {
        (**self).zero_blocks(start, count)
    }
}

/// Why a volume operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The device failed; the operation did not take effect in memory, and
    /// on the device it either did or did not (never half).
    Io(E),
    /// The device cannot be formatted with that geometry.
    Geometry(GeometryError),
    /// The superblock is missing or bad.
    Super(SuperError),
    /// The device is smaller than its superblock says.
    DeviceTooSmall,
    /// Neither table copy is valid.
    Corrupt,
    /// The table refused the change.
    Alloc(AllocError),
    /// The sequence number would wrap.
    SeqExhausted,
}

/// What a table copy held when the device was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Never written since format.
    Blank,
    /// Valid, with this sequence number and extent count.
    Valid {
        /// Its sequence number.
        seq: u64,
        /// Extents in it.
        extents: usize,
    },
    /// Not valid, for this reason.
    Invalid(CopyError),
}

/// A formatted device and its current table.
#[derive(Debug)]
pub struct Volume<D> {
    dev: D,
    table: Table,
    /// The copy the table was read from or last committed to.
    current: usize,
    found: [SlotState; SLOTS],
}

fn read_copy<D: BlockDevice>(
    dev: &mut D,
    geom: &Geometry,
    slot: usize,
) -> Result<Result<Table, CopyError>, D::Error> {
    let base = geom.slot_start(slot);
    Table::decode_copy(geom, |i, b| dev.read_block(base + u64::from(i), b))
}

fn write_copy<D: BlockDevice>(
    dev: &mut D,
    table: &Table,
    slot: usize,
    seq: u64,
) -> Result<(), D::Error> {
    let base = table.geometry().slot_start(slot);
    table.encode_copy(seq, |i, b| dev.write_block(base + u64::from(i), b))?;
    dev.flush()
}

/// The superblock and both copies, as found.
struct Inspection {
    geom: Geometry,
    copies: [Result<Table, CopyError>; SLOTS],
}

impl Inspection {
    fn read<D: BlockDevice>(dev: &mut D) -> Result<Inspection, Error<D::Error>> {
        let mut b = [0u8; BLOCK];
        dev.read_block(SUPERBLOCK, &mut b).map_err(Error::Io)?;
        let geom = Geometry::decode(&b).map_err(Error::Super)?;
        if geom.total_blocks() > dev.block_count() {
            return Err(Error::DeviceTooSmall);
        }
        let a = read_copy(dev, &geom, 0).map_err(Error::Io)?;
        let b = read_copy(dev, &geom, 1).map_err(Error::Io)?;
        Ok(Inspection {
            geom,
            copies: [a, b],
        })
    }

    /// The valid copy with the highest sequence number (copy 0 on a tie).
    fn current(&self) -> Option<usize> {
        match (&self.copies[0], &self.copies[1]) {
            (Ok(a), Ok(b)) => Some(if b.seq() > a.seq() { 1 } else { 0 }),
            (Ok(_), Err(_)) => Some(0),
            (Err(_), Ok(_)) => Some(1),
            (Err(_), Err(_)) => None,
        }
    }

    fn states(&self) -> [SlotState; SLOTS] {
        self.copies.each_ref().map(|c| match c {
            Ok(t) => SlotState::Valid {
                seq: t.seq(),
                extents: t.extents().len(),
            },
            Err(CopyError::Blank) => SlotState::Blank,
            Err(e) => SlotState::Invalid(*e),
        })
    }
}

impl<D: BlockDevice> Volume<D> {
    /// Formats the whole device with table copies of `table_blocks` and
    /// returns it open, with an empty table. The old superblock is cleared
    /// first and the new one written last, so a crash during format leaves
    /// a device that does not open, never a mix of old and new.
    pub fn format(mut dev: D, table_blocks: u32, disk_id: u64) -> Result<Self, Error<D::Error>> {
        let geom =
            Geometry::new(dev.block_count(), table_blocks, disk_id).map_err(Error::Geometry)?;
        let io = Error::Io;
        dev.zero_blocks(SUPERBLOCK, 1).map_err(io)?;
        dev.flush().map_err(io)?;
        dev.zero_blocks(geom.slot_start(0), 2 * u64::from(table_blocks))
            .map_err(io)?;
        let mut table = Table::new(geom);
        write_copy(&mut dev, &table, 0, 1).map_err(io)?;
        table.set_seq(1);
        let mut b = [0u8; BLOCK];
        geom.encode(&mut b);
        dev.write_block(SUPERBLOCK, &b).map_err(io)?;
        dev.flush().map_err(io)?;
        Ok(Volume {
            dev,
            table,
            current: 0,
            found: [SlotState::Valid { seq: 1, extents: 0 }, SlotState::Blank],
        })
    }

    /// Opens a formatted device: the valid table copy with the highest
    /// sequence number is current; `Corrupt` if neither is valid.
    pub fn open(mut dev: D) -> Result<Self, Error<D::Error>> {
        let ins = Inspection::read(&mut dev)?;
        let current = ins.current().ok_or(Error::Corrupt)?;
        let found = ins.states();
        let [a, b] = ins.copies;
        let table = if current == 0 { a } else { b }.map_err(|_| Error::Corrupt)?;
        Ok(Volume {
            dev,
            table,
            current,
            found,
        })
    }

    /// The current table.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The copy holding the current table.
    pub fn current_slot(&self) -> usize {
        self.current
    }

    /// Both copies as they were when the device was opened or formatted.
    pub fn slots_at_open(&self) -> &[SlotState; SLOTS] {
        &self.found
    }

    /// The device.
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Gives the device back.
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Writes the table as the next sequence number into the other copy
    /// and flushes. On error the current copy is untouched and stays
    /// current; the other copy may be torn (and is rewritten next time).
    fn commit(&mut self) -> Result<(), Error<D::Error>> {
        let seq = self.table.seq().checked_add(1).ok_or(Error::SeqExhausted)?;
        let slot = 1 - self.current.min(1);
        write_copy(&mut self.dev, &self.table, slot, seq).map_err(Error::Io)?;
        self.table.set_seq(seq);
        self.current = slot;
        Ok(())
    }

    /// Commits a table that already holds `e`, after `prepare` wrote what
    /// `e` holds; on any error `e` is taken out again. Its id stays spent:
    /// the failed copy may have reached the device, and an id that was ever
    /// on it never names another extent.
    fn commit_new(
        &mut self,
        e: Extent,
        prepare: impl FnOnce(&mut D) -> Result<(), D::Error>,
    ) -> Result<Extent, Error<D::Error>> {
        let r = prepare(&mut self.dev)
            .and_then(|()| self.dev.flush())
            .map_err(Error::Io)
            .and_then(|()| self.commit());
        match r {
            Ok(()) => Ok(e),
            Err(err) => {
                let _ = self.table.remove(e.id);
                Err(err)
            }
        }
    }

    /// A new swap area or private disk of `blocks`, zeroed before it is
    /// recorded (so no domain reads what an earlier extent left there).
    pub fn create(
        &mut self,
        kind: Kind,
        name: Name,
        blocks: u64,
    ) -> Result<Extent, Error<D::Error>> {
        let e = self
            .table
            .allocate(kind, name, blocks, None)
            .map_err(Error::Alloc)?;
        self.commit_new(e, |dev| dev.zero_blocks(e.start, e.blocks))
    }

    /// A new read-only image holding `content` (padded with zeros to whole
    /// blocks; an empty image takes one block), with its CRC-32C recorded.
    pub fn add_image(&mut self, name: Name, content: &[u8]) -> Result<Extent, Error<D::Error>> {
        let len = content.len() as u64;
        let blocks = len.div_ceil(BLOCK as u64).max(1);
        let c = Content {
            len,
            crc: crc32c(content),
        };
        let e = self
            .table
            .allocate(Kind::Image, name, blocks, Some(c))
            .map_err(Error::Alloc)?;
        self.commit_new(e, |dev| {
            let mut buf = [0u8; BLOCK];
            for i in 0..blocks {
                buf.fill(0);
                let from = usize::try_from(i)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(BLOCK);
                let part = content.get(from..).unwrap_or(&[]);
                let n = part.len().min(BLOCK);
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), part.get(..n)) {
                    dst.copy_from_slice(src);
                }
                dev.write_block(e.start + i, &buf)?;
            }
            Ok(())
        })
    }

    /// Records image `name`, whose content was already written at `start`
    /// (where [`Volume::plan_image`] put it on this table): `Ok(None)` if
    /// the blocks do not hold `content` (nothing is recorded). The table
    /// names it only after the blocks are flushed and checked, so a crash
    /// or an error leaves no part of it.
    pub fn commit_written_image(
        &mut self,
        name: Name,
        blocks: u64,
        content: Content,
        start: u64,
    ) -> Result<Option<Extent>, Error<D::Error>> {
        let e = self
            .table
            .allocate(Kind::Image, name, blocks, Some(content))
            .map_err(Error::Alloc)?;
        let undo = |v: &mut Self| {
            let _ = v.table.remove(e.id);
        };
        if e.start != start {
            // The table changed since it was planned: the content is not here.
            undo(self);
            return Ok(None);
        }
        if let Err(err) = self.dev.flush().map_err(Error::Io) {
            undo(self);
            return Err(err);
        }
        match self.verify_image(&e) {
            Ok(true) => {}
            Ok(false) => {
                undo(self);
                return Ok(None);
            }
            Err(err) => {
                undo(self);
                return Err(err);
            }
        }
        self.commit_new(e, |_| Ok(())).map(Some)
    }

    /// Removes the extent with `id`; its blocks are free once this returns.
    pub fn remove(&mut self, id: u32) -> Result<Extent, Error<D::Error>> {
        let e = self.table.remove(id).map_err(Error::Alloc)?;
        if let Err(err) = self.commit() {
            self.table.reinsert(e);
            return Err(err);
        }
        Ok(e)
    }

    /// Whether image `e`'s blocks hold the content its entry records.
    /// `true` for anything that is not an image (nothing is recorded).
    pub fn verify_image(&mut self, e: &Extent) -> Result<bool, Error<D::Error>> {
        let Some(c) = e.content else {
            return Ok(true);
        };
        let mut crc = Running::new();
        let mut left = c.len;
        let mut buf = [0u8; BLOCK];
        let mut block = e.start;
        while left > 0 && block < e.end() {
            self.dev.read_block(block, &mut buf).map_err(Error::Io)?;
            let n = usize::try_from(left.min(BLOCK as u64)).unwrap_or(BLOCK);
            crc.update(buf.get(..n).unwrap_or(&[]));
            left -= n as u64;
            block += 1;
        }
        Ok(left == 0 && crc.finish() == c.crc)
    }
}

/// Where [`Volume::commit_written_image`] will put an image of `blocks`
/// on `table`: the extent it would get, with the table left unchanged.
/// The caller writes the content there (through its own queue), then
/// commits.
pub fn plan_image(
    table: &Table,
    name: Name,
    blocks: u64,
    content: Content,
) -> Result<Extent, AllocError> {
    table
        .clone()
        .allocate(Kind::Image, name, blocks, Some(content))
}

/// Something fsck found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A table copy is not valid (torn by an interrupted update, or damaged).
    Copy {
        /// Which copy.
        slot: usize,
        /// Why.
        error: CopyError,
    },
    /// A copy is blank although the table was updated since format.
    Blank {
        /// Which copy.
        slot: usize,
    },
    /// Neither copy is valid: the table is lost.
    NoValidCopy,
    /// An image's blocks do not hold what its entry records.
    Image {
        /// The extent's id.
        id: u32,
        /// Its name.
        name: Name,
    },
}

/// What fsck found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The superblock's geometry.
    pub geometry: Geometry,
    /// Both copies.
    pub slots: [SlotState; SLOTS],
    /// The copy the disk server would use, if any.
    pub current: Option<usize>,
    /// Its table.
    pub table: Option<Table>,
    /// Everything wrong; empty if the disk is sound.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks a device: the superblock (an error if it is bad), both table
/// copies, the current table's invariants and every image's checksum.
pub fn fsck<D: BlockDevice>(dev: &mut D) -> Result<Report, Error<D::Error>> {
    let ins = Inspection::read(dev)?;
    let slots = ins.states();
    let current = ins.current();
    let mut problems = Vec::new();
    let newest = current
        .and_then(|c| ins.copies.get(c))
        .and_then(|t| t.as_ref().ok())
        .map_or(0, Table::seq);
    for (slot, s) in slots.iter().enumerate() {
        match s {
            SlotState::Invalid(error) => problems.push(Problem::Copy {
                slot,
                error: *error,
            }),
            SlotState::Blank if newest > 1 => problems.push(Problem::Blank { slot }),
            _ => {}
        }
    }
    let Some(cur) = current else {
        problems.push(Problem::NoValidCopy);
        return Ok(Report {
            geometry: ins.geom,
            slots,
            current,
            table: None,
            problems,
        });
    };
    let [a, b] = ins.copies;
    let table = if cur == 0 { a } else { b }.map_err(|_| Error::Corrupt)?;
    let mut vol = Volume {
        dev,
        table,
        current: cur,
        found: slots,
    };
    let mut i = 0;
    while let Some(e) = vol.table.extents().get(i).copied() {
        i += 1;
        if !vol.verify_image(&e)? {
            problems.push(Problem::Image {
                id: e.id,
                name: e.name,
            });
        }
    }
    Ok(Report {
        geometry: *vol.table.geometry(),
        slots,
        current,
        table: Some(vol.table),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::tests::name as any_name;
    use crate::fake::{Crashed, FakeDisk};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    const ID: u64 = 0xd15c;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn fresh(blocks: usize, t: u32) -> Volume<FakeDisk> {
        let mut d = FakeDisk::new(blocks);
        // Whatever an earlier user left; a new extent must not show it.
        for b in &mut d.durable {
            b.fill(0xee);
        }
        Volume::format(d, t, ID).unwrap()
    }

    fn reopen(v: Volume<FakeDisk>) -> Volume<FakeDisk> {
        let mut d = v.into_device();
        d.flush().unwrap();
        Volume::open(d).unwrap()
    }

    fn flip(v: &mut Volume<FakeDisk>, block: u64, at: usize) {
        v.device().durable[block as usize][at] ^= 0x40;
    }

    #[test]
    fn format_open_and_update() {
        let mut v = fresh(200, 2);
        assert_eq!(v.table().geometry().data_start(), 5);
        let swap = v.create(Kind::Swap, n("httpd"), 10).unwrap();
        let disk = v.create(Kind::Disk, n("httpd"), 20).unwrap();
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let img = v.add_image(n("www.tar"), &content).unwrap();
        assert_eq!(img.blocks, 3);
        assert_eq!(
            v.add_image(n("www.tar"), b"x"),
            Err(Error::Alloc(AllocError::Exists))
        );
        assert_eq!(
            v.create(Kind::Disk, n("big"), 1000),
            Err(Error::Alloc(AllocError::NoSpace))
        );
        assert_eq!(
            v.create(Kind::Image, n("img"), 1),
            Err(Error::Alloc(AllocError::BadContent))
        );
        v.remove(swap.id).unwrap();
        let mut v = reopen(v);
        assert_eq!(v.table().extents(), &[disk, img]);
        assert_eq!(v.table().seq(), 5);
        assert!(v.verify_image(&img).unwrap());
        // The disk reads as zeros, not as what was there before.
        let mut b = [1u8; BLOCK];
        for i in disk.start..disk.end() {
            v.device().read_block(i, &mut b).unwrap();
            assert_eq!(b, [0; BLOCK]);
        }
        // The swap area's hole is reused.
        let s2 = v.create(Kind::Swap, n("game"), 10).unwrap();
        assert_eq!(s2.start, swap.start);
        assert!(s2.id > img.id);
        assert!(fsck(v.device()).unwrap().is_clean());
    }

    #[test]
    fn a_written_image_is_recorded_only_whole() {
        let mut v = fresh(200, 2);
        let content: Vec<u8> = (0..9_000u32).map(|i| (i % 251) as u8).collect();
        let c = Content {
            len: content.len() as u64,
            crc: crc32c(&content),
        };
        let write = |v: &mut Volume<FakeDisk>, start: u64, bytes: &[u8]| {
            for (i, chunk) in bytes.chunks(BLOCK).enumerate() {
                let mut b = [0u8; BLOCK];
                b[..chunk.len()].copy_from_slice(chunk);
                v.device().write_block(start + i as u64, &b).unwrap();
            }
        };
        let before = v.table().clone();
        let plan = plan_image(v.table(), n("web2"), 3, c).unwrap();
        assert_eq!(v.table(), &before, "planning changes nothing");
        // Wrong bytes: refused, nothing recorded.
        let mut bad = content.clone();
        bad[5_000] ^= 1;
        write(&mut v, plan.start, &bad);
        assert_eq!(
            v.commit_written_image(n("web2"), 3, c, plan.start),
            Ok(None)
        );
        assert!(v.table().find(Kind::Image, &n("web2")).is_none());
        // The table moved since the plan: refused.
        write(&mut v, plan.start, &content);
        assert_eq!(
            v.commit_written_image(n("web2"), 3, c, plan.start + 1),
            Ok(None)
        );
        // Whole and in place: recorded, and there after a reopen.
        let e = v
            .commit_written_image(n("web2"), 3, c, plan.start)
            .unwrap()
            .unwrap();
        assert_eq!((e.start, e.blocks, e.content), (plan.start, 3, Some(c)));
        let mut v = reopen(v);
        assert_eq!(v.table().find(Kind::Image, &n("web2")), Some(&e));
        assert!(v.verify_image(&e).unwrap());
        assert!(fsck(v.device()).unwrap().is_clean());
    }

    #[test]
    fn a_damaged_current_copy_falls_back_then_corrupt() {
        let mut v = fresh(100, 1);
        v.create(Kind::Disk, n("a"), 5).unwrap();
        let older = v.table().clone();
        v.create(Kind::Disk, n("b"), 5).unwrap();
        let cur = v.current_slot();
        let g = *v.table().geometry();
        flip(&mut v, g.slot_start(cur), 200);
        let mut d = v.into_device();
        let r = fsck(&mut d).unwrap();
        assert!(!r.is_clean());
        assert_eq!(
            r.problems,
            vec![Problem::Copy {
                slot: cur,
                error: CopyError::Checksum
            }]
        );
        assert_eq!(r.current, Some(1 - cur));
        let mut v = Volume::open(d).unwrap();
        assert_eq!(v.table().extents(), older.extents());
        assert_eq!(v.current_slot(), 1 - cur);
        // The next update goes over the damaged copy and makes it good.
        v.create(Kind::Disk, n("c"), 5).unwrap();
        assert_eq!(v.current_slot(), cur);
        assert!(fsck(v.device()).unwrap().is_clean());
        // Both copies damaged: the table is lost, and says so.
        flip(&mut v, g.slot_start(0), 9);
        flip(&mut v, g.slot_start(1), 4095);
        let r = fsck(v.device()).unwrap();
        assert!(r.problems.contains(&Problem::NoValidCopy));
        assert_eq!(Volume::open(v.into_device()).unwrap_err(), Error::Corrupt);
    }

    #[test]
    fn image_rot_and_superblock_damage() {
        let mut v = fresh(100, 1);
        let img = v.add_image(n("img"), &[7u8; 5000]).unwrap();
        flip(&mut v, img.start + 1, 100);
        let r = fsck(v.device()).unwrap();
        assert_eq!(
            r.problems,
            vec![Problem::Image {
                id: img.id,
                name: img.name
            }]
        );
        // Bytes past the content's end are not covered.
        flip(&mut v, img.start + 1, 100);
        flip(&mut v, img.start + 1, 4000);
        assert!(fsck(v.device()).unwrap().is_clean());
        flip(&mut v, SUPERBLOCK, 17);
        assert_eq!(
            fsck(v.device()).unwrap_err(),
            Error::Super(SuperError::Corrupt)
        );
        assert_eq!(
            Volume::open(FakeDisk::new(10)).unwrap_err(),
            Error::Super(SuperError::NotFormatted)
        );
        let mut d = v.into_device();
        flip_back_and_shrink(&mut d);
        assert_eq!(Volume::open(d).unwrap_err(), Error::DeviceTooSmall);
    }

    fn flip_back_and_shrink(d: &mut FakeDisk) {
        d.durable[0][17] ^= 0x40;
        d.durable.truncate(50);
    }

    #[test]
    fn reformat_forgets_the_old_table() {
        let mut v = fresh(100, 1);
        for i in 0..5 {
            v.create(Kind::Disk, n(&std::format!("d{i}")), 2).unwrap();
        }
        let d = v.into_device();
        let v = Volume::format(d, 1, ID + 1).unwrap();
        let v = reopen(v);
        assert!(v.table().extents().is_empty());
        // Same id again: the old copies were blanked, not just outnumbered.
        let mut v = fresh(100, 1);
        v.create(Kind::Disk, n("old"), 2).unwrap();
        v.create(Kind::Disk, n("old2"), 2).unwrap();
        let v = reopen(Volume::format(v.into_device(), 1, ID).unwrap());
        assert!(v.table().extents().is_empty());
        assert_eq!(v.slots_at_open()[1], SlotState::Blank);
    }

    #[test]
    fn a_failed_update_changes_nothing_and_can_be_retried() {
        let mut v = fresh(100, 1);
        v.create(Kind::Disk, n("a"), 5).unwrap();
        let before = v.table().clone();
        v.device().budget = Some(0);
        assert_eq!(v.create(Kind::Disk, n("b"), 5), Err(Error::Io(Crashed)));
        assert_eq!(v.table().extents(), before.extents());
        // The id stays spent: the failed copy may have reached the disk.
        assert_eq!(v.table().next_id(), before.next_id() + 1);
        let before = v.table().clone();
        let a = v.table().extents()[0];
        v.device().budget = Some(0);
        assert_eq!(v.remove(a.id), Err(Error::Io(Crashed)));
        assert_eq!(v.table(), &before);
        v.device().budget = None;
        v.device().cache.clear();
        v.create(Kind::Disk, n("b"), 5).unwrap();
        v.remove(a.id).unwrap();
        let v = reopen(v);
        assert_eq!(v.table().extents().len(), 1);
        assert_eq!(v.table().extents()[0].name, n("b"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create(bool, Name, u64),
        Image(Name, usize),
        Remove(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), any_name(), 1u64..12).prop_map(|(s, n, b)| Op::Create(s, n, b)),
            (any_name(), 0usize..3 * BLOCK).prop_map(|(n, l)| Op::Image(n, l)),
            any::<usize>().prop_map(Op::Remove),
        ]
    }

    fn content(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + seed) as u8).collect()
    }

    /// Applies `op` to the volume, and to a copy of its table for the
    /// state a successful op must leave.
    fn apply(
        v: &mut Volume<FakeDisk>,
        op: &Op,
        seed: usize,
    ) -> (Table, Result<(), Error<Crashed>>) {
        let mut want = v.table().clone();
        let r = match op {
            Op::Create(swap, name, blocks) => {
                let kind = if *swap { Kind::Swap } else { Kind::Disk };
                let _ = want.allocate(kind, *name, *blocks, None);
                v.create(kind, *name, *blocks).map(|_| ())
            }
            Op::Image(name, len) => {
                let c = content(*len, seed);
                let blocks = (*len as u64).div_ceil(BLOCK as u64).max(1);
                let _ = want.allocate(
                    Kind::Image,
                    *name,
                    blocks,
                    Some(Content {
                        len: *len as u64,
                        crc: crc32c(&c),
                    }),
                );
                v.add_image(*name, &c).map(|_| ())
            }
            Op::Remove(i) => {
                let ext = v.table().extents();
                match ext.get(i % (ext.len() + 1)).map(|e| e.id) {
                    Some(id) => {
                        let _ = want.remove(id);
                        v.remove(id).map(|_| ())
                    }
                    None => Ok(()),
                }
            }
        };
        (want, r)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Power fails at any write of any update, with any subset of the
        /// unflushed writes reaching the medium and one of them torn: the
        /// device then opens with the table before the update or after it,
        /// never anything else, and every extent it names holds what it
        /// should (zeros, or the image's content).
        #[test]
        fn a_crash_anywhere_keeps_a_valid_table(
            ops in proptest::collection::vec(op(), 1..10),
            budget in any::<usize>(),
            keep in any::<u64>(),
            tear in proptest::option::of((any::<usize>(), 0usize..8)),
        ) {
            // 70 extents, so the table spans both blocks of each copy.
            let mut v = fresh(1 + 4 + 400, 2);
            for i in 0..70 {
                v.create(Kind::Swap, n(&std::format!("p{i}")), 1).unwrap();
            }
            let base = v.into_device();
            // A dry run counts the writes, so the cut always falls in one.
            let mut dry = Volume::open(base.clone()).unwrap();
            let w0 = dry.device().writes;
            for (seed, o) in ops.iter().enumerate() {
                let _ = apply(&mut dry, o, seed);
            }
            let writes = dry.device().writes - w0;
            let mut v = Volume::open(base).unwrap();
            v.device().budget = Some(budget % (writes + 1));
            for (seed, o) in ops.iter().enumerate() {
                let before = v.table().clone();
                let (want, r) = apply(&mut v, o, seed);
                match r {
                    Ok(()) => {
                        let mut got = v.table().clone();
                        got.set_seq(want.seq());
                        prop_assert_eq!(&got, &want);
                    }
                    Err(Error::Alloc(_)) => prop_assert_eq!(v.table(), &before),
                    Err(Error::Io(Crashed)) => {
                        let d = v.device().after_crash(keep, tear);
                        let mut back = Volume::open(d).unwrap();
                        let got = back.table().extents().to_vec();
                        prop_assert!(
                            got == before.extents() || got == want.extents(),
                            "after the crash: {:?}\nbefore: {:?}\nwanted: {:?}", got, before.extents(), want.extents()
                        );
                        prop_assert!([before.seq(), before.seq() + 1].contains(&back.table().seq()));
                        for e in &got {
                            prop_assert!(back.verify_image(e).unwrap());
                            if e.content.is_none() && !before.extents().contains(e) {
                                let mut b = [1u8; BLOCK];
                                for i in e.start..e.end() {
                                    back.device().read_block(i, &mut b).unwrap();
                                    prop_assert_eq!(b, [0u8; BLOCK]);
                                }
                            }
                        }
                        return Ok(());
                    }
                    Err(e) => prop_assert!(false, "{:?}", e),
                }
            }
        }

        #[test]
        fn any_device_contents_never_panic(blocks in proptest::collection::vec((0usize..12, any::<u8>(), 0usize..BLOCK), 0..40), magic in any::<bool>()) {
            let mut v = fresh(12, 2);
            v.create(Kind::Disk, n("a"), 1).unwrap();
            v.add_image(n("i"), b"hello").unwrap();
            let mut d = v.into_device();
            for (b, x, at) in blocks {
                d.durable[b][at] = x;
            }
            if magic {
                d.durable[1][..8].copy_from_slice(b"XERACEXT");
            }
            let _ = fsck(&mut d);
            if let Ok(mut v) = Volume::open(d) {
                prop_assert!(v.table().check().is_ok());
                let _ = v.create(Kind::Swap, n("z"), 1);
            }
        }
    }
}
