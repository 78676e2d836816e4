//! The extent table: the allocator, and the codec of one table copy.
//!
//! A copy is `T` blocks: a 64-byte header, then 64-byte entries
//! ([`crate::extent`]), the used ones first, sorted by start block, the
//! rest zero. Header:
//!
//! | offset | field | size | |
//! |---|---|---|---|
//! | 0 | magic | 8 | `SERACEXT` |
//! | 8 | version | u32 | 1 |
//! | 12 | table blocks | u32 | `T`, as in the superblock |
//! | 16 | disk id | u64 | as in the superblock |
//! | 24 | sequence | u64 | 1 or more; the copy with the highest wins |
//! | 32 | next id | u32 | the id the next extent gets |
//! | 36 | count | u32 | entries in use |
//! | 40 | CRC | u32 | CRC-32C of all `T` blocks, these 4 bytes taken as 0 |
//! | 44 | reserved | 20 | 0 |
//!
//! The CRC covers the whole copy, so a copy of which any part was not
//! written (a torn update, in any order of blocks or sectors) does not
//! check, and neither does one with a flipped bit. A copy that checks is
//! then validated as a whole: entries well formed, inside the data area,
//! not overlapping, ids and names unique. Decoding never panics.

use alloc::vec::Vec;

use crate::checksum::Running;
use crate::extent::{kind_code, Content, Entry, Extent, Kind, Name};
use crate::layout::{
    get, put, Block, Geometry, BLOCK, ENTRY_LEN, HEADER_LEN, TABLE_MAGIC, VERSION,
};

/// Offset of the CRC in the header.
const CRC_AT: usize = 40;

/// Why an allocation or removal was refused (the table is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// Zero blocks asked for.
    Empty,
    /// No free run of blocks is long enough.
    NoSpace,
    /// An extent of that kind and name exists.
    Exists,
    /// The table copy has no free entry, or ids ran out.
    TableFull,
    /// No extent with that id.
    NotFound,
    /// Content on a non-image, none on an image, or longer than the extent.
    BadContent,
    /// The heap could not grow the table.
    NoMemory,
}

/// Why a table copy was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyError {
    /// All-zero header: never written (or blanked by format).
    Blank,
    /// Not a table copy.
    BadMagic,
    /// Another version.
    Unsupported,
    /// Made for another format of the device (disk id or table size).
    Foreign,
    /// The CRC does not match: torn or damaged.
    Checksum,
    /// It checks, but an entry or the header is not valid.
    BadEntry,
    /// It checks, but two extents overlap or one leaves the data area.
    Overlap,
    /// It checks, but two extents share an id or a kind and name.
    Duplicate,
    /// The heap could not hold it.
    NoMemory,
}

/// The table in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    geom: Geometry,
    seq: u64,
    next_id: u32,
    /// Sorted by start; pairwise disjoint; inside the data area.
    extents: Vec<Extent>,
}

impl Table {
    /// An empty table for `geom` that was never committed (sequence 0).
    pub fn new(geom: Geometry) -> Table {
        Table {
            geom,
            seq: 0,
            next_id: 1,
            extents: Vec::new(),
        }
    }

