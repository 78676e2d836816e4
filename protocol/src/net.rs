//! The vnic's protocol: one port on the virtual Ethernet switch per domain.
//!
//! **Ports.** A port is named by the caller's badge, which the kernel
//! writes (the caller's [`DomainId`]), so a guest can only ever send from,
//! read from or count its own port. The supervisor attaches a port with
//! [`Request::Configure`]: the owner, its [`Addresses`] and the
//! notification handle (in the vnic's handle table) that wakes the owner.
//! Only the vnic's controller may configure, detach or read another port's
//! counters: like the pager's, the first sender of such a request becomes
//! the controller (the supervisor, which configures ports before it starts
//! a guest holding the vnic endpoint); anyone else gets `NotPermitted`.
//!
//! **Receiving, Denali-style.** The vnic never calls a guest. It queues a
//! frame on the destination port and, if the queue was empty, ORs
//! [`RX_NOTIFY`] into the owner's notification word (`notify`, which never
//! blocks). The owner, when it next runs, takes what is queued with
//! [`Request::Recv`]: one reply packs as many whole frames as fit in
//! [`BATCH_MAX`] bytes (about 60 small frames, or two full-size ones), in
//! order, and says whether more are queued; the guest calls again until
//! `more` is false. So a burst costs one notification and few calls, and a
//! guest that does not read only loses its own frames (its queue is
//! bounded; the overflow is counted on its port).
//!
//! **Sending.** [`Request::Send`] carries a batch of one or more frames in
//! the same format; each is checked and forwarded on its own (a spoofed or
//! malformed frame is dropped and counted, the others go), and the reply
//! says how many went and how many were dropped.
//!
//! **The batch format** ([`Frames`], [`FramesRef`]): records of a 2-byte
//! little-endian length and that many frame bytes, back to back, at most
//! [`BATCH_MAX`] bytes in all; a record carries at most [`MAX_FRAME`]
//! bytes (an Ethernet frame without FCS). Decoding checks every record, so
//! a decoded batch is always well formed and iterating it cannot fail.
//!
//! **Copies.** [`Request`] and [`Reply`] are generic over the batch type,
//! with one encoding: clients use the owned [`Frames`], the vnic decodes a
//! [`RequestRef`] whose frames borrow the message buffer, and its queues
//! hold frames in the batch format, so a received batch is encoded straight
//! from a queue into the reply. A frame between two guests is copied once
//! into the receiver's queue and once from there into the reply; nothing
//! else in the vnic copies it.
//!
//! **Idempotence.** `Configure` (the same configuration again changes
//! nothing), `Detach` (detaching a detached port succeeds), `Info` and the
//! stats are idempotent. `Send` (a repeat sends twice) and `Recv` (a repeat
//! takes more frames) are not.

use crate::client::{rpc, ClientError, Transport, LABEL_NET};
use crate::codec::{decode_borrowed, varint_len, BoundedBytes, CodecError};
use crate::ids::{DomainId, Handle};
use crate::layout::MAX_PAYLOAD;
use core::fmt;
use postcard::experimental::max_size::MaxSize;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::client::ServiceError;

/// Largest frame: a 14-byte Ethernet header and a 1500-byte payload (no FCS).
pub const MAX_FRAME: usize = 1514;
/// Smallest frame the switch forwards: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Bytes before each frame in a batch: its length, `u16` little-endian.
pub const RECORD_HEADER: usize = 2;
/// Largest record of a batch.
pub const MAX_RECORD: usize = RECORD_HEADER + MAX_FRAME;
/// Largest batch: what is left of a payload after the reply's tag, its
/// `more` flag and the batch's length varint.
pub const BATCH_MAX: usize = MAX_PAYLOAD - 4;
/// The bit the vnic ORs into a port owner's notification word when frames
/// arrive on an empty queue. A guest's other notifiers use other bits.
pub const RX_NOTIFY: u64 = 1 << 0;

/// An Ethernet (MAC) address.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    MaxSize,
)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The broadcast address.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Whether the group bit is set (broadcast and multicast).
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether this names one station: not a group, not all zeros.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != Mac::default()
    }
}

/// An IPv4 address, most significant byte first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    MaxSize,
)]
pub struct Ipv4(pub [u8; 4]);

