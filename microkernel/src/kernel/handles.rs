//! A domain's handle space: `serac_kcore::handles::HandleTable` chunks that
//! grow on demand up to a per-domain limit, so a domain without handles
//! costs none, an ordinary one a small chunk, and the supervisor can hold a
//! handle per domain it runs.
//!
//! Handle index `c * CHUNK + j` is slot `j` of chunk `c`. Slot 0 of every
//! chunk is never used (kcore reserves it), so index 0 never resolves and
//! a fresh space's first handle is `Handle::new(1, 1)`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use serac_kcore::handles::{HandleEntry, HandleTable};
use serac_protocol::{Handle, HandleKind, HandleRights, SysError};

/// Slots per chunk.
pub const CHUNK: usize = 16;

/// A growable handle space.
#[derive(Debug)]
pub struct Handles {
    chunks: Vec<HandleTable<CHUNK>>,
    /// While packed (a swapped-out domain): the live handles only;
    /// `chunks` is empty.
    packed: Option<Box<[Packed]>>,
    /// The generation free slots come back at when unpacked: above any the
    /// chunks had, so a handle they had revoked stays stale.
    floor: u32,
    max_chunks: u32,
    /// No chunk below this one has a free slot (so a server holding a
    /// handle per domain allocates in O(1), not a scan of every chunk).
    room_from: u32,
    /// First generation of chunks made from now on: above every generation
    /// this space issued before, so generations stay monotonic per slot
    /// even though `revoke_all` frees the chunks.
    next_gen: u32,
}

/// A live handle of a packed space (24 bytes).
#[derive(Debug, Clone, Copy)]
struct Packed {
    object: u64,
    badge: u64,
    gen: u32,
    index: u16,
    kind: HandleKind,
    rights: HandleRights,
}

impl Packed {
    fn entry(&self) -> HandleEntry {
        HandleEntry {
            kind: self.kind,
            rights: self.rights,
            object: self.object,
            badge: self.badge,
        }
    }
}

fn split(h: Handle) -> (usize, Handle) {
    let i = h.index as usize;
    (i / CHUNK, Handle::new((i % CHUNK) as u32, h.gen))
}

impl Handles {
    /// A space of at most `max_chunks` chunks, none allocated until the
    /// first handle (an idle guest with no handles costs nothing here).
    pub fn new(max_chunks: usize) -> Self {
        Handles {
            chunks: Vec::new(),
            packed: None,
            floor: 1,
            max_chunks: u32::try_from(max_chunks.max(1)).unwrap_or(u32::MAX),
            room_from: 0,
            next_gen: 1,
        }
    }

    /// Keeps only the live handles (32 bytes each instead of a 16-slot
    /// chunk of 528); the chunks come back at the next change. Fails
    /// harmlessly (stays unpacked) without memory.
    pub fn pack(&mut self) {
        // A packed index is a u16: a space that large (a server's) stays.
        if self.packed.is_some()
            || self.chunks.is_empty()
            || self.chunks.len() * CHUNK > usize::from(u16::MAX)
        {
            return;
        }
        let n: usize = self.chunks.iter().map(|t| t.len()).sum();
        let mut v = Vec::new();
        if v.try_reserve_exact(n).is_err() {
            return;
        }
        let mut floor = self.next_gen;
        for (c, t) in self.chunks.iter().enumerate() {
            v.extend(t.live_entries().map(|(i, gen, e)| Packed {
                object: e.object,
                badge: e.badge,
                gen,
                index: (c * CHUNK) as u16 + i as u16,
                kind: e.kind,
                rights: e.rights,
            }));
            // A free slot's generation already moved past its last
            // handle's (`free_slot`), so its current one is safe to reuse;
            // slots never used keep `next_gen`, so a domain packed before
            // it ran gets its next grants at `HandleBase` as before.
            floor = floor.max(t.max_gen());
        }
        self.floor = floor;
        self.packed = Some(v.into_boxed_slice());
        self.chunks = Vec::new();
    }

    /// Rebuilds the chunks of a packed space (the common case, not
    /// packed, inline: it is on the IPC fast path).
    #[inline(always)]
    fn unpack(&mut self) -> Result<(), SysError> {
        if self.packed.is_none() {
            return Ok(());
        }
        self.unpack_slow()
    }

    #[inline(never)]
    fn unpack_slow(&mut self) -> Result<(), SysError> {
        let Some(p) = self.packed.as_ref() else {
            return Ok(());
        };
        let n = p
            .iter()
            .map(|x| usize::from(x.index) / CHUNK + 1)
            .max()
            .unwrap_or(0);
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(n)
            .map_err(|_| SysError::OutOfMemory)?;
        let mut part = Vec::new();
        part.try_reserve_exact(CHUNK)
            .map_err(|_| SysError::OutOfMemory)?;
        for c in 0..n {
            part.clear();
            part.extend(
                p.iter()
                    .filter(|x| usize::from(x.index) / CHUNK == c)
                    .map(|x| (u32::from(x.index) % CHUNK as u32, x.gen, x.entry())),
            );
            chunks.push(HandleTable::restore(self.floor, &part));
        }
        self.chunks = chunks;
        self.packed = None;
        self.room_from = 0;
        Ok(())
    }