    /// The device's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geom
    }

    /// The sequence number of the copy this table was read from or last
    /// committed as.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// The id the next extent gets.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    /// The extents, by start block.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The extent with `id`.
    pub fn get(&self, id: u32) -> Option<&Extent> {
        self.extents.iter().find(|e| e.id == id)
    }

    /// The extent of `kind` named `name`.
    pub fn find(&self, kind: Kind, name: &Name) -> Option<&Extent> {
        self.extents
            .iter()
            .find(|e| e.kind == kind && e.name == *name)
    }

    /// Blocks no extent uses.
    pub fn free_blocks(&self) -> u64 {
        let used: u64 = self.extents.iter().map(|e| e.blocks).sum();
        self.geom.data_blocks().saturating_sub(used)
    }

    /// Places a new extent at the first free run of `blocks` (first fit)
    /// and returns it. Nothing changes on error.
    pub fn allocate(
        &mut self,
        kind: Kind,
        name: Name,
        blocks: u64,
        content: Option<Content>,
    ) -> Result<Extent, AllocError> {
        if blocks == 0 {
            return Err(AllocError::Empty);
        }
        if self.find(kind, &name).is_some() {
            return Err(AllocError::Exists);
        }
        if self.extents.len() >= self.geom.capacity() || self.next_id == u32::MAX {
            return Err(AllocError::TableFull);
        }
        let mut e = Extent {
            id: self.next_id,
            kind,
            name,
            start: 0,
            blocks,
            content,
        };
        // Shape check with a placeholder start; the real one is below.
        if !e.well_formed() {
            return Err(AllocError::BadContent);
        }
        let (at, start) = self.first_fit(blocks).ok_or(AllocError::NoSpace)?;
        e.start = start;
        self.extents
            .try_reserve(1)
            .map_err(|_| AllocError::NoMemory)?;
        self.extents.insert(at, e);
        self.next_id += 1;
        Ok(e)
    }

    /// Index to insert at and start block of the first gap of `blocks`.
    fn first_fit(&self, blocks: u64) -> Option<(usize, u64)> {
        let mut cursor = self.geom.data_start();
        for (i, e) in self.extents.iter().enumerate() {
            if e.start.checked_sub(cursor)? >= blocks {
                return Some((i, cursor));
            }
            cursor = e.end();
        }
        let room = self.geom.total_blocks().checked_sub(cursor)?;
        (room >= blocks).then_some((self.extents.len(), cursor))
    }

    /// Removes the extent with `id` and returns it.
    pub fn remove(&mut self, id: u32) -> Result<Extent, AllocError> {
        let i = self
            .extents
            .iter()
            .position(|e| e.id == id)
            .ok_or(AllocError::NotFound)?;
        Ok(self.extents.remove(i))
    }

    /// Puts back an extent [`Table::remove`] just returned (an undo: the
    /// Vec kept its capacity, so this does not allocate).
    pub(crate) fn reinsert(&mut self, e: Extent) {
        let at = self.extents.partition_point(|x| x.start < e.start);
        if self.extents.try_reserve(1).is_ok() {
            self.extents.insert(at, e);
        }
    }

    /// Whether the invariants hold: sorted, disjoint, inside the data area,
    /// well formed, ids below `next_id` and unique, (kind, name) unique.
    pub fn check(&self) -> Result<(), CopyError> {
        validate(&self.geom, self.next_id, &self.extents)
    }

    /// Block `index` of the copy with sequence `seq` and header CRC `crc`.
    fn copy_block(&self, seq: u64, crc: u32, index: u32, out: &mut Block) {
        out.fill(0);
        let first_entry = (index as usize * BLOCK).saturating_sub(HEADER_LEN) / ENTRY_LEN;
        let mut at = 0;
        if index == 0 {
            put(out, 0, &TABLE_MAGIC);
            put(out, 8, &VERSION.to_le_bytes());
            put(out, 12, &self.geom.table_blocks().to_le_bytes());
            put(out, 16, &self.geom.disk_id().to_le_bytes());
            put(out, 24, &seq.to_le_bytes());
            put(out, 32, &self.next_id.to_le_bytes());
            let count = u32::try_from(self.extents.len()).unwrap_or(u32::MAX);
            put(out, 36, &count.to_le_bytes());
            put(out, CRC_AT, &crc.to_le_bytes());
            at = HEADER_LEN;
        }
        let mut entry: Entry = [0; ENTRY_LEN];
        for e in self.extents.iter().skip(first_entry) {
            if at + ENTRY_LEN > BLOCK {
                break;
            }
            e.encode(&mut entry);
            put(out, at, &entry);
            at += ENTRY_LEN;
        }
    }

    /// Writes the copy with sequence `seq`, block by block, through `write`
    /// (block index within the copy, bytes). Two passes: the CRC first,
    /// then the blocks, so no buffer of the whole copy is needed.
    pub fn encode_copy<E>(
        &self,
        seq: u64,
        mut write: impl FnMut(u32, &Block) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buf = [0u8; BLOCK];
        let mut crc = Running::new();
        for i in 0..self.geom.table_blocks() {
            self.copy_block(seq, 0, i, &mut buf);
            crc.update(&buf);
        }
        let crc = crc.finish();
        for i in 0..self.geom.table_blocks() {
            self.copy_block(seq, crc, i, &mut buf);
            write(i, &buf)?;
        }
        Ok(())
    }

    /// Reads one copy through `read` (block index within the copy, buffer)
    /// for a device of geometry `geom`. The outer error is the device's;
    /// the inner one says why the copy is not valid.
    pub fn decode_copy<E>(
        geom: &Geometry,
        mut read: impl FnMut(u32, &mut Block) -> Result<(), E>,
    ) -> Result<Result<Table, CopyError>, E> {
        let mut buf = [0u8; BLOCK];
        read(0, &mut buf)?;
        let header = match Header::parse(geom, &buf) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let mut extents = Vec::new();
        if extents.try_reserve(header.count).is_err() {
            return Ok(Err(CopyError::NoMemory));
        }
        let mut crc = Running::new();
        let mut bad = None;
        let mut slot = 0usize;
        for i in 0..geom.table_blocks() {
            if i > 0 {
                read(i, &mut buf)?;
            } else {
                put(&mut buf, CRC_AT, &[0; 4]);
            }
            crc.update(&buf);
            let from = if i == 0 { HEADER_LEN } else { 0 };
            for chunk in buf.get(from..).unwrap_or(&[]).chunks_exact(ENTRY_LEN) {
                let entry: Entry = get(chunk, 0);
                match (Extent::decode(&entry), slot < header.count) {
                    (Ok(Some(e)), true) => extents.push(e),
                    (Ok(None), false) => {}
                    _ => bad = bad.or(Some(CopyError::BadEntry)),
                }
                slot += 1;
            }
        }
        if crc.finish() != header.crc {
            return Ok(Err(CopyError::Checksum));
        }
        if let Some(e) = bad {
            return Ok(Err(e));
        }
        if let Err(e) = validate(geom, header.next_id, &extents) {
            return Ok(Err(e));
        }
        Ok(Ok(Table {
            geom: *geom,
            seq: header.seq,
            next_id: header.next_id,
            extents,
        }))
    }
}