impl Ipv4 {
    /// Whether this may be one host's address: not 0.0.0.0, not the
    /// limited broadcast, not multicast or reserved (224/3), not loopback.
    pub const fn is_host(self) -> bool {
        let [a, ..] = self.0;
        a != 0 && a != 127 && a < 224
    }
}

/// A port's addresses, as the supervisor assigns them and the owner reads
/// them back with [`Request::Info`] (to configure its IP stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct Addresses {
    /// The port's MAC; the switch drops frames from the port with another
    /// source MAC.
    pub mac: Mac,
    /// The port's IPv4 address; the switch drops IPv4 and ARP from the port
    /// with another source address.
    pub ipv4: Ipv4,
    /// Length of the network prefix (`/12` for `10.0.0.0/12`).
    pub prefix_len: u8,
    /// Where the owner sends traffic for other networks (the uplink's side).
    pub gateway: Ipv4,
}

/// Supervisor → vnic: attach (or reconfigure) `owner`'s port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct PortConfig {
    /// The domain whose badge names the port.
    pub owner: DomainId,
    /// Its addresses.
    pub addresses: Addresses,
    /// A notification handle in the vnic's own table that names `owner`
    /// (granted by the supervisor); `Handle::NONE` for an owner that polls.
    pub notify: Handle,
}

/// Frames a port lost, by cause. The first two count frames *for* the
/// port, the others frames *from* it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct Drops {
    /// For the port: its queue was full (its owner does not read fast enough).
    pub queue_full: u64,
    /// For the port: the vnic had no memory for its queue.
    pub no_memory: u64,
    /// Shorter than [`MIN_FRAME`] or longer than [`MAX_FRAME`].
    pub bad_size: u64,
    /// An IPv4 or ARP packet whose header does not parse.
    pub malformed: u64,
    /// An EtherType other than IPv4 and ARP.
    pub unsupported: u64,
    /// A source MAC (or ARP sender MAC) other than the port's.
    pub spoofed_mac: u64,
    /// An IPv4 source (or ARP sender IP) other than the port's.
    pub spoofed_ip: u64,
    /// No port to deliver to (an unknown unicast with no uplink, a frame to
    /// the sender's own MAC, a broadcast with no other port).
    pub no_destination: u64,
}

/// One port's counters, from its owner's side: `tx` is what the owner
/// sent and the switch forwarded, `rx` what the switch queued for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct PortStats {
    /// Frames forwarded from the port.
    pub tx_frames: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames queued for the port.
    pub rx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames waiting in the queue now.
    pub queued_frames: u32,
    /// Bytes of records (with their headers) waiting in the queue now.
    pub queued_bytes: u32,
    /// Frames lost, by cause.
    pub drops: Drops,
}

/// What became of the frames of one `Send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct Sent {
    /// Passed the checks and went to a destination (a full destination
    /// queue is the receiver's loss, counted on its port).
    pub forwarded: u16,
    /// Dropped at the switch and counted on the sender's port.
    pub dropped: u16,
}

/// Why bytes are not a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// More than [`BATCH_MAX`] bytes.
    TooLong,
    /// A record's header or frame runs past the end.
    Truncated,
    /// A record longer than [`MAX_FRAME`].
    FrameTooLarge,
}

/// Why a frame was not added to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Longer than [`MAX_FRAME`].
    FrameTooLarge,
    /// The batch has no room for its record.
    Full,
}

/// Checks that `bytes` are whole records and returns how many. Never panics.
pub fn check_batch(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() > BATCH_MAX {
        return Err(BatchError::TooLong);
    }
    let mut rest = bytes;
    let mut count = 0;
    while let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER>() {
        let len = usize::from(u16::from_le_bytes(*header));
        if len > MAX_FRAME {
            return Err(BatchError::FrameTooLarge);
        }
        rest = after.get(len..).ok_or(BatchError::Truncated)?;
        count += 1;
    }
    if rest.is_empty() {
        Ok(count)
    } else {
        Err(BatchError::Truncated)
    }
}

/// The record header for a frame of `len` bytes; `None` over [`MAX_FRAME`].
pub fn record_header(len: usize) -> Option<[u8; RECORD_HEADER]> {
    if len > MAX_FRAME {
        return None;
    }
    Some(u16::try_from(len).ok()?.to_le_bytes())
}

