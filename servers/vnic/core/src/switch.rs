//! The switch: ports, forwarding by destination MAC, source enforcement,
//! per-port queues and counters, and which owners to wake.
//!
//! Forwarding: an ARP request for the address of a guest port goes to that
//! port alone (flooded, it would wake every guest, swapped-out ones too);
//! any other group destination (broadcast, multicast: ARP requests for
//! other addresses) is flooded to every port but the sender's; a unicast
//! goes to the port
//! with that MAC, or to the uplink when no port has it (never back to the
//! uplink it came from). Frames from guest ports must carry the port's MAC
//! and IPv4 address (IPv4 source, ARP sender); the uplink's are not
//! checked. Only IPv4 and ARP are forwarded.
//!
//! Accounting: every offered frame is either forwarded (the sender's
//! `tx_*`) or dropped with one cause on the sender's port; every copy of a
//! forwarded frame is either queued (the receiver's `rx_*`) or dropped as
//! `queue_full`/`no_memory` on the receiver's port.
//!
//! Bounds: the tables grow a slot at a time as ports attach, up to
//! [`Limits::ports`], so memory follows the ports in use (about
//! [`BYTES_PER_PORT`] each, their queues aside) and every lookup is O(1);
//! a table that cannot grow refuses the port (`Full`), never a frame. Each
//! queue holds at most its frame and byte bounds; the wake list holds each port at
//! most once. Nothing grows with traffic, so a guest that never reads only
//! fills its own queue.

use crate::frame::{check_source, parse, DropCause};
use crate::queue::{Queue, QueueError};
use alloc::vec::Vec;
use core::hash::{BuildHasherDefault, Hash, Hasher};
use hashbrown::HashMap;
use serac_protocol::net::{Addresses, FramesRef, Ipv4, Mac, PortConfig, PortStats};
use serac_protocol::{DomainId, Handle};

/// A port's place in the switch. [`PortId::UPLINK`] is the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u32);

impl PortId {
    /// The uplink (the virtio-net side).
    pub const UPLINK: PortId = PortId(0);

    fn slot(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Sizes fixed when the switch is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Guest ports (the uplink is extra).
    pub ports: usize,
    /// Frames per queue.
    pub queue_frames: usize,
    /// Bytes of records per queue (allocated on a port's first frame).
    pub queue_bytes: usize,
    /// Frames in the uplink's queue (towards the device).
    pub uplink_frames: usize,
    /// Bytes of records in the uplink's queue.
    pub uplink_bytes: usize,
}

impl Limits {
    /// A queue's frames and bytes for a port of `kind`.
    fn queue_of(&self, kind: Kind) -> (usize, usize) {
        match kind {
            Kind::Uplink => (self.uplink_frames, self.uplink_bytes),
            _ => (self.queue_frames, self.queue_bytes),
        }
    }

    /// `ports` guest ports with 64 frames or 16 KiB per queue: four full
    /// `Recv` batches. The uplink's queue is eight times that: every
    /// guest's traffic out shares it, and at 16 KiB a few web servers'
    /// answers overflowed it while the device's ring was full (each drop
    /// a TCP segment waiting out smoltcp's 1 s minimum retransmission
    /// timeout: wrk's p99 was 990 ms, 13 ms with this queue).
    pub const fn new(ports: usize) -> Limits {
        Limits {
            ports,
            queue_frames: 64,
            queue_bytes: 16 * 1024,
            uplink_frames: 512,
            uplink_bytes: 128 * 1024,
        }
    }
}

/// Why a port was not attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// A group or zero MAC, a non-host IPv4, a prefix over 32, no owner.
    Invalid,
    /// Another owner's port has that MAC or IPv4 address.
    InUse,
    /// Every port slot is taken.
    Full,
}

/// The switch's tables could not be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMemory;

/// What became of one offered frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed the checks; `queued` copies went into queues and `refused`
    /// were dropped by full queues (counted there).
    Forwarded {
        /// Copies queued.
        queued: u32,
        /// Copies refused by their queue.
        refused: u32,
    },
    /// Dropped and counted on the sender's port.
    Dropped(DropCause),
}

/// Whom the server should wake: frames arrived on an empty queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// The uplink has frames to transmit.
    Uplink,
    /// Notify this port's owner (`notify(handle, RX_NOTIFY)`).
    Guest {
        /// The port's owner.
        owner: DomainId,
        /// The handle from its `Configure`.
        notify: Handle,
    },
}

/// Frames taken from a queue, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken<'a> {
    /// The frames as a batch, ready to encode into the reply.
    pub frames: FramesRef<'a>,
    /// How many.
    pub count: usize,
    /// Whether frames are still queued.
    pub more: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uplink,
    Guest(PortConfig),
}

#[derive(Debug)]
struct Port {
    kind: Kind,
    queue: Queue,
    stats: PortStats,
    /// On the wake list.
    waking: bool,
}

impl Port {
    fn new(kind: Kind, limits: &Limits) -> Port {
        let (frames, bytes) = limits.queue_of(kind);
        Port {
            kind,
            queue: Queue::new(frames, bytes),
            stats: PortStats::default(),
            waking: false,
        }
    }

    fn count(&mut self, cause: DropCause) {
        let d = &mut self.stats.drops;
        let c = match cause {
            DropCause::QueueFull => &mut d.queue_full,
            DropCause::NoMemory => &mut d.no_memory,
            DropCause::BadSize => &mut d.bad_size,
            DropCause::Malformed => &mut d.malformed,
            DropCause::Unsupported => &mut d.unsupported,
            DropCause::SpoofedMac => &mut d.spoofed_mac,
            DropCause::SpoofedIp => &mut d.spoofed_ip,
            DropCause::NoDestination => &mut d.no_destination,
        };
        *c = c.saturating_add(1);
    }

    /// Queues one copy; `Ok(true)` if the queue was empty (wake the owner).
    fn deliver(&mut self, frame: &[u8]) -> Result<bool, DropCause> {
        let was_empty = self.queue.is_empty();
        match self.queue.push(frame) {
            Ok(()) => {
                self.stats.rx_frames = self.stats.rx_frames.saturating_add(1);
                self.stats.rx_bytes = self.stats.rx_bytes.saturating_add(len64(frame));
                Ok(was_empty && !self.waking)
            }
            Err(QueueError::Full) => Err(DropCause::QueueFull),
            Err(QueueError::NoMemory) => Err(DropCause::NoMemory),
        }
    }
}

