//! smoltcp's `phy::Device` over the vnic protocol (`protocol::net`).
//!
//! - **TX** writes each frame smoltcp builds straight into one pending
//!   batch of records; [`VnicDevice::flush`] sends the batch in one `Send`
//!   (the stack flushes once per step, and early only when the next frame
//!   would not fit), encoded straight into the IPC buffer
//!   (`Transport::call_in_place`). So a step's ACKs and segments cost one
//!   call, and one copy on this side of the kernel.
//! - **RX** keeps the last `Recv` reply whole and hands smoltcp its frames
//!   one by one, borrowed from that buffer (the IPC copy is the only one).
//!   It calls `Recv` only while [`VnicDevice::rx_pending`] is set, which
//!   the owner sets when the vnic's `RX_NOTIFY` bit arrives and the device
//!   clears when a reply says no more frames are queued.
//! - **Restarts.** A call that fails with `ServerRestarted` re-attaches
//!   (reads `Info` again) and is retried once; a batch that still fails is
//!   dropped and counted, and TCP's retransmission recovers it.
//!
//! Nothing here allocates per frame, and no input panics: records are
//! checked by the protocol's decoder before they are read.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use serac_protocol::client::{Transport, LABEL_NET};
use serac_protocol::codec::{decode_borrowed, encode};
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::net::{
    Addresses, FramesRef, Reply, ReplyRef, Request, RequestRef, BATCH_MAX, MAX_FRAME, RECORD_HEADER,
};
use serac_protocol::SysError;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// What the device counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceStats {
    /// `Send` calls made.
    pub sends: u64,
    /// Frames in them.
    pub tx_frames: u64,
    /// Frames the vnic reported dropped (counted on our port there too).
    pub tx_refused: u64,
    /// Frames lost because the call failed (vnic dead, no port yet).
    pub tx_lost: u64,
    /// `Recv` calls made.
    pub recvs: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// `Recv` calls that failed.
    pub rx_errors: u64,
    /// Times the vnic was found restarted and re-attached.
    pub reattached: u64,
    /// Re-attaches that found other addresses than before.
    pub readdressed: u64,
    /// Cycles (of the counter given to [`VnicDevice::set_cycles`]) in
    /// `Send` calls, the vnic's and the kernel's work included.
    pub send_cycles: u64,
    /// The same for `Recv` calls.
    pub recv_cycles: u64,
    /// [`VnicDevice::learn`] calls not queued: [`LEARN_QUEUE`] were
    /// waiting for a poll.
    pub learn_skipped: u64,
    /// Neighbours learned again from a segment's source by the static
    /// resolver ([`VnicDevice::set_static_neighbors`]).
    pub relearned: u64,
}

fn no_cycles() -> u64 {
    0
}

/// The vnic as the device calls it: [`Transport::call`] behind a trait
/// object (a `Transport` with generic methods is not one itself).
pub trait VnicCall {
    /// See [`Transport::call`].
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError>;

    /// See [`Transport::call_in_place`]: `put` encodes the request where
    /// it goes (the IPC buffer, for an endpoint), `take` reads the reply.
    fn call_in(
        &mut self,
        label: u32,
        put: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<(), SysError>;
}

impl<T: Transport> VnicCall for T {
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        Transport::call(self, label, req, reply)
    }

    fn call_in(
        &mut self,
        label: u32,
        put: &mut dyn FnMut(&mut [u8]) -> Option<usize>,
        take: &mut dyn FnMut(&[u8]),
    ) -> Result<(), SysError> {
        Transport::call_in_place(self, label, |b| put(b), |r| take(r))
    }
}

/// The vnic link: the transport and the outgoing batch.
struct Link {
    transport: Box<dyn VnicCall>,
    addresses: Addresses,
    /// Records waiting for the next `Send`.
    tx: Box<[u8]>,
    tx_len: usize,
    tx_count: u64,
    stats: DeviceStats,
    cycles: fn() -> u64,
}

/// The last `Recv` reply and how far smoltcp has read it.
struct Rx {
    buf: Box<[u8]>,
    /// The next record's offset, and the end of the records.
    pos: usize,
    end: usize,
}

/// Most [`VnicDevice::learn`] replies queued between two polls. Past it a
/// caller that learns without letting the stack poll (a connect that
/// fails at once, in a loop) would grow the queue without end; the next
/// connect after a poll learns again.
pub const LEARN_QUEUE: usize = 64;

