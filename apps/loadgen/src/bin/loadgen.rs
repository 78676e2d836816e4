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
//! `bench web`'s keys: `slots=A-B`: the targets are the httpd in slots A
//! to B of the vnic's address plan (no discovery); `warmup=yes`: first a
//! sweep that gets one answer from every target (retrying each until
//! `warmup_s=300` seconds have passed); `secs=S`: timed phases of S
//! seconds instead of a request count, one per `alphas=0.8/0` (default:
//! `alpha`); `raw=B`: before the sweep and after the phases, a timed
//! sequential read of B blocks of its disk `loadgen`; `progress_ms=M`: a progress line every M
//! ms; `hold_s=H`: after the phases, H seconds without load between
//! `loadgen: hold start` and `loadgen: hold done` (host wrk's turn);
//! `request_s=10`: a request not answered in this long is an error;
//! `settle_s=S` (0-3600, default 0): before each phase, S seconds of the
//! same load unmeasured, so that memory caches what that distribution
//! wants (`loadgen: settle alpha=A secs=S`, `loadgen: settled alpha=A
//! requests=.. errors=..`; its errors count like a phase's). Each
//! phase prints `loadgen: phase start alpha=A` and `loadgen:
//! phase done alpha=A requests=.. errors=.. wrong=.. duration_us=..
//! rps=.. p50_us=.. p99_us=..`. Latencies go into a fixed histogram, so
//! memory does not grow with the requests.
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

use ilwaco::net::{self, Config, Net, NetDuration, NetError, TcpStream};
use ilwaco::protocol::net::Ipv4;
use ilwaco::{println, time, BlockDevice};
use serac_loadgen::{read_response, ExchangeError};
use serac_netapp_core::config::{self, ConfigError};
use serac_netapp_core::sample::{Rng, Sampler};
use serac_netapp_core::stats::{Histogram, Latencies};
use serac_vnic_core::assign;

ilwaco::entry!(main);

const VNIC: u32 = 1;
const DISK: u32 = 2;
/// Exact per-request ticks kept (count mode; `bench net`'s median).
const KEEP: usize = 4096;
/// Blocks of the raw read, at most.
const MAX_RAW: u64 = 65_536;

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
    slots: Option<(u32, u32)>,
    warmup: bool,
    warmup_s: u64,
    secs: u64,
    alphas: Vec<f64>,
    raw: u64,
    progress_ms: u64,
    hold_s: u64,
    request_s: u64,
    settle_s: u64,
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
            slots: None,
            warmup: false,
            warmup_s: 300,
            secs: 0,
            alphas: Vec::new(),
            raw: 0,
            progress_ms: 0,
            hold_s: 0,
            request_s: 10,
            settle_s: 0,
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
            "slots" => {
                let (a, b) = v.split_once('-').ok_or(ConfigError::BadValue(v))?;
                let (a, b) = (config::int(a)?, config::int(b)?);
                let last = u64::from(assign::MAX_INDEX);
                if a > b || b > last {
                    return Err(ConfigError::BadValue(v));
                }
                p.slots = Some((a as u32, b as u32));
                p.targets = (b - a + 1) as usize;
            }
            "warmup" => p.warmup = config::yes_no(v)?,
            "warmup_s" => p.warmup_s = config::int(v)?,
            "secs" => p.secs = config::int(v)?,
            "alphas" => {
                p.alphas.clear();
                for a in v.split('/') {
                    p.alphas.push(config::fraction(a)?);
                }
            }
            "raw" if config::int(v)? <= MAX_RAW => p.raw = config::int(v)?,
            "raw" => return Err(ConfigError::BadValue(v)),
            "progress_ms" => p.progress_ms = config::int(v)?,
            "hold_s" => p.hold_s = config::int(v)?,
            "request_s" if (1..=600).contains(&config::int(v)?) => p.request_s = config::int(v)?,
            "request_s" => return Err(ConfigError::BadValue(v)),
            "settle_s" if config::int(v)? <= 3600 => p.settle_s = config::int(v)?,
            "settle_s" => return Err(ConfigError::BadValue(v)),
            _ => return Err(ConfigError::UnknownKey(k)),
        }
    }
    if p.targets == 0 || p.conns == 0 || p.conns > config::LOADGEN_MAX_CONNS {
        return Err(ConfigError::BadValue(
            "targets and conns: 1.., conns at most 24",
        ));
    }
    if p.alphas.is_empty() {
        p.alphas.push(p.alpha);
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
    latency_us: Histogram,
    ticks: Latencies,
    /// Timed mode: requests are issued until this global-clock time (ns).
    until_ns: Option<u64>,
    /// Clients that have returned.
    finished: usize,
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
            let over = match t.until_ns {
                Some(u) => time::now_ns().unwrap_or(u64::MAX) >= u,
                None => t.issued >= p.requests,
            };
            if over {
                t.finished += 1;
                return;
            }
            t.issued += 1;
        }
        let k = z.draw(&mut rng);
        let Some(&ip) = targets.get(k) else {
            tally.borrow_mut().finished += 1;
            return;
        };
        let t0 = time::tsc();
        let ns0 = time::now_ns().unwrap_or(0);
        let deadline = net.now() + NetDuration::from_secs(p.request_s);
        let mut stage = "connect";
        let r = net
            .timeout(deadline, async {
                let mut s = match conn.take() {
                    Some((j, s)) if j == k => s,
                    _ => connect(&net, ip).await?,
                };
                stage = "write";
                s.write_all(&req).await?;
                stage = "read";
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
                    println!("loadgen: target {k}: {e:?} in {stage} after {us} us");
                }
            }
            Err(e) => {
                t.errors += 1;
                if t.errors <= 4 {
                    println!("loadgen: target {k}: {e:?} in {stage} after {us} us");
                }
            }
        }
    }
}

