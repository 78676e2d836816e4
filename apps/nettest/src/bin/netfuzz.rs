//! The attacker of `net_fuzz`: malformed IPv4 and TCP aimed at an httpd,
//! from this port's own MAC and IPv4 address so the vnic forwards them
//! (the switch checks Ethernet and the IPv4 header's shape, not what a
//! stack makes of the rest): bad checksums, truncated and over-long TCP
//! headers, bad data offsets, broken options (zero and short lengths,
//! unterminated lists), every flag combination, segments for no
//! connection, fragments, IPv4 options, unknown protocols, and a few
//! hundred pseudo-random TCP headers with valid checksums. The target is
//! the port just before this one (the manifest puts httpd there: the
//! address plan is by slot). Afterwards the host fetches a page from
//! httpd; the vnic's counters for this port show what it forwarded.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::protocol::net::{Ipv4, Mac};
use serac_nettest::{ip_checksum, Port, FRAME};

ilwaco::entry!(main);

/// Pseudo-random TCP headers sent after the crafted ones.
const RANDOM: u32 = 300;

/// IPv4 header fields a frame may bend.
#[derive(Clone, Copy)]
struct Ip {
    proto: u8,
    /// Flags and fragment offset word.
    frag: u16,
    /// Extra option bytes (a multiple of 4).
    options: &'static [u8],
    /// Flip the header checksum.
    bad_sum: bool,
}

const IP: Ip = Ip {
    proto: 6,
    frag: 0x4000,
    options: &[],
    bad_sum: false,
};