struct Header {
    seq: u64,
    next_id: u32,
    count: usize,
    crc: u32,
}

impl Header {
    fn parse(geom: &Geometry, b: &Block) -> Result<Header, CopyError> {
        let magic = get::<8>(b, 0);
        if magic == [0; 8] {
            return Err(CopyError::Blank);
        }
        if magic != TABLE_MAGIC {
            return Err(CopyError::BadMagic);
        }
        if u32::from_le_bytes(get(b, 8)) != VERSION {
            return Err(CopyError::Unsupported);
        }
        if u32::from_le_bytes(get(b, 12)) != geom.table_blocks()
            || u64::from_le_bytes(get(b, 16)) != geom.disk_id()
        {
            return Err(CopyError::Foreign);
        }
        let h = Header {
            seq: u64::from_le_bytes(get(b, 24)),
            next_id: u32::from_le_bytes(get(b, 32)),
            count: u32::from_le_bytes(get(b, 36)) as usize,
            crc: u32::from_le_bytes(get(b, CRC_AT)),
        };
        // Shape errors are reported only if the CRC matches (see
        // decode_copy), but a count past the capacity is refused before
        // any memory is reserved for it.
        if h.count > geom.capacity() {
            return Err(CopyError::BadEntry);
        }
        if h.seq == 0 || h.next_id == 0 || get::<20>(b, 44) != [0; 20] {
            return Err(CopyError::BadEntry);
        }
        Ok(h)
    }
}

