//! `cargo xtask bench swap`: swapping's figures (docs/performance.md says
//! what each means).
//!
//! - `swap_in_first_byte_vs_raw`, plain TCG: swapbench's rounds against an
//!   httpd it has the supervisor swap out whole; the median time to first
//!   byte of the next request, over the median time of a raw read of as
//!   many 4 KiB blocks from the same disk in the same run
//!   (`serac_tests::spec::swap::swap_web`).
//! - `swap_ins_per_s` and `page_ins_per_s`, plain TCG: loadgen, uniform
//!   over 50 httpd whose working sets exceed what the swapper keeps
//!   resident; whole-domain swap-ins (the supervisor's memory totals) and
//!   pages read back (the swapper's counters) over loadgen's run time
//!   (`serac_tests::spec::swap::swap_uniform`).
//! - `kernel_bytes_per_swapped_domain`: (kernel frames + kernel heap in
//!   use) with 250 swapped-out `ipcidler`s minus with 50, over 200
//!   (`serac_tests::spec::swap::swap_kernel_bytes`).
//! - `swapper_bytes_per_domain`: the swapper's record and slot entries for
//!   one swapped-out guest, from the sizes it prints, at the larger run's
//!   mean pages per swapped-out domain (its tables are reserved at start,
//!   so its heap does not grow with the count).
//! - `policy_fault_rate`: each policy's fault rate on `cargo xtask
//!   swap-sim`'s default Zipf(0.8) trace (host only), and
//!   `trace_fault_rate` on the faults the swapper recorded on its disk in
//!   the uniform run (`swap-sim --disk-trace`).
//!
//! Lines count only from the kernel and the named domains, by the
//! kernel's prefix.

use std::fs;
use std::process::ExitCode;

use serac_tests::judge::{source, Source as JudgeSource};
use serac_tests::runner::Runner;
use serac_tests::spec::swap::{swap_kernel_bytes, swap_uniform, swap_web};
use serac_tests::spec::QemuTest;

use crate::bench::{number_after as after, runner};
use crate::bench_disk::median;
use crate::bench_net::lines_of;
use crate::swap_sim::{self, Opts};
use crate::util::{Failure, Result};

/// The two counts of swapped-out guests the memory figures compare.
const SMALL: u32 = 50;
const LARGE: u32 = 250;

/// One figure.
#[derive(Debug, Clone, PartialEq)]
struct Fig {
    key: String,
    value: f64,
    decimals: usize,
    what: String,
}

/// `swap_in_first_byte_vs_raw` from swapbench's rounds.
fn first_byte(serial: &str) -> std::result::Result<Vec<Fig>, String> {
    let (mut cold, mut warm, mut raw, mut pages) = (vec![], vec![], vec![], vec![]);
    for l in lines_of(serial, Some("swapbench")) {
        if !l.starts_with("BENCH swap_round ") {
            continue;
        }
        let get = |k| after(l, k).ok_or_else(|| format!("no `{k}` in `{l}`"));
        cold.push(get("ttfb_us")? as f64);
        warm.push(get("resident_ttfb_us")? as f64);
        raw.push(get("raw_us")? as f64);
        pages.push(get("pages")? as f64);
    }
    if cold.len() < 5 {
        return Err(format!("swapbench reported {} rounds, not 5", cold.len()));
    }
    if pages.contains(&0.0) {
        return Err("a round swapped out no page".into());
    }
    let (c, w, r, p) = (median(&cold), median(&warm), median(&raw), median(&pages));
    Ok(vec![
        Fig {
            key: "swap_in_first_byte_vs_raw".into(),
            value: c / r.max(1.0),
            decimals: 2,
            what: format!(
                "time to first byte of a request to a swapped-out httpd, {c:.0} us, over a raw read of its {p:.0} pages, {r:.0} us (medians of {} rounds; resident: {w:.0} us)",
                cold.len()
            ),
        },
        Fig {
            key: "swap_in_pages".into(),
            value: p,
            decimals: 0,
            what: "pages the swapped-out httpd held in swap (median)".into(),
        },
    ])
}

