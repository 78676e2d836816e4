//! `cargo xtask bench web`: Denali's Figure 3 on Serac (docs/performance.md
//! says what each key means).
//!
//! For each N one boot (`serac_tests::spec::web::web_scale`): N paged
//! httpd, the swapper, the disk and the vnic in 1 GiB; loadgen reads 16 MiB
//! of its disk raw, touches every httpd once, then drives them for a timed
//! phase under Zipf(0.8) and one under uniform choice, and reads the 16 MiB
//! again. Per (N, distribution):
//!
//! - `web_rps`, `p50_us`, `p99_us`: loadgen's phase line (requests over the
//!   phase's duration on Ilwaco's global clock; a fixed histogram).
//! - `swap_ins_per_s`, `page_ins_per_s`: the swapper's counters, its last
//!   summary before the phase started and before it ended (it prints at
//!   most once a second), over the phase's duration.
//! - `wrk_rps` (N <= 100): host wrk against 4 httpd through hostfwd
//!   after the phases, while loadgen holds off.
//! - `resident_pages`, `resident_domains` and `memory_in_use_bytes` at the
//!   phase's end: the swapper's resident pages; httpd started (the
//!   supervisor's lines) less those swapped out whole (the swapper's
//!   swap-outs less swap-ins); and the pages the supervisor gave every
//!   domain at its start, plus the swapper's resident pages, plus the
//!   kernel's heap and domain frames (its stats line at the end).
//!
//! And per N, `raw_disk_bound_rps`: loadgen's faster raw sequential read
//! rate in the same boot over the bytes one swap-in reads (the median httpd's
//! pages held by the swapper, from the supervisor's memory rows): the
//! requests/s if every request needed a swap-in.
//!
//! Lines count only from the kernel and the named domains, by the
//! kernel's prefix.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serac_tests::judge::{source, Source as JudgeSource};
use serac_tests::runner::Runner;
use serac_tests::spec::web::{web_scale, Web};

use crate::bench::{number_after as after, runner};
use crate::bench_disk::median;
use crate::bench_net::{lines_of, wrk_line_rps};
use crate::util::{out_dir, Failure, Result};

/// `cargo xtask bench web`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct WebOpts {
    pub json: bool,
    pub plot: bool,
    pub sizes: Vec<u32>,
    pub ceiling: bool,
}

/// The sizes; a run of all of them is a full run.
const FULL: [u32; 4] = [10, 100, 1000, 10_000];
/// Seconds of each timed phase.
const PHASE_S: u32 = 20;
/// The distributions, as loadgen's Zipf exponents.
const ALPHAS: [(f64, &str); 2] = [(0.8, "zipf"), (0.0, "uniform")];
/// Largest N with host wrk beside loadgen, and how many httpd it drives.
const WRK_MAX_N: u32 = 100;
const WRK_SERVERS: u32 = 4;
/// Sizes above this (more httpd than memory holds) get phases settled
/// first and a longer request deadline.
const SETTLE_ABOVE: u32 = 1000;
/// The ceiling's target, its first probe.
const CEILING_TARGET: u32 = 100_000;
/// The search stops when the largest N that passed is within this many
/// percent of the smallest known to fail.
const CEILING_GAP_PCT: u32 = 5;
/// loadgen's sweep clients in a probe: the most it takes, since each touch
/// of a swapped-out httpd waits for its swap-in (32 asked for more and
/// failed the probe of 100,000 at loadgen's config parse, after the boot).
const CEILING_CONNS: u32 = 24;
const _: () = assert!(CEILING_CONNS as usize <= serac_netapp_core::config::LOADGEN_MAX_CONNS);
/// The probes' boots are `bench_web_ceiling_N`.
const CEILING_TAG: &str = "ceiling_";

/// Parses `bench web`'s options.
pub fn parse(rest: &[String]) -> std::result::Result<WebOpts, String> {
    let mut o = WebOpts {
        json: false,
        plot: false,
        sizes: FULL.to_vec(),
        ceiling: false,
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--plot" => o.plot = true,
            "--ceiling" => o.ceiling = true,
            "--sizes" => {
                let v = it.next().ok_or("--sizes needs a list, e.g. 10,100")?;
                o.sizes = v
                    .split(',')
                    .map(|n| match n.trim().parse::<u32>() {
                        Ok(n) if (1..=CEILING_TARGET).contains(&n) => Ok(n),
                        _ => Err(format!("bad size `{n}` (1..={CEILING_TARGET})")),
                    })
                    .collect::<std::result::Result<_, _>>()?;
            }
            other => return Err(format!("`bench web` does not take `{other}`")),
        }
    }
    Ok(o)
}

