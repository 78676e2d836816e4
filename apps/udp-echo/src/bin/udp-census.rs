//! udp-census: the test domain of `many_net_guests`. Handle 1 = endpoint
//! to the vnic (`net=yes`).
//!
//! The manifest lists [`WANT`] `udp-echo` instances right before it, so
//! they hold the slots just below its own, and the address plan (host
//! number 256 + slot) puts them at the [`WANT`] addresses below its own.
//! It sends each one datagram and checks the reply comes from that address
//! with that sequence number (resent after [`RESEND`] if lost); it prints
//! `TEST many_net_guests ... ok` only when every one answered. (Discovery
//! would broadcast to all of them every 100 ms, faster than hundreds of
//! guests answer under TCG.)
#![no_std]
#![no_main]

use ilwaco::net::{self, Config, NetDuration};
use ilwaco::println;
use serac_netapp_core::game::{Reply, REPLY_HEADER};

ilwaco::entry!(main);

const VNIC: u32 = 1;
/// The guests the test's manifest runs (`count=` of `udp-echo`).
const WANT: usize = 200;
const PORT: u16 = 9000;
const RESEND: NetDuration = NetDuration::from_millis(500);
/// Tries per guest before the census fails.
const TRIES: u32 = 20;

async fn census(net: &net::Net) -> Result<usize, &'static str> {
    let me = u32::from_be_bytes(net.addresses().ipv4.0);
    let sock = net.udp_bind(0).map_err(|_| "bind failed")?;
    let mut buf = [0u8; 64];
    let mut answered = 0;
    let mut missing = 0;
    let [a, b, c, d] = net.addresses().ipv4.0;
    println!("udp-census: asking the {WANT} addresses below {a}.{b}.{c}.{d}");
    for k in 1..=WANT as u32 {
        let below = me.checked_sub(k).ok_or("no such address")?;
        let guest = ilwaco::protocol::net::Ipv4(below.to_be_bytes());
        let msg = k.to_le_bytes();
        let mut tries = 0;
        let n = loop {
            tries += 1;
            if tries > TRIES {
                break 0;
            }
            // A send waits while an earlier one waits for ARP: bounded too.
            match net
                .timeout(net.now() + RESEND, sock.send_to(&msg, guest, PORT))
                .await
            {
                Ok(r) => r.map_err(|_| "send failed")?,
                Err(_) => continue,
            }
            match net
                .timeout(net.now() + RESEND, sock.recv_from(&mut buf))
                .await
            {
                Ok(Ok((n, ip, port))) if ip == guest && port == PORT => break n,
                // A late answer of an earlier guest: wait again.
                _ => {}
            }
        };
        if n == 0 {
            missing += 1;
            if missing <= 8 {
                let [a, b, c, d] = guest.0;
                println!("udp-census: {a}.{b}.{c}.{d} did not answer");
            }
            continue;
        }
        let r = Reply::decode(&buf[..n]).ok_or("short reply")?;
        // Four bytes sent: the reply is the header alone, for this guest's seq.
        if r.seq != u32::from_le_bytes(msg) || n != REPLY_HEADER {
            return Err("reply does not match");
        }
        answered += 1;
        if answered % 50 == 0 {
            println!("udp-census: {answered} answered");
        }
    }
    if missing > 0 {
        println!("udp-census: {missing} guest(s) did not answer");
        return Err("a guest did not answer");
    }
    Ok(answered)
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("udp-census: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, census(&net)) {
        Ok(n) => {
            println!("udp-census: {n} distinct guests answered a datagram each");
            println!("TEST many_net_guests ... ok");
            0
        }
        Err(why) => {
            println!("TEST many_net_guests ... FAILED: {why}");
            1
        }
    }
}