/// `swap_ins_per_s` (whole domains) and `page_ins_per_s` from loadgen's run
/// time, the supervisor's totals and the swapper's counters from just
/// before loadgen started to the end.
fn swap_ins(serial: &str) -> std::result::Result<Vec<Fig>, String> {
    let lg = lines_of(serial, Some("loadgen"));
    let done = lg
        .iter()
        .find(|l| l.starts_with("loadgen: requests="))
        .ok_or("no loadgen summary")?;
    if !done.contains("errors=0 wrong=0") {
        return Err(format!("loadgen had errors: {done}"));
    }
    let (requests, rps) = (
        after(done, "requests=").ok_or("requests")? as f64,
        after(done, "rps=").ok_or("rps")? as f64,
    );
    let total = lines_of(serial, Some("supervisor"))
        .into_iter()
        .rev()
        .find(|l| l.starts_with("supervisor: memory total:"))
        .ok_or("no memory total")?;
    let ins = total
        .split(", ")
        .find_map(|p| p.strip_suffix(" swap-in(s)"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or("no swap-in count")? as f64;
    // The swapper's page-ins: its last summary before loadgen started, and
    // its last one.
    let mut base = None;
    let mut last = None;
    for l in serial.lines().map(|l| l.trim_end_matches('\r')) {
        match source(l) {
            (JudgeSource::Domain("supervisor"), b)
                if b.starts_with("supervisor: started loadgen ") =>
            {
                base = Some(last.unwrap_or(0));
            }
            (JudgeSource::Domain("swapper"), b) if b.starts_with("swapper: resident ") => {
                last = after(b, "page-ins");
            }
            _ => {}
        }
    }
    let base = base.ok_or("loadgen never started")?;
    let pages = last.ok_or("no swapper summary")?.saturating_sub(base) as f64;
    let secs = requests / rps.max(1.0);
    Ok(vec![
        Fig {
            key: "swap_ins_per_s".into(),
            value: ins / secs,
            decimals: 1,
            what: format!(
                "whole-domain swap-ins in {secs:.1} s of uniform load ({requests:.0} requests at {rps:.0}/s) over 50 httpd; none idles 2 s, so none is swapped out whole (Denali: 7/s on 2002 disks)"
            ),
        },
        Fig {
            key: "page_ins_per_s".into(),
            value: pages / secs,
            decimals: 1,
            what: format!(
                "pages read back from swap in the same run ({pages:.0}), over its time: 50 working sets of about 58 pages in the swapper's 2,048 resident pages"
            ),
        },
    ])
}

/// Kernel bytes (frames + heap) at the end of a run, after checking every
/// ipcidler is swapped out, and the swapper's metadata for one of them:
/// its record and per-page sizes (which it prints) at the run's mean pages
/// per swapped-out domain.
fn memory_at(serial: &str, n: u64) -> std::result::Result<(u64, f64), String> {
    let k = lines_of(serial, None)
        .into_iter()
        .find(|l| l.starts_with("KERNEL stats:"))
        .ok_or("no KERNEL stats line")?;
    let frames = after(k, "domain frames").ok_or("domain frames")?;
    let heap = after(k, "heap in use").ok_or("kernel heap")?;
    let out = lines_of(serial, Some("supervisor"))
        .into_iter()
        .rev()
        .find(|l| l.starts_with("supervisor: memory total:"))
        .ok_or("no memory total")?;
    if !out.contains(&format!(" {n} domain(s) swapped out")) {
        return Err(format!("not all {n} swapped out: {out}"));
    }
    let swapped = after(out, "swapped").ok_or("swapped pages")? as f64;
    let meta = lines_of(serial, Some("swapper"))
        .into_iter()
        .find(|l| l.starts_with("swapper: metadata per swapped-out domain:"))
        .ok_or("no swapper metadata line")?;
    let rec = after(meta, "domain:").ok_or("record bytes")? as f64;
    // A page of a run costs bits (of the slot map), one paged out alone bytes.
    let per_page = after(meta, "bytes and").ok_or("page bytes")? as f64
        / if meta.contains("bits a page") {
            8.0
        } else {
            1.0
        };
    Ok((
        frames * 4096 + heap * 1024,
        rec + per_page * swapped / n as f64,
    ))
}

fn policies() -> Result<Vec<Fig>> {
    let o = Opts {
        policies: swap_sim::POLICIES.iter().map(|p| (*p).into()).collect(),
        ..Opts::default()
    };
    let reports = swap_sim::run_all(&o, None, o.frames)?;
    Ok(reports
        .iter()
        .map(|r| Fig {
            key: format!("policy_fault_rate_{}", r.policy),
            value: r.fault_rate(),
            decimals: 4,
            what: format!(
                "faults per access, swap-sim's default Zipf(0.8) trace: {} domains x {} pages, {} frames, {} requests",
                o.domains, o.pages, o.frames, o.requests
            ),
        })
        .collect())
}

fn boot(runner: &mut Runner, t: &QemuTest) -> Result<String> {
    Ok(boot_at(runner, t)?.0)
}

/// [`boot`], and where its disk image was.
fn boot_at(runner: &mut Runner, t: &QemuTest) -> Result<(String, std::path::PathBuf)> {
    eprintln!("xtask: bench: booting `{}`", t.name);
    let out = runner.run(t);
    if !out.passed() {
        eprint!("{}", out.report());
        return Err(Failure(format!("bench scenario `{}` failed", t.name)));
    }
    let img = out.log.with_file_name(format!("{}.img", t.name));
    Ok((fs::read_to_string(&out.log).unwrap_or_default(), img))
}

/// Each policy's fault rate on the faults the swapper recorded in the
/// uniform run, at the swapper's 2,048 resident pages.
fn trace_policies(img: &std::path::Path) -> Result<Vec<Fig>> {
    let t = swap_sim::disk_trace(img)?;
    if t.len() < 1000 {
        return Err(Failure(format!("only {} faults recorded", t.len())));
    }
    let o = Opts {
        policies: swap_sim::POLICIES.iter().map(|p| (*p).into()).collect(),
        frames: 2048,
        ..Opts::default()
    };
    let reports = swap_sim::run_all(&o, Some(&t), o.frames)?;
    Ok(reports
        .iter()
        .map(|r| Fig {
            key: format!("trace_fault_rate_{}", r.policy),
            value: r.fault_rate(),
            decimals: 4,
            what: format!(
                "faults per access replaying the {} faults the swapper recorded in the uniform run, at 2,048 frames",
                t.len()
            ),
        })
        .collect())
}

/// `cargo xtask bench swap [--json]`.
pub fn swap(json: bool) -> Result<ExitCode> {
    let bad = |e: String| Failure(format!("bench swap: {e}"));
    let mut figs = policies()?;
    let mut runner = runner()?;
    let web = boot(&mut runner, &swap_web("bench_swap_web"))?;
    figs.extend(first_byte(&web).map_err(bad)?);
    let (uni, img) = boot_at(&mut runner, &swap_uniform("bench_swap_uniform"))?;
    figs.extend(swap_ins(&uni).map_err(bad)?);
    figs.extend(trace_policies(&img)?);
    // The swapper keeps swap-out records for 256 domains (its 1 MiB heap).
    let (lo, hi) = (SMALL, LARGE);
    let small = boot(&mut runner, &swap_kernel_bytes("bench_swap_small", lo))?;
    let big = boot(&mut runner, &swap_kernel_bytes("bench_swap_large", hi))?;
    let (k0, _) = memory_at(&small, u64::from(lo)).map_err(bad)?;
    let (k1, s1) = memory_at(&big, u64::from(hi)).map_err(bad)?;
    let n = f64::from(hi - lo);
    figs.push(Fig {
        key: "kernel_bytes_per_swapped_domain".into(),
        value: k1.saturating_sub(k0) as f64 / n,
        decimals: 0,
        what: format!("(kernel frames + kernel heap) with {hi} swapped-out ipcidlers (one handle each) minus with {lo}, / {}; target 512", hi - lo),
    });
    figs.push(Fig {
        key: "swapper_bytes_per_domain".into(),
        value: s1,
        decimals: 0,
        what: format!(
            "the swapper's record and slot entries for one swapped-out ipcidler (its sizes, at the {hi}-guest run's mean pages per domain; its tables are reserved at start)"
        ),
    });
    if json {
        let parts: Vec<String> = figs
            .iter()
            .map(|f| format!("\"{}\": {:.*}", f.key, f.decimals, f.value))
            .collect();
        println!("{{{}}}", parts.join(", "));
    } else {
        println!("| figure | value | what |");
        println!("|---|---:|---|");
        for f in &figs {
            println!("| {} | {:.*} | {} |", f.key, f.decimals, f.value, f.what);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn first_byte_is_a_ratio_of_medians_of_the_probe() {
        let mut s = String::new();
        for (i, c) in [300, 100, 200, 250, 150].iter().enumerate() {
            s += &format!(
                "[9:1 swapbench] BENCH swap_round {} ttfb_us {c} resident_ttfb_us 10 raw_us 100 pages 40\n",
                i + 1
            );
        }
        let f = first_byte(&s).unwrap();
        assert_eq!(f[0].value, 2.0);
        assert_eq!(f[1].value, 40.0);
        assert!(first_byte(&s.replace("swapbench]", "httpd]")).is_err());
        assert!(first_byte(&s.replace("pages 40", "pages 0")).is_err());
    }

    #[test]
    fn swap_ins_over_loadgen_time() {
        let s = "[1:1 swapper] swapper: resident 1 swapped 2 page-ins 30 page-outs 4 swap-outs 0 swap-ins 0 io-errors 0\n\
                 [0:1 supervisor] supervisor: started loadgen as 7:1 (300 pages)\n\
                 [7:1 loadgen] loadgen: requests=400 errors=0 wrong=0 rps=40 p50_us=1\n\
                 [1:1 swapper] swapper: resident 1 swapped 2 page-ins 130 page-outs 4 swap-outs 0 swap-ins 0 io-errors 0\n\
                 [0:1 supervisor] supervisor: memory total: resident 1 swapped 2 pages, 3 domain(s) swapped out, 50 swap-in(s), 60 swap-out(s)\n";
        let f = swap_ins(s).unwrap();
        assert_eq!((f[0].value, f[1].value), (5.0, 10.0));
        assert!(swap_ins(&s.replace("errors=0", "errors=1")).is_err());
    }

    #[test]
    fn memory_needs_every_domain_out() {
        let s = "KERNEL stats: 3 domain record(s), 3 created since boot, kernel frames in use since start 0 (0 KiB), heap in use 10 KiB, domain record 496 bytes, domain frames 2\n\
                 [0:1 supervisor] supervisor: memory total: resident 0 swapped 9 pages, 100 domain(s) swapped out, 0 swap-in(s), 100 swap-out(s)\n\
                 [1:1 swapper] swapper: metadata per swapped-out domain: 28 bytes and 48 bytes a page\n";
        assert_eq!(
            memory_at(s, 100).unwrap(),
            (2 * 4096 + 10 * 1024, 28.0 + 48.0 * 0.09)
        );
        assert!(memory_at(s, 1000).is_err());
        let bits = s.replace(
            "28 bytes and 48 bytes a page",
            "24 bytes and 1 bits a page (52 bytes a page paged out alone)",
        );
        assert_eq!(memory_at(&bits, 100).unwrap().1, 24.0 + 0.09 / 8.0);
    }
}