/// One phase's figures.
#[derive(Debug, Clone, PartialEq)]
struct Phase {
    alpha: f64,
    requests: u64,
    errors: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    swap_ins: u64,
    page_ins: u64,
    resident_pages: u64,
    /// Domains swapped out whole at the phase's end.
    swapped_out: u64,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 * 1e6 / self.duration_us.max(1) as f64
    }
    fn per_s(&self, n: u64) -> f64 {
        n as f64 * 1e6 / self.duration_us.max(1) as f64
    }
}

/// The swapper's counters from one summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Swapper {
    resident: u64,
    page_ins: u64,
    swap_outs: u64,
    swap_ins: u64,
}

fn swapper_line(l: &str) -> Option<Swapper> {
    l.strip_prefix("swapper: resident ")?;
    Some(Swapper {
        resident: after(l, "resident")?,
        page_ins: after(l, "page-ins")?,
        swap_outs: after(l, "swap-outs")?,
        swap_ins: after(l, "swap-ins")?,
    })
}

/// The phases loadgen ran, with the swapper's counters around each.
fn phases(serial: &str) -> std::result::Result<Vec<Phase>, String> {
    let mut out = Vec::new();
    let mut last = Swapper::default();
    let mut base = None;
    for l in serial.lines().map(|l| l.trim_end_matches('\r')) {
        match source(l) {
            (JudgeSource::Domain("swapper"), b) => {
                if let Some(s) = swapper_line(b) {
                    last = s;
                }
            }
            (JudgeSource::Domain("loadgen"), b) if b.starts_with("loadgen: phase start ") => {
                base = Some(last);
            }
            (JudgeSource::Domain("loadgen"), b) if b.starts_with("loadgen: phase done ") => {
                let s0 = base.take().ok_or_else(|| format!("no start for `{b}`"))?;
                let get = |k: &str| after(b, k).ok_or_else(|| format!("no `{k}` in `{b}`"));
                let alpha = b
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("alpha="))
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("no alpha in `{b}`"))?;
                out.push(Phase {
                    alpha,
                    requests: get("requests=")?,
                    errors: get("errors=")? + get("wrong=")?,
                    duration_us: get("duration_us=")?,
                    p50_us: get("p50_us=")?,
                    p99_us: get("p99_us=")?,
                    swap_ins: last.swap_ins.saturating_sub(s0.swap_ins),
                    page_ins: last.page_ins.saturating_sub(s0.page_ins),
                    resident_pages: last.resident,
                    swapped_out: last.swap_outs.saturating_sub(last.swap_ins),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// loadgen's raw reads (before and after the load), bytes/s: the faster,
/// the one the rest of the machine disturbed least.
fn raw_rate(serial: &str) -> Option<f64> {
    lines_of(serial, Some("loadgen"))
        .into_iter()
        .filter(|l| l.starts_with("loadgen: raw read "))
        .filter_map(|l| {
            let blocks = after(l, "raw read")?;
            let bytes = after(l, "blocks of")?;
            let us = after(l, "bytes in")?;
            (us > 0 && blocks > 0).then(|| (blocks * bytes) as f64 * 1e6 / us as f64)
        })
        .reduce(f64::max)
}

/// Bytes in use but for the swapper's resident pages: the pages the
/// supervisor gave each domain at its start (its own image and eager
/// frames), each shared code image once (its last count), and the kernel's
/// heap and frames for domains (its stats at the end).
fn fixed_bytes(serial: &str) -> Option<u64> {
    let sup = lines_of(serial, Some("supervisor"));
    let mut shared = std::collections::BTreeMap::new();
    for l in &sup {
        if let Some((name, rest)) = l
            .strip_prefix("supervisor: code image ")
            .and_then(|r| r.split_once(": "))
        {
            if let Some(p) = after(rest, "") {
                shared.insert(name, p);
            }
        }
    }
    let given: u64 = sup
        .iter()
        .filter(|l| l.starts_with("supervisor: started "))
        .filter_map(|l| after(l.rsplit_once('(')?.1, ""))
        .sum::<u64>()
        + shared.values().sum::<u64>();
    let k = lines_of(serial, None)
        .into_iter()
        .find(|l| l.starts_with("KERNEL stats:"))?;
    let (heap, frames) = (after(k, "heap in use")?, after(k, "domain frames")?);
    Some((given + frames) * 4096 + heap * 1024)
}

/// The last table's rows (those printed just before the last total).
fn last_rows(serial: &str) -> Vec<u64> {
    let mut rows = Vec::new();
    let mut cur = Vec::new();
    for l in lines_of(serial, Some("supervisor")) {
        if let Some(row) = l.strip_prefix("supervisor: memory httpd") {
            if let (Some(r), Some(s)) = (after(row, "resident"), after(row, "swapped")) {
                cur.push(r + s);
            }
        } else if l.starts_with("supervisor: memory total:") {
            rows = std::mem::take(&mut cur);
        }
    }
    rows
}

/// The raw-disk bound: requests/s if each needed a swap-in of `pages`
/// 4 KiB pages read at `raw` bytes/s.
fn bound(raw: f64, pages: f64) -> Option<f64> {
    (pages > 0.0).then(|| raw / (pages * 4096.0))
}

/// The first line that says why a boot stopped: the supervisor's or the
/// kernel's.
fn why_stopped(serial: &str) -> Option<String> {
    let bad = [
        "fail",
        "error",
        "cannot",
        "refused",
        "out of",
        "exhausted",
        "full",
    ];
    let sup = lines_of(serial, Some("supervisor")).into_iter().find(|l| {
        let l = l.to_ascii_lowercase();
        let died = l.contains(" exited: ") && !l.ends_with("with code 0");
        died || bad.iter().any(|b| l.contains(b)) && !l.contains("io-errors")
    });
    let kernel = lines_of(serial, None)
        .into_iter()
        .find(|l| l.contains("panic") || l.contains("PANIC"));
    sup.or(kernel).map(str::to_owned)
}

/// httpd the supervisor started: one line each, or one line for the lot
/// (`started 200 x httpd`) when there are many.
fn started(serial: &str) -> u64 {
    lines_of(serial, Some("supervisor"))
        .iter()
        .map(|l| {
            if l.starts_with("supervisor: started httpd#") {
                1
            } else if l.ends_with(" x httpd") {
                after(l, "supervisor: started").unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

/// httpd started so far by a paced boot: the supervisor's last
/// `starting httpd: K of N started` (its progress while it waits for
/// memory), before its final `started N x httpd`.
fn starting(serial: &str) -> u64 {
    lines_of(serial, Some("supervisor"))
        .iter()
        .rev()
        .filter(|l| l.contains(" started, "))
        .find_map(|l| after(l, "supervisor: starting httpd:"))
        .unwrap_or(0)
}

/// What one size gave.
#[derive(Debug, Clone, PartialEq)]
struct Size {
    n: u32,
    /// `None`: every figure is there; else why not.
    failed: Option<String>,
    started: u64,
    phases: Vec<Phase>,
    raw_bytes_per_s: Option<f64>,
    swap_in_pages: Option<f64>,
    /// See [`fixed_bytes`].
    fixed_bytes: Option<u64>,
    wrk_rps: Option<f64>,
    elapsed_s: f64,
}

impl Size {
    fn bound_rps(&self) -> Option<f64> {
        bound(self.raw_bytes_per_s?, self.swap_in_pages?)
    }
    fn resident_domains(&self, p: &Phase) -> u64 {
        self.started.saturating_sub(p.swapped_out)
    }
    fn memory_in_use(&self, p: &Phase) -> Option<u64> {
        Some(self.fixed_bytes? + p.resident_pages * 4096)
    }
}

/// The figures of one boot's serial log and host lines, which should
/// have `want` phases.
fn size_of(n: u32, want: usize, serial: &str, host: &[String], problems: &[String]) -> Size {
    // A paced boot that stopped: how far its starts got.
    let started = started(serial).max(starting(serial));
    let mut failed = None;
    let phases = phases(serial).unwrap_or_else(|e| {
        failed = Some(e);
        Vec::new()
    });
    let rows = last_rows(serial);
    let rows_f: Vec<f64> = rows.iter().map(|&p| p as f64).collect();
    let wrk: std::result::Result<Vec<f64>, String> = host.iter().map(|l| wrk_line_rps(l)).collect();
    let mut s = Size {
        n,
        failed: None,
        started,
        raw_bytes_per_s: raw_rate(serial),
        swap_in_pages: (!rows_f.is_empty()).then(|| median(&rows_f)),
        fixed_bytes: fixed_bytes(serial),
        wrk_rps: wrk.ok().filter(|v| !v.is_empty()).map(|v| v.iter().sum()),
        phases,
        elapsed_s: 0.0,
    };
    // A boot that never ran (a host tool missing, QEMU refused): the
    // runner's reason, not the empty log's.
    let why = if let (true, Some(p)) = (serial.trim().is_empty(), problems.first()) {
        Some(p.clone())
    } else if let Some(f) = failed {
        Some(f)
    } else if started < u64::from(n) {
        Some(format!("{started} of {n} httpd started"))
    } else if s.phases.len() < want {
        Some(format!("{} of {want} phases ran", s.phases.len()))
    } else if let Some(p) = s.phases.iter().find(|p| p.errors > 0) {
        Some(format!(
            "{} request(s) failed under alpha {}",
            p.errors, p.alpha
        ))
    } else {
        problems.first().cloned()
    };
    s.failed = why.map(|w| match why_stopped(serial) {
        Some(line) => format!("{w}; {line}"),
        None => w,
    });
    s
}

/// Echoes the boot's progress from its serial log every 10 s until
/// `stop`: httpd started, loadgen's last progress line, elapsed time.
fn progress(log: PathBuf, n: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let t0 = Instant::now();
        let mut next = Duration::from_secs(10);
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(200));
            if t0.elapsed() < next {
                continue;
            }
            next += Duration::from_secs(10);
            let serial = fs::read_to_string(&log).unwrap_or_default();
            let lg = lines_of(&serial, Some("loadgen"));
            let last = lg
                .iter()
                .rev()
                .find(|l| l.starts_with("loadgen: progress ") || l.starts_with("loadgen: phase "))
                .map_or("loadgen: -", |l| l);
            eprintln!(
                "xtask: bench web N={n}: {}/{n} httpd started, {} s; {}",
                started(&serial).max(starting(&serial)),
                t0.elapsed().as_secs(),
                last.trim_start_matches("loadgen: ")
            );
        }
    })
}

/// One boot of `n` httpd with phases of `secs` seconds, named `bench_web_`
/// `tag` and `n`.
fn boot(runner: &mut Runner, tag: &str, n: u32, secs: u32, alphas: &[f64]) -> Size {
    let probe = tag == CEILING_TAG;
    let w = Web {
        n,
        secs,
        alphas: alphas.to_vec(),
        conns: if probe { CEILING_CONNS } else { 8 },
        wrk: if n <= WRK_MAX_N && secs >= 10 {
            WRK_SERVERS.min(n)
        } else {
            0
        },
        mem: "1G",
        // Past what memory holds, a miss waits for swap-ins queued before
        // it (p99 8 s at 10,000); and a phase starts from the cache the
        // last left (the sweep's last touched, not Zipf's popular ones),
        // so each phase is first run unmeasured for a minute.
        request_s: if n > SETTLE_ABOVE { 60 } else { 10 },
        settle_s: if n > SETTLE_ABOVE && secs >= 10 {
            60
        } else {
            0
        },
    };
    let name = format!("bench_web_{tag}{n}");
    let t = match web_scale(&name, &w) {
        // A probe's boot and sweep take about N / 30 s; the spec's
        // 3 s per httpd would let a stuck one of 100,000 run for days.
        Ok(t) if probe => t.timeout(Duration::from_secs(900 + u64::from(n) / 8)),
        Ok(t) => t,
        Err(e) => {
            return Size {
                n,
                failed: Some(format!("cannot make the boot: {e}")),
                ..size_of(n, 0, "", &[], &[])
            }
        }
    };
    eprintln!(
        "xtask: bench web: booting {n} httpd in 1 GiB (timeout {} s)",
        t.timeout.as_secs()
    );
    let log = out_dir().join("tests").join(format!("{name}.log"));
    let stop = Arc::new(AtomicBool::new(false));
    let echo = progress(log, n, stop.clone());
    let t0 = Instant::now();
    let out = runner.run(&t);
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    let serial = fs::read_to_string(&out.log).unwrap_or_default();
    let mut s = size_of(n, alphas.len(), &serial, &out.host, &out.problems);
    s.elapsed_s = t0.elapsed().as_secs_f64();
    match &s.failed {
        Some(why) => eprintln!(
            "xtask: bench web N={n}: FAILED: {why} (log {})",
            out.log.display()
        ),
        None => eprintln!("xtask: bench web N={n}: done in {:.0} s", s.elapsed_s),
    }
    s
}

fn num(v: Option<f64>, d: usize) -> String {
    v.map_or("null".into(), |v| format!("{v:.d$}"))
}

fn json(sizes: &[Size], ceiling: Option<&Ceiling>) -> String {
    let mut parts = Vec::new();
    for s in sizes {
        let mut f = vec![
            format!("\"n\": {}", s.n),
            format!(
                "\"status\": {}",
                s.failed
                    .as_ref()
                    .map_or("\"ok\"".into(), |w| format!("{:?}", format!("failed: {w}")))
            ),
            format!("\"httpd_started\": {}", s.started),
            format!("\"raw_disk_bytes_per_s\": {}", num(s.raw_bytes_per_s, 0)),
            format!("\"swap_in_pages\": {}", num(s.swap_in_pages, 0)),
            format!("\"raw_disk_bound_rps\": {}", num(s.bound_rps(), 1)),
            format!("\"wrk_rps\": {}", num(s.wrk_rps, 1)),
        ];
        for (alpha, name) in ALPHAS {
            if let Some(p) = s.phases.iter().find(|p| p.alpha == alpha) {
                f.push(format!(
                    "\"{name}\": {{\"web_rps\": {:.1}, \"p50_us\": {}, \"p99_us\": {}, \"swap_ins_per_s\": {:.2}, \"page_ins_per_s\": {:.1}, \"resident_pages\": {}, \"resident_domains\": {}, \"memory_in_use_bytes\": {}, \"requests\": {}, \"errors\": {}, \"duration_us\": {}}}",
                    p.rps(), p.p50_us, p.p99_us, p.per_s(p.swap_ins), p.per_s(p.page_ins), p.resident_pages, s.resident_domains(p), num(s.memory_in_use(p).map(|v| v as f64), 0), p.requests, p.errors, p.duration_us
                ));
            }
        }
        parts.push(format!("{{{}}}", f.join(", ")));
    }
    let mut top = vec![format!("\"sizes\": [{}]", parts.join(", "))];
    if let Some(c) = ceiling {
        top.push(format!("\"domains_ceiling_1gib\": {}", c.ok.unwrap_or(0)));
        top.push(format!(
            "\"ceiling_first_failure\": {}",
            c.first_fail
                .as_ref()
                .map_or("null".into(), |(n, w)| format!(
                    "{{\"n\": {n}, \"why\": {w:?}}}"
                ))
        ));
    }
    top.push(format!(
        "\"units\": \"web_rps: requests/s (loadgen, {PHASE_S} s per distribution, connect-GET-close of 2 KiB, plain TCG, 1 GiB); p50_us/p99_us: microseconds; swap_ins_per_s: whole-domain swap-ins (swapper); raw_disk_bound_rps: raw sequential read bytes/s over swap_in_pages x 4096; resident_domains (httpd started less swapped out whole), memory_in_use_bytes (pages given at start + swapper-resident pages + kernel heap and domain frames): at the phase's end\""
    ));
    format!("{{{}}}\n", top.join(", "))
}

fn table(sizes: &[Size]) {
    println!("| N | distribution | web_rps | p50_us | p99_us | swap_ins_per_s | resident_pages | raw_disk_bound_rps | resident_domains | memory_in_use_MiB | wrk_rps |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in sizes {
        if let Some(w) = &s.failed {
            println!("| {} | FAILED | | | | | | | | | {w} |", s.n);
        }
        for (alpha, name) in ALPHAS {
            let Some(p) = s.phases.iter().find(|p| p.alpha == alpha) else {
                continue;
            };
            println!(
                "| {} | {name} | {:.1} | {} | {} | {:.2} | {} | {} | {} | {} | {} |",
                s.n,
                p.rps(),
                p.p50_us,
                p.p99_us,
                p.per_s(p.swap_ins),
                p.resident_pages,
                num(s.bound_rps(), 1),
                s.resident_domains(p),
                num(s.memory_in_use(p).map(|b| b as f64 / 1048576.0), 1),
                num(s.wrk_rps, 0),
            );
        }
    }
}

/// The curves of the plot: per distribution (every phase that ran, with
/// errors or not: the table and the JSON say which), and the bound.
fn curves(sizes: &[Size]) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut v: Vec<(String, Vec<(f64, f64)>)> = ALPHAS
        .iter()
        .map(|&(alpha, name)| {
            let label = if alpha > 0.0 {
                format!("Zipf({alpha})")
            } else {
                name.to_owned()
            };
            let pts = sizes
                .iter()
                .filter_map(|s| {
                    let p = s
                        .phases
                        .iter()
                        .find(|p| p.alpha == alpha && p.requests > 0)?;
                    Some((f64::from(s.n), p.rps()))
                })
                .collect();
            (label, pts)
        })
        .collect();
    let b = sizes
        .iter()
        .filter_map(|s| Some((f64::from(s.n), s.bound_rps()?)))
        .collect();
    v.push(("raw-disk bound".into(), b));
    v
}

fn plot(path: &Path, curves: &[(String, Vec<(f64, f64)>)]) -> Result {
    let err = |e: &dyn std::fmt::Display| Failure(format!("plot {}: {e}", path.display()));
    let pts = || curves.iter().flat_map(|c| c.1.iter().copied());
    let max_x = pts().map(|p| p.0).fold(10.0, f64::max) * 1.5;
    let max_y = pts().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let min_y = pts().map(|p| p.1).fold(max_y, f64::min).max(0.01) / 2.0;
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "bench web: throughput against httpd domains (1 GiB)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((5.0..max_x).log_scale(), (min_y..max_y).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("httpd domains (N)")
        .y_desc("requests/s")
        .draw()
        .map_err(|e| err(&e))?;
    crate::swap_plot::curves_and_legend(&mut chart, curves, true).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// The ceiling search: the largest N that passed, the first that failed.
#[derive(Debug, Clone, PartialEq)]
struct Ceiling {
    ok: Option<u32>,
    first_fail: Option<(u32, String)>,
}

/// The next probe, given the largest N that passed, the smallest that
/// failed and how many httpd that failed boot had started: the target
/// first (a boot of it is what answers the issue, and each probe costs
/// about N / 30 s in TCG); then bisection between the largest pass and
/// the failed boot's reach (a boot that stopped after K starts is taken to
/// stop there for any larger N: starts go in the same order), its first
/// step at 96 % of that reach; `None` when the target passed or the gap is
/// within [`CEILING_GAP_PCT`] % (or 1).
fn next_probe(ok: Option<u32>, fail: Option<(u32, u64)>) -> Option<u32> {
    let lo = ok.unwrap_or(0);
    let Some((f, reached)) = fail else {
        return (lo < CEILING_TARGET).then_some(CEILING_TARGET);
    };
    let reach = u32::try_from(reached.saturating_add(1)).unwrap_or(u32::MAX);
    let hi = f.min(reach.max(1));
    if hi <= lo.saturating_add((lo * CEILING_GAP_PCT / 100).max(1)) {
        return None;
    }
    let first = u32::try_from(u64::from(hi) * 96 / 100).unwrap_or(hi);
    Some(if ok.is_none() && first > lo {
        first.max(1)
    } else {
        lo + (hi - lo) / 2
    })
}

fn ceiling(runner: &mut Runner) -> Ceiling {
    let (mut ok, mut fail, mut first_fail) = (None, None::<(u32, u64)>, None);
    while let Some(n) = next_probe(ok, fail) {
        // One boot: every httpd started and answered the warm-up, then a
        // 1 s phase.
        let s = boot(runner, CEILING_TAG, n, 1, &[0.0]);
        match s.failed {
            None => ok = Some(n),
            Some(why) => {
                eprintln!(
                    "xtask: bench web --ceiling: N={n} failed after {} httpd started: {why}",
                    s.started
                );
                if first_fail.is_none() {
                    first_fail = Some((n, why));
                }
                if fail.is_none_or(|(f, _)| n < f) {
                    fail = Some((n, s.started));
                }
            }
        }
    }
    Ceiling { ok, first_fail }
}

/// `cargo xtask bench web [--json] [--plot] [--sizes ...] [--ceiling]`.
pub fn web(o: &WebOpts) -> Result<ExitCode> {
    let mut runner = runner()?;
    let dir = out_dir().join("bench");
    fs::create_dir_all(&dir).map_err(|e| Failure(format!("create {}: {e}", dir.display())))?;
    let (sizes, ceil) = if o.ceiling {
        let c = ceiling(&mut runner);
        println!(
            "domains_ceiling_1gib {}{}",
            c.ok.map_or("none".into(), |v| v.to_string()),
            c.first_fail
                .as_ref()
                .map_or(String::new(), |(n, w)| format!(" (N={n} failed: {w})"))
        );
        (Vec::new(), Some(c))
    } else {
        let alphas: Vec<f64> = ALPHAS.iter().map(|a| a.0).collect();
        let v: Vec<Size> = o
            .sizes
            .iter()
            .map(|&n| boot(&mut runner, "", n, PHASE_S, &alphas))
            .collect();
        table(&v);
        (v, None)
    };
    if o.json {
        let p = dir.join("web.json");
        fs::write(&p, json(&sizes, ceil.as_ref()))
            .map_err(|e| Failure(format!("write {}: {e}", p.display())))?;
        eprintln!("xtask: bench web: wrote {}", p.display());
    }
    if o.plot && !sizes.is_empty() {
        let p = dir.join("web.svg");
        plot(&p, &curves(&sizes))?;
        eprintln!("xtask: bench web: wrote {}", p.display());
        let full = FULL
            .iter()
            .all(|n| sizes.iter().any(|s| s.n == *n && s.failed.is_none()));
        if full {
            let docs = crate::util::root().join("docs").join("web-scale.svg");
            fs::copy(&p, &docs).map_err(|e| Failure(format!("copy to {}: {e}", docs.display())))?;
            eprintln!("xtask: bench web: a full run: copied to {}", docs.display());
        }
    }
    let failed = sizes.iter().any(|s| s.failed.is_some());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const RUN: &str = "\
[0:1 supervisor] supervisor: started httpd#0 as 4:1 (47 pages)\n\
[0:1 supervisor] supervisor: started httpd#1 as 5:1 (47 pages)\n\
[0:1 supervisor] supervisor: code image httpd: 40 shared page(s), one frame each in 1 domain(s)\n\
[0:1 supervisor] supervisor: code image httpd: 47 shared page(s), one frame each in 2 domain(s)\n\
[6:1 loadgen] loadgen: raw read 4096 blocks of 4096 bytes in 1000000 us\n\
[1:1 swapper] swapper: resident 100 swapped 0 page-ins 10 page-outs 0 swap-outs 2 swap-ins 2 io-errors 0\n\
[6:1 loadgen] loadgen: phase start alpha=0.8\n\
[1:1 swapper] swapper: resident 120 swapped 5 page-ins 30 page-outs 5 swap-outs 7 swap-ins 6 io-errors 0\n\
[6:1 loadgen] loadgen: phase done alpha=0.8 requests=400 errors=0 wrong=0 duration_us=2000000 rps=200 p50_us=900 p99_us=5000 targets=2 conns=8\n\
[6:1 loadgen] loadgen: phase start alpha=0.0\n\
[6:1 loadgen] loadgen: phase done alpha=0.0 requests=100 errors=0 wrong=0 duration_us=2000000 rps=50 p50_us=800 p99_us=4000 targets=2 conns=8\n\
[6:1 loadgen] loadgen: raw read 4096 blocks of 4096 bytes in 2000000 us\n\
[0:1 supervisor] supervisor: memory httpd#0 4:1: image 47 resident 50 swapped 10 swap-ins 1 swap-outs 1\n\
[0:1 supervisor] supervisor: memory httpd#1 5:1: image 47 resident 0 swapped 64 (swapped out) swap-ins 3 swap-outs 4\n\
[0:1 supervisor] supervisor: memory total: resident 50 swapped 74 pages, 1 domain(s) swapped out, 4 swap-in(s), 5 swap-out(s)\n\
KERNEL stats: 9 domain record(s), 9 created since boot, kernel frames in use since start 0 (0 KiB), heap in use 10 KiB, domain record 496 bytes, domain frames 1000\n";

    #[test]
    fn phases_take_the_swapper_around_each() {
        let p = phases(RUN).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].alpha, p[0].requests, p[0].p99_us), (0.8, 400, 5000));
        assert_eq!(
            (p[0].swap_ins, p[0].page_ins, p[0].resident_pages),
            (4, 20, 120)
        );
        assert_eq!((p[0].rps(), p[0].per_s(p[0].swap_ins)), (200.0, 2.0));
        // No swapper line in the second phase: nothing changed.
        assert_eq!((p[1].swap_ins, p[1].page_ins), (0, 0));
        // Another domain's lines do not count.
        assert!(phases(&RUN.replace("loadgen]", "httpd]"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn size_figures_and_the_bound() {
        let s = size_of(2, 2, RUN, &[], &[]);
        assert_eq!(s.failed, None);
        assert_eq!(s.started, 2);
        assert_eq!(
            started("[0:1 supervisor] supervisor: started 200 x httpd\n"),
            200
        );
        assert_eq!(s.raw_bytes_per_s, Some(4096.0 * 4096.0));
        // Median of 60 and 64 pages held per httpd.
        assert_eq!(s.swap_in_pages, Some(62.0));
        assert_eq!(s.bound_rps(), Some(4096.0 * 4096.0 / (62.0 * 4096.0)));
        // One of two swapped out whole (7 swap-outs, 6 swap-ins); (47 + 47
        // given + 47 shared + 1000 domain frames + 120 resident) pages +
        // 10 KiB.
        let p = &s.phases[0];
        assert_eq!(
            (s.resident_domains(p), s.memory_in_use(p)),
            (1, Some(1261 * 4096 + 10 * 1024))
        );
        assert_eq!(bound(1e6, 0.0), None);
    }

    #[test]
    fn failures_say_why() {
        let s = size_of(3, 2, RUN, &[], &[]);
        assert!(s.failed.unwrap().starts_with("2 of 3 httpd started"));
        let bad = RUN.replace(
            "errors=0 wrong=0 duration_us=2000000 rps=50",
            "errors=2 wrong=0 duration_us=2000000 rps=50",
        ) + "[0:1 supervisor] supervisor: httpd#2: create failed: OutOfHandles\n";
        let died = RUN.replace(
            "wrong=0 duration_us=2000000 rps=50",
            "wrong=1 duration_us=2000000 rps=50",
        ) + "[0:1 supervisor] supervisor: loadgen exited: halted with code 0\n\
               [0:1 supervisor] supervisor: httpd#1 exited: halted with code 1\n";
        let f = size_of(2, 2, &died, &[], &[]).failed.unwrap();
        assert!(f.ends_with("httpd#1 exited: halted with code 1"), "{f}");
        let f = size_of(2, 2, &bad, &[], &[]).failed.unwrap();
        assert!(
            f.contains("2 request(s) failed") && f.contains("OutOfHandles"),
            "{f}"
        );
        let half = RUN
            .split("[6:1 loadgen] loadgen: phase start alpha=0.0")
            .next()
            .unwrap();
        assert!(size_of(2, 2, half, &[], &[])
            .failed
            .unwrap()
            .contains("1 of 2 phases"));
        // The ceiling's probes want one.
        assert_eq!(size_of(2, 1, half, &[], &[]).failed, None);
    }

    #[test]
    fn starting_reads_the_count_not_the_stall_line() {
        let log = "[0:1 supervisor] supervisor: starting httpd: 6958 of 100000 started, 64 still starting\n\
                   [0:1 supervisor] supervisor: starting httpd: 64 domain(s) busy for 10 s; counted as started\n";
        assert_eq!(starting(log), 6958);
        assert_eq!(starting(""), 0);
    }

    #[test]
    fn ceiling_probes_the_target_then_bisects_below_the_reach() {
        assert_eq!(next_probe(None, None), Some(100_000));
        assert_eq!(next_probe(Some(100_000), None), None);
        // The target failed after 29,999 starts: 96 % of that reach first.
        assert_eq!(next_probe(None, Some((100_000, 29_999))), Some(28_800));
        // That passed: bisect up to the reach, within 5 %.
        assert_eq!(next_probe(Some(28_800), Some((100_000, 29_999))), None);
        assert_eq!(
            next_probe(Some(20_000), Some((100_000, 29_999))),
            Some(25_000)
        );
        // A failure that started every httpd (a request failed): N itself.
        assert_eq!(next_probe(Some(40), Some((80, 80))), Some(60));
        assert_eq!(next_probe(Some(58), Some((59, 59))), None);
        assert_eq!(next_probe(Some(1000), Some((1040, 1040))), None);
        // Nothing passed: down from 96 % of the reach, then halves.
        assert_eq!(next_probe(None, Some((10, 10))), Some(9));
        assert_eq!(next_probe(None, Some((9, 0))), None);
        assert_eq!(next_probe(None, Some((9, 3))), Some(3));
    }

    #[test]
    fn options() {
        let p = |s: &str| parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>());
        assert_eq!(p("").unwrap().sizes, FULL);
        let o = p("--json --plot --sizes 10,50").unwrap();
        assert!(o.json && o.plot && !o.ceiling && o.sizes == [10, 50]);
        assert!(p("--sizes").is_err() && p("--sizes 10,x").is_err() && p("--frob").is_err());
    }

    #[test]
    fn plot_draws_every_curve() {
        let s = size_of(2, 2, RUN, &[], &[]);
        let c = curves(&[s]);
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| c.1.len() == 1));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.svg");
        plot(&p, &c).unwrap();
        assert!(fs::read_to_string(&p).unwrap().contains("Zipf(0.8)"));
    }
}