/// The frames of a checked batch, in order.
#[derive(Debug, Clone)]
pub struct FrameIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The batch was checked; a short record just ends the iteration.
        let (header, after) = self.rest.split_first_chunk::<RECORD_HEADER>()?;
        let len = usize::from(u16::from_le_bytes(*header));
        let frame = after.get(..len)?;
        self.rest = after.get(len..)?;
        Some(frame)
    }
}

/// A checked batch borrowed from a buffer (the vnic's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FramesRef<'a> {
    bytes: &'a [u8],
}

impl<'a> FramesRef<'a> {
    /// Checks `bytes` (see [`check_batch`]).
    pub fn new(bytes: &'a [u8]) -> Result<Self, BatchError> {
        check_batch(bytes)?;
        Ok(FramesRef { bytes })
    }

    /// The frames, in order.
    pub fn iter(&self) -> FrameIter<'a> {
        FrameIter { rest: self.bytes }
    }

    /// The records, as encoded.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Serialize for FramesRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.bytes)
    }
}

struct BorrowedVisitor;

impl<'de> Visitor<'de> for BorrowedVisitor {
    type Value = FramesRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a batch of frames borrowed from the message")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        FramesRef::new(v).map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for FramesRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(BorrowedVisitor)
    }
}

impl MaxSize for FramesRef<'_> {
    const POSTCARD_MAX_SIZE: usize = varint_len(BATCH_MAX) + BATCH_MAX;
}

/// A checked batch held inline (the client's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frames {
    bytes: BoundedBytes<BATCH_MAX>,
}

impl Frames {
    /// No frames.
    pub const fn new() -> Self {
        Frames {
            bytes: BoundedBytes::new(),
        }
    }

    /// A batch of one frame.
    pub fn one(frame: &[u8]) -> Result<Self, PushError> {
        let mut f = Frames::new();
        f.push(frame)?;
        Ok(f)
    }

    /// Copies checked records.
    pub fn from_records(bytes: &[u8]) -> Result<Self, BatchError> {
        let r = FramesRef::new(bytes)?;
        let bytes = BoundedBytes::from_slice(r.as_bytes()).ok_or(BatchError::TooLong)?;
        Ok(Frames { bytes })
    }

    /// Appends `frame` as one record; the batch is unchanged on error.
    pub fn push(&mut self, frame: &[u8]) -> Result<(), PushError> {
        let header = record_header(frame.len()).ok_or(PushError::FrameTooLarge)?;
        if self.bytes.len() + RECORD_HEADER + frame.len() > BATCH_MAX {
            return Err(PushError::Full);
        }
        self.bytes
            .extend_from_slice(&header)
            .and_then(|()| self.bytes.extend_from_slice(frame))
            .ok_or(PushError::Full)
    }

    /// The batch as a borrowed view.
    pub fn view(&self) -> FramesRef<'_> {
        FramesRef {
            bytes: self.bytes.as_slice(),
        }
    }

    /// The frames, in order.
    pub fn iter(&self) -> FrameIter<'_> {
        self.view().iter()
    }

    /// Bytes of records held.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Serialize for Frames {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.bytes.as_slice())
    }
}

impl<'de> Deserialize<'de> for Frames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = BoundedBytes::<BATCH_MAX>::deserialize(d)?;
        check_batch(bytes.as_slice()).map_err(|_| {
            de::Error::invalid_value(
                de::Unexpected::Bytes(bytes.as_slice()),
                &"a batch of frames",
            )
        })?;
        Ok(Frames { bytes })
    }
}

impl MaxSize for Frames {
    const POSTCARD_MAX_SIZE: usize = BoundedBytes::<BATCH_MAX>::POSTCARD_MAX_SIZE;
}

