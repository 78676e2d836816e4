//! The flooder of `net_flood`: as many broadcast datagrams as it can,
//! in full batches, for about two seconds, then it ends. Its frames are
//! well formed and from its own addresses, so the switch forwards them:
//! every other port's bounded queue takes what it can and counts the rest.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::protocol::net::{Frames, Mac};
use ilwaco::time;
use serac_nettest::{broadcast_ip, ms_ticks, udp, Port, Udp, FRAME};

ilwaco::entry!(main);

fn main() -> i32 {
    let mut port = Port::open("netflood");
    let me = port.me;
    let mut out = [0u8; FRAME];
    let n = udp(
        &mut out,
        &Udp {
            dst_mac: Mac::BROADCAST,
            src_mac: me.mac,
            src_ip: me.ipv4,
            dst_ip: broadcast_ip(&me),
            sport: 9,
            dport: 9,
            payload: &[0x5a; 64],
        },
    )
    .unwrap_or(0);
    let mut batch = Frames::new();
    while batch.push(&out[..n]).is_ok() {}
    let end = time::tsc().saturating_add(ms_ticks(2000));
    let (mut forwarded, mut dropped) = (0u64, 0u64);
    while time::tsc() < end {
        match port.send_records(batch.view().as_bytes()) {
            Ok(s) => {
                forwarded += u64::from(s.forwarded);
                dropped += u64::from(s.dropped);
            }
            Err(e) => {
                println!("netflood: send failed: {e:?}");
                return 1;
            }
        }
        // Drain what others send so only the victims' queues overflow.
        let _ = port.recv_all(|_| {});
    }
    println!("netflood: {forwarded} frames forwarded, {dropped} dropped");
    0
}