/// Queues one copy on `port` (`id`), counting it in `tally` (queued,
/// refused) and putting the port on the wake list if it needs waking.
/// With `may_retry`, a copy the heap refused storage for is neither
/// counted nor tallied: the answer is `true`, and the caller frees idle
/// queues' storage and tries once more.
fn deliver(
    port: &mut Port,
    id: PortId,
    wake: &mut Vec<PortId>,
    frame: &[u8],
    tally: &mut (u32, u32),
    may_retry: bool,
) -> bool {
    match port.deliver(frame) {
        Ok(wake_it) => {
            tally.0 += 1;
            // Each port is on the list at most once, so it never fills.
            if wake_it && wake.len() < wake.capacity() {
                port.waking = true;
                wake.push(id);
            }
        }
        Err(DropCause::NoMemory) if may_retry => return true,
        Err(cause) => {
            tally.1 += 1;
            port.count(cause);
        }
    }
    false
}

fn len64(frame: &[u8]) -> u64 {
    u64::try_from(frame.len()).unwrap_or(u64::MAX)
}

/// The virtual Ethernet switch.
#[derive(Debug)]
pub struct Switch {
    limits: Limits,
    /// Slot 0 is the uplink (`None` without one); guests use 1..=ports.
    ports: Vec<Option<Port>>,
    free: Vec<PortId>,
    /// By domain index (unique among live ports).
    by_owner: Index<u32>,
    /// By MAC.
    by_mac: Index<Mac>,
    /// By IPv4 address.
    by_ip: Index<Ipv4>,
    /// Ports attached, the uplink included.
    live: usize,
    wake: Vec<PortId>,
    /// Notification handles of ports removed, for the server to close.
    released: Vec<Handle>,
}

/// Table bytes a port slot costs, its queue aside (the index entries at
/// hashbrown's 7/8 load; a table just doubled holds twice that): measured
/// by `bytes_per_port_as_measured` in the tests.
pub const BYTES_PER_PORT: usize = core::mem::size_of::<Option<Port>>()
    + 2 * core::mem::size_of::<PortId>()
    + core::mem::size_of::<Handle>()
    + (core::mem::size_of::<(u32, PortId)>()
        + core::mem::size_of::<(Mac, PortId)>()
        + core::mem::size_of::<(Ipv4, PortId)>()
        + 3)
        * 8
        / 7;

// A port stays small.
const _: () = assert!(BYTES_PER_PORT <= 320);

/// A port index: O(1) lookups with 100,000 ports. Its keys are the
/// supervisor's (`Configure` is its request), not a guest's, so a plain
/// multiplicative hash is enough.
type Index<K> = HashMap<K, PortId, BuildHasherDefault<Fold>>;