/// Requests to the vnic. `F` is the batch type: [`Frames`] for clients,
/// [`FramesRef`] in the vnic (see the module docs); both encode alike.
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request<F = Frames> {
    /// Controller only: attach `owner`'s port, or change it. An owner with
    /// a port of another generation (a restarted domain) gets a fresh port.
    Configure(PortConfig),
    /// Controller only: drop `owner`'s port and its queue.
    Detach {
        /// The port's owner.
        owner: DomainId,
    },
    /// The caller's addresses.
    Info,
    /// Forward each frame of the batch from the caller's port.
    Send {
        /// One or more frames.
        frames: F,
    },
    /// Take queued frames, oldest first, at most `max` bytes of records
    /// (clamped to [`BATCH_MAX`]; with `max` below [`MAX_RECORD`] a large
    /// frame may not fit and nothing is returned).
    Recv {
        /// Upper bound on the batch's bytes.
        max: u16,
    },
    /// The caller's port counters.
    Stats,
    /// Controller only: `owner`'s port counters.
    StatsOf {
        /// The port's owner.
        owner: DomainId,
    },
}

impl<F> Request<F> {
    /// See the module docs.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Request::Configure(_)
            | Request::Detach { .. }
            | Request::Info
            | Request::Stats
            | Request::StatsOf { .. } => true,
            Request::Send { .. } | Request::Recv { .. } => false,
        }
    }

    /// Whether only the controller may make it.
    pub fn is_privileged(&self) -> bool {
        matches!(
            self,
            Request::Configure(_) | Request::Detach { .. } | Request::StatsOf { .. }
        )
    }
}

/// Replies from the vnic; `F` as for [`Request`].
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Reply<F = Frames> {
    /// `Configure`, `Detach`: done.
    Ok,
    /// `Info`.
    Info(Addresses),
    /// `Send`.
    Sent(Sent),
    /// `Recv`: frames, oldest first, and whether more are queued.
    Received {
        /// Whether frames are still queued (call again).
        more: bool,
        /// The frames taken.
        frames: F,
    },
    /// `Stats`, `StatsOf`.
    Stats(PortStats),
    /// The request failed.
    Err(ServiceError),
}

/// A request as the vnic decodes it: frames borrow the message.
pub type RequestRef<'a> = Request<FramesRef<'a>>;
/// A reply as the vnic encodes it: frames borrow its queue.
pub type ReplyRef<'a> = Reply<FramesRef<'a>>;

/// Decodes a request in place (the vnic's side); never panics.
pub fn decode_request(payload: &[u8]) -> Result<RequestRef<'_>, CodecError> {
    decode_borrowed(payload)
}

crate::impl_messages!(LABEL_NET, Request, Reply);

// Every message fits one payload, a full batch included, and a batch holds
// two full-size frames.
const _: () = assert!(
    Request::<Frames>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && Reply::<Frames>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && Request::<FramesRef<'static>>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && Reply::<FramesRef<'static>>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
);
const _: () = assert!(2 * MAX_RECORD <= BATCH_MAX && BATCH_MAX <= u16::MAX as usize);

/// What one `Recv` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The frames, oldest first.
    pub frames: Frames,
    /// Whether more are queued: call again before waiting.
    pub more: bool,
}

/// Typed client of the vnic.
#[derive(Debug)]
pub struct NetClient<T> {
    transport: T,
}