/// A target in the address plan is a static neighbour: its MAC follows
/// from its address, and smoltcp would ask for one a second.
fn learn(net: &Net, ip: Ipv4) {
    if let Some(a) = assign::index_of(ip).and_then(|i| assign::addresses(i).ok()) {
        net.learn_neighbor(a.mac.0, a.ipv4.0);
    }
}

/// The address plan's MAC for `ip`: a target answering after a swap-in
/// may have been evicted from smoltcp's 64-entry cache since its connect.
fn plan_mac(ip: [u8; 4]) -> Option<[u8; 6]> {
    let a = assign::addresses(assign::index_of(Ipv4(ip))?).ok()?;
    Some(a.mac.0)
}

/// Connects to `ip`:80, a static neighbour. When every socket is taken
/// (the last requests' still closing, up to Ilwaco's linger) it waits for
/// one: that is this client's limit, not the target's failure, and a
/// connect that fails at once must not spin without letting the stack run.
async fn connect(net: &Net, ip: Ipv4) -> Result<TcpStream, NetError> {
    learn(net, ip);
    loop {
        match net.connect(ip, 80).await {
            Err(NetError::NoSockets) => net.sleep(NetDuration::from_millis(10)).await,
            r => return r,
        }
    }
}

/// The targets: slots A..=B of the address plan, or the first
/// `p.targets` httpd to answer discovery.
async fn targets_of(net: &Net, p: &Params) -> Result<Vec<Ipv4>, &'static str> {
    if let Some((a, b)) = p.slots {
        let mut v = Vec::new();
        v.try_reserve_exact(p.targets)
            .map_err(|_| "no memory for the targets")?;
        for slot in a..=b {
            v.push(
                assign::addresses(slot)
                    .map_err(|_| "a slot has no address")?
                    .ipv4,
            );
        }
        return Ok(v);
    }
    let until = net.now() + NetDuration::from_secs(20);
    let targets = net
        .discover("httpd", p.targets, until)
        .await
        .map_err(|_| "discovery failed")?;
    if targets.len() < p.targets {
        println!("loadgen: {} of {} httpd answered", targets.len(), p.targets);
        return Err("too few targets");
    }
    Ok(targets)
}

/// The Zipf(`alpha`) sampler over `n` targets, or why not (said, with the
/// heap it had, then returned as the run's failure).
fn sampler(n: usize, alpha: f64) -> Result<Sampler, &'static str> {
    Sampler::zipf(n, alpha).map_err(|e| {
        println!(
            "loadgen: no sampler over {n} targets at alpha={alpha:?}: {e:?} (heap {} of {} bytes in use)",
            ilwaco::sys::heap_in_use(),
            ilwaco::sys::heap_size()
        );
        "no sampler"
    })
}

