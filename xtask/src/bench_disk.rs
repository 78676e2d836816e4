//! `cargo xtask bench disk`: the disk server's throughput against the
//! device's, and its path length (docs/performance.md says what each
//! figure means).
//!
//! Two boots of the same scenario (`serac_tests::spec::disk_bench`): the
//! disk server's `bench-disk` binary runs each batch of
//! `serac_disk_core::bench` on the device directly, then the client
//! `bench-diskclient` runs the same batch through it, alternating.
//! - **wall**, plain TCG: each batch's wall time from both; rates and the
//!   server/direct ratio of each round (a direct batch and the client
//!   batch right after it), medians over the rounds.
//! - **ticks**, `-icount shift=0`: the CPU the kernel charged the client
//!   and the server inside the client's batches (instructions; time spent
//!   halted waiting for the host's disk is charged to nobody), per request.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use serac_disk_core::bench::{Params, Workload};
use serac_tests::spec::disk_bench;

use crate::bench::{boot, runner};
use crate::util::{Failure, Result};

/// The wall-clock run: rounds of 4 KiB batches and 64 KiB batches.
const WALL: Params = Params {
    rounds: 11,
    ops: 1000,
    seq: 60,
};
/// The path-length run: the same requests every time, so one round does.
const TICKS: Params = Params {
    rounds: 1,
    ops: 128,
    seq: 8,
};

/// A figure: a whole number, or one with so many decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(u64),
    Fixed(f64, usize),
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Num::Int(v) => write!(f, "{v}"),
            Num::Fixed(v, d) => write!(f, "{v:.d$}"),
        }
    }
}

/// One reported figure.
#[derive(Debug, Clone, PartialEq)]
struct Fig {
    key: String,
    value: Num,
    what: String,
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Key suffix of a workload in the JSON: the read is the plain figure.
fn suffix(w: Workload) -> &'static str {
    match w {
        Workload::Read4k => "",
        Workload::Write4k => "_write_4k",
        Workload::SeqRead64k => "_seq_read_64k",
    }
}

fn get(m: &BTreeMap<String, u64>, key: &str) -> std::result::Result<u64, String> {
    m.get(key)
        .copied()
        .ok_or_else(|| format!("no `BENCH {key}` line"))
}

/// Checks that both sides counted the batches' requests: the client its
/// own, the direct run the same, the server two pieces per block.
fn check_counts(
    m: &BTreeMap<String, u64>,
    p: &Params,
    w: Workload,
) -> std::result::Result<u64, String> {
    let n = w.name();
    let ops = u64::from(p.rounds) * u64::from(w.ops(p));
    let pieces = ops * w.blocks_per_op() * 2;
    for (key, want) in [
        (format!("disk_client_{n}_ops"), ops),
        (format!("disk_direct_{n}_ops"), ops),
        (format!("disk_server_{n}_pieces"), pieces),
    ] {
        let got = get(m, &key)?;
        if got != want {
            return Err(format!("`{key}` is {got}, the batches made {want}"));
        }
    }
    Ok(ops)
}

/// Per-round wall times (ns) of a path, all of them nonzero.
fn rounds(
    m: &BTreeMap<String, u64>,
    p: &Params,
    path: &str,
    w: Workload,
) -> std::result::Result<Vec<f64>, String> {
    (0..p.rounds)
        .map(|r| {
            let key = format!("disk_{path}_{}_ns_{r}", w.name());
            match get(m, &key)? {
                0 => Err(format!("`{key}` is 0")),
                ns => Ok(ns as f64),
            }
        })
        .collect()
}

