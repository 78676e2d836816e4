//! What the vnic's raw-frame test guests share (`src/bin/`; the QEMU tests
//! that run them are `net_*` in `tests/src/spec.rs`).
//!
//! Each guest's manifest entry gives it `endpoint=vnic` first (handle 1)
//! and `net=yes`, so the supervisor configured its port before it started;
//! it reads its addresses back with `Info`. Frames are built and parsed by
//! hand here: Ethernet, ARP and IPv4/UDP, no IP stack.
//!
//! The exchange (`netping` with `netpong`): the pinger broadcasts one
//! HELLO datagram, the ponger answers it unicast (each learns the other's
//! MAC and IPv4 address from the frame), then the pinger sends [`ROUNDS`]
//! numbered PINGs in lockstep, each answered by its PONG. With nothing
//! lost, each side's port forwards and receives exactly `ROUNDS + 1`
//! frames of the exchange, which the vnic's counters then show.
#![no_std]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::{ClientError, Transport, LABEL_NET};
use ilwaco::protocol::codec::{decode_borrowed, encode};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::net::{
    record_header, Addresses, FramesRef, Ipv4, Mac, Reply, ReplyRef, Request, RequestRef, Sent,
    ServiceError, BATCH_MAX, MAX_RECORD,
};
use ilwaco::protocol::{Handle, SysError};
use ilwaco::{println, sys, time};

/// The vnic's endpoint (the first `endpoint=`).
pub const VNIC: Handle = Handle::new(1, 1);
/// Where the pinger has a `notify=` after it (`net_restart`: the
/// operator), the notification it raises half-way through.
pub const HALFWAY: Handle = Handle::new(2, 1);
/// The exchange's UDP port.
pub const PORT: u16 = 7000;
/// PINGs per exchange.
pub const ROUNDS: u32 = 100;
/// Bytes of a frame buffer.
pub const FRAME: usize = 1514;

/// Kinds of exchange datagram (first payload byte).
pub const HELLO: u8 = 1;
/// An answer to HELLO.
pub const WELCOME: u8 = 2;
/// A numbered ping.
pub const PING: u8 = 3;
/// Its answer.
pub const PONG: u8 = 4;

/// A guest's port on the vnic.
///
/// Calls go through the borrowed message forms (`RequestRef`,
/// `ReplyRef`): a reply's frames are read where they landed. The typed
/// `NetClient` decodes into owned batches of 4 KiB, several times over on
/// the stack.
#[derive(Debug)]
pub struct Port {
    /// Its addresses, as the supervisor assigned them.
    pub me: Addresses,
    /// Calls that failed because the vnic restarted (and were retried).
    pub restarts: u32,
    req: [u8; MAX_PAYLOAD],
    back: [u8; MAX_PAYLOAD],
}

/// Whether `e` means the vnic restarted or has not re-configured the
/// port yet: worth retrying after a pause.
fn transient(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Sys(SysError::ServerRestarted | SysError::PeerDead)
            | ClientError::Service(ServiceError::NoSuchPort)
    )
}

impl Port {
    /// Reads the port's addresses (waiting out a vnic restart).
    pub fn open(name: &str) -> Port {
        let mut port = Port {
            me: Addresses::default(),
            restarts: 0,
            req: [0; MAX_PAYLOAD],
            back: [0; MAX_PAYLOAD],
        };
        loop {
            let r = port.call(&Request::Info).and_then(|r| match r {
                Reply::Info(a) => Ok(a),
                Reply::Err(e) => Err(ClientError::Service(e)),
                _ => Err(ClientError::UnexpectedReply),
            });
            match r {
                Ok(me) => {
                    let (m, ip) = (me.mac.0, me.ipv4.0);
                    println!(
                        "{name}: port {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {}.{}.{}.{}/{} gateway {}.{}.{}.{}",
                        m[0], m[1], m[2], m[3], m[4], m[5], ip[0], ip[1], ip[2], ip[3],
                        me.prefix_len, me.gateway.0[0], me.gateway.0[1], me.gateway.0[2], me.gateway.0[3]
                    );
                    port.me = me;
                    return port;
                }
                Err(e) if transient(&e) => {
                    port.restarts += 1;
                    let _ = time::sleep_ns(5_000_000);
                }
                Err(e) => {
                    println!("{name}: Info failed: {e:?}");
                    let _ = time::sleep_ns(50_000_000);
                }
            }
        }
    }