/// The one's-complement sum of `b`, folded.
fn sum(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Ethernet + IPv4 around `payload` (its TCP checksum, if it is TCP with
/// at least 18 bytes and `tcp_sum`, filled in); the frame's length.
fn frame(
    out: &mut [u8; FRAME],
    to: (Mac, Ipv4),
    me: (Mac, Ipv4),
    ip: Ip,
    payload: &[u8],
    tcp_sum: bool,
) -> usize {
    let ihl = 20 + ip.options.len();
    let len = 14 + ihl + payload.len();
    out[0..6].copy_from_slice(&to.0 .0);
    out[6..12].copy_from_slice(&me.0 .0);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let h = &mut out[14..14 + ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[1] = 0;
    h[2..4].copy_from_slice(&((ihl + payload.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&[0x12, 0x34]);
    h[6..8].copy_from_slice(&ip.frag.to_be_bytes());
    h[8] = 64;
    h[9] = ip.proto;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&me.1 .0);
    h[16..20].copy_from_slice(&to.1 .0);
    h[20..].copy_from_slice(ip.options);
    let mut s = ip_checksum(h);
    if ip.bad_sum {
        s ^= 0x5555;
    }
    h[10..12].copy_from_slice(&s.to_be_bytes());
    let p = &mut out[14 + ihl..len];
    p.copy_from_slice(payload);
    if tcp_sum && ip.proto == 6 && p.len() >= 18 {
        p[16..18].copy_from_slice(&[0, 0]);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&me.1 .0);
        pseudo[4..8].copy_from_slice(&to.1 .0);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&(p.len() as u16).to_be_bytes());
        let c = !(sum(sum(0, &pseudo), p) as u16);
        p[16..18].copy_from_slice(&c.to_be_bytes());
    }
    len
}

/// A TCP header to port 80 with `flags`, data offset `off` (in words, as
/// written, whatever the bytes that follow), then `rest`.
fn tcp(out: &mut [u8; 1400], sport: u16, flags: u8, off: u8, rest: &[u8]) -> usize {
    out[0..2].copy_from_slice(&sport.to_be_bytes());
    out[2..4].copy_from_slice(&80u16.to_be_bytes());
    out[4..8].copy_from_slice(&0x1000_0000u32.wrapping_add(u32::from(sport)).to_be_bytes());
    out[8..12].copy_from_slice(&0x2000_0000u32.to_be_bytes());
    out[12] = off << 4;
    out[13] = flags;
    out[14..16].copy_from_slice(&4096u16.to_be_bytes());
    out[16..20].copy_from_slice(&[0, 0, 0, 0]);
    out[20..20 + rest.len()].copy_from_slice(rest);
    20 + rest.len()
}

const FIN: u8 = 1;
const SYN: u8 = 2;
const RST: u8 = 4;
const PSH: u8 = 8;
const ACK: u8 = 16;
const URG: u8 = 32;

fn main() -> i32 {
    let mut port = Port::open("netfuzz");
    let me = (port.me.mac, port.me.ipv4);
    // The port before this one: slot - 1 in the address plan.
    let mut tm = me.0 .0;
    tm[5] = tm[5].wrapping_sub(1);
    let mut ti = me.1 .0;
    ti[3] = ti[3].wrapping_sub(1);
    let to = (Mac(tm), Ipv4(ti));
    println!("netfuzz: target {}.{}.{}.{}:80", ti[0], ti[1], ti[2], ti[3]);
    let (mut sent, mut forwarded, mut refused) = (0u32, 0u32, 0u32);
    let mut out = [0u8; FRAME];
    let mut seg = [0u8; 1400];
    let mut send = |port: &mut Port, f: &[u8]| {
        sent += 1;
        match port.send(f) {
            Ok(s) => {
                forwarded += u32::from(s.forwarded);
                refused += u32::from(s.dropped);
            }
            Err(e) => println!("netfuzz: send failed: {e:?}"),
        }
    };
    let mut sport = 40_000u16;
    let mut next = || {
        sport = sport.wrapping_add(1);
        sport
    };
    // TCP header shapes: (flags, data offset, bytes after the 20).
    let shapes: &[(u8, u8, &[u8])] = &[
        (ACK, 15, &[]),                            // offset past the segment
        (ACK, 2, &[]),                             // offset under 5
        (ACK, 0, &[0; 40]),                        // offset 0
        (SYN, 6, &[2, 0, 0, 0]),                   // MSS option of length 0
        (SYN, 6, &[2, 1, 0, 0]),                   // option length 1
        (SYN, 6, &[3, 255, 14, 0]),                // window-scale option overruns
        (ACK, 6, &[5, 3, 0, 0]),                   // SACK block of 3 bytes
        (ACK, 7, &[5, 10, 0, 0, 0, 1, 0, 0]),      // SACK past the options
        (ACK, 6, &[8, 2, 0, 0]),                   // timestamp of length 2
        (ACK, 6, &[1, 1, 1, 2]),                   // unterminated list
        (ACK, 15, &[254; 40]),                     // 40 bytes of unknown kinds
        (0x3f, 5, &[]),                            // every flag
        (0, 5, &[]),                               // no flag
        (FIN | RST | PSH | URG, 5, b"xx"),         // nonsense with data
        (ACK | PSH, 5, b"GET / HTTP/1.1\r\n\r\n"), // data, no connection
        (RST, 5, &[]),
        (FIN | ACK, 5, &[]),
        (URG | ACK, 5, b"u"),
    ];
    for &(flags, off, rest) in shapes {
        let n = tcp(&mut seg, next(), flags, off, rest);
        let f = frame(&mut out, to, me, IP, &seg[..n], true);
        send(&mut port, &out[..f]);
    }
    // A valid SYN with a bad TCP checksum, then with a bad IP checksum.
    let n = tcp(&mut seg, next(), SYN, 5, &[]);
    let f = frame(&mut out, to, me, IP, &seg[..n], false);
    send(&mut port, &out[..f]);
    let n = tcp(&mut seg, next(), SYN, 5, &[]);
    let f = frame(
        &mut out,
        to,
        me,
        Ip {
            bad_sum: true,
            ..IP
        },
        &seg[..n],
        true,
    );
    send(&mut port, &out[..f]);
    // Truncated TCP headers: 0, 1, 10 and 19 bytes.
    for len in [0usize, 1, 10, 19] {
        let n = tcp(&mut seg, next(), ACK, 5, &[]);
        let f = frame(&mut out, to, me, IP, &seg[..n.min(len)], true);
        send(&mut port, &out[..f]);
    }
    // Fragments: more-fragments set, then a later offset alone.
    for frag in [0x2000u16, 0x0010, 0x1fff] {
        let n = tcp(&mut seg, next(), SYN, 5, &[]);
        let f = frame(&mut out, to, me, Ip { frag, ..IP }, &seg[..n], true);
        send(&mut port, &out[..f]);
    }
    // IPv4 options: garbage, and an unterminated record route.
    for options in [&[0xff, 0xff, 0xff, 0xff][..], &[7, 39, 4, 0][..]] {
        let n = tcp(&mut seg, next(), ACK, 5, &[]);
        let f = frame(&mut out, to, me, Ip { options, ..IP }, &seg[..n], true);
        send(&mut port, &out[..f]);
    }
    // Other protocols with junk: ICMP, UDP to port 80, unknown 253.
    for proto in [1u8, 17, 253] {
        let f = frame(&mut out, to, me, Ip { proto, ..IP }, &[0xa5; 23], true);
        send(&mut port, &out[..f]);
    }
    // Pseudo-random headers with valid checksums (never SYN: half-open
    // connections are a different attack, and would hold the backlog).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..RANDOM {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let len = 20 + usize::from(b[0] % 48);
        for (i, s) in seg.iter_mut().take(len).enumerate() {
            *s = b[i % 8].rotate_left(i as u32).wrapping_add(i as u8);
        }
        seg[2..4].copy_from_slice(&80u16.to_be_bytes());
        seg[13] &= !SYN;
        let f = frame(&mut out, to, me, IP, &seg[..len], true);
        send(&mut port, &out[..f]);
    }
    println!("netfuzz: {sent} frame(s) sent, {forwarded} forwarded, {refused} refused by the vnic");
    0
}