/// The figures from the wall-clock run `wall` (parameters `pw`) and the
/// path-length run `ticks` (`pt`).
fn figures(
    wall: &BTreeMap<String, u64>,
    pw: &Params,
    ticks: &BTreeMap<String, u64>,
    pt: &Params,
) -> std::result::Result<Vec<Fig>, String> {
    let mut out = Vec::new();
    let mut push = |key: String, value: Num, what: String| out.push(Fig { key, value, what });
    let mut ratios = Vec::new();
    for w in Workload::ALL {
        let n = w.name();
        check_counts(wall, pw, w)?;
        let (client, direct) = (
            rounds(wall, pw, "client", w)?,
            rounds(wall, pw, "direct", w)?,
        );
        let per_batch = f64::from(w.ops(pw));
        let rate = |ns: &f64| per_batch * 1e9 / ns;
        let mib = |r: f64| r * (w.blocks_per_op() * 4096) as f64 / f64::from(1 << 20);
        let (c, d) = (
            median(&client.iter().map(rate).collect::<Vec<_>>()),
            median(&direct.iter().map(rate).collect::<Vec<_>>()),
        );
        // Each round's client batch against the direct batch just before it.
        let paired: Vec<f64> = client.iter().zip(&direct).map(|(c, d)| d / c).collect();
        let ratio = median(&paired);
        let lo = paired.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = paired.iter().copied().fold(0.0, f64::max);
        ratios.push(ratio);
        let rounds_note = format!("median of {} rounds", pw.rounds);
        match w {
            Workload::SeqRead64k => {
                push(
                    "disk_seq_read_mib_s".into(),
                    Num::Fixed(mib(c), 2),
                    format!(
                        "MiB/s, 64 KiB sequential reads through the disk server ({rounds_note})"
                    ),
                );
                push(
                    "disk_direct_seq_read_mib_s".into(),
                    Num::Fixed(mib(d), 2),
                    format!("MiB/s, the same reads by the server on the device ({rounds_note})"),
                );
                push(
                    "disk_server_vs_direct_seq_read".into(),
                    Num::Fixed(ratio, 3),
                    format!(
                        "server / direct throughput, per round, median (rounds {lo:.3} to {hi:.3})"
                    ),
                );
            }
            _ => {
                push(
                    format!("disk_{n}_iops"),
                    Num::Int(c.round() as u64),
                    format!(
                        "4 KiB random {}s through the disk server, per second ({rounds_note})",
                        &n[..n.len() - 3]
                    ),
                );
                push(
                    format!("disk_direct_{n}_iops"),
                    Num::Int(d.round() as u64),
                    format!("the same by the server on the device ({rounds_note})"),
                );
                push(
                    format!("disk_server_vs_direct_{n}"),
                    Num::Fixed(ratio, 3),
                    format!(
                        "server / direct throughput, per round, median (rounds {lo:.3} to {hi:.3})"
                    ),
                );
            }
        }
    }
    // Where the wall time goes: CPU the kernel charged (its TSC is the
    // host's clock under plain TCG), the rest waiting for the device.
    let hz = get(wall, "disk_tsc_hz")? as f64;
    for w in Workload::ALL {
        let n = w.name();
        let ops = check_counts(wall, pw, w)? as f64;
        let us = |ticks: u64| Num::Fixed(ticks as f64 / ops / hz * 1e6, 1);
        let wall_us = |path| -> std::result::Result<Num, String> {
            let per: Vec<f64> = rounds(wall, pw, path, w)?
                .iter()
                .map(|ns| ns / f64::from(w.ops(pw)) / 1e3)
                .collect();
            Ok(Num::Fixed(median(&per), 1))
        };
        let s = suffix(w);
        push(
            format!("disk_wall_us{s}"),
            wall_us("client")?,
            format!("us per request ({n}) through the server (median round)"),
        );
        push(
            format!("disk_wall_cpu_us{s}"),
            us(get(wall, &format!("disk_client_{n}_cpu"))?
                + get(wall, &format!("disk_server_{n}_cpu"))?),
            "of which CPU, client + server (mean); the rest is waiting for the device".into(),
        );
        push(
            format!("disk_direct_wall_us{s}"),
            wall_us("direct")?,
            "us per request by the server on the device (median round)".into(),
        );
        push(
            format!("disk_direct_wall_cpu_us{s}"),
            us(get(wall, &format!("disk_direct_{n}_cpu"))?),
            "of which the server's CPU (mean)".into(),
        );
    }
    push(
        "disk_server_vs_direct".into(),
        Num::Fixed(median(&ratios), 3),
        "median of the three workloads' server / direct ratios".into(),
    );
    for w in Workload::ALL {
        let n = w.name();
        let ops = check_counts(ticks, pt, w)?;
        let (client, server, direct) = (
            get(ticks, &format!("disk_client_{n}_cpu"))?,
            get(ticks, &format!("disk_server_{n}_cpu"))?,
            get(ticks, &format!("disk_direct_{n}_cpu"))?,
        );
        let per = |t: u64| Num::Int((t as f64 / ops as f64).round() as u64);
        let unit = if w == Workload::SeqRead64k {
            "64 KiB read"
        } else {
            "4 KiB request"
        };
        let s = suffix(w);
        push(
            format!("disk_request_ticks{s}"),
            per(client + server),
            format!("ticks per {unit} ({n}) under icount: client + server CPU, kernel included, no waiting"),
        );
        push(
            format!("disk_request_ticks{s}_server"),
            per(server),
            "of which the server's".into(),
        );
        push(
            format!("disk_direct_request_ticks{s}"),
            per(direct),
            "the server's alone on the device (direct)".into(),
        );
    }
    Ok(out)
}

