//! `bench web`'s boot (Denali's Figure 3): N paged httpd, the swapper,
//! the disk and the vnic in a 1 GiB machine, driven by loadgen in timed
//! phases (then host wrk against a few of them, for small N); and its
//! CI-sized test. The verdicts are the supervisor's (the
//! loadgen, the test domain, halts with 0 only if every answer was right)
//! and the runner's (host wrk).

use super::{
    d, net_guests, www_site, Boot, Config, DiskExtent, DiskImage, HostHttp, HttpCheck, NetDevice,
    QemuTest,
};
use crate::pattern::Pattern;
use std::time::Duration;

/// Blocks of loadgen's raw read (16 MiB) and of its disk.
pub const RAW_BLOCKS: u64 = 4096;
/// Swap area blocks per httpd (its heap, stack and `.bss`: about 58
/// pages), and at least.
const SWAP_PER_HTTPD: u64 = 80;
const SWAP_MIN: u64 = 16_384;

/// One `bench web` boot.
#[derive(Debug, Clone)]
pub struct Web {
    /// httpd instances.
    pub n: u32,
    /// Seconds of each timed phase.
    pub secs: u32,
    /// The phases' Zipf exponents (0: uniform).
    pub alphas: Vec<f64>,
    /// loadgen's concurrent clients.
    pub conns: u32,
    /// Host wrk against this many httpd for `secs` after the phases, while
    /// loadgen holds off (0: none).
    pub wrk: u32,
    /// The machine's memory.
    pub mem: &'static str,
    /// Seconds a phase's request may take before it counts as an error.
    pub request_s: u32,
    /// Seconds of unmeasured load before each phase (loadgen `settle_s`).
    pub settle_s: u32,
}

/// The configuration of `w`: `configs/web_scale.toml` with `w.n` httpd.
fn web_config(w: &Web) -> Config {
    Config::new("web_scale").count("httpd", u64::from(w.n))
}

/// The httpd's slots and addresses in the address plan, in order.
pub fn web_targets(w: &Web) -> Result<Vec<(u32, [u8; 4])>, String> {
    Ok(net_guests(&web_config(w))?
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("httpd"))
        .map(|(_, s, a)| (s, a))
        .collect())
}

/// loadgen's config for `w` over slots `first..=last`.
fn loadgen_config(w: &Web, first: u32, last: u32) -> String {
    let alphas: Vec<String> = w.alphas.iter().map(|a| format!("{a}")).collect();
    // A first touch faults an httpd's pages in: about 1 s each in TCG.
    let warm_s = 120 + 2 * u64::from(w.n);
    // wrk's turn: its run and the curl before it.
    let hold = if w.wrk > 0 { w.secs + 10 } else { 0 };
    format!(
        "slots={first}-{last} conns={} warmup=yes warmup_s={warm_s} secs={} alphas={} raw={RAW_BLOCKS} progress_ms=5000 hold_s={hold} request_s={} settle_s={} path=/2k.html expect=2048 keepalive=no\n",
        w.conns,
        w.secs,
        alphas.join("/"),
        w.request_s,
        w.settle_s
    )
}

/// The boot of `w` named `name`: a QEMU test that passes when loadgen
/// (every phase answered right) halts with 0.
pub fn web_scale(name: &str, w: &Web) -> Result<QemuTest, String> {
    let targets = web_targets(w)?;
    let (first, last) = match (targets.first(), targets.last()) {
        (Some(f), Some(l)) if l.0 - f.0 + 1 == w.n => (f.0, l.0),
        _ => return Err(format!("the {} httpd slots are not one run", w.n)),
    };
    let swap = (u64::from(w.n) * SWAP_PER_HTTPD).max(SWAP_MIN);
    let mib = (swap + RAW_BLOCKS) / 256 + 8;
    let mut net = NetDevice::default();
    if w.wrk > 0 {
        net.http = Some(HostHttp {
            when: Pattern::new(d("loadgen", "loadgen: hold start *")),
            guests: targets.iter().take(w.wrk as usize).map(|t| t.1).collect(),
            check: HttpCheck::Wrk {
                path: "/2k.html".into(),
                secs: w.secs,
                conns: 2,
            },
        });
    }
    let phases = u64::from(w.secs + w.settle_s) * (w.alphas.len() as u64 + 1);
    Ok(QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(web_config(w))
        .disk(DiskImage::fresh(
            name,
            mib,
            vec![
                www_site(),
                DiskExtent::Swap("swapper".into(), swap),
                DiskExtent::Image(
                    "loadgen".into(),
                    loadgen_config(w, first, last).into_bytes(),
                ),
                DiskExtent::Disk("loadgen".into(), RAW_BLOCKS),
            ],
        ))
        .net(net)
        .verdicts_from("loadgen")
        .qemu_args(["-m", w.mem])
        .timeout(Duration::from_secs(300 + 3 * u64::from(w.n) + phases * 2))
        .forbid(d("swapper", "swapper: killing *"))
        .require(d(
            "supervisor",
            "supervisor: test end: loadgen halted with code 0",
        )))
}

