//! loadgen: a closed-loop HTTP client domain. Handles: 1 = endpoint to the
//! vnic (`net=yes`), 2 = endpoint to the disk server (its config).
//!
//! The config is the text of the image `loadgen` (key=value words; the
//! defaults below when there is no such image): `targets=N` httpd domains,
//! found by discovery; `conns=C` concurrent clients; `requests=R` in all;
//! `alpha=A` (Zipf(A) over the targets in the order they answered; 0 is
//! uniform); `path=/2k.html`; `expect=2048` (the body length every answer
//! must have; 0: any); `keepalive=yes|no` (no: connect, GET, close for
//! each request, as the bench's `http_request`); `seed=S`.
//!
//! Each client loops: draw a target, send the GET, read the whole
//! response, check it, record the latency. At the end it prints one line
//! (`loadgen: requests=... errors=... rps=... p50_us=... p99_us=...`), the
//! same figures as `BENCH` lines, and `TEST loadgen ... ok` when every
//! answer was a 200 of the expected length and every body the same bytes.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use ilwaco::net::{self, Config, Net, NetDuration, TcpStream};
use ilwaco::protocol::net::Ipv4;
use ilwaco::{println, time, BlockDevice};
use serac_loadgen::{read_response, ExchangeError};
use serac_netapp_core::config::{self, ConfigError};
use serac_netapp_core::sample::{Rng, Sampler};
use serac_netapp_core::stats::Latencies;

ilwaco::entry!(main);

const VNIC: u32 = 1;
const DISK: u32 = 2;
/// Latencies kept for the percentiles.
const KEEP: usize = 100_000;

#[derive(Debug, Clone)]
struct Params {
    targets: usize,
    conns: usize,
    requests: u64,
    alpha: f64,
    path: String,
    expect: u64,
    keepalive: bool,
    seed: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            targets: 1,
            conns: 1,
            requests: 100,
            alpha: 0.0,
            path: "/2k.html".into(),
            expect: 2048,
            keepalive: false,
            seed: 1,
        }
    }
}

fn parse(text: &str) -> Result<Params, ConfigError<'_>> {
    let mut p = Params::default();
    for w in config::words(text) {
        let (k, v) = w?;
        match k {
            "targets" => p.targets = config::int(v)? as usize,
            "conns" => p.conns = config::int(v)? as usize,
            "requests" => p.requests = config::int(v)?,
            "alpha" => p.alpha = config::fraction(v)?,
            "path" if v.starts_with('/') && v.len() <= 200 => p.path = v.into(),
            "path" => return Err(ConfigError::BadValue(v)),
            "expect" => p.expect = config::int(v)?,
            "keepalive" => p.keepalive = config::yes_no(v)?,
            "seed" => p.seed = config::int(v)?,
            _ => return Err(ConfigError::UnknownKey(k)),
        }
    }
    if p.targets == 0 || p.conns == 0 || p.conns > 24 {
        return Err(ConfigError::BadValue(
            "targets and conns: 1.., conns at most 24",
        ));
    }
    Ok(p)
}

fn params() -> Result<Params, &'static str> {
    let Ok(mut img) = BlockDevice::image(ilwaco::rt::granted(DISK), "loadgen") else {
        println!("loadgen: no image `loadgen`: the defaults");
        return Ok(Params::default());
    };
    let mut buf = [0u8; 4096];
    img.read_block(0, &mut buf)
        .map_err(|_| "cannot read the config")?;
    let _ = img.close();
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = core::str::from_utf8(&buf[..end]).map_err(|_| "the config is not text")?;
    parse(text).map_err(|e| {
        println!("loadgen: config: {e:?}");
        "the config does not parse"
    })
}

#[derive(Debug, Default)]
struct Tally {
    issued: u64,
    ok: u64,
    errors: u64,
    wrong: u64,
    hash: Option<u64>,
    per_target: Vec<u64>,
    latency_us: Latencies,
    ticks: Latencies,
}