/// `cargo xtask bench disk [--json]`.
pub fn disk(json: bool) -> Result<ExitCode> {
    let mut runner = runner()?;
    eprintln!("xtask: bench: booting `disk` (plain TCG, wall clock): {WALL}");
    let wall = boot(
        &mut runner,
        &disk_bench("bench_disk", WALL, &[])
            .require("KERNEL supervisor ended; * domain(s) alive")
            .timeout(Duration::from_secs(150)),
    )?;
    eprintln!("xtask: bench: booting `disk_ticks` under -icount shift=0: {TICKS}");
    // A host cache that never syncs: requests finish fast, and time the
    // guest spends halted for them is charged to nobody anyway.
    let ticks = boot(
        &mut runner,
        &disk_bench("bench_disk_ticks", TICKS, &["cache=unsafe"])
            .qemu_args(["-icount", "shift=0"])
            .require("KERNEL supervisor ended; * domain(s) alive")
            .timeout(Duration::from_secs(150)),
    )?;
    let figs = figures(&wall.bench, &WALL, &ticks.bench, &TICKS)
        .map_err(|e| Failure(format!("bench disk: {e}")))?;
    if json {
        let mut parts: Vec<String> = figs
            .iter()
            .map(|f| format!("\"{}\": {}", f.key, f.value))
            .collect();
        parts.push(format!(
            "\"units\": \"iops: requests per second, MiB/s: 2^20 bytes per second, plain TCG wall clock, \
             medians over {} rounds ({WALL}); server_vs_direct: through the disk server / by the server \
             on the device, paired per round, median; request_ticks: TSC ticks under -icount shift=0 \
             (instructions) the kernel charged client and server per request ({TICKS})\"",
            WALL.rounds
        ));
        println!("{{{}}}", parts.join(", "));
    } else {
        println!("| figure | value | what |");
        println!("|---|---:|---|");
        for f in &figs {
            println!("| {} | {} | {} |", f.key, f.value, f.what);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params {
        rounds: 3,
        ops: 10,
        seq: 2,
    };

    /// What the guests print for `P`: each direct batch takes `d` ns and
    /// each client batch `c` ns, except round 1's client, slower.
    fn lines(d: u64, c: u64) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        m.insert("disk_tsc_hz".into(), 1_000_000_000);
        for w in Workload::ALL {
            let n = w.name();
            let ops = 3 * u64::from(w.ops(&P));
            for r in 0..3 {
                m.insert(format!("disk_direct_{n}_ns_{r}"), d);
                m.insert(
                    format!("disk_client_{n}_ns_{r}"),
                    if r == 1 { 4 * c } else { c },
                );
            }
            m.insert(format!("disk_client_{n}_ops"), ops);
            m.insert(format!("disk_direct_{n}_ops"), ops);
            m.insert(
                format!("disk_server_{n}_pieces"),
                ops * w.blocks_per_op() * 2,
            );
            m.insert(format!("disk_client_{n}_cpu"), ops * 100);
            m.insert(format!("disk_server_{n}_cpu"), ops * 300);
            m.insert(format!("disk_direct_{n}_cpu"), ops * 50);
        }
        m
    }

    fn value(figs: &[Fig], key: &str) -> Num {
        figs.iter().find(|f| f.key == key).unwrap().value
    }

    #[test]
    fn rates_ratios_and_ticks() {
        // Direct batches of 10 requests in 1 ms, client ones in 1.25 ms.
        let m = lines(1_000_000, 1_250_000);
        let figs = figures(&m, &P, &m, &P).unwrap();
        assert_eq!(value(&figs, "disk_read_4k_iops"), Num::Int(8000));
        assert_eq!(value(&figs, "disk_direct_write_4k_iops"), Num::Int(10_000));
        // 2 x 64 KiB per ms = 125 MiB/s direct, 100 through the server.
        assert_eq!(
            value(&figs, "disk_direct_seq_read_mib_s"),
            Num::Fixed(125.0, 2)
        );
        assert_eq!(value(&figs, "disk_seq_read_mib_s"), Num::Fixed(100.0, 2));
        // The slow round is an outlier the median ignores.
        assert_eq!(value(&figs, "disk_server_vs_direct"), Num::Fixed(0.8, 3));
        assert_eq!(value(&figs, "disk_request_ticks"), Num::Int(400));
        assert_eq!(value(&figs, "disk_request_ticks_server"), Num::Int(300));
        assert_eq!(
            value(&figs, "disk_direct_request_ticks_write_4k"),
            Num::Int(50)
        );
        // 1.25 ms for 10 requests; 400 ns of CPU each at 1 GHz.
        assert_eq!(value(&figs, "disk_wall_us"), Num::Fixed(125.0, 1));
        assert_eq!(value(&figs, "disk_wall_cpu_us").to_string(), "0.4");
    }

    #[test]
    fn counts_that_are_not_the_batches_fail() {
        let mut m = lines(1, 1);
        m.insert("disk_server_read_4k_pieces".into(), 30);
        assert!(figures(&m, &P, &lines(1, 1), &P)
            .unwrap_err()
            .contains("disk_server_read_4k_pieces"));
        let mut m = lines(1, 1);
        m.remove("disk_client_write_4k_ns_2");
        assert!(figures(&m, &P, &m, &P).is_err());
        let mut m = lines(1, 1);
        m.insert("disk_direct_read_4k_ns_0".into(), 0);
        assert!(figures(&m, &P, &m, &P).is_err());
    }

    #[test]
    fn the_median() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