    /// Installs `entry`; `TableFull` when every chunk is full and the
    /// limit is reached.
    pub fn allocate(&mut self, entry: HandleEntry) -> Result<Handle, SysError> {
        self.unpack()?;
        let from = self.room_from as usize;
        for (c, t) in self.chunks.iter_mut().enumerate().skip(from) {
            if t.len() < CHUNK - 1 {
                let h = t.allocate(entry)?;
                self.room_from = c as u32;
                return Ok(Handle::new((c * CHUNK) as u32 + h.index, h.gen));
            }
        }
        if self.chunks.len() >= self.max_chunks as usize {
            return Err(SysError::TableFull);
        }
        // Growing the chunk vector may reallocate it whole.
        let need = (self.chunks.len() + 1) * 2 * core::mem::size_of::<HandleTable<CHUNK>>();
        if !crate::arch::heap::has_room(need) {
            return Err(SysError::OutOfMemory);
        }
        let c = self.chunks.len();
        let mut t = HandleTable::with_first_gen(self.next_gen);
        let h = t.allocate(entry)?;
        // The first chunk exactly: a plain push reserves four (2 KiB).
        if self.chunks.is_empty() {
            self.chunks
                .try_reserve_exact(1)
                .map_err(|_| SysError::OutOfMemory)?;
        }
        self.chunks.push(t);
        self.room_from = c as u32;
        Ok(Handle::new((c * CHUNK) as u32 + h.index, h.gen))
    }

    /// The generation fresh slots of this space start at.
    pub fn first_gen(&self) -> u32 {
        self.next_gen
    }

    /// Resolves `h` (a copy of the entry: a packed space stores it
    /// differently).
    #[inline]
    pub fn lookup(&self, h: Handle) -> Result<HandleEntry, SysError> {
        if let Some(p) = &self.packed {
            return Self::lookup_packed(p, self.floor, h);
        }
        let (c, local) = split(h);
        self.chunks
            .get(c)
            .ok_or(SysError::BadHandle)?
            .lookup(local)
            .copied()
    }

    #[inline(never)]
    fn lookup_packed(p: &[Packed], floor: u32, h: Handle) -> Result<HandleEntry, SysError> {
        // As the unpacked chunks would answer: free slots are at `floor`.
        let at = |x: &Packed| usize::from(x.index) / CHUNK;
        match p.iter().find(|x| u32::from(x.index) == h.index) {
            Some(x) if x.gen == h.gen => Ok(x),
            Some(_) => Err(SysError::StaleHandle),
            None if h.is_none() || (h.index as usize).is_multiple_of(CHUNK) => {
                Err(SysError::BadHandle)
            }
            None if p.iter().any(|x| at(x) >= h.index as usize / CHUNK) && h.gen != floor => {
                Err(SysError::StaleHandle)
            }
            None => Err(SysError::BadHandle),
        }
        .map(Packed::entry)
    }

    /// Resolves `h` for an update in place.
    pub fn lookup_mut(&mut self, h: Handle) -> Result<&mut HandleEntry, SysError> {
        self.unpack()?;
        let (c, local) = split(h);
        self.chunks
            .get_mut(c)
            .ok_or(SysError::BadHandle)?
            .lookup_mut(local)
    }

    /// Resolves `h` and checks kind and rights.
    #[inline]
    pub fn lookup_as(
        &self,
        h: Handle,
        kind: HandleKind,
        need: HandleRights,
    ) -> Result<HandleEntry, SysError> {
        let e = self.lookup(h)?;
        if e.kind != kind {
            return Err(SysError::WrongHandleKind);
        }
        if !e.rights.contains(need) {
            return Err(SysError::NoRights);
        }
        Ok(e)
    }

    /// Revokes `h`, returning what it named.
    pub fn revoke(&mut self, h: Handle) -> Result<HandleEntry, SysError> {
        self.unpack()?;
        let (c, local) = split(h);
        let e = self
            .chunks
            .get_mut(c)
            .ok_or(SysError::BadHandle)?
            .revoke(local)?;
        self.room_from = self.room_from.min(c as u32);
        Ok(e)
    }

    /// Revokes everything and frees the chunks; later handles in this
    /// space get higher generations than any issued so far.
    pub fn revoke_all(&mut self) {
        if self.packed.take().is_some() {
            self.next_gen = self.next_gen.max(self.floor);
        }
        for t in &mut self.chunks {
            t.revoke_all(|_| {});
            self.next_gen = self.next_gen.max(t.max_gen().saturating_add(1));
        }
        self.chunks = Vec::new();
        self.room_from = 0;
    }
}