/// The table invariants (see [`Table::check`]).
fn validate(geom: &Geometry, next_id: u32, extents: &[Extent]) -> Result<(), CopyError> {
    let mut cursor = geom.data_start();
    for e in extents {
        if !e.well_formed() || e.id >= next_id {
            return Err(CopyError::BadEntry);
        }
        if e.start < cursor || e.end() > geom.total_blocks() {
            return Err(CopyError::Overlap);
        }
        cursor = e.end();
    }
    let mut keys = Vec::new();
    keys.try_reserve(extents.len())
        .map_err(|_| CopyError::NoMemory)?;
    keys.extend(extents.iter().map(|e| e.id));
    keys.sort_unstable();
    if keys.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(CopyError::Duplicate);
    }
    let mut names = Vec::new();
    names
        .try_reserve(extents.len())
        .map_err(|_| CopyError::NoMemory)?;
    names.extend(extents.iter().map(|e| (kind_code(e.kind), e.name)));
    names.sort_unstable();
    if names.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(CopyError::Duplicate);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extent::tests::{kind, name};
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn geom(total: u64, t: u32) -> Geometry {
        Geometry::new(total, t, 0x5e7a_c0de).unwrap()
    }

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn image(len: u64) -> Option<Content> {
        Some(Content { len, crc: 7 })
    }

    /// Encodes into a Vec of blocks.
    fn encode(t: &Table, seq: u64) -> Vec<Block> {
        let mut out = vec![[0u8; BLOCK]; t.geometry().table_blocks() as usize];
        t.encode_copy::<()>(seq, |i, b| {
            out[i as usize] = *b;
            Ok(())
        })
        .unwrap();
        out
    }

    fn decode(g: &Geometry, blocks: &[Block]) -> Result<Table, CopyError> {
        Table::decode_copy::<()>(g, |i, b| {
            *b = blocks[i as usize];
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn first_fit_reuses_holes_and_refuses_overlap() {
        let g = geom(1 + 2 + 100, 1);
        let mut t = Table::new(g);
        let a = t.allocate(Kind::Swap, n("a"), 10, None).unwrap();
        let b = t.allocate(Kind::Disk, n("a"), 20, None).unwrap();
        let c = t.allocate(Kind::Swap, n("c"), 30, None).unwrap();
        assert_eq!((a.start, b.start, c.start), (3, 13, 33));
        assert_eq!(
            t.allocate(Kind::Swap, n("a"), 1, None),
            Err(AllocError::Exists)
        );
        t.remove(b.id).unwrap();
        assert_eq!(t.remove(b.id), Err(AllocError::NotFound));
        // Too big for the hole: goes after c.
        let d = t.allocate(Kind::Disk, n("d"), 25, None).unwrap();
        assert_eq!(d.start, 63);
        let e = t.allocate(Kind::Disk, n("e"), 20, None).unwrap();
        assert_eq!(e.start, 13);
        assert_eq!(t.free_blocks(), 100 - 10 - 30 - 25 - 20);
        assert_eq!(
            t.allocate(Kind::Disk, n("f"), 16, None),
            Err(AllocError::NoSpace)
        );
        t.allocate(Kind::Disk, n("f"), 15, None).unwrap();
        assert_eq!(t.free_blocks(), 0);
        assert_eq!(
            t.allocate(Kind::Disk, n("g"), 0, None),
            Err(AllocError::Empty)
        );
        assert_eq!(
            t.allocate(Kind::Image, n("g"), 1, None),
            Err(AllocError::BadContent)
        );
        assert_eq!(
            t.allocate(Kind::Disk, n("g"), 1, image(1)),
            Err(AllocError::BadContent)
        );
        // Ids are never reused.
        assert_eq!(t.next_id(), 7);
        t.check().unwrap();
    }

    #[test]
    fn table_full() {
        let g = geom(10_000, 1);
        let mut t = Table::new(g);
        for i in 0..g.capacity() {
            t.allocate(Kind::Swap, n(&std::format!("d{i}")), 1, None)
                .unwrap();
        }
        assert_eq!(
            t.allocate(Kind::Swap, n("one-more"), 1, None),
            Err(AllocError::TableFull)
        );
        let back = decode(&g, &encode(&t, 3)).unwrap();
        assert_eq!(back.extents(), t.extents());
        assert_eq!(back.seq(), 3);
    }

    #[test]
    fn copies_round_trip_across_blocks() {
        let g = geom(100_000, 3);
        let mut t = Table::new(g);
        for i in 0..150u64 {
            let content = (i % 3 == 0).then(|| Content {
                len: i * 100,
                crc: i as u32,
            });
            let kind = if content.is_some() {
                Kind::Image
            } else {
                Kind::Disk
            };
            t.allocate(kind, n(&std::format!("x{i}")), i + 1, content)
                .unwrap();
        }
        let blocks = encode(&t, 9);
        let mut back = decode(&g, &blocks).unwrap();
        assert_eq!(back.seq(), 9);
        back.set_seq(0);
        assert_eq!(back, t);
    }

    #[test]
    fn damage_is_detected() {
        let g = geom(1000, 2);
        let mut t = Table::new(g);
        t.allocate(Kind::Image, n("www"), 4, image(100)).unwrap();
        let good = encode(&t, 1);
        assert!(decode(&g, &good).is_ok());
        // A flipped bit anywhere, even in an unused entry.
        for at in [0, 13, 30, 45, 64, 100, BLOCK - 1, BLOCK + 7, 2 * BLOCK - 1] {
            let mut bad = good.clone();
            bad[at / BLOCK][at % BLOCK] ^= 0x10;
            assert!(decode(&g, &bad).is_err(), "flip at {at}");
        }
        assert_eq!(decode(&g, &[[0; BLOCK]; 2]), Err(CopyError::Blank));
        let other = geom(1000, 2);
        let other = Geometry::new(other.total_blocks(), 2, 1).unwrap();
        assert_eq!(decode(&other, &good), Err(CopyError::Foreign));
    }

    #[test]
    fn a_copy_that_checks_but_overlaps_is_refused() {
        let g = geom(1000, 1);
        let mut t = Table::new(g);
        t.allocate(Kind::Disk, n("a"), 10, None).unwrap();
        t.allocate(Kind::Disk, n("b"), 10, None).unwrap();
        // Forge: move b onto a, with a valid CRC.
        t.extents[1].start = 5;
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::Overlap));
        t.extents[1].start = 1;
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::Overlap));
        t.extents[1].start = 13;
        t.extents[1].name = n("a");
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::Duplicate));
        t.extents[1].name = n("b");
        t.extents[1].id = 1;
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::Duplicate));
        t.extents[1].id = 9;
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::BadEntry));
        t.extents[1].id = 2;
        t.extents[1].start = 995;
        assert_eq!(decode(&g, &encode(&t, 1)), Err(CopyError::Overlap));
    }

    fn largest_gap(t: &Table) -> u64 {
        let mut cursor = t.geometry().data_start();
        let mut best = 0;
        for e in t.extents() {
            best = best.max(e.start - cursor);
            cursor = e.end();
        }
        best.max(t.geometry().total_blocks() - cursor)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc(Kind, Name, u64),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (kind(), name(), 1u64..40).prop_map(|(k, n, b)| Op::Alloc(k, n, b)),
            2 => any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #[test]
        fn no_two_extents_ever_overlap(ops in proptest::collection::vec(op(), 0..80)) {
            let g = geom(1 + 2 + 400, 1);
            let mut t = Table::new(g);
            for o in ops {
                let before = t.clone();
                match o {
                    Op::Alloc(k, name, blocks) => {
                        let content = (k == Kind::Image).then_some(Content { len: blocks, crc: 1 });
                        match t.allocate(k, name, blocks, content) {
                            Ok(e) => {
                                prop_assert!(e.start >= g.data_start() && e.end() <= g.total_blocks());
                                prop_assert_eq!(t.get(e.id), Some(&e));
                            }
                            Err(err) => {
                                prop_assert_eq!(&t, &before);
                                if err == AllocError::NoSpace {
                                    // First fit fails only if no gap is big enough.
                                    prop_assert!(largest_gap(&t) < blocks);
                                }
                            }
                        }
                    }
                    Op::Free(i) => {
                        if let Some(id) = t.extents().get(i % (t.extents().len() + 1)).map(|e| e.id) {
                            t.remove(id).unwrap();
                        }
                    }
                }
                prop_assert!(t.check().is_ok());
                for (i, a) in t.extents().iter().enumerate() {
                    for b in &t.extents()[i + 1..] {
                        prop_assert!(!a.overlaps(b));
                    }
                }
                let back = decode(&g, &encode(&t, 5)).unwrap();
                prop_assert_eq!(back.extents(), t.extents());
            }
        }

        #[test]
        fn copy_garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 2 * BLOCK), header in any::<bool>(), count in 0u32..300) {
            let g = geom(1000, 2);
            let mut blocks = [[0u8; BLOCK]; 2];
            blocks[0].copy_from_slice(&v[..BLOCK]);
            blocks[1].copy_from_slice(&v[BLOCK..]);
            if header {
                // Get past the header checks to reach the entries.
                blocks[0][..8].copy_from_slice(&TABLE_MAGIC);
                blocks[0][8..12].copy_from_slice(&VERSION.to_le_bytes());
                blocks[0][12..16].copy_from_slice(&2u32.to_le_bytes());
                blocks[0][16..24].copy_from_slice(&g.disk_id().to_le_bytes());
                blocks[0][36..40].copy_from_slice(&count.to_le_bytes());
            }
            let _ = decode(&g, &blocks);
        }

        // Valid entries with a forged CRC reach validate() with any shape.
        #[test]
        fn forged_copies_are_validated(starts in proptest::collection::vec((0u64..1200, 1u64..50, 1u32..20), 0..20)) {
            let g = geom(1000, 1);
            let mut t = Table::new(g);
            t.next_id = 10;
            for (i, (start, blocks, id)) in starts.into_iter().enumerate() {
                t.extents.push(Extent { id, kind: Kind::Disk, name: n(&std::format!("e{i}")), start, blocks, content: None });
            }
            let res = decode(&g, &encode(&t, 1));
            prop_assert_eq!(res.is_ok(), t.check().is_ok());
            if let Ok(back) = res {
                prop_assert!(back.check().is_ok());
            }
        }
    }
}