/// The device. Build it with [`VnicDevice::attach`].
pub struct VnicDevice {
    link: Link,
    rx: Rx,
    rx_pending: bool,
    /// ARP replies made here for [`VnicDevice::learn`], received first
    /// (at most [`LEARN_QUEUE`]).
    learned: Vec<[u8; ARP_FRAME]>,
    /// The one being received.
    current: [u8; ARP_FRAME],
    /// Maps an address to its MAC when the address plan fixes it.
    resolver: Option<Resolver>,
    /// A frame taken from `rx` and held back while the ARP reply learned
    /// from its source goes first.
    held: Option<(usize, usize)>,
}

/// A static neighbour table: the MAC of an IPv4 address, if fixed.
pub type Resolver = fn([u8; 4]) -> Option<[u8; 6]>;

/// An Ethernet frame carrying an IPv4 ARP packet.
const ARP_FRAME: usize = 42;

impl core::fmt::Debug for VnicDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VnicDevice")
            .field("addresses", &self.link.addresses)
            .field("stats", &self.link.stats)
            .finish_non_exhaustive()
    }
}

/// Why the device could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// `Info` failed: no port for us, or no vnic.
    Info(serac_protocol::client::ClientError),
}

fn info(t: &mut dyn VnicCall) -> Result<Addresses, serac_protocol::client::ClientError> {
    use serac_protocol::client::ClientError;
    let req: RequestRef<'_> = Request::Info;
    let mut msg = [0u8; 16];
    let out = encode(&req, &mut msg).map_err(ClientError::Codec)?;
    let mut reply = [0u8; 64];
    let n = t
        .call(LABEL_NET, out, &mut reply)
        .map_err(ClientError::Sys)?;
    match decode_borrowed::<ReplyRef<'_>>(reply.get(..n).unwrap_or(&[]))
        .map_err(ClientError::Codec)?
    {
        Reply::Info(a) => Ok(a),
        Reply::Err(e) => Err(ClientError::Service(e)),
        _ => Err(ClientError::UnexpectedReply),
    }
}

/// Re-reads `Info` after the vnic restarted, counting it.
fn reattach(t: &mut dyn VnicCall, addresses: &mut Addresses, stats: &mut DeviceStats) {
    stats.reattached += 1;
    if let Ok(a) = info(t) {
        if a != *addresses {
            stats.readdressed += 1;
            *addresses = a;
        }
    }
}

impl VnicDevice {
    /// Reads the port's addresses (`Info`, retried once after a restart)
    /// and builds the device around `transport`.
    pub fn attach(mut transport: Box<dyn VnicCall>) -> Result<VnicDevice, AttachError> {
        let addresses = match info(&mut *transport) {
            Err(serac_protocol::client::ClientError::Sys(SysError::ServerRestarted)) => {
                info(&mut *transport)
            }
            r => r,
        }
        .map_err(AttachError::Info)?;
        Ok(VnicDevice {
            link: Link {
                transport,
                addresses,
                tx: vec![0u8; BATCH_MAX].into_boxed_slice(),
                tx_len: 0,
                tx_count: 0,
                stats: DeviceStats::default(),
                cycles: no_cycles,
            },
            rx: Rx {
                buf: vec![0u8; MAX_PAYLOAD].into_boxed_slice(),
                pos: 0,
                end: 0,
            },
            // Frames may have been queued before we attached.
            rx_pending: true,
            learned: Vec::new(),
            current: [0; ARP_FRAME],
            resolver: None,
            held: None,
        })
    }

    /// The port's addresses.
    pub fn addresses(&self) -> Addresses {
        self.link.addresses
    }

    /// The counters.
    pub fn stats(&self) -> DeviceStats {
        self.link.stats
    }

    /// Counts cycles with `f` (the TSC, say) for the stats' `*_cycles`.
    pub fn set_cycles(&mut self, f: fn() -> u64) {
        self.link.cycles = f;
    }

    /// The vnic said frames are queued (its `RX_NOTIFY` bit).
    pub fn notified(&mut self) {
        self.rx_pending = true;
    }

    /// Whether a `Recv` is due or frames are unread: received, held, or
    /// learned (so that a learn is read before the egress it is for).
    pub fn rx_pending(&self) -> bool {
        self.rx_pending
            || !self.learned.is_empty()
            || self.held.is_some()
            || self.rx.pos < self.rx.end
    }