    /// One call; the reply borrows the port's reply buffer.
    fn call(&mut self, req: &RequestRef<'_>) -> Result<ReplyRef<'_>, ClientError> {
        let bytes = encode(req, &mut self.req).map_err(ClientError::Codec)?;
        let n = Endpoint(VNIC)
            .call(LABEL_NET, bytes, &mut self.back)
            .map_err(ClientError::Sys)?;
        decode_borrowed(self.back.get(..n).unwrap_or(&[])).map_err(ClientError::Codec)
    }

    /// Sends a batch of records (see `protocol::net`), waiting out a vnic
    /// restart (a frame may then be sent twice or lost, as on a wire).
    pub fn send_records(&mut self, records: &[u8]) -> Result<Sent, ClientError> {
        let frames =
            FramesRef::new(records).map_err(|_| ClientError::Service(ServiceError::TooLarge))?;
        loop {
            let r = match self.call(&Request::Send { frames }) {
                Ok(Reply::Sent(s)) => Ok(s),
                Ok(Reply::Err(e)) => Err(ClientError::Service(e)),
                Ok(_) => Err(ClientError::UnexpectedReply),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if transient(&e) => {
                    self.restarts += 1;
                    let _ = time::sleep_ns(5_000_000);
                }
                r => return r,
            }
        }
    }

    /// Sends one frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<Sent, ClientError> {
        let mut rec = [0u8; MAX_RECORD];
        let header =
            record_header(frame.len()).ok_or(ClientError::Service(ServiceError::TooLarge))?;
        rec[..2].copy_from_slice(&header);
        rec[2..2 + frame.len()].copy_from_slice(frame);
        self.send_records(&rec[..2 + frame.len()])
    }

