//! Who may open which extent, and the table of open extents.
//!
//! A client is known by its badge: the kernel writes it into every message,
//! and for an endpoint the supervisor grants it is the client's packed
//! `DomainId`, so it cannot be forged.
//!
//! **The rule.** The supervisor tells the server who its clients are
//! (`Request::Name`: this badge is the domain the manifest calls `name`),
//! before it starts them and again when one restarts. Then:
//! - images are read-only and open to every client;
//! - the swap area and private disk named `name` open only for the badge
//!   the supervisor named `name` (`NotPermitted` for anyone else, and for
//!   everyone before the supervisor has named anybody that name).
//!
//! A name has one badge: naming a restarted client again moves its extents
//! to the new generation, and the old badge loses them.
//!
//! **Handles** of private extents name a slot of a fixed table with a
//! generation and the server's incarnation (`epoch`); only the badge that
//! opened one may use it, and anything else reads as `BadHandle`, so a
//! client learns nothing about other clients' handles. An image's handle
//! names the image itself ([`IMAGE_SLOT`] plus the extent id, as slot and
//! generation) and holds no state: every client may open every image, so
//! one handle for all of them gives nobody more, and 100,000 clients
//! reading one image cost the server nothing per client.
//!
//! **Names** are kept only for names that are a private extent's: the
//! supervisor names every client, and most (web servers reading an image)
//! have no private extent, so the table stays the size of the disk's.

use serac_protocol::client::ServiceError;
use serac_protocol::disk::{DiskHandle, ExtentInfo};

use crate::extent::{Extent, Kind, Name};
use crate::table::Table;

/// Private extents open at once, over all clients (images take no slot).
pub const MAX_OPEN: usize = 64;
/// Names kept at once: those of private extents only.
pub const MAX_NAMES: usize = 256;
/// Slot numbers from here on name an image by its extent id.
pub const IMAGE_SLOT: u32 = 1 << 31;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    gen: u32,
    open: Option<(u64, Extent)>,
}

/// The open extents and the clients' names of one server incarnation.
#[derive(Debug, Clone)]
pub struct Clients {
    epoch: u32,
    slots: [Slot; MAX_OPEN],
    /// (badge, the name the supervisor gave it).
    names: [Option<(u64, Name)>; MAX_NAMES],
}

/// What a client may know of its extent.
pub fn info(e: &Extent) -> ExtentInfo {
    ExtentInfo {
        kind: e.kind,
        blocks: e.blocks,
        read_only: e.read_only(),
    }
}

impl Clients {
    /// An empty table for incarnation `epoch` (the server's generation).
    pub fn new(epoch: u32) -> Clients {
        Clients {
            epoch,
            slots: [Slot::default(); MAX_OPEN],
            names: [None; MAX_NAMES],
        }
    }

