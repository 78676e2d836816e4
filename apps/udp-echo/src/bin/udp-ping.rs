//! udp-ping: udp-echo's client and the round-trip test. Handle 1 =
//! endpoint to the vnic (`net=yes`).
//!
//! It finds a `udp-echo` by discovery, then sends [`ROUNDS`] 16-byte
//! datagrams in lockstep (each waits for its reply, resent after
//! [`RESEND`] if lost), checks every reply (sequence, counts, payload) and
//! prints `TEST udp_echo ... ok` and `BENCH udp_rtt_ticks <mean>`: TSC
//! ticks per round trip after the first [`WARMUP`] (ARP, first touches).
#![no_std]
#![no_main]

use ilwaco::net::{self, Config, NetDuration};
use ilwaco::{println, time};
use serac_netapp_core::game::{Reply, REPLY_HEADER};

ilwaco::entry!(main);

const VNIC: u32 = 1;

/// CPU time the kernel charged this domain, in TSC ticks.
fn cpu_ticks() -> u64 {
    use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
    ilwaco::sys::domain_ctl(
        ilwaco::protocol::Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::CpuTicks as u64,
        0,
    )
    .unwrap_or(0)
}
const PORT: u16 = 9000;
const ROUNDS: u32 = 200;
const WARMUP: u32 = 10;
const RESEND: NetDuration = NetDuration::from_millis(200);

async fn rounds(net: &net::Net) -> Result<u64, &'static str> {
    let until = net.now() + NetDuration::from_secs(10);
    let found = net
        .discover("udp-echo", 1, until)
        .await
        .map_err(|_| "discovery failed")?;
    let server = *found.first().ok_or("no udp-echo answered")?;
    let sock = net.udp_bind(0).map_err(|_| "bind failed")?;
    let mut ticks = 0u64;
    // Each measured round trip, for the median.
    let mut each = [0u64; (ROUNDS - WARMUP) as usize];
    let mut resent = 0u32;
    let mut cpu0 = 0;
    let mut stats0 = net.stats();
    for seq in 0..ROUNDS {
        if seq == WARMUP {
            cpu0 = cpu_ticks();
            stats0 = net.stats();
        }
        // 16 bytes: the sequence number and 12 bytes that change with it.
        let mut msg = [0u8; 16];
        msg[..4].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in msg[4..].iter_mut().enumerate() {
            *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
        let t0 = time::tsc();
        let mut buf = [0u8; 64];
        let n = loop {
            sock.send_to(&msg, server, PORT)
                .await
                .map_err(|_| "send failed")?;
            let at = net.now() + RESEND;
            match net.timeout(at, sock.recv_from(&mut buf)).await {
                Ok(Ok((n, ip, port))) if ip == server && port == PORT => break n,
                Ok(_) => return Err("a datagram from elsewhere"),
                Err(_) => resent += 1,
            }
        };
        let dt = time::tsc() - t0;
        if seq >= WARMUP {
            ticks += dt;
            if let Some(e) = each.get_mut((seq - WARMUP) as usize) {
                *e = dt;
            }
        }
        let r = Reply::decode(&buf[..n]).ok_or("short reply")?;
        if r.seq != seq || buf.get(REPLY_HEADER..n) != Some(&msg[4..]) {
            return Err("reply does not match");
        }
        // Resends show as repeats at the server; otherwise one per round.
        if r.received != seq + 1 + resent || r.out_of_order != resent {
            return Err("server counts are off");
        }
    }
    let cpu = (cpu_ticks() - cpu0) / u64::from(ROUNDS - WARMUP);
    each.sort_unstable();
    println!("BENCH udp_rtt_rounds {}", each.len());
    println!(
        "BENCH udp_rtt_ticks_median {}",
        each.get(each.len() / 2).copied().unwrap_or(0)
    );
    if resent > 0 {
        println!("udp-ping: {resent} datagrams resent");
    }
    // The client's own share of a round trip (the kernel's CPU account).
    println!("BENCH udp_rtt_client_cpu_ticks {cpu}");
    let s = net.stats();
    let r = u64::from(ROUNDS - WARMUP);
    println!(
        "udp-ping: per round trip: step {} (poll {}, tasks {}), Send {}, Recv {} ticks; {} steps, {} polls",
        (s.step_cycles - stats0.step_cycles) / r,
        (s.poll_cycles - stats0.poll_cycles) / r,
        (s.task_cycles - stats0.task_cycles) / r,
        (s.device.send_cycles - stats0.device.send_cycles) / r,
        (s.device.recv_cycles - stats0.device.recv_cycles) / r,
        s.steps - stats0.steps,
        s.polls - stats0.polls,
    );
    Ok(ticks / u64::from(ROUNDS - WARMUP))
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("udp-ping: no network: {e:?}");
            return 1;
        }
    };
    net.set_cycles(time::tsc);
    match net::run(&net, rounds(&net)) {
        Ok(mean) => {
            println!("udp-ping: {ROUNDS} round trips of 16 bytes checked");
            println!("BENCH udp_rtt_ticks {mean}");
            println!("TEST udp_echo ... ok");
            0
        }
        Err(why) => {
            println!("TEST udp_echo ... FAILED: {why}");
            1
        }
    }
}