/// `bench web`'s path in CI: 8 paged httpd, warm-up, a Zipf(0.8) and a
/// uniform phase of 4 s each, with the raw read, in 256 MiB.
fn web_small() -> QemuTest {
    let w = Web {
        n: 8,
        secs: 4,
        alphas: vec![0.8, 0.0],
        conns: 4,
        wrk: 0,
        mem: "256M",
        request_s: 10,
        settle_s: 0,
    };
    match web_scale("web_small", &w) {
        Ok(t) => t
            .require(d(
                "loadgen",
                "loadgen: warm-up done touched=8 of 8 failed=0 duration_us=%d",
            ))
            .require(d(
                "loadgen",
                "loadgen: phase done alpha=0.0 requests=%d errors=0 wrong=0 *",
            ))
            .require(d(
                "loadgen",
                "loadgen: raw read 4096 blocks of 4096 bytes in %d us",
            )),
        Err(e) => QemuTest::new("web_small", Boot::Pvh, "serac.exit=1")
            .require(format!("cannot build the test: {e}")),
    }
}

/// loadgen at its most clients (24, as a ceiling probe runs it) against 64
/// httpd, uniform (against 16, a burst on one httpd past its backlog of 8
/// was now and then reset): the last requests' sockets still closing and the new
/// ones share Ilwaco's 32, so connects meet `NoSockets`; loadgen waits for
/// a socket, and every request is answered (it spun on the failed connect
/// and ran out of heap, after the sweep of a 100,000 probe).
fn web_sockets() -> QemuTest {
    let w = Web {
        n: 64,
        // 64 targets fill loadgen's neighbour cache, so one now and then
        // is evicted between its connect and its answer: the static
        // resolver learns it again (a reset in about seven 4 s runs
        // without it).
        secs: 2,
        alphas: vec![0.0],
        conns: serac_netapp_core::config::LOADGEN_MAX_CONNS as u32,
        wrk: 0,
        mem: "256M",
        request_s: 10,
        settle_s: 0,
    };
    match web_scale("web_sockets", &w) {
        Ok(t) => t.require(d(
            "loadgen",
            "loadgen: phase done alpha=0.0 requests=%d errors=0 wrong=0 * conns=24",
        )),
        Err(e) => QemuTest::new("web_sockets", Boot::Pvh, "serac.exit=1")
            .require(format!("cannot build the test: {e}")),
    }
}

/// 2,000 paged httpd in 256 MiB, more than its memory holds (about 58
/// pages each): the supervisor paces their start by the swapper's free
/// frames, loadgen's sweep gets an answer from every one, and at the end
/// most are swapped out (the supervisor's count, from the swapper). The
/// uniform phase at 24 clients swaps in behind many others, so targets
/// answer after loadgen's 64-entry neighbour cache evicted them: without
/// the static resolver some were reset at their 3 s SYN timeout (3 in
/// a run of 8 s phases; none with it).
fn web_2000() -> QemuTest {
    let w = Web {
        n: 2000,
        secs: 8,
        alphas: vec![0.8, 0.0],
        conns: serac_netapp_core::config::LOADGEN_MAX_CONNS as u32,
        wrk: 0,
        mem: "256M",
        // Under thrash, a swap-in behind thousands of others: what is
        // judged is that every request is answered, not how fast.
        request_s: 60,
        settle_s: 0,
    };
    match web_scale("web_2000", &w) {
        Ok(t) => t
            .require(d(
                "loadgen",
                "loadgen: warm-up done touched=2000 of 2000 failed=0 duration_us=%d",
            ))
            .require(d(
                "loadgen",
                "loadgen: phase done alpha=0.0 requests=%d errors=0 wrong=0 * conns=24",
            ))
            .require(d(
                "supervisor",
                "supervisor: memory: most paged domains are swapped out (%d of 2000)",
            ))
            .forbid(d("supervisor", "supervisor: * starting it anyway"))
            .timeout(Duration::from_secs(1500)),
        Err(e) => QemuTest::new("web_2000", Boot::Pvh, "serac.exit=1")
            .require(format!("cannot build the test: {e}")),
    }
}

/// This module's tests for the suite.
pub fn tests() -> Vec<QemuTest> {
    vec![web_small(), web_sockets(), web_2000()]
}