    /// The incarnation handles carry.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    fn handle(&self, slot: usize, gen: u32) -> DiskHandle {
        DiskHandle {
            epoch: self.epoch,
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            gen,
        }
    }

    /// `badge` opens the extent of `kind` named `name` in `table`. Opening
    /// an extent the badge has open already returns the same handle.
    pub fn open(
        &mut self,
        badge: u64,
        table: &Table,
        kind: Kind,
        name: &str,
    ) -> Result<(DiskHandle, Extent), ServiceError> {
        let name = Name::new(name).map_err(|_| ServiceError::NoSuchExtent)?;
        let e = *table.find(kind, &name).ok_or(ServiceError::NoSuchExtent)?;
        if kind == Kind::Image {
            let h = DiskHandle {
                epoch: self.epoch,
                slot: IMAGE_SLOT,
                gen: e.id,
            };
            return Ok((h, e));
        }
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| matches!(s.open, Some((b, x)) if b == badge && x.id == e.id))
        {
            return Ok((self.handle(i, self.slots[i].gen), e));
        }
        if self.name_of(badge) != Some(&name) {
            return Err(ServiceError::NotPermitted);
        }
        let i = self
            .slots
            .iter()
            .position(|s| s.open.is_none())
            .ok_or(ServiceError::NoResources)?;
        let s = &mut self.slots[i];
        // Generation 0 is never handed out: a zeroed handle names nothing.
        s.gen = s.gen.wrapping_add(1).max(1);
        s.open = Some((badge, e));
        let gen = s.gen;
        Ok((self.handle(i, gen), e))
    }

    /// The name the supervisor gave `badge`.
    pub fn name_of(&self, badge: u64) -> Option<&Name> {
        self.names
            .iter()
            .flatten()
            .find(|(b, _)| *b == badge)
            .map(|(_, n)| n)
    }

    /// The supervisor's `Request::Name`: `badge` is the domain called
    /// `name`. A name held by another badge moves (the client restarted),
    /// and the old badge's handles on its extents are closed. A name no
    /// private extent of `table` has is not kept (nothing could open).
    pub fn name(&mut self, badge: u64, name: &str, table: &Table) -> Result<(), ServiceError> {
        let name = Name::new(name).map_err(|_| ServiceError::BadRequest)?;
        for n in self.names.iter_mut() {
            if n.as_ref().is_some_and(|(b, x)| *x == name || *b == badge) {
                if let Some((old, _)) = n.take() {
                    for s in self.slots.iter_mut() {
                        if matches!(s.open, Some((b, _)) if b == old) {
                            s.open = None;
                        }
                    }
                }
            }
        }
        let private = [Kind::Disk, Kind::Swap]
            .iter()
            .any(|&k| table.find(k, &name).is_some());
        if !private {
            return Ok(());
        }
        let free = self
            .names
            .iter_mut()
            .find(|n| n.is_none())
            .ok_or(ServiceError::NoResources)?;
        *free = Some((badge, name));
        Ok(())
    }

    /// The extent `handle` names, if `badge` opened it (or it is an
    /// image's, which anybody may use).
    pub fn get(
        &self,
        table: &Table,
        badge: u64,
        handle: DiskHandle,
    ) -> Result<Extent, ServiceError> {
        if handle.epoch != self.epoch {
            return Err(ServiceError::ServerRestarted);
        }
        if handle.slot == IMAGE_SLOT {
            return table
                .get(handle.gen)
                .filter(|e| e.kind == Kind::Image)
                .copied()
                .ok_or(ServiceError::BadHandle);
        }
        let s = usize::try_from(handle.slot)
            .ok()
            .and_then(|i| self.slots.get(i))
            .ok_or(ServiceError::BadHandle)?;
        match &s.open {
            Some((b, e)) if *b == badge && s.gen == handle.gen => Ok(*e),
            _ => Err(ServiceError::BadHandle),
        }
    }

    /// Drops `handle`. A handle that is closed already (or never was
    /// `badge`'s, or is an image's) closes as a no-op: `Close` is idempotent.
    pub fn close(&mut self, badge: u64, handle: DiskHandle) -> Result<(), ServiceError> {
        if handle.epoch != self.epoch {
            return Err(ServiceError::ServerRestarted);
        }
        if let Some(s) = usize::try_from(handle.slot)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
        {
            if matches!(s.open, Some((b, _)) if b == badge) && s.gen == handle.gen {
                s.open = None;
            }
        }
        Ok(())
    }

    /// Handles open now.
    pub fn open_count(&self) -> usize {
        self.slots.iter().filter(|s| s.open.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Geometry;
    use proptest::prelude::*;

    fn table() -> Table {
        let mut t = Table::new(Geometry::new(4096, 1, 7).unwrap());
        for (k, n, b) in [
            (Kind::Disk, "alice", 8),
            (Kind::Disk, "bob", 8),
            (Kind::Swap, "alice", 16),
        ] {
            t.allocate(k, Name::new(n).unwrap(), b, None).unwrap();
        }
        t.allocate(
            Kind::Image,
            Name::new("www").unwrap(),
            1,
            Some(crate::extent::Content { len: 0, crc: 0 }),
        )
        .unwrap();
        t
    }

    const A: u64 = 1 << 32 | 5;
    const B: u64 = 1 << 32 | 6;

    #[test]
    fn names_and_handles() {
        let t = table();
        let mut c = Clients::new(3);
        // Nobody is named yet: no private extent opens, images do.
        assert_eq!(
            c.open(A, &t, Kind::Disk, "alice"),
            Err(ServiceError::NotPermitted)
        );
        assert!(c.open(A, &t, Kind::Image, "www").is_ok());
        c.name(A, "alice", &t).unwrap();
        c.name(B, "bob", &t).unwrap();
        assert_eq!(c.name(B, "a b", &t), Err(ServiceError::BadRequest));
        // Bob cannot open Alice's disk even before she does.
        assert_eq!(
            c.open(B, &t, Kind::Disk, "alice"),
            Err(ServiceError::NotPermitted)
        );
        let (h, e) = c.open(A, &t, Kind::Disk, "alice").unwrap();
        assert_eq!((h.epoch, e.name.as_str()), (3, "alice"));
        // The same open again: the same handle.
        assert_eq!(c.open(A, &t, Kind::Disk, "alice").unwrap().0, h);
        // Another badge cannot open it, nor use the handle.
        assert_eq!(
            c.open(B, &t, Kind::Disk, "alice"),
            Err(ServiceError::NotPermitted)
        );
        assert_eq!(c.get(&t, B, h), Err(ServiceError::BadHandle));
        assert_eq!(c.get(&t, A, h).unwrap().id, e.id);
        // Images are open to all, read-only.
        let (hw, w) = c.open(B, &t, Kind::Image, "www").unwrap();
        let (hw2, _) = c.open(A, &t, Kind::Image, "www").unwrap();
        // One handle for an image, whoever opens it: it names the image.
        assert_eq!(hw, hw2);
        assert_eq!(c.get(&t, 12345, hw).unwrap().id, w.id);
        assert_eq!(c.open_count(), 1);
        assert!(info(&w).read_only);
        // Unknown and badly named extents.
        assert_eq!(
            c.open(A, &t, Kind::Swap, "bob"),
            Err(ServiceError::NoSuchExtent)
        );
        assert_eq!(
            c.open(A, &t, Kind::Disk, "a b"),
            Err(ServiceError::NoSuchExtent)
        );
        // Close is idempotent; the extent stays Alice's.
        c.close(A, h).unwrap();
        c.close(A, h).unwrap();
        assert_eq!(c.get(&t, A, h), Err(ServiceError::BadHandle));
        assert_eq!(
            c.open(B, &t, Kind::Disk, "alice"),
            Err(ServiceError::NotPermitted)
        );
        let (h2, _) = c.open(A, &t, Kind::Disk, "alice").unwrap();
        assert_ne!(h2, h, "a reopened slot has a new generation");
        // Closing someone else's handle does nothing.
        c.close(B, h2).unwrap();
        assert!(c.get(&t, A, h2).is_ok());
        // Another incarnation's handle.
        let old = DiskHandle { epoch: 2, ..h2 };
        assert_eq!(c.get(&t, A, old), Err(ServiceError::ServerRestarted));
        assert_eq!(c.close(A, old), Err(ServiceError::ServerRestarted));
        assert_eq!(
            c.get(&t, A, DiskHandle { slot: 999, ..h2 }),
            Err(ServiceError::BadHandle)
        );
        // Alice restarts (a new badge): her disk moves, the old handle goes.
        let a2 = 2 << 32 | 5;
        c.name(a2, "alice", &t).unwrap();
        assert_eq!(c.get(&t, A, h2), Err(ServiceError::BadHandle));
        assert_eq!(
            c.open(A, &t, Kind::Disk, "alice"),
            Err(ServiceError::NotPermitted)
        );
        assert!(c.open(a2, &t, Kind::Disk, "alice").is_ok());
        assert!(c.open(a2, &t, Kind::Swap, "alice").is_ok());
        assert_eq!(c.name_of(a2).map(|n| n.as_str()), Some("alice"));
    }

    #[test]
    fn images_cost_nothing_per_client_and_private_slots_fill_up() {
        let mut t = Table::new(Geometry::new(1 << 20, 4, 7).unwrap());
        t.allocate(
            Kind::Image,
            Name::new("www").unwrap(),
            1,
            Some(crate::extent::Content { len: 0, crc: 0 }),
        )
        .unwrap();
        for k in 0..=MAX_OPEN {
            t.allocate(
                Kind::Disk,
                Name::new(&std::format!("d{k}")).unwrap(),
                1,
                None,
            )
            .unwrap();
        }
        let mut c = Clients::new(1);
        for b in 0..100_000u64 {
            let (h, _) = c.open(b, &t, Kind::Image, "www").unwrap();
            assert!(c.get(&t, b, h).is_ok());
            // Clients with no private extent leave no name behind.
            c.name(b, &std::format!("httpd.{b}"), &t).unwrap();
        }
        assert_eq!(c.open_count(), 0);
        for k in 0..MAX_OPEN as u64 {
            c.name(k, &std::format!("d{k}"), &t).unwrap();
            c.open(k, &t, Kind::Disk, &std::format!("d{k}")).unwrap();
        }
        assert_eq!(c.open_count(), MAX_OPEN);
        let last = MAX_OPEN as u64;
        c.name(last, &std::format!("d{last}"), &t).unwrap();
        assert_eq!(
            c.open(last, &t, Kind::Disk, &std::format!("d{last}")),
            Err(ServiceError::NoResources)
        );
    }

    proptest! {
        // Whatever the sequence, a handle works only for the badge that
        // opened it, and a private extent opens only for the badge the
        // supervisor last gave its name.
        #[test]
        fn one_owner_per_extent(ops in proptest::collection::vec((0u64..3, 0usize..4, any::<bool>(), proptest::option::of(0usize..2)), 0..64)) {
            let t = table();
            let mut c = Clients::new(1);
            let names = [(Kind::Disk, "alice"), (Kind::Disk, "bob"), (Kind::Swap, "alice"), (Kind::Image, "www")];
            let who = ["alice", "bob"];
            let mut named: [Option<u64>; 2] = [None; 2];
            let mut handles = std::vec::Vec::new();
            for (badge, which, close, rename) in ops {
                if let Some(w) = rename {
                    c.name(badge, who[w], &t).unwrap();
                    for n in named.iter_mut() {
                        if *n == Some(badge) {
                            *n = None;
                        }
                    }
                    named[w] = Some(badge);
                    handles.retain(|(b, _)| *b != badge);
                    continue;
                }
                let (k, n) = names[which];
                let owner = who.iter().position(|w| *w == n).and_then(|w| named[w]);
                match c.open(badge, &t, k, n) {
                    Ok((h, _)) => {
                        if k != Kind::Image {
                            prop_assert_eq!(owner, Some(badge));
                        }
                        handles.push((badge, h));
                        if close {
                            c.close(badge, h).unwrap();
                        }
                    }
                    Err(ServiceError::NotPermitted) => prop_assert!(k != Kind::Image && owner != Some(badge)),
                    Err(e) => prop_assert!(false, "unexpected {:?}", e),
                }
                for &(b, h) in &handles {
                    for other in 0..3 {
                        if h.slot == IMAGE_SLOT {
                            // An image's handle is anybody's: it names the image.
                            prop_assert!(c.get(&t, other, h).is_ok());
                        } else if other != b {
                            prop_assert_eq!(c.get(&t, other, h), Err(ServiceError::BadHandle));
                        }
                    }
                }
            }
        }
    }
}
