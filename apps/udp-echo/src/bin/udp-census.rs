//! udp-census: the test domain of `many_net_guests`. Handle 1 = endpoint
//! to the vnic (`net=yes`).
//!
//! It finds [`WANT`] `udp-echo` guests by discovery (each answers from its
//! own port's address), then sends each one datagram and checks its reply
//! (resent after [`RESEND`] if lost). It prints `TEST many_net_guests ...
//! ok` only when every one of them answered both.
#![no_std]
#![no_main]

use ilwaco::net::{self, Config, NetDuration};
use ilwaco::println;
use serac_netapp_core::game::{Reply, REPLY_HEADER};

ilwaco::entry!(main);

const VNIC: u32 = 1;
/// The guests the test's manifest runs (`count=` of `udp-echo`).
const WANT: usize = 500;
const PORT: u16 = 9000;
const RESEND: NetDuration = NetDuration::from_millis(500);
/// Tries per guest before the census fails.
const TRIES: u32 = 20;

async fn census(net: &net::Net) -> Result<usize, &'static str> {
    let until = net.now() + NetDuration::from_secs(240);
    let found = net
        .discover("udp-echo", WANT, until)
        .await
        .map_err(|_| "discovery failed")?;
    println!(
        "udp-census: {} udp-echo guest(s) answered discovery",
        found.len()
    );
    if found.len() < WANT {
        return Err("too few guests answered discovery");
    }
    let sock = net.udp_bind(0).map_err(|_| "bind failed")?;
    let mut buf = [0u8; 64];
    for (k, &guest) in found.iter().enumerate() {
        let msg = u32::try_from(k).unwrap_or(u32::MAX).to_le_bytes();
        let mut tries = 0;
        let n = loop {
            tries += 1;
            if tries > TRIES {
                return Err("a guest did not answer");
            }
            sock.send_to(&msg, guest, PORT)
                .await
                .map_err(|_| "send failed")?;
            match net
                .timeout(net.now() + RESEND, sock.recv_from(&mut buf))
                .await
            {
                Ok(Ok((n, ip, port))) if ip == guest && port == PORT => break n,
                // A late answer of an earlier guest: wait again.
                _ => {}
            }
        };
        let r = Reply::decode(&buf[..n]).ok_or("short reply")?;
        // Four bytes sent: the reply is the header alone, for this guest's seq.
        if r.seq != u32::from_le_bytes(msg) || n != REPLY_HEADER {
            return Err("reply does not match");
        }
    }
    Ok(found.len())
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
