//! `cargo xtask bench net`: the network's figures (docs/performance.md
//! says what each means).
//!
//! - `udp_rtt`, `-icount shift=0`: udp-ping's median over its 190 measured
//!   16-byte round trips through udp-echo and the vnic
//!   (`serac_tests::spec::net_udp_echo`).
//! - `http_request`, `-icount shift=0`: loadgen against one httpd, one
//!   connection at a time, connect to close, the 2 KiB page; the median
//!   of its per-request ticks (`serac_tests::spec::http_load`).
//! - `wrk_rps`, plain TCG: four host `wrk -t1 -c4 -d10s`, one per httpd
//!   of the web host (`serac_tests::spec::net_wrk`), summed.
//! - `idle_httpd_upcalls_per_s`, plain TCG: the web host with no client;
//!   netwatch (an operator) reads each httpd's kernel upcall count through
//!   the supervisor's `Stat` 2 s after start and 6 s later.
//! - `bytes_per_connection`, plain TCG: the heap in use of httpd (and of
//!   the client, connhold) at 8 and at 16 idle connections, the
//!   difference over 8 (`serac_tests::spec::net_conn_cost`).
//!
//! Lines count only from the kernel and the benchmark's own domains, by
//! the kernel's prefix; a figure whose counts are not the run's is refused.

use std::collections::BTreeMap;
use std::fs;
use std::process::ExitCode;
use std::time::Duration;

use serac_tests::judge::{source, Source as JudgeSource};
use serac_tests::runner::Runner;
use serac_tests::spec::{
    http_load, net_conn_cost, net_idle_watch, net_udp_echo, net_wrk, QemuTest,
};

use crate::bench::runner;
use crate::util::{Failure, Result};

/// The Linux 6.1 peers in the same QEMU (DESIGN.md §9), TSC ticks.
const LINUX_UDP_RTT: u64 = 22_805;
const LINUX_HTTP_REQUEST: u64 = 187_652;
/// udp-ping's measured round trips (its 200 less 10 of warm-up).
const UDP_ROUNDS: u64 = 190;
/// loadgen's requests in the `http_request` boot.
const HTTP_REQUESTS: u64 = 200;
/// Idle connections connhold opens (httpd reports at half and all).
const CONNS: u64 = 16;

/// One figure: key, value, the peer's or a note, what it is.
#[derive(Debug, Clone, PartialEq)]
struct Fig {
    key: &'static str,
    value: f64,
    decimals: usize,
    peer: Option<u64>,
    what: String,
}

impl Fig {
    fn value(&self) -> String {
        format!("{:.*}", self.decimals, self.value)
    }
}

/// The lines domain `name` printed (by the kernel's prefix), or the
/// kernel's own with `name` = `None`.
pub(crate) fn lines_of<'a>(serial: &'a str, name: Option<&str>) -> Vec<&'a str> {
    serial
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| match (source(l), name) {
            ((JudgeSource::Kernel, body), None) => Some(body),
            ((JudgeSource::Domain(n), body), Some(want)) if n == want => Some(body),
            _ => None,
        })
        .collect()
}

/// `BENCH key value` lines of domain `name`; the last value wins.
fn bench_of(serial: &str, name: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in lines_of(serial, Some(name)) {
        let mut it = l.strip_prefix("BENCH ").unwrap_or("").split_whitespace();
        if let (Some(k), Some(Ok(v))) = (it.next(), it.next().map(str::parse)) {
            m.insert(k.to_owned(), v);
        }
    }
    m
}

fn get(m: &BTreeMap<String, u64>, key: &str) -> std::result::Result<u64, String> {
    m.get(key)
        .copied()
        .ok_or_else(|| format!("no `BENCH {key}` line"))
}

/// `udp_rtt` from udp-ping's lines.
fn udp_rtt(serial: &str) -> std::result::Result<Fig, String> {
    let m = bench_of(serial, "udp-ping");
    let rounds = get(&m, "udp_rtt_rounds")?;
    if rounds != UDP_ROUNDS {
        return Err(format!(
            "udp-ping timed {rounds} round trips, not {UDP_ROUNDS}"
        ));
    }
    let median = get(&m, "udp_rtt_ticks_median")?;
    let (mean, cpu) = (
        get(&m, "udp_rtt_ticks")?,
        get(&m, "udp_rtt_client_cpu_ticks")?,
    );
    if median == 0 {
        return Err("udp_rtt_ticks_median is 0".into());
    }
    Ok(Fig {
        key: "udp_rtt",
        value: median as f64,
        decimals: 0,
        peer: Some(LINUX_UDP_RTT),
        what: format!(
            "TSC ticks, median of {rounds} 16-byte round trips udp-ping to udp-echo (mean {mean}; udp-ping's own CPU {cpu})"
        ),
    })
}