fn now_us() -> u64 {
    time::now_ns().unwrap_or(0) / 1000
}

/// Spawns `p.conns` clients on `tally` and waits for them all, printing
/// progress every `p.progress_ms` with `what`.
async fn drive(
    net: &Net,
    p: &Rc<Params>,
    targets: &Rc<Vec<Ipv4>>,
    z: Rc<Sampler>,
    tally: &Rc<RefCell<Tally>>,
    what: &str,
) {
    let start = now_us();
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
    let mut next = p.progress_ms;
    loop {
        net.sleep(NetDuration::from_millis(20)).await;
        let t = tally.borrow();
        if t.finished >= p.conns
            || (t.until_ns.is_none() && t.ok + t.errors + t.wrong >= p.requests)
        {
            return;
        }
        let ms = now_us().saturating_sub(start) / 1000;
        if p.progress_ms > 0 && ms >= next {
            next = ms + p.progress_ms;
            println!(
                "loadgen: progress {what} requests={} errors={} elapsed_ms={ms}",
                t.ok + t.wrong,
                t.errors
            );
        }
    }
}

/// The count mode: `p.requests` in all, one summary.
async fn run_count(net: Net, p: Params) -> Result<(), &'static str> {
    let targets = targets_of(&net, &p).await?;
    let z = Rc::new(sampler(targets.len(), p.alpha)?);
    let tally = Rc::new(RefCell::new(Tally {
        per_target: alloc::vec![0; targets.len()],
        ticks: Latencies::new(KEEP),
        ..Tally::default()
    }));
    let (p, targets) = (Rc::new(p), Rc::new(targets));
    let start = now_us();
    drive(&net, &p, &targets, z, &tally, "").await;
    let elapsed_us = (now_us().saturating_sub(start)).max(1);
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

/// A timed sequential read of `blocks` blocks of disk `loadgen`: the raw
/// bandwidth a swap-in cannot beat.
fn raw_read(blocks: u64) -> Result<(), &'static str> {
    let mut disk = BlockDevice::disk(ilwaco::rt::granted(DISK), "loadgen")
        .map_err(|_| "no disk `loadgen` for the raw read")?;
    let n = blocks.min(disk.len_blocks());
    let mut block = [0u8; 4096];
    let t0 = now_us();
    for b in 0..n {
        disk.read_block(b, &mut block)
            .map_err(|_| "raw read failed")?;
    }
    let us = now_us().saturating_sub(t0).max(1);
    let _ = disk.close();
    println!("loadgen: raw read {n} blocks of 4096 bytes in {us} us");
    Ok(())
}

/// One request to each target, retried until it answers or the sweep's
/// deadline: clients take the next untouched target in turn.
async fn warm_up(net: &Net, p: &Rc<Params>, targets: &Rc<Vec<Ipv4>>) -> u64 {
    let next = Rc::new(RefCell::new((0usize, 0usize, 0u64)));
    let start = now_us();
    let deadline = start + p.warmup_s * 1_000_000;
    for _ in 0..p.conns {
        let (net2, targets, next, path) =
            (net.clone(), targets.clone(), next.clone(), p.path.clone());
        net.spawn(async move {
            let mut buf = alloc::vec![0u8; 4096];
            let mut req = Vec::new();
            req.extend_from_slice(b"GET ");
            req.extend_from_slice(path.as_bytes());
            req.extend_from_slice(b" HTTP/1.1\r\nHost: serac\r\nConnection: close\r\n\r\n");
            loop {
                let k = {
                    let mut n = next.borrow_mut();
                    n.0 += 1;
                    n.0 - 1
                };
                let Some(&ip) = targets.get(k) else { break };
                loop {
                    let r = net2
                        .timeout(net2.now() + NetDuration::from_secs(5), async {
                            let mut s = connect(&net2, ip).await?;
                            s.write_all(&req).await?;
                            let mut len = 0;
                            read_response(&mut s, &mut buf, &mut len).await
                        })
                        .await;
                    if matches!(r, Ok(Ok(a)) if a.head.status == 200) {
                        break;
                    }
                    if now_us() >= deadline {
                        next.borrow_mut().2 += 1;
                        if next.borrow().2 <= 4 {
                            println!("loadgen: warm-up: target {k} never answered: {r:?}");
                        }
                        break;
                    }
                    net2.sleep(NetDuration::from_millis(250)).await;
                }
                next.borrow_mut().1 += 1;
            }
        });
    }
    let mut report = p.progress_ms;
    loop {
        net.sleep(NetDuration::from_millis(20)).await;
        let (_, touched, failed) = *next.borrow();
        if touched >= targets.len() {
            println!(
                "loadgen: warm-up done touched={touched} of {} failed={failed} duration_us={}",
                targets.len(),
                now_us().saturating_sub(start)
            );
            return failed;
        }
        let ms = now_us().saturating_sub(start) / 1000;
        if p.progress_ms > 0 && ms >= report {
            report = ms + p.progress_ms;
            println!(
                "loadgen: progress warm-up touched={touched} of {} failed={failed} elapsed_ms={ms}",
                targets.len()
            );
        }
    }
}

