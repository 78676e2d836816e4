//! The guest of `net_uplink`: answers ARP for its address and echoes UDP
//! datagrams to port 5555 back to their sender, byte for byte. The host
//! (the test runner) sends one through QEMU's hostfwd and checks the
//! echo; this guest ends a second after its first echo.
#![no_std]
#![no_main]

use ilwaco::{println, time};
use serac_nettest::{arp, ms_ticks, parse_arp, parse_udp, udp, Port, Udp, FRAME};

extern crate alloc;

ilwaco::entry!(main);

/// The echo port.
const ECHO: u16 = 5555;

fn main() -> i32 {
    let mut port = Port::open("netecho");
    let me = port.me;
    println!("netecho: ready on udp port {ECHO}");
    let mut out = alloc::vec![[0u8; FRAME]; 4];
    let mut lens = [0usize; 4];
    let (mut echoed, mut arps) = (0u32, 0u32);
    let mut first: Option<u64> = None;
    loop {
        let mut k = 0;
        let r = port.recv_all(|f| {
            if k >= out.len() {
                return;
            }
            if let Some(a) = parse_arp(f) {
                if a.op == 1 && a.tpa == me.ipv4 {
                    lens[k] = arp(&mut out[k], 2, &me, a.sha, a.sha, a.spa);
                    k += 1;
                    arps += 1;
                }
            } else if let Some(u) = parse_udp(f) {
                if u.dst_ip == me.ipv4 && u.dport == ECHO {
                    let back = Udp {
                        dst_mac: u.src_mac,
                        src_mac: me.mac,
                        src_ip: me.ipv4,
                        dst_ip: u.src_ip,
                        sport: ECHO,
                        dport: u.sport,
                        payload: u.payload,
                    };
                    lens[k] = udp(&mut out[k], &back).unwrap_or(0);
                    k += 1;
                    echoed += 1;
                }
            }
        });
        if let Err(e) = r {
            println!("netecho: Recv failed: {e:?}");
            return 1;
        }
        for i in 0..k {
            if let Err(e) = port.send(&out[i][..lens[i]]) {
                println!("netecho: send failed: {e:?}");
            }
        }
        if echoed > 0 && first.is_none() {
            first = Some(time::tsc());
        }
        if first.is_some_and(|t| time::tsc().saturating_sub(t) > ms_ticks(1000)) {
            println!("netecho: echoed {echoed} datagram(s), answered {arps} ARP request(s)");
            return 0;
        }
        port.wait(20);
    }
}