impl<T: Transport> NetClient<T> {
    /// A client calling through `transport`.
    pub fn new(transport: T) -> Self {
        NetClient { transport }
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// See [`Request::Configure`].
    pub fn configure(&mut self, config: PortConfig) -> Result<(), ClientError> {
        self.ok(Request::Configure(config))
    }

    /// See [`Request::Detach`].
    pub fn detach(&mut self, owner: DomainId) -> Result<(), ClientError> {
        self.ok(Request::Detach { owner })
    }

    /// See [`Request::Info`].
    pub fn info(&mut self) -> Result<Addresses, ClientError> {
        match rpc(&mut self.transport, &Request::Info)? {
            Reply::Info(a) => Ok(a),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Sends one frame; over [`MAX_FRAME`] fails locally with
    /// `Service(TooLarge)`.
    pub fn send(&mut self, frame: &[u8]) -> Result<Sent, ClientError> {
        let frames =
            Frames::one(frame).map_err(|_| ClientError::Service(ServiceError::TooLarge))?;
        self.send_batch(&frames)
    }

    /// Sends a batch; a reply that does not account for every frame is
    /// `UnexpectedReply`.
    pub fn send_batch(&mut self, frames: &Frames) -> Result<Sent, ClientError> {
        let count = frames.iter().count();
        match rpc(&mut self.transport, &Request::Send { frames: *frames })? {
            Reply::Sent(s) if usize::from(s.forwarded) + usize::from(s.dropped) == count => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Takes queued frames, at most `max` bytes of records (clamped to
    /// [`BATCH_MAX`]). A longer batch than asked is `UnexpectedReply`.
    pub fn recv(&mut self, max: usize) -> Result<Received, ClientError> {
        let max = max.min(BATCH_MAX);
        let req = Request::Recv {
            max: u16::try_from(max).unwrap_or(u16::MAX),
        };
        match rpc(&mut self.transport, &req)? {
            Reply::Received { more, frames } if frames.len_bytes() <= max => {
                Ok(Received { frames, more })
            }
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// See [`Request::Stats`].
    pub fn stats(&mut self) -> Result<PortStats, ClientError> {
        self.stats_reply(Request::Stats)
    }

    /// See [`Request::StatsOf`].
    pub fn stats_of(&mut self, owner: DomainId) -> Result<PortStats, ClientError> {
        self.stats_reply(Request::StatsOf { owner })
    }

    fn stats_reply(&mut self, req: Request) -> Result<PortStats, ClientError> {
        match rpc(&mut self.transport, &req)? {
            Reply::Stats(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    fn ok(&mut self, req: Request) -> Result<(), ClientError> {
        match rpc(&mut self.transport, &req)? {
            Reply::Ok => Ok(()),
            _ => Err(ClientError::UnexpectedReply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeServer;
    use crate::codec::{decode, encode};
    use crate::supervisor::tests::{domain, service_error};
    use crate::testutil::round_trip;
    use crate::SysError;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn frame() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..=80),
            proptest::collection::vec(any::<u8>(), 0..=MAX_FRAME),
        ]
    }

    /// A batch of random frames, as many as fit.
    fn frames() -> impl Strategy<Value = Frames> {
        proptest::collection::vec(frame(), 0..8).prop_map(|v| {
            let mut f = Frames::new();
            for fr in &v {
                let _ = f.push(fr);
            }
            f
        })
    }

    fn addresses() -> impl Strategy<Value = Addresses> {
        any::<([u8; 6], [u8; 4], u8, [u8; 4])>().prop_map(|(mac, ip, prefix_len, gw)| Addresses {
            mac: Mac(mac),
            ipv4: Ipv4(ip),
            prefix_len,
            gateway: Ipv4(gw),
        })
    }

    fn stats() -> impl Strategy<Value = PortStats> {
        (any::<[u64; 4]>(), any::<[u32; 2]>(), any::<[u64; 8]>()).prop_map(|(t, q, d)| PortStats {
            tx_frames: t[0],
            tx_bytes: t[1],
            rx_frames: t[2],
            rx_bytes: t[3],
            queued_frames: q[0],
            queued_bytes: q[1],
            drops: Drops {
                queue_full: d[0],
                no_memory: d[1],
                bad_size: d[2],
                malformed: d[3],
                unsupported: d[4],
                spoofed_mac: d[5],
                spoofed_ip: d[6],
                no_destination: d[7],
            },
        })
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (domain(), addresses(), any::<(u32, u32)>()).prop_map(|(owner, addresses, (i, g))| {
                Request::Configure(PortConfig {
                    owner,
                    addresses,
                    notify: Handle::new(i, g),
                })
            }),
            domain().prop_map(|owner| Request::Detach { owner }),
            Just(Request::Info),
            frames().prop_map(|frames| Request::Send { frames }),
            any::<u16>().prop_map(|max| Request::Recv { max }),
            Just(Request::Stats),
            domain().prop_map(|owner| Request::StatsOf { owner }),
        ]
    }

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Ok),
            addresses().prop_map(Reply::Info),
            any::<(u16, u16)>()
                .prop_map(|(forwarded, dropped)| Reply::Sent(Sent { forwarded, dropped })),
            (any::<bool>(), frames()).prop_map(|(more, frames)| Reply::Received { more, frames }),
            stats().prop_map(Reply::Stats),
            service_error().prop_map(Reply::Err),
        ]
    }

    /// Encodes records by hand, as a peer that does not use [`Frames`] would.
    fn records(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for f in frames {
            v.extend_from_slice(&u16::try_from(f.len()).unwrap().to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request()) {
            prop_assert_eq!(r.is_idempotent(), !matches!(r, Request::Send { .. } | Request::Recv { .. }));
            round_trip(&r);
        }

        #[test]
        fn replies_round_trip(r in reply()) { round_trip(&r); }

        // The vnic's in-place decoding reads exactly what clients encode.
        #[test]
        fn borrowed_decoding_agrees(r in request()) {
            let mut buf = [0u8; MAX_PAYLOAD];
            let enc = encode(&r, &mut buf).unwrap().to_vec();
            let view = decode_request(&enc).unwrap();
            let mut again = [0u8; MAX_PAYLOAD];
            prop_assert_eq!(encode(&view, &mut again).unwrap(), &enc[..]);
            if let (Request::Send { frames }, Request::Send { frames: seen }) = (r, view) {
                prop_assert!(frames.iter().eq(seen.iter()));
            }
        }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..256)) {
            let owned = decode::<Request>(&v);
            let view = decode_request(&v);
            prop_assert_eq!(owned.is_ok(), view.is_ok());
            let _ = decode::<Reply>(&v);
            let _ = decode_borrowed::<ReplyRef<'_>>(&v);
            let _ = check_batch(&v);
        }

        // Garbage after a valid tag reaches the batch checks too.
        #[test]
        fn garbage_after_each_tag_never_panics(tag in 0u8..8, v in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut b = Vec::from([tag]);
            b.extend_from_slice(&v);
            prop_assert_eq!(decode::<Request>(&b).is_ok(), decode_request(&b).is_ok());
            prop_assert_eq!(decode::<Reply>(&b).is_ok(), decode_borrowed::<ReplyRef<'_>>(&b).is_ok());
        }

        #[test]
        fn pushed_frames_come_back_in_order(v in proptest::collection::vec(frame(), 0..12)) {
            let mut f = Frames::new();
            let mut kept = Vec::new();
            for fr in &v {
                let before = f;
                match f.push(fr) {
                    Ok(()) => kept.push(fr.clone()),
                    Err(e) => {
                        prop_assert_eq!(e, PushError::Full);
                        prop_assert_eq!(f, before);
                        prop_assert!(before.len_bytes() + RECORD_HEADER + fr.len() > BATCH_MAX);
                    }
                }
            }
            prop_assert!(f.iter().eq(kept.iter().map(Vec::as_slice)));
            prop_assert_eq!(check_batch(f.view().as_bytes()), Ok(kept.len()));
            let bytes: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(f.view().as_bytes(), &records(&bytes)[..]);
        }

        // A checked batch is whole records, and iterating it sees them all.
        #[test]
        fn checked_batches_are_whole_records(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(n) = check_batch(&v) {
                let r = FramesRef::new(&v).unwrap();
                prop_assert_eq!(r.iter().count(), n);
                let used: usize = r.iter().map(|f| RECORD_HEADER + f.len()).sum();
                prop_assert_eq!(used, v.len());
            }
        }
    }

    #[test]
    fn bad_batches_do_not_decode() {
        let ok = records(&[b"abc", &[7; MAX_FRAME]]);
        assert_eq!(check_batch(&ok), Ok(2));
        assert_eq!(check_batch(&[]), Ok(0));
        assert_eq!(check_batch(&ok[..ok.len() - 1]), Err(BatchError::Truncated));
        assert_eq!(check_batch(&[5]), Err(BatchError::Truncated));
        let big = records(&[&[0; MAX_FRAME + 1]]);
        assert_eq!(check_batch(&big), Err(BatchError::FrameTooLarge));
        assert_eq!(check_batch(&[0; BATCH_MAX + 2]), Err(BatchError::TooLong));
        // The same bytes inside a Send: refused by both decoders.
        for bad in [&big[..], &ok[..ok.len() - 1]] {
            let wire = BoundedBytes::<{ BATCH_MAX + MAX_RECORD }>::from_slice(bad).unwrap();
            let mut buf = [0u8; 2 * MAX_PAYLOAD];
            let mut msg = Vec::from([3u8]); // the tag of Send
            msg.extend_from_slice(encode(&wire, &mut buf).unwrap());
            assert_eq!(decode::<Request>(&msg), Err(CodecError::Malformed));
            assert_eq!(decode_request(&msg), Err(CodecError::Malformed));
        }
        let good = Frames::from_records(&ok).unwrap();
        let mut buf = [0u8; MAX_PAYLOAD];
        let enc = encode(&Request::Send { frames: good }, &mut buf).unwrap();
        assert_eq!(enc[0], 3);
        assert_eq!(Frames::from_records(&big), Err(BatchError::FrameTooLarge));
    }

    #[test]
    fn push_limits() {
        assert_eq!(
            Frames::one(&[0; MAX_FRAME + 1]),
            Err(PushError::FrameTooLarge)
        );
        assert_eq!(record_header(MAX_FRAME), Some([0xea, 0x05]));
        assert_eq!(record_header(MAX_FRAME + 1), None);
        let mut f = Frames::new();
        f.push(&[1; MAX_FRAME]).unwrap();
        f.push(&[2; MAX_FRAME]).unwrap();
        let room = BATCH_MAX - 2 * MAX_RECORD - RECORD_HEADER;
        assert_eq!(f.push(&[3; 1035]), Err(PushError::Full));
        assert_eq!(room, 1034);
        f.push(&[3; 1034]).unwrap();
        assert_eq!(f.len_bytes(), BATCH_MAX);
        assert_eq!(f.push(&[]), Err(PushError::Full));
        assert_eq!(f.iter().count(), 3);
    }

    #[test]
    fn worst_case_fits() {
        let mut full = Frames::new();
        while full.push(&[0xa5; 60]).is_ok() {}
        assert!(full.len_bytes() > BATCH_MAX - 62);
        round_trip(&Request::Send { frames: full });
        round_trip(&Reply::Received {
            more: true,
            frames: full,
        });
        let all = DomainId::new(u32::MAX, u32::MAX);
        round_trip(&Request::<Frames>::Configure(PortConfig {
            owner: all,
            addresses: Addresses {
                mac: Mac([0xff; 6]),
                ipv4: Ipv4([0xff; 4]),
                prefix_len: u8::MAX,
                gateway: Ipv4([0xff; 4]),
            },
            notify: Handle::new(u32::MAX, u32::MAX),
        }));
        round_trip(&Reply::<Frames>::Stats(PortStats {
            tx_frames: u64::MAX,
            queued_frames: u32::MAX,
            drops: Drops {
                no_destination: u64::MAX,
                ..Drops::default()
            },
            ..PortStats::default()
        }));
        // Postcard writes a variant as its index: Reply::Received is 3.
        let mut buf = [0u8; MAX_PAYLOAD];
        let r: ReplyRef<'_> = Reply::Received {
            more: false,
            frames: FramesRef::new(&[]).unwrap(),
        };
        assert_eq!(encode(&r, &mut buf).unwrap(), &[3, 0, 0]);
    }

    #[test]
    fn authority_and_idempotence() {
        let owner = DomainId::new(3, 1);
        let privileged: [Request; 3] = [
            Request::Configure(PortConfig::default()),
            Request::Detach { owner },
            Request::StatsOf { owner },
        ];
        assert!(privileged
            .iter()
            .all(|r| r.is_privileged() && r.is_idempotent()));
        let own: [Request; 4] = [
            Request::Info,
            Request::Send {
                frames: Frames::new(),
            },
            Request::Recv { max: 0 },
            Request::Stats,
        ];
        assert!(own.iter().all(|r| !r.is_privileged()));
    }

    #[test]
    fn addresses_classify() {
        assert!(Mac([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!Mac([0; 6]).is_unicast());
        assert!(!Mac([1, 0, 0x5e, 0, 0, 1]).is_unicast());
        assert!(Mac::BROADCAST.is_multicast());
        assert!(Ipv4([10, 0, 0, 16]).is_host());
        for ip in [[0, 0, 0, 0], [127, 0, 0, 1], [224, 0, 0, 1], [255; 4]] {
            assert!(!Ipv4(ip).is_host(), "{ip:?}");
        }
    }

    /// A fake vnic that echoes sends back as receives and counts nothing.
    fn serve(queued: &mut Vec<Vec<u8>>, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        let r = match decode_request(req) {
            Ok(Request::Send { frames }) => {
                let mut sent = Sent::default();
                for f in frames.iter() {
                    if f.len() < MIN_FRAME {
                        sent.dropped += 1;
                    } else {
                        sent.forwarded += 1;
                        queued.push(f.to_vec());
                    }
                }
                Reply::Sent(sent)
            }
            Ok(Request::Recv { max }) => {
                let mut out = Frames::new();
                let mut taken = 0;
                for f in queued.iter() {
                    if out.len_bytes() + RECORD_HEADER + f.len() > usize::from(max)
                        || out.push(f).is_err()
                    {
                        break;
                    }
                    taken += 1;
                }
                queued.drain(..taken);
                Reply::Received {
                    more: !queued.is_empty(),
                    frames: out,
                }
            }
            Ok(Request::Info) => Reply::Info(Addresses::default()),
            Ok(Request::Stats) => Reply::Stats(PortStats {
                queued_frames: u32::try_from(queued.len()).unwrap(),
                ..PortStats::default()
            }),
            Ok(_) => Reply::Err(ServiceError::NotPermitted),
            Err(_) => Reply::Err(ServiceError::BadRequest),
        };
        Ok(encode(&r, reply)
            .map_err(|_| SysError::MessageTooLarge)?
            .len())
    }

    #[test]
    fn stub_sends_and_takes_batches() {
        let mut queued = Vec::new();
        let mut srv = FakeServer {
            calls: 0,
            serve: |label: u32, req: &[u8], reply: &mut [u8]| {
                assert_eq!(label, LABEL_NET);
                serve(&mut queued, req, reply)
            },
        };
        let mut c = NetClient::new(&mut srv);
        let mut batch = Frames::new();
        for i in 0..50u8 {
            batch.push(&[i; 60]).unwrap();
        }
        batch.push(&[0; 3]).unwrap();
        assert_eq!(
            c.send_batch(&batch).unwrap(),
            Sent {
                forwarded: 50,
                dropped: 1
            }
        );
        assert_eq!(c.send(&[9; MAX_FRAME]).unwrap().forwarded, 1);
        assert_eq!(
            c.send(&[0; MAX_FRAME + 1]),
            Err(ClientError::Service(ServiceError::TooLarge))
        );
        // Fifty small frames come back in one call, the big one in the next.
        let first = c.recv(BATCH_MAX).unwrap();
        assert!(first.more);
        assert_eq!(first.frames.iter().count(), 50);
        assert!(first
            .frames
            .iter()
            .enumerate()
            .all(|(i, f)| f == [i as u8; 60]));
        let second = c.recv(usize::MAX).unwrap();
        assert!(!second.more);
        assert_eq!(second.frames.iter().next(), Some(&[9; MAX_FRAME][..]));
        assert_eq!(c.stats().unwrap().queued_frames, 0);
        assert_eq!(
            c.configure(PortConfig::default()),
            Err(ClientError::Service(ServiceError::NotPermitted))
        );
        // Send, send, recv, recv, stats, configure: the refused big frame
        // never reached the server.
        assert_eq!(srv.calls, 6);
    }

    #[test]
    fn stub_rejects_replies_that_break_the_contract() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, req: &[u8], reply: &mut [u8]| {
                let r = match decode::<Request>(req) {
                    // Accounts for one frame more than was sent.
                    Ok(Request::Send { .. }) => Reply::Sent(Sent {
                        forwarded: 2,
                        dropped: 0,
                    }),
                    // Longer than asked.
                    _ => Reply::Received {
                        more: false,
                        frames: Frames::one(&[0; 100]).unwrap(),
                    },
                };
                Ok(encode(&r, reply).unwrap().len())
            },
        };
        let mut c = NetClient::new(&mut srv);
        assert_eq!(c.send(&[0; 60]), Err(ClientError::UnexpectedReply));
        assert_eq!(c.recv(50), Err(ClientError::UnexpectedReply));
        assert_eq!(c.recv(102).unwrap().frames.iter().count(), 1);
        assert_eq!(c.info(), Err(ClientError::UnexpectedReply));
    }
}