async fn client(
    net: Net,
    p: Rc<Params>,
    targets: Rc<Vec<Ipv4>>,
    z: Rc<Sampler>,
    tally: Rc<RefCell<Tally>>,
    id: u64,
) {
    let mut rng = Rng::new(p.seed.wrapping_mul(0x9e37_79b9).wrapping_add(id));
    let mut conn: Option<(usize, TcpStream)> = None;
    let mut buf = alloc::vec![0u8; 4096];
    let mut req = alloc::vec::Vec::new();
    req.extend_from_slice(b"GET ");
    req.extend_from_slice(p.path.as_bytes());
    req.extend_from_slice(if p.keepalive {
        b" HTTP/1.1\r\nHost: serac\r\n\r\n".as_slice()
    } else {
        b" HTTP/1.1\r\nHost: serac\r\nConnection: close\r\n\r\n".as_slice()
    });
    loop {
        {
            let mut t = tally.borrow_mut();
            if t.issued >= p.requests {
                return;
            }
            t.issued += 1;
        }
        let k = z.draw(&mut rng);
        let Some(&ip) = targets.get(k) else { return };
        let t0 = time::tsc();
        let ns0 = time::now_ns().unwrap_or(0);
        let deadline = net.now() + NetDuration::from_secs(10);
        let r = net
            .timeout(deadline, async {
                let mut s = match conn.take() {
                    Some((j, s)) if j == k => s,
                    _ => net.connect(ip, 80).await?,
                };
                s.write_all(&req).await?;
                let mut len = 0;
                let a = read_response(&mut s, &mut buf, &mut len).await?;
                if p.keepalive && a.head.keep_alive {
                    conn = Some((k, s));
                }
                Ok::<_, ExchangeError>(a)
            })
            .await;
        let dt = time::tsc() - t0;
        let us = (time::now_ns().unwrap_or(0).saturating_sub(ns0)) / 1000;
        let mut t = tally.borrow_mut();
        match r {
            Ok(Ok(a)) => {
                t.latency_us.add(us);
                t.ticks.add(dt);
                if let Some(c) = t.per_target.get_mut(k) {
                    *c += 1;
                }
                let same = *t.hash.get_or_insert(a.body_hash) == a.body_hash;
                if a.head.status == 200 && (p.expect == 0 || a.body_len == p.expect) && same {
                    t.ok += 1;
                } else {
                    t.wrong += 1;
                    if t.wrong <= 4 {
                        println!(
                            "loadgen: wrong answer from target {k}: {:?} {} bytes",
                            a.head, a.body_len
                        );
                    }
                }
            }
            Ok(Err(e)) => {
                t.errors += 1;
                if t.errors <= 4 {
                    println!("loadgen: target {k}: {e:?}");
                }
            }
            Err(e) => {
                t.errors += 1;
                if t.errors <= 4 {
                    println!("loadgen: target {k}: {e:?}");
                }
            }
        }
    }
}

async fn run(net: Net, p: Params) -> Result<(), &'static str> {
    let until = net.now() + NetDuration::from_secs(20);
    let targets = net
        .discover("httpd", p.targets, until)
        .await
        .map_err(|_| "discovery failed")?;
    if targets.len() < p.targets {
        println!("loadgen: {} of {} httpd answered", targets.len(), p.targets);
        return Err("too few targets");
    }
    let z = Rc::new(Sampler::zipf(targets.len(), p.alpha).map_err(|_| "bad sampler")?);
    let tally = Rc::new(RefCell::new(Tally {
        per_target: alloc::vec![0; targets.len()],
        latency_us: Latencies::new(KEEP),
        ticks: Latencies::new(KEEP),
        ..Tally::default()
    }));
    let (p, targets) = (Rc::new(p), Rc::new(targets));
    let start = time::now_ns().unwrap_or(0);
    for id in 0..p.conns {
        net.spawn(client(
            net.clone(),
            p.clone(),
            targets.clone(),
            z.clone(),
            tally.clone(),
            id as u64,
        ));
    }
    // The clients are tasks of the stack; wait for them to finish.
    while net.tasks() > 0 {
        net.sleep(NetDuration::from_millis(20)).await;
        let t = tally.borrow();
        if t.ok + t.errors + t.wrong >= p.requests {
            break;
        }
    }
    let elapsed_us = (time::now_ns().unwrap_or(0).saturating_sub(start) / 1000).max(1);
    let mut t = tally.borrow_mut();
    let done = t.ok + t.wrong;
    let rps = done * 1_000_000 / elapsed_us;
    let (p50, p99) = (t.latency_us.percentile(50), t.latency_us.percentile(99));
    let mean_ticks = t.ticks.mean();
    println!(
        "loadgen: requests={done} errors={} wrong={} rps={rps} p50_us={p50} p99_us={p99} mean_ticks={mean_ticks} targets={} alpha={:?} conns={}",
        t.errors,
        t.wrong,
        targets.len(),
        p.alpha,
        p.conns
    );
    println!("loadgen: per target {:?}", t.per_target);
    println!("BENCH loadgen_rps {rps}");
    println!("BENCH loadgen_p50_us {p50}");
    println!("BENCH loadgen_p99_us {p99}");
    println!("BENCH http_request_ticks {mean_ticks}");
    println!("BENCH http_request_ticks_p50 {}", t.ticks.percentile(50));
    println!("BENCH http_requests_timed {}", t.ticks.seen);
    if t.errors == 0 && t.wrong == 0 && t.ok == p.requests {
        Ok(())
    } else {
        Err("some requests failed")
    }
}

fn main() -> i32 {
    let p = match params() {
        Ok(p) => p,
        Err(why) => {
            println!("TEST loadgen ... FAILED: {why}");
            return 1;
        }
    };
    println!("loadgen: {p:?}");
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("loadgen: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, run(net.clone(), p)) {
        Ok(()) => {
            println!("TEST loadgen ... ok");
            0
        }
        Err(why) => {
            println!("TEST loadgen ... FAILED: {why}");
            1
        }
    }
}