    /// Learns the source of each TCP segment that opens, closes or
    /// carries data again, from `resolver`, just before smoltcp reads it.
    ///
    /// Why: smoltcp's cache holds 64 neighbours and evicts the oldest;
    /// it fills only from ARP and asks for one missing neighbour a
    /// second. A client of thousands of servers (loadgen) learns each at
    /// connect, but a server that answers late (swapped out) finds itself
    /// evicted, and its SYN-ACK or FIN waits for the ACK behind the
    /// others' ARP until its SYN timeout resets the connection. The
    /// resolver is the address plan, not the frame, so a forged source
    /// teaches nothing it did not already say.
    pub fn set_static_neighbors(&mut self, resolver: Resolver) {
        self.resolver = Some(resolver);
    }

    /// Sends the pending batch, if any, in one `Send`.
    pub fn flush(&mut self) {
        self.link.flush();
    }

    /// Takes the next received frame's bounds, calling `Recv` when the
    /// buffer is read out and more is pending.
    /// Queues an ARP reply from `(mac, ip)` to this port, received (and
    /// never sent) at the next poll: a static neighbour, as `arp -s`
    /// makes. smoltcp asks for one missing neighbour a second per
    /// interface, so a client of thousands of servers whose addresses it
    /// knows (from the address plan) would wait a second for each.
    pub fn learn(&mut self, mac: [u8; 6], ip: [u8; 4]) {
        if self.learned.len() >= LEARN_QUEUE {
            self.link.stats.learn_skipped += 1;
            return;
        }
        let me = self.link.addresses;
        let mut f = [0u8; ARP_FRAME];
        f[0..6].copy_from_slice(&me.mac.0);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        // Ethernet, IPv4, 6- and 4-byte addresses, a reply.
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
        f[22..28].copy_from_slice(&mac);
        f[28..32].copy_from_slice(&ip);
        f[32..38].copy_from_slice(&me.mac.0);
        f[38..42].copy_from_slice(&me.ipv4.0);
        self.learned.push(f);
    }

    fn next_frame(&mut self) -> Option<(usize, usize)> {
        loop {
            if let Some(f) = self.rx.next() {
                return Some(f);
            }
            if !self.rx_pending {
                return None;
            }
            self.rx_pending = self.link.recv(&mut self.rx);
            if self.rx.pos >= self.rx.end {
                // Nothing came; `rx_pending` says whether to ask again.
                if !self.rx_pending {
                    return None;
                }
            }
        }
    }
}

impl Rx {
    fn next(&mut self) -> Option<(usize, usize)> {
        let header = self.buf.get(self.pos..self.pos + RECORD_HEADER)?;
        let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
        let start = self.pos + RECORD_HEADER;
        let end = start + len;
        if end > self.end {
            // Decoding checked the records; a short one just ends the batch.
            self.pos = self.end;
            return None;
        }
        self.pos = end;
        Some((start, end))
    }
}

impl Link {
    /// Re-reads `Info` after the vnic restarted.
    fn reattach(&mut self) {
        reattach(&mut *self.transport, &mut self.addresses, &mut self.stats);
    }