/// `http_request` from loadgen's lines.
fn http_request(serial: &str) -> std::result::Result<Fig, String> {
    let m = bench_of(serial, "loadgen");
    let timed = get(&m, "http_requests_timed")?;
    if timed != HTTP_REQUESTS {
        return Err(format!(
            "loadgen timed {timed} requests, not {HTTP_REQUESTS}"
        ));
    }
    // Every one answered right, or the figure is not of the page.
    let ok = lines_of(serial, Some("loadgen")).iter().any(|l| {
        l.starts_with(&format!(
            "loadgen: requests={HTTP_REQUESTS} errors=0 wrong=0 "
        ))
    });
    if !ok {
        return Err("loadgen's requests were not all answered right".into());
    }
    let p50 = get(&m, "http_request_ticks_p50")?;
    let mean = get(&m, "http_request_ticks")?;
    Ok(Fig {
        key: "http_request",
        value: p50 as f64,
        decimals: 0,
        peer: Some(LINUX_HTTP_REQUEST),
        what: format!(
            "TSC ticks, median of {timed} requests loadgen to httpd, one connection at a time: connect, GET /2k.html, 2,048 bytes, close (mean {mean})"
        ),
    })
}

/// The requests/s of one of the runner's wrk lines.
pub(crate) fn wrk_line_rps(l: &str) -> std::result::Result<f64, String> {
    let (_, report) = l
        .split_once("): ")
        .ok_or_else(|| format!("not a wrk line: {l:?}"))?;
    // The runner's line restates wrk's figures; parse what it kept.
    report
        .split(", ")
        .find_map(|p| p.strip_suffix(" requests/s"))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no rate in {l:?}"))
}

/// `wrk_rps` from the host's wrk reports (one line per server).
fn wrk_rps(host: &[String]) -> std::result::Result<Fig, String> {
    let mut total = 0.0;
    let mut each = Vec::new();
    for l in host {
        let rps = wrk_line_rps(l)?;
        total += rps;
        each.push(format!("{rps:.0}"));
    }
    if each.len() != 4 {
        return Err(format!("{} wrk reports, not 4", each.len()));
    }
    Ok(Fig {
        key: "wrk_rps",
        value: total,
        decimals: 0,
        peer: None,
        what: format!(
            "requests/s, four host wrk -t1 -c4 -d10s (16 connections) against the four httpd at once, plain TCG ({} each), no errors",
            each.join(", ")
        ),
    })
}

/// `idle_httpd_upcalls_per_s` from netwatch's window over the httpd
/// of `slots`.
fn idle_upcalls(serial: &str, slots: &[u32]) -> std::result::Result<Fig, String> {
    let m = bench_of(serial, "netwatch");
    let window_ms = get(&m, "idle_window_ms")?;
    if window_ms == 0 || slots.len() != 4 {
        return Err("no window, or not four httpd".into());
    }
    let counts = slots
        .iter()
        .map(|s| get(&m, &format!("idle_upcalls_{s}")))
        .collect::<std::result::Result<Vec<u64>, String>>()?;
    let window = window_ms as f64 / 1000.0;
    let mut rates: Vec<f64> = counts.iter().map(|&c| c as f64 / window).collect();
    rates.sort_by(f64::total_cmp);
    let median = (rates[1] + rates[2]) / 2.0;
    Ok(Fig {
        key: "idle_httpd_upcalls_per_s",
        value: median,
        decimals: 2,
        peer: None,
        what: format!(
            "upcalls/s of an idle httpd, median of the four: the kernel's counts (read through the supervisor's Stat) over {window} s after a 2 s start-up: {counts:?}"
        ),
    })
}