/// The timed mode: raw read, warm-up sweep, then a phase of `p.secs`
/// seconds per alpha.
async fn run_timed(net: Net, p: Params) -> Result<(), &'static str> {
    if p.raw > 0 {
        raw_read(p.raw)?;
    }
    let targets = targets_of(&net, &p).await?;
    println!("loadgen: {} target(s)", targets.len());
    let (p, targets) = (Rc::new(p), Rc::new(targets));
    let mut bad = 0;
    if p.warmup {
        bad += warm_up(&net, &p, &targets).await;
    }
    for &alpha in &p.alphas {
        let z = Rc::new(sampler(targets.len(), alpha)?);
        if p.settle_s > 0 {
            println!("loadgen: settle alpha={alpha:?} secs={}", p.settle_s);
            let tally = Rc::new(RefCell::new(Tally {
                until_ns: Some((now_us() + p.settle_s * 1_000_000) * 1000),
                ..Tally::default()
            }));
            let what = alloc::format!("settle alpha={alpha:?}");
            drive(&net, &p, &targets, z.clone(), &tally, &what).await;
            let t = tally.borrow();
            println!(
                "loadgen: settled alpha={alpha:?} requests={} errors={} wrong={}",
                t.ok + t.wrong,
                t.errors,
                t.wrong
            );
            bad += t.errors + t.wrong;
        }
        println!("loadgen: phase start alpha={alpha:?}");
        let start = now_us();
        let tally = Rc::new(RefCell::new(Tally {
            until_ns: Some((start + p.secs * 1_000_000) * 1000),
            ..Tally::default()
        }));
        drive(
            &net,
            &p,
            &targets,
            z,
            &tally,
            &alloc::format!("alpha={alpha:?}"),
        )
        .await;
        let us = now_us().saturating_sub(start).max(1);
        let t = tally.borrow();
        let done = t.ok + t.wrong;
        println!(
            "loadgen: phase done alpha={alpha:?} requests={done} errors={} wrong={} duration_us={us} rps={} p50_us={} p99_us={} targets={} conns={}",
            t.errors,
            t.wrong,
            done * 1_000_000 / us,
            t.latency_us.percentile(50),
            t.latency_us.percentile(99),
            targets.len(),
            p.conns
        );
        bad += t.errors + t.wrong;
        if done == 0 {
            bad += 1;
        }
    }
    // Again with the load over: the bench takes the less disturbed read.
    if p.raw > 0 {
        raw_read(p.raw)?;
    }
    if p.hold_s > 0 {
        println!("loadgen: hold start secs={}", p.hold_s);
        net.sleep(NetDuration::from_secs(p.hold_s)).await;
        println!("loadgen: hold done");
    }
    if bad == 0 {
        Ok(())
    } else {
        Err("some requests failed")
    }
}

async fn run(net: Net, p: Params) -> Result<(), &'static str> {
    if p.secs > 0 {
        run_timed(net, p).await
    } else {
        run_count(net, p).await
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
    net.set_static_neighbors(plan_mac);
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