    /// Takes every queued frame, handing each to `f`; returns how many.
    pub fn recv_all(&mut self, mut f: impl FnMut(&[u8])) -> Result<usize, ClientError> {
        let mut n = 0;
        let max = u16::try_from(BATCH_MAX).unwrap_or(u16::MAX);
        loop {
            match self.call(&Request::Recv { max }) {
                Ok(Reply::Received { more, frames }) => {
                    for fr in frames.iter() {
                        f(fr);
                        n += 1;
                    }
                    if !more {
                        return Ok(n);
                    }
                }
                Ok(Reply::Err(e)) if transient(&ClientError::Service(e)) => {
                    self.restarts += 1;
                    return Ok(n);
                }
                Ok(Reply::Err(e)) => return Err(ClientError::Service(e)),
                Ok(_) => return Err(ClientError::UnexpectedReply),
                Err(e) if transient(&e) => {
                    self.restarts += 1;
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps until the vnic's notification or `ms` milliseconds.
    pub fn wait(&self, ms: u64) {
        let ticks = time::tsc_hz().unwrap_or(1_000_000_000) / 1000 * ms;
        let _ = sys::idle(time::tsc().saturating_add(ticks));
    }
}

/// A UDP datagram as read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// Ethernet source.
    pub src_mac: Mac,
    /// IPv4 source.
    pub src_ip: Ipv4,
    /// IPv4 destination.
    pub dst_ip: Ipv4,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// The payload.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn mac_at(b: &[u8], at: usize) -> Option<Mac> {
    Some(Mac(b.get(at..at + 6)?.try_into().ok()?))
}

fn ip_at(b: &[u8], at: usize) -> Option<Ipv4> {
    Some(Ipv4(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses an Ethernet/IPv4/UDP frame; `None` for anything else.
pub fn parse_udp(f: &[u8]) -> Option<Udp<'_>> {
    if be16(f, 12)? != 0x0800 || *f.get(14)? != 0x45 || *f.get(23)? != 17 {
        return None;
    }
    let total = usize::from(be16(f, 16)?);
    let ulen = usize::from(be16(f, 38)?);
    if total < 28 || ulen < 8 || 20 + ulen > total || 14 + total > f.len() {
        return None;
    }
    Some(Udp {
        dst_mac: mac_at(f, 0)?,
        src_mac: mac_at(f, 6)?,
        src_ip: ip_at(f, 26)?,
        dst_ip: ip_at(f, 30)?,
        sport: be16(f, 34)?,
        dport: be16(f, 36)?,
        payload: f.get(42..34 + ulen)?,
    })
}

/// The IPv4 header checksum of `h`.
pub fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes an Ethernet/IPv4/UDP frame into `out`; returns its length
/// (`None` if it does not fit).
pub fn udp(out: &mut [u8], d: &Udp<'_>) -> Option<usize> {
    let len = 42 + d.payload.len();
    let f = out.get_mut(..len)?;
    f[0..6].copy_from_slice(&d.dst_mac.0);
    f[6..12].copy_from_slice(&d.src_mac.0);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(20 + 8 + d.payload.len()).ok()?;
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[12..16].copy_from_slice(&d.src_ip.0);
    ip[16..20].copy_from_slice(&d.dst_ip.0);
    let sum = ip_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f[34..36].copy_from_slice(&d.sport.to_be_bytes());
    f[36..38].copy_from_slice(&d.dport.to_be_bytes());
    f[38..40].copy_from_slice(&(total - 20).to_be_bytes());
    f[40..42].copy_from_slice(&[0, 0]);
    f[42..].copy_from_slice(d.payload);
    Some(len)
}

/// An ARP request or reply as read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender MAC.
    pub sha: Mac,
    /// Sender IPv4.
    pub spa: Ipv4,
    /// Target IPv4.
    pub tpa: Ipv4,
}

/// Parses an Ethernet/ARP (IPv4) frame.
pub fn parse_arp(f: &[u8]) -> Option<Arp> {
    if be16(f, 12)? != 0x0806 || be16(f, 14)? != 1 || be16(f, 16)? != 0x0800 {
        return None;
    }
    Some(Arp {
        op: be16(f, 20)?,
        sha: mac_at(f, 22)?,
        spa: ip_at(f, 28)?,
        tpa: ip_at(f, 38)?,
    })
}

/// Writes an ARP frame (`op` 1 request, 2 reply) from `me` into `out`.
pub fn arp(out: &mut [u8; FRAME], op: u16, me: &Addresses, dst: Mac, tha: Mac, tpa: Ipv4) -> usize {
    out[0..6].copy_from_slice(&dst.0);
    out[6..12].copy_from_slice(&me.mac.0);
    out[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    out[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 0]);
    out[20..22].copy_from_slice(&op.to_be_bytes());
    out[22..28].copy_from_slice(&me.mac.0);
    out[28..32].copy_from_slice(&me.ipv4.0);
    out[32..38].copy_from_slice(&tha.0);
    out[38..42].copy_from_slice(&tpa.0);
    // Padded to the Ethernet minimum of 60 bytes.
    out[42..60].fill(0);
    60
}

/// The broadcast address of `a`'s network.
pub fn broadcast_ip(a: &Addresses) -> Ipv4 {
    let ip = u32::from_be_bytes(a.ipv4.0);
    let host = u32::MAX.checked_shr(u32::from(a.prefix_len)).unwrap_or(0);
    Ipv4((ip | host).to_be_bytes())
}

/// An exchange datagram: kind and round, little-endian, then filler.
pub fn message(kind: u8, round: u32) -> [u8; 16] {
    let mut m = [0xa5u8; 16];
    m[0] = kind;
    m[1..5].copy_from_slice(&round.to_le_bytes());
    m
}

/// Kind and round of an exchange datagram.
pub fn read_message(p: &[u8]) -> Option<(u8, u32)> {
    if p.len() != 16 {
        return None;
    }
    Some((p[0], u32::from_le_bytes(p[1..5].try_into().ok()?)))
}

/// Milliseconds of TSC.
pub fn ms_ticks(ms: u64) -> u64 {
    time::tsc_hz().unwrap_or(1_000_000_000) / 1000 * ms
}

/// An exchange datagram from `me` to `(mac, ip)`.
fn exchange_frame(out: &mut [u8; FRAME], me: &Addresses, to: (Mac, Ipv4), msg: &[u8; 16]) -> usize {
    udp(
        out,
        &Udp {
            dst_mac: to.0,
            src_mac: me.mac,
            src_ip: me.ipv4,
            dst_ip: to.1,
            sport: PORT,
            dport: PORT,
            payload: msg,
        },
    )
    .unwrap_or(0)
}

/// The pinger: HELLO by broadcast, then `rounds` PINGs in lockstep, each
/// answered by its PONG. With `retry_ms`, a datagram not answered in that
/// time is sent again (for tests that lose frames: a flood, a vnic
/// restart); without, nothing is sent twice, so the counts are exact.
pub fn ping(name: &str, rounds: u32, retry_ms: Option<u64>, quiet_ms: Option<u64>) -> i32 {
    let mut port = Port::open(name);
    let mut rounds = rounds;
    let cap = rounds.saturating_mul(10);
    // With `quiet_ms`, the exchange does not end while other frames still
    // arrive: it goes on until none came for that long, then a fifth more,
    // so its last rounds come after an attack has ended, however long the
    // attack took on this host.
    let mut settled = quiet_ms.is_none();
    let mut last_foreign = time::tsc();
    let me = port.me;
    // Let the neighbours attack first (their lines come before ours).
    let _ = time::sleep_ns(300_000_000);
    let mut out = [0u8; FRAME];
    let mut resent = 0u32;
    let mut foreign = 0u32;
    let everyone = (Mac::BROADCAST, broadcast_ip(&me));
    let mut peer: Option<(Mac, Ipv4)> = None;
    let mut round = 0u32;
    let progress = (rounds / 5).max(1);
    // Round u32::MAX is the HELLO's turn.
    let mut sent_at = 0u64;
    let mut need_send = true;
    // TSC at the first PING, for the mean round trip.
    let mut first_ping = 0u64;
    while round < rounds {
        if need_send {
            let n = match peer {
                None => exchange_frame(&mut out, &me, everyone, &message3(HELLO, 0, rounds)),
                Some(p) => {
                    if round == 0 && first_ping == 0 {
                        first_ping = time::tsc();
                    }
                    if let (false, Some(q)) = (settled, quiet_ms) {
                        if round + 1 >= rounds {
                            if time::tsc().saturating_sub(last_foreign) > ms_ticks(q) {
                                settled = true;
                                rounds = rounds.max(round + progress + 1);
                            } else if rounds < cap {
                                rounds = round + 2;
                            }
                        }
                    }
                    exchange_frame(&mut out, &me, p, &message3(PING, round, rounds))
                }
            };
            match port.send(&out[..n]) {
                Ok(s) if s.forwarded == 1 => {}
                r => println!("{name}: send refused: {r:?}"),
            }
            sent_at = time::tsc();
            need_send = false;
            // The answer cannot be there yet: sleep until the vnic's
            // notification (Denali's receive: take the queue when woken).
            port.wait(retry_ms.unwrap_or(20).min(20));
        }
        let r = port.recv_all(|f| {
            match parse_udp(f).and_then(|u| Some((u, read_message(u.payload)?))) {
                Some((u, (WELCOME, _))) if peer.is_none() && u.dport == PORT => {
                    peer = Some((u.src_mac, u.src_ip));
                    need_send = true;
                }
                Some((u, (PONG, r))) if Some((u.src_mac, u.src_ip)) == peer && r == round => {
                    round += 1;
                    need_send = round < rounds;
                    if round == rounds / 2 {
                        // Tells an operator, if the manifest named one; a
                        // missing handle fails harmlessly.
                        let _ = sys::notify(HALFWAY, 1);
                    }
                }
                _ => {
                    foreign += 1;
                    last_foreign = time::tsc();
                }
            }
        });
        if let Err(e) = r {
            println!("{name}: Recv failed: {e:?}");
            return 1;
        }
        if need_send || round >= rounds {
            if round > 0 && round.is_multiple_of(progress) && need_send {
                println!("{name}: round {round}");
            }
            continue;
        }
        if let Some(ms) = retry_ms {
            if time::tsc().saturating_sub(sent_at) > ms_ticks(ms) {
                resent += 1;
                need_send = true;
                continue;
            }
        }
        port.wait(retry_ms.unwrap_or(20).min(20));
    }
    let ip = peer.map_or([0; 4], |p| p.1 .0);
    let mean = time::tsc().saturating_sub(first_ping) / u64::from(rounds.max(1));
    println!("{name}: mean round trip {mean} TSC ticks over {rounds} rounds");
    println!(
        "{name}: {rounds} rounds with {}.{}.{}.{} done ({resent} resent, {} vnic restart(s) waited out, {foreign} other frame(s))",
        ip[0], ip[1], ip[2], ip[3], port.restarts
    );
    0
}

/// An exchange datagram with the exchange's length.
fn message3(kind: u8, round: u32, rounds: u32) -> [u8; 16] {
    let mut m = message(kind, round);
    m[5..9].copy_from_slice(&rounds.to_le_bytes());
    m
}

/// An answer the ponger owes: to whom, kind, round, rounds in all.
type Answer = (Mac, Ipv4, u8, u32, u32);

/// The ponger: answers HELLO with WELCOME and each PING with its PONG;
/// ends half a second after answering the last round.
pub fn pong(name: &str) -> i32 {
    let mut port = Port::open(name);
    let me = port.me;
    let mut out = [0u8; FRAME];
    let mut answered = 0u32;
    let mut foreign = 0u32;
    let mut done_at: Option<u64> = None;
    loop {
        let mut replies: [Option<Answer>; 8] = [None; 8];
        let mut k = 0;
        let r = port.recv_all(|f| {
            match parse_udp(f).and_then(|u| Some((u, read_message(u.payload)?))) {
                Some((u, (kind @ (HELLO | PING), round))) if u.dport == PORT => {
                    let total = u32::from_le_bytes(u.payload[5..9].try_into().unwrap_or([0; 4]));
                    let answer = if kind == HELLO { WELCOME } else { PONG };
                    if let Some(slot) = replies.get_mut(k) {
                        *slot = Some((u.src_mac, u.src_ip, answer, round, total));
                        k += 1;
                    }
                }
                _ => foreign += 1,
            }
        });
        if let Err(e) = r {
            println!("{name}: Recv failed: {e:?}");
            return 1;
        }
        for (mac, ip, kind, round, total) in replies.iter().flatten().copied() {
            let n = exchange_frame(&mut out, &me, (mac, ip), &message3(kind, round, total));
            if let Err(e) = port.send(&out[..n]) {
                println!("{name}: send failed: {e:?}");
            }
            answered += 1;
            if kind == PONG && round + 1 == total {
                done_at = Some(time::tsc());
            }
        }
        if let Some(t) = done_at {
            if time::tsc().saturating_sub(t) > ms_ticks(500) {
                println!(
                    "{name}: answered {answered} datagram(s) ({} vnic restart(s) waited out, {foreign} other frame(s))",
                    port.restarts
                );
                return 0;
            }
        }
        port.wait(20);
    }
}
