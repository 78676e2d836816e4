//! The attacker of `net_spoof`: frames with a forged source MAC or IPv4
//! address (Ethernet, IPv4 and ARP), then malformed ones (short, bad IPv4
//! and ARP headers, unsupported EtherTypes), each alone in a `Send`; and
//! requests the vnic cannot decode (garbage, an over-long record). Every
//! one must be refused: the vnic's counters for this port, printed when
//! the port is detached after it ends, are the test's evidence.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::println;
use ilwaco::protocol::client::{Transport, LABEL_NET};
use ilwaco::protocol::codec::decode_borrowed;
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::net::{Ipv4, Mac, Reply, ReplyRef, ServiceError};
use serac_nettest::{arp, broadcast_ip, udp, Port, Udp, FRAME, VNIC};

ilwaco::entry!(main);

/// Frames of each forgery kind.
const EACH: u32 = 5;

fn main() -> i32 {
    let mut port = Port::open("netspoof");
    let me = port.me;
    let other_mac = Mac([0x02, 0, 0, 0xff, 0xff, 0xfe]);
    let other_ip = Ipv4([me.ipv4.0[0], me.ipv4.0[1], 255, 250]);
    let mut out = [0u8; FRAME];
    let mut refused = 0u32;
    let mut passed = 0u32;
    let mut send = |port: &mut Port, f: &[u8]| match port.send(f) {
        Ok(s) if s.forwarded == 0 && s.dropped == 1 => refused += 1,
        other => {
            passed += 1;
            println!("netspoof: a bad frame was not refused: {other:?}");
        }
    };
    let bcast = broadcast_ip(&me);
    let dgram = |src_mac, src_ip, out: &mut [u8; FRAME]| {
        udp(
            out,
            &Udp {
                dst_mac: Mac::BROADCAST,
                src_mac,
                src_ip,
                dst_ip: bcast,
                sport: 7000,
                dport: 7000,
                payload: b"forged",
            },
        )
        .unwrap_or(0)
    };
    for _ in 0..EACH {
        // IPv4 with another source MAC, then with another source IP.
        let n = dgram(other_mac, me.ipv4, &mut out);
        send(&mut port, &out[..n]);
        let n = dgram(me.mac, other_ip, &mut out);
        send(&mut port, &out[..n]);
        // ARP claiming another MAC (sender field) or another IP.
        let n = arp(&mut out, 1, &me, Mac::BROADCAST, Mac([0; 6]), other_ip);
        out[22..28].copy_from_slice(&other_mac.0);
        send(&mut port, &out[..n]);
        let n = arp(&mut out, 1, &me, Mac::BROADCAST, Mac([0; 6]), other_ip);
        out[28..32].copy_from_slice(&other_ip.0);
        send(&mut port, &out[..n]);
    }
    // Malformed: short frames (bad_size 3).
    for len in [0usize, 5, 13] {
        send(&mut port, &[0xff; 13][..len]);
    }
    // Bad IPv4 headers (malformed 3): a payload shorter than a header,
    // version 6 in an IPv4 frame, a total length past the frame.
    let good = dgram(me.mac, me.ipv4, &mut out);
    let mut f = out;
    send(&mut port, &f[..24]);
    f[14] = 0x65;
    send(&mut port, &f[..good]);
    f = out;
    f[16..18].copy_from_slice(&2000u16.to_be_bytes());
    send(&mut port, &f[..good]);
    // A bad ARP header (malformed 1): hardware length 7.
    let n = arp(&mut f, 1, &me, Mac::BROADCAST, Mac([0; 6]), other_ip);
    f[18] = 7;
    send(&mut port, &f[..n]);
    // EtherTypes the switch does not carry (unsupported 2): IPv6, 0x1234.
    for t in [0x86ddu16, 0x1234] {
        f = out;
        f[12..14].copy_from_slice(&t.to_be_bytes());
        send(&mut port, &f[..good]);
    }
    // Requests that do not decode: garbage, and a Send whose record says
    // 1600 bytes. Both must be answered BadRequest, the vnic unharmed.
    let mut bad_requests = 0;
    let mut send_tag_batch = [0u8; 1700];
    send_tag_batch[0] = 3; // Request::Send
    send_tag_batch[1..3].copy_from_slice(&[0xc4, 0x0c]); // varint 1604
    send_tag_batch[3..5].copy_from_slice(&1600u16.to_le_bytes());
    for req in [&[0xff, 0xff, 0xff][..], &send_tag_batch[..1607]] {
        let mut reply = [0u8; MAX_PAYLOAD];
        match Endpoint(VNIC).call(LABEL_NET, req, &mut reply) {
            Ok(n)
                if matches!(
                    decode_borrowed::<ReplyRef<'_>>(reply.get(..n).unwrap_or(&[])),
                    Ok(Reply::Err(ServiceError::BadRequest))
                ) =>
            {
                bad_requests += 1
            }
            other => println!("netspoof: a bad request was answered {other:?}"),
        }
    }
    println!(
        "netspoof: {refused} bad frames refused, {passed} not, {bad_requests} bad requests refused"
    );
    i32::from(passed != 0)
}
