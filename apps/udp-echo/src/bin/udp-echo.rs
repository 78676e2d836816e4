//! udp-echo: a game-style UDP server. Handle 1 = endpoint to the vnic
//! (`net=yes`).
//!
//! Each datagram on port [`PORT`] is `seq: u32 LE` and a payload; the
//! reply is the client's state from `serac_netapp_core::game` (its
//! sequence number, datagrams seen, out of order, clients known) and the
//! same payload, as a game server acknowledges a player's moves. The table
//! holds [`CLIENTS`] clients; the one heard of longest ago makes room.
//! Short datagrams are counted and dropped. It answers discovery probes
//! for `udp-echo`.
#![no_std]
#![no_main]

use ilwaco::net::{self, Config};
use ilwaco::println;
use serac_netapp_core::game::{Table, REPLY_HEADER};

ilwaco::entry!(main);

const VNIC: u32 = 1;
/// The game's port.
const PORT: u16 = 9000;
/// Clients tracked at once.
const CLIENTS: usize = 64;
/// Largest datagram echoed.
const DGRAM: usize = 1024;

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("udp-echo: no network: {e:?}");
            return 1;
        }
    };
    let sock = match net.udp_bind(PORT) {
        Ok(s) => s,
        Err(e) => {
            println!("udp-echo: bind: {e:?}");
            return 1;
        }
    };
    match net::announce(&net, "udp-echo") {
        Ok(t) => net.spawn(t),
        Err(e) => println!("udp-echo: no discovery: {e:?}"),
    }
    let [a, b, c, d] = net.addresses().ipv4.0;
    println!("udp-echo: serving on {a}.{b}.{c}.{d}:{PORT}");
    net::run(&net, async move {
        let mut table = Table::<CLIENTS>::default();
        let mut buf = [0u8; DGRAM];
        let mut out = [0u8; REPLY_HEADER + DGRAM];
        let mut refused = 0u64;
        loop {
            let Ok((n, ip, port)) = sock.recv_from(&mut buf).await else {
                refused += 1;
                continue;
            };
            let data = buf.get(..n).unwrap_or(&[]);
            match table.datagram((ip.0, port), data) {
                Ok(r) => {
                    let payload = data.get(4..).unwrap_or(&[]);
                    out[..REPLY_HEADER].copy_from_slice(&r.encode());
                    let end = REPLY_HEADER + payload.len();
                    if let Some(dst) = out.get_mut(REPLY_HEADER..end) {
                        dst.copy_from_slice(payload);
                    }
                    if sock
                        .send_to(out.get(..end).unwrap_or(&[]), ip, port)
                        .await
                        .is_err()
                    {
                        refused += 1;
                    }
                }
                Err(_) => {
                    refused += 1;
                    if refused.is_power_of_two() {
                        println!("udp-echo: {refused} datagrams refused");
                    }
                }
            }
        }
    })
}