/// A small multiplicative hash (the Fx hash's step).
#[derive(Debug, Default, Clone, Copy)]
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(v)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Inserts into an index whose capacity was reserved for it (so it never
/// reallocates).
fn insert<K: Eq + Hash + Copy>(table: &mut Index<K>, key: K, id: PortId) {
    if table.len() < table.capacity() || table.contains_key(&key) {
        table.insert(key, id);
    }
}

fn remove<K: Eq + Hash + Copy>(table: &mut Index<K>, key: K) {
    table.remove(&key);
}

fn lookup<K: Eq + Hash + Copy>(table: &Index<K>, key: K) -> Option<PortId> {
    table.get(&key).copied()
}

impl Switch {
    /// A switch for up to `limits.ports` guest ports, with an uplink port
    /// if `uplink`. Tables grow as ports attach; queues allocate on first use.
    pub fn new(limits: Limits, uplink: bool) -> Result<Switch, NoMemory> {
        limits.ports.checked_add(1).ok_or(NoMemory)?;
        let mut s = Switch {
            limits,
            ports: Vec::new(),
            free: Vec::new(),
            by_owner: Index::default(),
            by_mac: Index::default(),
            by_ip: Index::default(),
            live: usize::from(uplink),
            wake: Vec::new(),
            released: Vec::new(),
        };
        s.grow(1).ok_or(NoMemory)?;
        s.ports
            .push(uplink.then(|| Port::new(Kind::Uplink, &limits)));
        Ok(s)
    }

    /// Makes room in every table for `slots` port slots; `None` (and the
    /// tables as they were, only larger) when the heap refuses.
    fn grow(&mut self, slots: usize) -> Option<()> {
        let more = |len: usize| slots.saturating_sub(len);
        self.ports.try_reserve(more(self.ports.len())).ok()?;
        self.free.try_reserve(more(self.free.len())).ok()?;
        self.by_owner.try_reserve(more(self.by_owner.len())).ok()?;
        self.by_mac.try_reserve(more(self.by_mac.len())).ok()?;
        self.by_ip.try_reserve(more(self.by_ip.len())).ok()?;
        self.wake.try_reserve(more(self.wake.len())).ok()?;
        self.released.try_reserve(more(self.released.len())).ok()
    }

    /// A free port slot: a freed one, or a new one while under the limit.
    fn new_slot(&mut self) -> Option<PortId> {
        if let Some(id) = self.free.pop() {
            return Some(id);
        }
        let slot = self.ports.len();
        if slot > self.limits.ports {
            return None;
        }
        self.grow(slot + 1)?;
        let id = PortId(u32::try_from(slot).ok()?);
        self.ports.push(None);
        Some(id)
    }

    /// The limits it was made with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether there is an uplink port.
    pub fn has_uplink(&self) -> bool {
        matches!(self.ports.first(), Some(Some(_)))
    }

    fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.slot())?.as_ref()
    }

    fn port_mut(&mut self, id: PortId) -> Option<&mut Port> {
        self.ports.get_mut(id.slot())?.as_mut()
    }

    /// The port of `owner` (this exact generation).
    pub fn port_of(&self, owner: DomainId) -> Option<PortId> {
        let id = lookup(&self.by_owner, owner.index)?;
        match self.port(id)?.kind {
            Kind::Guest(c) if c.owner == owner => Some(id),
            _ => None,
        }
    }

    /// A port's configuration (`None` for the uplink or an empty slot).
    pub fn config(&self, id: PortId) -> Option<PortConfig> {
        match self.port(id)?.kind {
            Kind::Guest(c) => Some(c),
            Kind::Uplink => None,
        }
    }

    /// A port's addresses.
    pub fn addresses(&self, id: PortId) -> Option<Addresses> {
        self.config(id).map(|c| c.addresses)
    }

    /// Attaches `config.owner`'s port. The same configuration again changes
    /// nothing; another one for the same domain slot (a new generation, new
    /// addresses or handle) replaces the port, with an empty queue and zero
    /// counters. A refused configuration changes nothing.
    pub fn attach(&mut self, config: &PortConfig) -> Result<PortId, AttachError> {
        let a = &config.addresses;
        if config.owner.is_none() || !a.mac.is_unicast() || !a.ipv4.is_host() || a.prefix_len > 32 {
            return Err(AttachError::Invalid);
        }
        let existing = lookup(&self.by_owner, config.owner.index);
        if let Some(id) = existing {
            if self.config(id) == Some(*config) {
                return Ok(id);
            }
        }
        let taken_by_other = |hit: Option<PortId>| hit.is_some_and(|h| Some(h) != existing);
        if taken_by_other(lookup(&self.by_mac, a.mac))
            || taken_by_other(lookup(&self.by_ip, a.ipv4))
        {
            return Err(AttachError::InUse);
        }
        if let Some(id) = existing {
            self.remove_port(id);
            // The same handle again is still the port's: not to close.
            if self.released.last() == Some(&config.notify) {
                self.released.pop();
            }
        }
        let id = self.new_slot().ok_or(AttachError::Full)?;
        let limits = self.limits;
        let Some(slot) = self.ports.get_mut(id.slot()) else {
            return Err(AttachError::Full);
        };
        *slot = Some(Port::new(Kind::Guest(*config), &limits));
        self.live += 1;
        insert(&mut self.by_owner, config.owner.index, id);
        insert(&mut self.by_mac, a.mac, id);
        insert(&mut self.by_ip, a.ipv4, id);
        Ok(id)
    }

    /// Detaches `owner`'s port (this exact generation), dropping its queue.
    /// Returns whether there was one.
    pub fn detach(&mut self, owner: DomainId) -> bool {
        match self.port_of(owner) {
            Some(id) => {
                self.remove_port(id);
                true
            }
            None => false,
        }
    }

    fn remove_port(&mut self, id: PortId) {
        let Some(Some(port)) = self.ports.get_mut(id.slot()).map(Option::take) else {
            return;
        };
        if let Kind::Guest(c) = port.kind {
            remove(&mut self.by_owner, c.owner.index);
            remove(&mut self.by_mac, c.addresses.mac);
            remove(&mut self.by_ip, c.addresses.ipv4);
            self.live -= 1;
            self.free.push(id);
            // Bounded: the server drains it after every request.
            if !c.notify.is_none() && self.released.len() < self.released.capacity() {
                self.released.push(c.notify);
            }
        }
        // Only a port on the wake list costs a scan of it.
        if port.waking {
            self.wake.retain(|&w| w != id);
        }
    }

    /// Offers a frame from port `src`. `None` if there is no such port.
    pub fn offer(&mut self, src: PortId, frame: &[u8]) -> Option<Verdict> {
        let kind = self.port(src)?.kind;
        let verdict = match self.route(src, kind, frame) {
            Ok(dst) => self.forward(src, dst, frame),
            Err(cause) => Verdict::Dropped(cause),
        };
        let port = self.port_mut(src)?;
        match verdict {
            Verdict::Forwarded { .. } => {
                port.stats.tx_frames = port.stats.tx_frames.saturating_add(1);
                port.stats.tx_bytes = port.stats.tx_bytes.saturating_add(len64(frame));
            }
            Verdict::Dropped(cause) => port.count(cause),
        }
        Some(verdict)
    }

    /// Checks a frame and picks its destination (`None`: flood).
    fn route(&self, src: PortId, kind: Kind, frame: &[u8]) -> Result<Option<PortId>, DropCause> {
        let p = parse(frame)?;
        if let Kind::Guest(c) = kind {
            check_source(&p, c.addresses.mac, c.addresses.ipv4)?;
        }
        // An ARP request for a port's own address goes to that port alone:
        // flooded, it would wake every guest, swapped-out ones included.
        if let Some(dst) = p.arp_target.and_then(|ip| self.port_with_ipv4(ip)) {
            return if dst == src {
                Err(DropCause::NoDestination)
            } else {
                Ok(Some(dst))
            };
        }
        if p.dst.is_multicast() {
            // `src` is attached: is anyone else?
            return if self.live > 1 {
                Ok(None)
            } else {
                Err(DropCause::NoDestination)
            };
        }
        match lookup(&self.by_mac, p.dst) {
            Some(dst) if dst != src => Ok(Some(dst)),
            Some(_) => Err(DropCause::NoDestination),
            None if src != PortId::UPLINK && self.has_uplink() => Ok(Some(PortId::UPLINK)),
            None => Err(DropCause::NoDestination),
        }
    }

    /// The guest port configured with `ip`.
    fn port_with_ipv4(&self, ip: Ipv4) -> Option<PortId> {
        lookup(&self.by_ip, ip)
    }

    /// Queues a checked frame on `dst`, or on every port but `src`.
    fn forward(&mut self, src: PortId, dst: Option<PortId>, frame: &[u8]) -> Verdict {
        let mut tally = (0, 0);
        match dst {
            Some(d) => {
                // A queue's storage (16 KiB) is kept while the vnic is busy,
                // so a heap that refuses a new queue's may be held by idle
                // ones: free theirs (O(ports), only then) and try again.
                for may_retry in [true, false] {
                    let Switch { ports, wake, .. } = self;
                    let Some(Some(port)) = ports.get_mut(d.slot()) else {
                        break;
                    };
                    if !deliver(port, d, wake, frame, &mut tally, may_retry) {
                        break;
                    }
                    self.trim();
                }
            }
            None => {
                let Switch { ports, wake, .. } = self;
                for (i, slot) in ports.iter_mut().enumerate() {
                    let id = PortId(u32::try_from(i).unwrap_or(u32::MAX));
                    match slot {
                        Some(port) if id != src => {
                            deliver(port, id, wake, frame, &mut tally, false);
                        }
                        _ => {}
                    }
                }
            }
        }
        Verdict::Forwarded {
            queued: tally.0,
            refused: tally.1,
        }
    }

    /// Takes the oldest frames of `port` whose records fit in `max` bytes.
    pub fn take(&mut self, port: PortId, max: usize) -> Option<Taken<'_>> {
        self.take_upto(port, max, usize::MAX)
    }

    /// [`Switch::take`], at most `frames` frames.
    pub fn take_upto(&mut self, port: PortId, max: usize, frames: usize) -> Option<Taken<'_>> {
        let p = self.port_mut(port)?;
        let (bytes, count, more) = p.queue.take_upto(max, frames);
        // The queue holds only records it wrote, so this check passes.
        let frames = FramesRef::new(bytes).ok()?;
        Some(Taken {
            frames,
            count,
            more,
        })
    }

    /// The next owner to wake, once per empty → non-empty transition of
    /// its queue (the server drains this after each message).
    pub fn pop_wakeup(&mut self) -> Option<Wakeup> {
        while let Some(id) = self.wake.pop() {
            let Some(port) = self.port_mut(id) else {
                continue;
            };
            port.waking = false;
            return Some(match port.kind {
                Kind::Uplink => Wakeup::Uplink,
                Kind::Guest(c) => Wakeup::Guest {
                    owner: c.owner,
                    notify: c.notify,
                },
            });
        }
        None
    }

    /// A notification handle of a removed port (replaced or detached),
    /// which no port uses any more: the server closes it.
    pub fn pop_released(&mut self) -> Option<Handle> {
        self.released.pop()
    }

    /// A port's counters and queue depth.
    pub fn stats(&self, id: PortId) -> Option<PortStats> {
        let p = self.port(id)?;
        Some(PortStats {
            queued_frames: u32::try_from(p.queue.frames()).unwrap_or(u32::MAX),
            queued_bytes: u32::try_from(p.queue.bytes()).unwrap_or(u32::MAX),
            ..p.stats
        })
    }

    /// Frees the storage of every empty queue; returns the bytes freed.
    pub fn trim(&mut self) -> usize {
        let mut freed = 0;
        for port in self.ports.iter_mut().flatten() {
            let before = port.queue.footprint();
            port.queue.release();
            freed += before - port.queue.footprint();
        }
        freed
    }

    /// Every attached port, the uplink first.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .filter_map(|(i, _)| u32::try_from(i).ok().map(PortId))
    }

    /// Bytes the tables hold now (queues aside).
    pub fn table_bytes(&self) -> usize {
        use core::mem::size_of;
        self.ports.capacity() * size_of::<Option<Port>>()
            + (self.free.capacity() + self.wake.capacity()) * size_of::<PortId>()
            + self.released.capacity() * size_of::<Handle>()
            + self.by_owner.allocation_size()
            + self.by_mac.allocation_size()
            + self.by_ip.allocation_size()
    }

    /// Whether the tables agree with the ports and the bounds hold (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) -> bool {
        let guests = self
            .ports
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Some(Port {
                        kind: Kind::Guest(_),
                        ..
                    })
                )
            })
            .count();
        let tables = self.by_owner.len() == guests
            && self.by_mac.len() == guests
            && self.by_ip.len() == guests
            && self.live == self.ports.iter().flatten().count()
            && guests + self.free.len() + 1 == self.ports.len()
            && self.ports.len() <= self.limits.ports + 1;
        let indexed = self.by_mac.iter().all(|(&mac, &id)| {
            self.config(id).is_some_and(|c| c.addresses.mac == mac)
                && self
                    .config(id)
                    .is_some_and(|c| self.port_of(c.owner) == Some(id))
        });
        let queues = self.ports.iter().flatten().all(|p| {
            let (frames, bytes) = self.limits.queue_of(p.kind);
            p.queue.check() && p.queue.frames() <= frames && p.queue.bytes() <= bytes
        });
        let wake_once = self.wake.iter().all(|&id| {
            self.port(id).is_some_and(|p| p.waking)
                && self.wake.iter().filter(|&&w| w == id).count() == 1
        });
        tables && indexed && queues && wake_once
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assign;
    use crate::frame::build;
    use proptest::prelude::*;
    use serac_protocol::net::{Drops, BATCH_MAX, MAX_FRAME};
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    fn owner(i: usize) -> DomainId {
        DomainId::new(u32::try_from(i).unwrap() + 1, 1)
    }

    fn config(i: usize) -> PortConfig {
        PortConfig {
            owner: owner(i),
            addresses: assign::addresses(u32::try_from(i).unwrap() + 1).unwrap(),
            notify: Handle::new(u32::try_from(i).unwrap() + 10, 1),
        }
    }

    fn mac(i: usize) -> Mac {
        config(i).addresses.mac
    }

    fn ip(i: usize) -> Ipv4 {
        config(i).addresses.ipv4
    }

    const OUTSIDE: Mac = Mac([0x52, 0x55, 0x0a, 0, 0, 2]);
    const OUTSIDE_IP: Ipv4 = Ipv4([10, 0, 0, 2]);

    fn switch(guests: usize, uplink: bool, queue_frames: usize, queue_bytes: usize) -> Switch {
        let limits = Limits {
            ports: guests,
            queue_frames,
            queue_bytes,
            uplink_frames: queue_frames,
            uplink_bytes: queue_bytes,
        };
        let mut s = Switch::new(limits, uplink).unwrap();
        for i in 0..guests {
            s.attach(&config(i)).unwrap();
        }
        s
    }

    #[test]
    fn bytes_per_port_as_measured() {
        // 100,000 ports, each with an O(1) lookup by owner, MAC and IP.
        let n = 100_000;
        let mut s = Switch::new(Limits::new(n), true).unwrap();
        for i in 0..n {
            s.attach(&config(i)).unwrap();
        }
        let per_port = s.table_bytes() / n;
        std::println!("vnic bytes per port: {per_port} measured, {BYTES_PER_PORT} modelled");
        assert!(per_port <= 2 * BYTES_PER_PORT, "{per_port}");
        assert_eq!(s.attach(&config(n)), Err(AttachError::Full));
        for i in (0..n).step_by(997) {
            let id = s.port_of(owner(i)).unwrap();
            assert_eq!(s.port_with_ipv4(ip(i)), Some(id));
            assert_eq!(lookup(&s.by_mac, mac(i)), Some(id));
        }
        assert!(s.check());
    }

    fn drops_at_source(d: &Drops) -> u64 {
        d.bad_size + d.malformed + d.unsupported + d.spoofed_mac + d.spoofed_ip + d.no_destination
    }

    #[test]
    fn take_upto_bounds_the_frames_taken() {
        let mut s = switch(2, true, 8, 4096);
        let a = s.port_of(owner(0)).unwrap();
        for i in 0..5u8 {
            let f = build::ipv4(OUTSIDE, mac(0), ip(0), OUTSIDE_IP, &[i; 20]);
            s.offer(a, &f).unwrap();
        }
        let t = s.take_upto(PortId::UPLINK, BATCH_MAX, 2).unwrap();
        assert_eq!((t.count, t.more), (2, true));
        assert_eq!(t.frames.iter().count(), 2);
        let t = s.take_upto(PortId::UPLINK, BATCH_MAX, 0).unwrap();
        assert_eq!((t.count, t.more), (0, true));
        let t = s.take_upto(PortId::UPLINK, BATCH_MAX, 9).unwrap();
        assert_eq!((t.count, t.more), (3, false));
    }

    #[test]
    fn the_uplink_queues_what_a_guest_queue_would_refuse() {
        // Two guests' bursts out: 24 full frames (36 KiB) fit the
        // uplink's queue though a guest's (16 KiB) holds ten.
        let mut s = Switch::new(Limits::new(2), true).unwrap();
        for i in 0..2 {
            s.attach(&config(i)).unwrap();
        }
        for i in 0..24 {
            let g = i % 2;
            let port = s.port_of(owner(g)).unwrap();
            let f = build::ipv4(OUTSIDE, mac(g), ip(g), OUTSIDE_IP, &[0; 1400]);
            assert_eq!(
                s.offer(port, &f),
                Some(Verdict::Forwarded {
                    queued: 1,
                    refused: 0
                }),
                "frame {i}"
            );
        }
        assert_eq!(s.stats(PortId::UPLINK).unwrap().queued_frames, 24);
        // To a guest, the same burst overflows its queue.
        let mut s = Switch::new(Limits::new(2), true).unwrap();
        for i in 0..2 {
            s.attach(&config(i)).unwrap();
        }
        let a = s.port_of(owner(0)).unwrap();
        let refused = (0..24)
            .filter(|_| {
                let f = build::ipv4(mac(1), mac(0), ip(0), ip(1), &[0; 1400]);
                !matches!(s.offer(a, &f), Some(Verdict::Forwarded { queued: 1, .. }))
            })
            .count();
        assert!(refused > 0);
    }

    #[test]
    fn removed_ports_release_their_notification_once() {
        let mut s = switch(2, false, 8, 4096);
        assert_eq!(s.pop_released(), None);
        // The same configuration again keeps the handle.
        s.attach(&config(0)).unwrap();
        assert_eq!(s.pop_released(), None);
        // A new generation with a new handle releases the old one.
        let mut next = config(0);
        next.owner = next.owner.next_gen();
        next.notify = Handle::new(99, 1);
        s.attach(&next).unwrap();
        assert_eq!(s.pop_released(), Some(config(0).notify));
        // New addresses but the same handle: nothing to close.
        let mut moved = next;
        moved.addresses = assign::addresses(40).unwrap();
        s.attach(&moved).unwrap();
        assert_eq!(s.pop_released(), None);
        assert!(s.detach(moved.owner));
        assert_eq!(s.pop_released(), Some(Handle::new(99, 1)));
        assert!(!s.detach(moved.owner));
        assert_eq!(s.pop_released(), None);
    }

    #[test]
    fn forwards_unicast_floods_broadcast_and_uses_the_uplink() {
        let mut s = switch(3, true, 8, 4096);
        let (a, b) = (s.port_of(owner(0)).unwrap(), s.port_of(owner(1)).unwrap());
        let c = s.port_of(owner(2)).unwrap();
        let u = PortId::UPLINK;
        let f = build::ipv4(mac(1), mac(0), ip(0), ip(1), b"to b");
        assert_eq!(
            s.offer(a, &f),
            Some(Verdict::Forwarded {
                queued: 1,
                refused: 0
            })
        );
        let t = s.take(b, BATCH_MAX).unwrap();
        assert_eq!((t.count, t.more), (1, false));
        assert_eq!(t.frames.iter().next(), Some(&f[..]));
        assert_eq!(s.take(c, BATCH_MAX).unwrap().count, 0);
        // An ARP request for a port's address reaches that port alone (the
        // others, swapped out maybe, are not woken); one for an address no
        // port has reaches every other port, the uplink too.
        let arp = build::arp_request(mac(0), mac(0), ip(0), ip(2));
        assert_eq!(
            s.offer(a, &arp),
            Some(Verdict::Forwarded {
                queued: 1,
                refused: 0
            })
        );
        assert_eq!(s.take(c, BATCH_MAX).unwrap().count, 1);
        for p in [b, u, a] {
            assert_eq!(s.take(p, BATCH_MAX).unwrap().count, 0);
        }
        let arp = build::arp_request(mac(0), mac(0), ip(0), Ipv4([10, 0, 0, 2]));
        assert_eq!(
            s.offer(a, &arp),
            Some(Verdict::Forwarded {
                queued: 3,
                refused: 0
            })
        );
        for p in [b, c, u] {
            assert_eq!(s.take(p, BATCH_MAX).unwrap().count, 1);
        }
        assert_eq!(s.take(a, BATCH_MAX).unwrap().count, 0);
        // Unknown unicast goes out of the uplink; from the uplink it is dropped.
        let out = build::ipv4(OUTSIDE, mac(2), ip(2), OUTSIDE_IP, b"out");
        assert!(matches!(
            s.offer(c, &out),
            Some(Verdict::Forwarded { queued: 1, .. })
        ));
        assert_eq!(
            s.take(u, BATCH_MAX).unwrap().frames.iter().next(),
            Some(&out[..])
        );
        let stray = build::ipv4(Mac([2, 9, 9, 9, 9, 9]), OUTSIDE, OUTSIDE_IP, ip(0), b"");
        assert_eq!(
            s.offer(u, &stray),
            Some(Verdict::Dropped(DropCause::NoDestination))
        );
        // The uplink's sources are not checked: any address may come in.
        let inbound = build::ipv4(mac(0), OUTSIDE, Ipv4([192, 0, 2, 1]), ip(0), b"in");
        assert!(matches!(
            s.offer(u, &inbound),
            Some(Verdict::Forwarded { queued: 1, .. })
        ));
        // A frame to the sender's own MAC goes nowhere.
        let own = build::ipv4(mac(0), mac(0), ip(0), ip(0), b"");
        assert_eq!(
            s.offer(a, &own),
            Some(Verdict::Dropped(DropCause::NoDestination))
        );
        let st = s.stats(a).unwrap();
        assert_eq!((st.tx_frames, st.rx_frames, st.queued_frames), (3, 1, 1));
        assert_eq!(st.drops.no_destination, 1);
        assert_eq!(s.stats(u).unwrap().drops.no_destination, 1);
        assert!(s.check());
    }

    #[test]
    fn drops_spoofed_and_bad_frames_and_counts_them() {
        let mut s = switch(2, false, 8, 4096);
        let (a, b) = (s.port_of(owner(0)).unwrap(), s.port_of(owner(1)).unwrap());
        let cases = [
            (
                build::ipv4(mac(1), mac(1), ip(0), ip(1), b""),
                DropCause::SpoofedMac,
            ),
            (
                build::ipv4(mac(1), mac(0), ip(1), ip(1), b""),
                DropCause::SpoofedIp,
            ),
            (
                build::arp_request(mac(0), mac(1), ip(0), ip(1)),
                DropCause::SpoofedMac,
            ),
            (
                build::arp_request(mac(0), mac(0), ip(1), ip(1)),
                DropCause::SpoofedIp,
            ),
            (build::ipv6(mac(1), mac(0)), DropCause::Unsupported),
            (std::vec![0; 13], DropCause::BadSize),
            (
                build::ipv4(mac(1), mac(0), ip(0), ip(1), b"")[..30].to_vec(),
                DropCause::Malformed,
            ),
            // No uplink: an unknown unicast has nowhere to go.
            (
                build::ipv4(OUTSIDE, mac(0), ip(0), OUTSIDE_IP, b""),
                DropCause::NoDestination,
            ),
        ];
        for (f, cause) in &cases {
            assert_eq!(s.offer(a, f), Some(Verdict::Dropped(*cause)), "{cause:?}");
        }
        assert_eq!(s.take(b, BATCH_MAX).unwrap().count, 0);
        let d = s.stats(a).unwrap().drops;
        assert_eq!(
            d,
            Drops {
                bad_size: 1,
                malformed: 1,
                unsupported: 1,
                spoofed_mac: 2,
                spoofed_ip: 2,
                no_destination: 1,
                ..Drops::default()
            }
        );
        assert_eq!(s.stats(a).unwrap().tx_frames, 0);
        assert!(s.pop_wakeup().is_none());
        assert_eq!(s.offer(PortId(99), &cases[0].0), None);
    }

    #[test]
    fn a_guest_that_never_reads_loses_only_its_own_frames() {
        let mut s = switch(3, false, 4, 4096);
        let (a, b) = (s.port_of(owner(0)).unwrap(), s.port_of(owner(1)).unwrap());
        let c = s.port_of(owner(2)).unwrap();
        for i in 0..100u8 {
            let to_b = build::ipv4(mac(1), mac(0), ip(0), ip(1), &[i; 32]);
            assert!(matches!(s.offer(a, &to_b), Some(Verdict::Forwarded { .. })));
            let to_c = build::ipv4(mac(2), mac(0), ip(0), ip(2), &[i; 32]);
            assert_eq!(
                s.offer(a, &to_c),
                Some(Verdict::Forwarded {
                    queued: 1,
                    refused: 0
                })
            );
            assert_eq!(s.take(c, BATCH_MAX).unwrap().count, 1);
        }
        let sb = s.stats(b).unwrap();
        assert_eq!(
            (sb.rx_frames, sb.queued_frames, sb.drops.queue_full),
            (4, 4, 96)
        );
        assert_eq!(s.stats(c).unwrap().rx_frames, 100);
        assert_eq!(s.stats(a).unwrap().tx_frames, 200);
        // B's oldest four are what it finds when it reads at last.
        let t = s.take(b, BATCH_MAX).unwrap();
        assert_eq!(t.count, 4);
        assert!(t
            .frames
            .iter()
            .enumerate()
            .all(|(i, f)| f[f.len() - 1] == i as u8));
    }

    #[test]
    fn takes_as_many_as_fit_in_order() {
        let mut s = switch(2, false, 64, 16 * 1024);
        let (a, b) = (s.port_of(owner(0)).unwrap(), s.port_of(owner(1)).unwrap());
        let frames: Vec<_> = (0..40u8)
            .map(|i| build::ipv4(mac(1), mac(0), ip(0), ip(1), &[i; 40]))
            .collect();
        for f in &frames {
            s.offer(a, f).unwrap();
        }
        let rec = 2 + frames[0].len();
        let t = s.take(b, 10 * rec + rec - 1).unwrap();
        assert_eq!((t.count, t.more), (10, true));
        assert!(t.frames.iter().eq(frames[..10].iter().map(Vec::as_slice)));
        let t = s.take(b, BATCH_MAX).unwrap();
        assert_eq!((t.count, t.more), (30, false));
        assert!(t.frames.iter().eq(frames[10..].iter().map(Vec::as_slice)));
        // A full-size frame does not fit a small max and stays queued.
        let big = build::ipv4(mac(1), mac(0), ip(0), ip(1), &[7; MAX_FRAME - 34]);
        assert_eq!(big.len(), MAX_FRAME);
        s.offer(a, &big).unwrap();
        assert_eq!(s.take(b, 100).unwrap().count, 0);
        assert_eq!(s.take(b, BATCH_MAX).unwrap().count, 1);
    }

    #[test]
    fn wakes_an_owner_once_per_burst() {
        let mut s = switch(2, true, 8, 4096);
        let (a, b) = (s.port_of(owner(0)).unwrap(), s.port_of(owner(1)).unwrap());
        let f = build::ipv4(mac(1), mac(0), ip(0), ip(1), b"x");
        for _ in 0..3 {
            s.offer(a, &f).unwrap();
        }
        let woken = Wakeup::Guest {
            owner: owner(1),
            notify: config(1).notify,
        };
        assert_eq!(s.pop_wakeup(), Some(woken));
        assert_eq!(s.pop_wakeup(), None);
        s.offer(a, &f).unwrap();
        assert_eq!(s.pop_wakeup(), None, "the queue was not empty");
        s.take(b, BATCH_MAX).unwrap();
        s.offer(a, &f).unwrap();
        assert_eq!(s.pop_wakeup(), Some(woken));
        let out = build::ipv4(OUTSIDE, mac(0), ip(0), OUTSIDE_IP, b"");
        s.offer(a, &out).unwrap();
        assert_eq!(s.pop_wakeup(), Some(Wakeup::Uplink));
        // A detached port is no longer woken.
        s.take(b, BATCH_MAX).unwrap();
        s.offer(a, &f).unwrap();
        assert!(s.detach(owner(1)));
        assert_eq!(s.pop_wakeup(), None);
        assert!(s.check());
    }

    #[test]
    fn attach_rules() {
        let mut s = switch(2, false, 8, 4096);
        let a = s.port_of(owner(0)).unwrap();
        // The same configuration again: the same port, queue kept.
        s.offer(
            s.port_of(owner(1)).unwrap(),
            &build::ipv4(mac(0), mac(1), ip(1), ip(0), b""),
        )
        .unwrap();
        assert_eq!(s.attach(&config(0)), Ok(a));
        assert_eq!(s.stats(a).unwrap().queued_frames, 1);
        // Full: both slots are used.
        assert_eq!(s.attach(&config(2)), Err(AttachError::Full));
        // Another owner may not take a used MAC or IP.
        let mut clash = config(2);
        clash.addresses.mac = mac(0);
        assert!(s.detach(owner(1)));
        assert_eq!(s.attach(&clash), Err(AttachError::InUse));
        let mut clash = config(2);
        clash.addresses.ipv4 = ip(0);
        assert_eq!(s.attach(&clash), Err(AttachError::InUse));
        for bad in [
            PortConfig {
                owner: DomainId::NONE,
                ..config(2)
            },
            {
                let mut c = config(2);
                c.addresses.mac = Mac::BROADCAST;
                c
            },
            {
                let mut c = config(2);
                c.addresses.ipv4 = Ipv4([127, 0, 0, 1]);
                c
            },
            {
                let mut c = config(2);
                c.addresses.prefix_len = 33;
                c
            },
        ] {
            assert_eq!(s.attach(&bad), Err(AttachError::Invalid));
        }
        // A restarted domain (next generation) gets a fresh port.
        let mut next = config(0);
        next.owner = owner(0).next_gen();
        let a2 = s.attach(&next).unwrap();
        assert_eq!(s.port_of(owner(0)), None);
        assert_eq!(s.port_of(next.owner), Some(a2));
        assert_eq!(s.stats(a2).unwrap(), PortStats::default());
        // Detaching a stale generation changes nothing.
        assert!(!s.detach(owner(0)));
        assert!(s.check());
        // Storage is freed by trim once the queue is empty.
        let b = s.attach(&config(1)).unwrap();
        s.offer(b, &build::ipv4(mac(0), mac(1), ip(1), ip(0), b""))
            .unwrap();
        s.take(a2, BATCH_MAX).unwrap();
        assert_eq!(s.trim(), 4096);
        assert_eq!(s.trim(), 0);
        assert_eq!(s.ports().count(), 2);
    }

    /// What a test frame is, so the model knows what should happen to it.
    #[derive(Debug, Clone, Copy)]
    enum Shape {
        Ipv4,
        Arp,
        SpoofMac,
        SpoofIp,
        SpoofArpMac,
        SpoofArpIp,
        Ipv6,
        Short,
        Truncated,
    }

    #[derive(Debug, Clone, Copy)]
    enum Dst {
        Port(usize),
        Broadcast,
        Multicast,
        Unknown,
    }

    #[derive(Debug, Clone)]
    enum Op {
        Offer {
            from: usize,
            shape: Shape,
            dst: Dst,
            body: usize,
        },
        Take {
            port: usize,
            max: usize,
        },
        Trim,
    }

    fn op(ports: usize) -> impl Strategy<Value = Op> {
        let shape = prop_oneof![
            6 => Just(Shape::Ipv4),
            2 => Just(Shape::Arp),
            1 => Just(Shape::SpoofMac),
            1 => Just(Shape::SpoofIp),
            1 => Just(Shape::SpoofArpMac),
            1 => Just(Shape::SpoofArpIp),
            1 => Just(Shape::Ipv6),
            1 => Just(Shape::Short),
            1 => Just(Shape::Truncated),
        ];
        let dst = prop_oneof![
            4 => (0..ports).prop_map(Dst::Port),
            1 => Just(Dst::Broadcast),
            1 => Just(Dst::Multicast),
            1 => Just(Dst::Unknown),
        ];
        prop_oneof![
            6 => (0..ports, shape, dst, prop_oneof![0usize..64, 0usize..1400]).prop_map(
                |(from, shape, dst, body)| Op::Offer { from, shape, dst, body }
            ),
            3 => (0..ports, prop_oneof![Just(BATCH_MAX), 0usize..3000]).prop_map(|(port, max)| Op::Take { port, max }),
            1 => Just(Op::Trim),
        ]
    }

    /// A scenario: guests 0..guests are ports, index `guests` the uplink.
    #[derive(Debug)]
    struct World {
        guests: usize,
        uplink: bool,
        s: Switch,
        ids: Vec<PortId>,
    }

    impl World {
        fn new(guests: usize, uplink: bool, frames: usize, bytes: usize) -> World {
            let s = switch(guests, uplink, frames, bytes);
            let mut ids: Vec<_> = (0..guests).map(|i| s.port_of(owner(i)).unwrap()).collect();
            ids.push(PortId::UPLINK);
            World {
                guests,
                uplink,
                s,
                ids,
            }
        }

        fn exists(&self, p: usize) -> bool {
            p < self.guests || (p == self.guests && self.uplink)
        }

        /// The frame, tagged with `tag` at its end, and where it should go.
        fn frame(
            &self,
            from: usize,
            shape: Shape,
            dst: Dst,
            body: usize,
            tag: u32,
        ) -> (Vec<u8>, Result<BTreeSet<usize>, DropCause>) {
            let uplink = from == self.guests;
            let (smac, sip) = if uplink {
                (OUTSIDE, OUTSIDE_IP)
            } else {
                (mac(from), ip(from))
            };
            let dmac = match dst {
                Dst::Port(j) if j < self.guests => mac(j),
                Dst::Port(_) | Dst::Unknown => Mac([2, 0xee, 0, 0, 0, 1]),
                Dst::Broadcast => Mac::BROADCAST,
                Dst::Multicast => Mac([1, 0, 0x5e, 0, 0, 0xfb]),
            };
            let mut body = std::vec![0xa5; body.min(MAX_FRAME - 42 - 4)];
            body.extend_from_slice(&tag.to_be_bytes());
            let other = Mac([2, 0xdd, 0, 0, 0, 1]);
            let other_ip = Ipv4([10, 0, 200, 1]);
            let mut f = match shape {
                Shape::Ipv4 | Shape::Short | Shape::Truncated => {
                    build::ipv4(dmac, smac, sip, ip(0), &body)
                }
                Shape::Arp => build::arp_request(smac, smac, sip, ip(0)),
                Shape::SpoofMac => build::ipv4(dmac, other, sip, ip(0), &body),
                Shape::SpoofIp => build::ipv4(dmac, smac, other_ip, ip(0), &body),
                Shape::SpoofArpMac => build::arp_request(smac, other, sip, ip(0)),
                Shape::SpoofArpIp => build::arp_request(smac, smac, other_ip, ip(0)),
                Shape::Ipv6 => build::ipv6(dmac, smac),
            };
            // ARP goes where the test says; the tag rides as padding.
            f[..6].copy_from_slice(&dmac.0);
            if !matches!(
                shape,
                Shape::Ipv4 | Shape::Short | Shape::Truncated | Shape::SpoofMac | Shape::SpoofIp
            ) {
                f.extend_from_slice(&tag.to_be_bytes());
            }
            match shape {
                Shape::Short => f.truncate(13),
                Shape::Truncated => f.truncate(14 + 19),
                _ => {}
            }
            let verdict = match shape {
                Shape::Short => Err(DropCause::BadSize),
                Shape::Truncated => Err(DropCause::Malformed),
                Shape::Ipv6 => Err(DropCause::Unsupported),
                Shape::SpoofMac | Shape::SpoofArpMac if !uplink => Err(DropCause::SpoofedMac),
                Shape::SpoofIp | Shape::SpoofArpIp if !uplink => Err(DropCause::SpoofedIp),
                // ARP requests ask for port 0's address: only it gets them.
                Shape::Arp | Shape::SpoofArpMac | Shape::SpoofArpIp if self.exists(0) => {
                    if from == 0 {
                        Err(DropCause::NoDestination)
                    } else {
                        Ok([0].into())
                    }
                }
                _ => self.destinations(from, dmac),
            };
            (f, verdict)
        }

        fn destinations(&self, from: usize, dmac: Mac) -> Result<BTreeSet<usize>, DropCause> {
            let all: BTreeSet<usize> = (0..=self.guests).filter(|&p| self.exists(p)).collect();
            let set: BTreeSet<usize> = if dmac.is_multicast() {
                all.into_iter().filter(|&p| p != from).collect()
            } else if let Some(j) = (0..self.guests).find(|&j| mac(j) == dmac) {
                [j].into_iter().filter(|&p| p != from).collect()
            } else if from != self.guests && self.uplink {
                [self.guests].into()
            } else {
                BTreeSet::new()
            };
            if set.is_empty() {
                Err(DropCause::NoDestination)
            } else {
                Ok(set)
            }
        }
    }

    /// What a run delivered to each port, in order.
    type Deliveries = Vec<Vec<Vec<u8>>>;

    /// Runs `ops`, checking every invariant after each one; returns each
    /// port's deliveries and final stats. `skip_takes` never reads that port.
    fn run(
        guests: usize,
        uplink: bool,
        frames: usize,
        bytes: usize,
        ops: &[Op],
        skip_takes: Option<usize>,
    ) -> Result<(Deliveries, Vec<Option<PortStats>>), TestCaseError> {
        let mut w = World::new(guests, uplink, frames, bytes);
        let n = guests + 1;
        let mut offered = std::vec![0u64; n];
        let mut tx_bytes = std::vec![0u64; n];
        let mut copies = 0u64;
        let mut taken = std::vec![0u64; n];
        let mut delivered: Deliveries = std::vec![Vec::new(); n];
        let mut expected: BTreeMap<u32, (Vec<u8>, BTreeSet<usize>)> = BTreeMap::new();
        let mut last_tag = std::vec![None::<u32>; n];
        let mut tag = 0u32;
        for op in ops {
            match *op {
                Op::Offer {
                    from,
                    shape,
                    dst,
                    body,
                } if w.exists(from % n) => {
                    let from = from % n;
                    tag += 1;
                    let (f, want) = w.frame(from, shape, dst, body, tag);
                    let empty_before: Vec<bool> = (0..n)
                        .map(|p| w.s.stats(w.ids[p]).is_some_and(|s| s.queued_frames == 0))
                        .collect();
                    let rx_before: Vec<u64> = (0..n)
                        .map(|p| w.s.stats(w.ids[p]).map_or(0, |s| s.rx_frames))
                        .collect();
                    let got = w.s.offer(w.ids[from], &f).unwrap();
                    offered[from] += 1;
                    match (&want, got) {
                        (Ok(set), Verdict::Forwarded { queued, refused }) => {
                            prop_assert_eq!(usize::try_from(queued + refused).unwrap(), set.len());
                            copies += u64::try_from(set.len()).unwrap();
                            tx_bytes[from] += u64::try_from(f.len()).unwrap();
                            expected.insert(tag, (f.clone(), set.clone()));
                        }
                        (Err(cause), Verdict::Dropped(c)) => prop_assert_eq!(*cause, c),
                        (want, got) => {
                            prop_assert!(false, "{:?}: wanted {:?}, got {:?}", shape, want, got)
                        }
                    }
                    // One wakeup per port whose queue went from empty to not.
                    let mut woken = BTreeSet::new();
                    while let Some(wk) = w.s.pop_wakeup() {
                        let p = match wk {
                            Wakeup::Uplink => guests,
                            Wakeup::Guest { owner: o, notify } => {
                                let p = usize::try_from(o.index).unwrap() - 1;
                                prop_assert_eq!(notify, config(p).notify);
                                p
                            }
                        };
                        prop_assert!(woken.insert(p), "woken twice");
                    }
                    for p in 0..n {
                        let rx = w.s.stats(w.ids[p]).map_or(0, |s| s.rx_frames);
                        prop_assert_eq!(woken.contains(&p), empty_before[p] && rx > rx_before[p]);
                    }
                }
                Op::Take { port, max } if w.exists(port % n) && skip_takes != Some(port % n) => {
                    let port = port % n;
                    let t = w.s.take(w.ids[port], max).unwrap();
                    prop_assert!(t.frames.as_bytes().len() <= max.min(BATCH_MAX));
                    for f in t.frames.iter() {
                        let got = u32::from_be_bytes(f[f.len() - 4..].try_into().unwrap());
                        let Some((sent, set)) = expected.get(&got) else {
                            return Err(TestCaseError::fail(std::format!(
                                "port {port} got tag {got}, which was never forwarded"
                            )));
                        };
                        prop_assert_eq!(&sent[..], f);
                        prop_assert!(
                            set.contains(&port),
                            "tag {} went to {} not {:?}",
                            got,
                            port,
                            set
                        );
                        // FIFO per port, and no duplicates.
                        prop_assert!(last_tag[port].is_none_or(|l| l < got));
                        last_tag[port] = Some(got);
                        taken[port] += 1;
                        delivered[port].push(f.to_vec());
                    }
                }
                Op::Trim => {
                    w.s.trim();
                }
                _ => {}
            }
            prop_assert!(w.s.check());
            let mut rx_and_lost = 0;
            for p in (0..n).filter(|&p| w.exists(p)) {
                let st = w.s.stats(w.ids[p]).unwrap();
                prop_assert!(
                    st.queued_frames as usize <= frames && st.queued_bytes as usize <= bytes
                );
                prop_assert_eq!(st.tx_frames + drops_at_source(&st.drops), offered[p]);
                prop_assert_eq!(st.tx_bytes, tx_bytes[p]);
                prop_assert_eq!(st.rx_frames, taken[p] + u64::from(st.queued_frames));
                rx_and_lost += st.rx_frames + st.drops.queue_full + st.drops.no_memory;
            }
            prop_assert_eq!(rx_and_lost, copies);
        }
        let stats = (0..n).map(|p| w.s.stats(w.ids[p])).collect();
        Ok((delivered, stats))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        // Delivery only to the destination (or, for a group address, to
        // every other port), spoofed frames never, queues within bounds,
        // counters that add up, one wakeup per empty → non-empty queue.
        #[test]
        fn invariants_hold(
            guests in 1usize..5,
            uplink in any::<bool>(),
            frames in 1usize..8,
            bytes in 100usize..4000,
            ops in proptest::collection::vec(op(5), 0..120),
        ) {
            run(guests, uplink, frames, bytes, &ops, None)?;
        }

        // Whether a port reads never changes what the others receive.
        #[test]
        fn a_port_that_never_reads_changes_nothing_for_the_others(
            guests in 2usize..5,
            uplink in any::<bool>(),
            frames in 1usize..6,
            lazy in 0usize..5,
            ops in proptest::collection::vec(op(5), 0..120),
        ) {
            let lazy = lazy % guests;
            let (all, s_all) = run(guests, uplink, frames, 2000, &ops, None)?;
            let (some, s_some) = run(guests, uplink, frames, 2000, &ops, Some(lazy))?;
            for p in (0..=guests).filter(|&p| p != lazy) {
                prop_assert_eq!(&all[p], &some[p]);
                prop_assert_eq!(s_all[p], s_some[p]);
            }
            prop_assert!(some[lazy].is_empty());
        }

        #[test]
        fn garbage_from_any_port_never_panics(
            v in proptest::collection::vec(any::<u8>(), 0..1600),
            from in 0usize..3,
        ) {
            let mut w = World::new(2, true, 4, 2000);
            let _ = w.s.offer(w.ids[from], &v);
            prop_assert!(w.s.check());
            // Garbage from a guest port never passes its source check.
            if from < 2 {
                if let Some(Verdict::Forwarded { .. }) = w.s.offer(w.ids[from], &v) {
                    let p = crate::frame::parse(&v).unwrap();
                    prop_assert_eq!(crate::frame::check_source(&p, mac(from), ip(from)), Ok(()));
                }
            }
        }
    }
}