    /// One `Recv` into `rx`; returns whether more frames are queued.
    fn recv(&mut self, rx: &mut Rx) -> bool {
        rx.pos = 0;
        rx.end = 0;
        let req: RequestRef<'_> = Request::Recv {
            max: u16::try_from(BATCH_MAX).unwrap_or(u16::MAX),
        };
        let mut msg = [0u8; 8];
        let Ok(out) = encode(&req, &mut msg) else {
            return false;
        };
        let mut attempt = 0;
        let n = loop {
            self.stats.recvs += 1;
            let t0 = (self.cycles)();
            let r = self.transport.call(LABEL_NET, out, &mut rx.buf);
            self.stats.recv_cycles += (self.cycles)().wrapping_sub(t0);
            match r {
                Ok(n) => break n,
                Err(SysError::ServerRestarted) if attempt == 0 => {
                    attempt += 1;
                    self.reattach();
                }
                Err(_) => {
                    self.stats.rx_errors += 1;
                    return false;
                }
            }
        };
        let payload = rx.buf.get(..n).unwrap_or(&[]);
        match decode_borrowed::<ReplyRef<'_>>(payload) {
            Ok(Reply::Received { more, frames }) => {
                // Postcard refuses trailing bytes, so the records end the reply.
                rx.end = n;
                rx.pos = n - frames.as_bytes().len();
                let count = frames.iter().count() as u64;
                self.stats.rx_frames += count;
                more
            }
            _ => {
                self.stats.rx_errors += 1;
                false
            }
        }
    }

    fn flush(&mut self) {
        if self.tx_len == 0 {
            return;
        }
        let count = core::mem::take(&mut self.tx_count);
        let len = core::mem::take(&mut self.tx_len);
        self.stats.sends += 1;
        self.stats.tx_frames += count;
        let Some(frames) = self.tx.get(..len).and_then(|r| FramesRef::new(r).ok()) else {
            self.stats.tx_lost += count;
            return;
        };
        let req: RequestRef<'_> = Request::Send { frames };
        let mut attempt = 0;
        loop {
            // Encoded straight into the IPC buffer: the batch's one copy
            // on this side of the kernel.
            let mut sent = None;
            let t0 = (self.cycles)();
            let r = self.transport.call_in(
                LABEL_NET,
                &mut |out| encode(&req, out).ok().map(|b| b.len()),
                &mut |reply| {
                    if let Ok(Reply::Sent(s)) = decode_borrowed::<ReplyRef<'_>>(reply) {
                        sent = Some(s);
                    }
                },
            );
            self.stats.send_cycles += (self.cycles)().wrapping_sub(t0);
            match r {
                Ok(()) => {
                    match sent {
                        Some(s) => self.stats.tx_refused += u64::from(s.dropped),
                        None => self.stats.tx_lost += count,
                    }
                    return;
                }
                Err(SysError::ServerRestarted) if attempt == 0 => {
                    attempt += 1;
                    // Field by field: `req` still borrows the batch.
                    reattach(&mut *self.transport, &mut self.addresses, &mut self.stats);
                }
                Err(_) => {
                    self.stats.tx_lost += count;
                    return;
                }
            }
        }
    }

    /// Room for a `len`-byte frame at the end of the batch (sending the
    /// batch first if it is full); `None` for a frame over [`MAX_FRAME`].
    fn reserve(&mut self, len: usize) -> Option<core::ops::Range<usize>> {
        let header = serac_protocol::net::record_header(len)?;
        if self.tx_len + RECORD_HEADER + len > BATCH_MAX {
            self.flush();
        }
        let at = self.tx_len;
        self.tx
            .get_mut(at..at + RECORD_HEADER)?
            .copy_from_slice(&header);
        self.tx_len = at + RECORD_HEADER + len;
        self.tx_count += 1;
        Some(at + RECORD_HEADER..at + RECORD_HEADER + len)
    }
}

/// A frame borrowed from the last `Recv` reply.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room at the end of the outgoing batch.
pub struct TxToken<'a> {
    link: &'a mut Link,
}

impl core::fmt::Debug for TxToken<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TxToken")
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.link.reserve(len) {
            Some(range) => match self.link.tx.get_mut(range) {
                Some(buf) => f(buf),
                None => lost(self.link, len, f),
            },
            None => lost(self.link, len, f),
        }
    }
}

/// The source `(mac, ip)` of an IPv4 TCP segment with SYN, FIN or data,
/// when `resolver` gives that address the frame's own source MAC.
pub(crate) fn tcp_peer(f: &[u8], resolver: Resolver) -> Option<([u8; 6], [u8; 4])> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = f.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 6 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let tcp = ip.get(ihl..total.min(ip.len()))?;
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    // SYN or FIN, or a payload.
    if flags & 0x03 == 0 && tcp.len() <= offset {
        return None;
    }
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let mac = resolver(src)?;
    (f.get(6..12)? == mac).then_some((mac, src))
}

/// A frame the batch cannot hold (longer than the MTU smoltcp was told):
/// built into a scratch buffer and counted lost.
fn lost<R, F: FnOnce(&mut [u8]) -> R>(link: &mut Link, len: usize, f: F) -> R {
    link.stats.tx_lost += 1;
    let mut scratch = vec![0u8; len];
    f(&mut scratch)
}

impl phy::Device for VnicDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if self.learned.is_empty() && self.held.is_none() {
            if let Some(resolver) = self.resolver {
                let (start, end) = self.next_frame()?;
                let peer = self
                    .rx
                    .buf
                    .get(start..end)
                    .and_then(|f| tcp_peer(f, resolver));
                self.held = Some((start, end));
                if let Some((mac, ip)) = peer {
                    self.link.stats.relearned += 1;
                    self.learn(mac, ip);
                }
            }
        }
        if let Some(f) = self.learned.pop() {
            self.current = f;
            return Some((
                RxToken {
                    frame: &self.current,
                },
                TxToken {
                    link: &mut self.link,
                },
            ));
        }
        let (start, end) = match self.held.take() {
            Some(b) => b,
            None => self.next_frame()?,
        };
        let frame = self.rx.buf.get(start..end)?;
        Some((
            RxToken { frame },
            TxToken {
                link: &mut self.link,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            link: &mut self.link,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}