/// httpd's heap line at `n` open connections.
fn httpd_heap(serial: &str, n: u64) -> std::result::Result<u64, String> {
    let prefix = format!("httpd: {n} connection(s) open, heap in use ");
    lines_of(serial, Some("httpd"))
        .iter()
        .find_map(|l| {
            l.strip_prefix(&prefix)?
                .strip_suffix(" bytes")?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("httpd did not report its heap at {n} connections"))
}

/// `bytes_per_connection` (httpd's side) and the client's.
fn conn_cost(serial: &str) -> std::result::Result<Vec<Fig>, String> {
    let m = bench_of(serial, "connhold");
    if get(&m, "conn_open")? != CONNS {
        return Err(format!("connhold did not hold {CONNS} connections"));
    }
    let half = CONNS / 2;
    let per = |lo: u64, hi: u64| -> std::result::Result<f64, String> {
        hi.checked_sub(lo)
            .map(|d| d as f64 / half as f64)
            .ok_or_else(|| format!("the heap shrank from {lo} to {hi} bytes"))
    };
    let (s8, s16) = (httpd_heap(serial, half)?, httpd_heap(serial, CONNS)?);
    let (c8, c16) = (
        get(&m, &format!("conn_client_heap_{half}"))?,
        get(&m, &format!("conn_client_heap_{CONNS}"))?,
    );
    Ok(vec![
        Fig {
            key: "bytes_per_connection",
            value: per(s8, s16)?,
            decimals: 0,
            peer: None,
            what: format!(
                "heap bytes an idle open connection costs httpd: (in use at {CONNS} - at {half}) / {half} ({s16} - {s8})"
            ),
        },
        Fig {
            key: "bytes_per_connection_client",
            value: per(c8, c16)?,
            decimals: 0,
            peer: None,
            what: format!(
                "the same for the client that opened them, connhold ({c16} - {c8})"
            ),
        },
    ])
}

/// Boots `t`; a failed boot fails the bench. The serial log and the
/// host's lines.
fn boot(runner: &mut Runner, t: &QemuTest) -> Result<(String, Vec<String>)> {
    let out = runner.run(t);
    if !out.passed() {
        eprint!("{}", out.report());
        return Err(Failure(format!("bench scenario `{}` failed", t.name)));
    }
    Ok((fs::read_to_string(&out.log).unwrap_or_default(), out.host))
}

fn icount(t: QemuTest) -> QemuTest {
    t.qemu_args(["-icount", "shift=0"])
        .timeout(Duration::from_secs(300))
}

/// `cargo xtask bench net [--json]`.
pub fn net(json: bool) -> Result<ExitCode> {
    let mut runner = runner()?;
    let bad = |e: String| Failure(format!("bench net: {e}"));
    eprintln!("xtask: bench: booting `net_udp` under -icount shift=0");
    let (udp, _) = boot(&mut runner, &icount(net_udp_echo("bench_net_udp")))?;
    eprintln!("xtask: bench: booting `net_http` under -icount shift=0");
    let (http, _) = boot(
        &mut runner,
        &icount(http_load(
            "bench_net_http",
            1,
            &format!("targets=1 conns=1 requests={HTTP_REQUESTS} alpha=0 path=/2k.html expect=2048 keepalive=no"),
        )),
    )?;
    eprintln!("xtask: bench: booting `net_wrk` (plain TCG, host wrk for 10 s)");
    let (_, wrk) = boot(&mut runner, &net_wrk("bench_net_wrk"))?;
    eprintln!("xtask: bench: booting `net_idle` (plain TCG, the web host and netwatch)");
    let (idle_test, slots) = net_idle_watch("bench_net_idle");
    let (idle, _) = boot(&mut runner, &idle_test)?;
    eprintln!("xtask: bench: booting `net_conns` (plain TCG)");
    let (conns, _) = boot(&mut runner, &net_conn_cost("bench_net_conns"))?;
    let mut figs = vec![
        udp_rtt(&udp).map_err(bad)?,
        http_request(&http).map_err(bad)?,
        wrk_rps(&wrk).map_err(bad)?,
        idle_upcalls(&idle, &slots).map_err(bad)?,
    ];
    figs.extend(conn_cost(&conns).map_err(bad)?);
    if json {
        let mut parts: Vec<String> = figs
            .iter()
            .map(|f| format!("\"{}\": {}", f.key, f.value()))
            .collect();
        parts.push(format!(
            "\"linux_udp_rtt\": {LINUX_UDP_RTT}, \"linux_http_request\": {LINUX_HTTP_REQUEST}"
        ));
        parts.push(
            "\"units\": \"udp_rtt, http_request: TSC ticks under -icount shift=0 (instructions), medians; \
             wrk_rps: requests/s, plain TCG wall clock; idle_httpd_upcalls_per_s: kernel upcall counts; \
             bytes_per_connection: heap bytes\""
                .into(),
        );
        println!("{{{}}}", parts.join(", "));
    } else {
        println!("| figure | value | Linux peer | what |");
        println!("|---|---:|---:|---|");
        for f in &figs {
            let peer = f.peer.map_or(String::new(), |p| p.to_string());
            println!("| {} | {} | {peer} | {} |", f.key, f.value(), f.what);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_counts_must_be_the_runs() {
        let ok = "[5:1 udp-ping] BENCH udp_rtt_rounds 190\n[5:1 udp-ping] BENCH udp_rtt_ticks_median 25000\n\
                  [5:1 udp-ping] BENCH udp_rtt_ticks 25100\n[5:1 udp-ping] BENCH udp_rtt_client_cpu_ticks 6500\n";
        assert_eq!(udp_rtt(ok).unwrap().value, 25000.0);
        assert!(udp_rtt(&ok.replace("rounds 190", "rounds 12")).is_err());
        // Another domain's lines do not count.
        assert!(udp_rtt(&ok.replace("udp-ping]", "evil]")).is_err());
    }

    #[test]
    fn http_needs_every_answer_right() {
        let ok = "[5:1 loadgen] loadgen: requests=200 errors=0 wrong=0 rps=1\n\
                  [5:1 loadgen] BENCH http_requests_timed 200\n[5:1 loadgen] BENCH http_request_ticks_p50 100000\n\
                  [5:1 loadgen] BENCH http_request_ticks 110000\n";
        assert_eq!(http_request(ok).unwrap().value, 100000.0);
        assert!(http_request(&ok.replace("wrong=0", "wrong=3")).is_err());
    }

    #[test]
    fn idle_rate_is_over_the_window() {
        let s =
            "[11:1 netwatch] BENCH idle_window_ms 6000\n[11:1 netwatch] BENCH idle_upcalls_7 0\n\
                 [11:1 netwatch] BENCH idle_upcalls_8 3\n[11:1 netwatch] BENCH idle_upcalls_9 3\n\
                 [11:1 netwatch] BENCH idle_upcalls_10 60\n";
        let f = idle_upcalls(s, &[7, 8, 9, 10]).unwrap();
        assert_eq!(f.value, 0.5);
        assert!(idle_upcalls(s, &[7, 8, 9, 11]).is_err());
        assert!(idle_upcalls(&s.replace("netwatch]", "httpd]"), &[7, 8, 9, 10]).is_err());
    }

    #[test]
    fn connection_cost_is_marginal() {
        let s = "[3:1 httpd] httpd: 8 connection(s) open, heap in use 1000 bytes\n\
                 [3:1 httpd] httpd: 16 connection(s) open, heap in use 9000 bytes\n\
                 [4:1 connhold] BENCH conn_client_heap_8 500\n[4:1 connhold] BENCH conn_client_heap_16 2100\n\
                 [4:1 connhold] BENCH conn_open 16\n";
        let f = conn_cost(s).unwrap();
        assert_eq!((f[0].value, f[1].value), (1000.0, 200.0));
        assert!(conn_cost(&s.replace("conn_open 16", "conn_open 9")).is_err());
        assert!(conn_cost(&s.replace("9000", "10")).is_err());
    }

    #[test]
    fn wrk_sums_four_servers() {
        let l = |r: &str| {
            format!("wrk 127.0.0.1:1 (10.0.1.7:80): 100 requests in 10.00 s, {r} requests/s, socket errors 0/0/0/0, non-2xx 0")
        };
        let v: Vec<String> = ["1.5", "2.5", "3.0", "3.0"].iter().map(|r| l(r)).collect();
        assert_eq!(wrk_rps(&v).unwrap().value, 10.0);
        assert!(wrk_rps(&v[..3]).is_err());
    }
}
