//! A domain's handle space: `serac_kcore::handles::HandleTable` chunks that
//! grow on demand up to a per-domain limit, so a domain without handles
//! costs none, an ordinary one a small chunk, and the supervisor can hold a
//! handle per domain it runs.
//!
//! Handle index `c * CHUNK + j` is slot `j` of chunk `c`. Slot 0 of every
//! chunk is never used (kcore reserves it), so index 0 never resolves and
//! a fresh space's first handle is `Handle::new(1, 1)`.

use alloc::vec::Vec;
use serac_kcore::handles::{HandleEntry, HandleTable};
use serac_protocol::{Handle, HandleKind, HandleRights, SysError};

/// Slots per chunk.
pub const CHUNK: usize = 16;

/// A growable handle space.
#[derive(Debug)]
pub struct Handles {
    chunks: Vec<HandleTable<CHUNK>>,
    max_chunks: usize,
    /// First generation of chunks made from now on: above every generation
    /// this space issued before, so generations stay monotonic per slot
    /// even though `revoke_all` frees the chunks.
    next_gen: u32,
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
            max_chunks: max_chunks.max(1),
            next_gen: 1,
        }
    }

    /// Installs `entry`; `TableFull` when every chunk is full and the
    /// limit is reached.
    pub fn allocate(&mut self, entry: HandleEntry) -> Result<Handle, SysError> {
        for (c, t) in self.chunks.iter_mut().enumerate() {
            if t.len() < CHUNK - 1 {
                let h = t.allocate(entry)?;
                return Ok(Handle::new((c * CHUNK) as u32 + h.index, h.gen));
            }
        }
        if self.chunks.len() >= self.max_chunks {
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
        Ok(Handle::new((c * CHUNK) as u32 + h.index, h.gen))
    }

    /// The generation fresh slots of this space start at.
    pub fn first_gen(&self) -> u32 {
        self.next_gen
    }

    /// Resolves `h`.
    pub fn lookup(&self, h: Handle) -> Result<&HandleEntry, SysError> {
        let (c, local) = split(h);
        self.chunks.get(c).ok_or(SysError::BadHandle)?.lookup(local)
    }

    /// Resolves `h` for an update in place.
    pub fn lookup_mut(&mut self, h: Handle) -> Result<&mut HandleEntry, SysError> {
        let (c, local) = split(h);
        self.chunks
            .get_mut(c)
            .ok_or(SysError::BadHandle)?
            .lookup_mut(local)
    }

    /// Resolves `h` and checks kind and rights.
    pub fn lookup_as(
        &self,
        h: Handle,
        kind: HandleKind,
        need: HandleRights,
    ) -> Result<&HandleEntry, SysError> {
        let (c, local) = split(h);
        self.chunks
            .get(c)
            .ok_or(SysError::BadHandle)?
            .lookup_as(local, kind, need)
    }

    /// Revokes `h`, returning what it named.
    pub fn revoke(&mut self, h: Handle) -> Result<HandleEntry, SysError> {
        let (c, local) = split(h);
        self.chunks
            .get_mut(c)
            .ok_or(SysError::BadHandle)?
            .revoke(local)
    }

    /// Revokes everything and frees the chunks; later handles in this
    /// space get higher generations than any issued so far.
    pub fn revoke_all(&mut self) {
        for t in &mut self.chunks {
            t.revoke_all(|_| {});
            self.next_gen = self.next_gen.max(t.max_gen().saturating_add(1));
        }
        self.chunks = Vec::new();
    }
}
