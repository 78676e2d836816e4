//! `cargo xtask bench core`: the microkernel's figures, measured in QEMU.
//!
//! Every scenario boots the real kernel with its own boot manifest. The
//! micro figures run under `-icount shift=0`, where the guest TSC advances
//! with executed instructions: deterministic path lengths in TSC units (the
//! same on every run and host). The idle-vs-spin ratio is a macro figure:
//! both scenarios run in plain TCG and the ratio of their work is reported
//! (with 100 pollers under icount one scheduling round alone is a second of
//! virtual time, which takes minutes to emulate). Ring-3 programs print
//! `BENCH <name> <value>`; the kernel prints `KERNEL stats: ...` when the
//! supervisor ends. Ratios come from scenarios measured in the same run.

use std::collections::BTreeMap;
use std::fs;
use std::process::ExitCode;
use std::time::Duration;

use serac_tests::judge::{source, Source as JudgeSource};
use serac_tests::qemu::Accel;
use serac_tests::runner::{Context, Runner};
use serac_tests::spec::{Boot, Config, QemuTest};

use crate::artifacts;
use crate::prereq::{self, Needs};
use crate::util::{out_dir, Failure, Result};

/// One boot: a configuration (`configs/bench_*.toml`), and the figures it yields.
struct Scenario {
    name: &'static str,
    config: Config,
    timeout: Duration,
    /// Under `-icount shift=0` (deterministic path lengths); the macro
    /// scenarios run in plain TCG and yield wall-clock ratios instead.
    icount: bool,
    /// Extra QEMU arguments (a smaller machine).
    qemu: &'static [&'static str],
}

fn scenarios() -> Vec<Scenario> {
    let scale = |n: u64| Config::new("bench_scale").count("idler", n);
    vec![
        Scenario {
            name: "core",
            config: Config::new("bench_core"),
            timeout: Duration::from_secs(120),
            icount: true,
            qemu: &[],
        },
        Scenario {
            name: "idle",
            config: Config::new("bench_idle"),
            timeout: Duration::from_secs(120),
            icount: false,
            qemu: &[],
        },
        Scenario {
            name: "spin",
            config: Config::new("bench_spin"),
            timeout: Duration::from_secs(120),
            icount: false,
            qemu: &[],
        },
        // Batching where it can fail: a busy target behind three spinners
        // of its class, notified every 100 us by a server.
        Scenario {
            name: "batch",
            config: Config::new("bench_batch"),
            timeout: Duration::from_secs(180),
            icount: true,
            qemu: &[],
        },
        // Capacity: idlers are built until one cannot be (a 64 MiB machine
        // runs out well before the manifest's count); each that runs
        // reports in to the collector once.
        Scenario {
            name: "capacity",
            config: Config::new("bench_capacity"),
            timeout: Duration::from_secs(180),
            icount: false,
            qemu: &["-m", "64M"],
        },
        Scenario {
            name: "scale100",
            config: scale(100),
            timeout: Duration::from_secs(180),
            icount: true,
            qemu: &[],
        },
        Scenario {
            name: "scale1000",
            config: scale(1000),
            timeout: Duration::from_secs(300),
            icount: true,
            qemu: &[],
        },
    ]
}

/// What one boot printed.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub(crate) bench: BTreeMap<String, u64>,
    /// From `KERNEL stats:`: kernel frames in use since start, heap KiB.
    kernel_frames: Option<u64>,
    heap_kib: Option<u64>,
    /// From the supervisor's `until-full` line: instances built, and
    /// whether building stopped because one failed (not at the count).
    built: Option<u64>,
    full: bool,
    /// The collector's last count of domains that reported in.
    reported: Option<u64>,
}

pub(crate) fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(crate) fn parse(serial: &str) -> Figures {
    let mut f = Figures::default();
    for line in serial.lines() {
        let line = line.trim_end_matches('\r');
        // Figures count only from parties a guest cannot impersonate: the
        // kernel, the supervisor and the benchmark's own domains.
        let (from, line) = match source(line) {
            (JudgeSource::Kernel, body) => (Some("kernel"), body),
            (JudgeSource::Domain(n), body)
                if n == "supervisor" || n == "collector" || n.starts_with("bench-") =>
            {
                (Some(n), body)
            }
            _ => (None, line),
        };
        if from.is_none() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("BENCH ") {
            let mut it = rest.split_whitespace();
            if let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) {
                // The last value wins (the sleeper reports after each wake).
                f.bench.insert(k.to_owned(), v);
            }
        } else if from == Some("kernel") && line.starts_with("KERNEL stats:") {
            // The frames the kernel holds for live domains (the pool count
            // misses them once the supervisor's grant came back); older
            // kernels without the field: the pool count.
            f.kernel_frames = number_after(line, "domain frames")
                .or_else(|| number_after(line, "kernel frames in use since start"));
            f.heap_kib = number_after(line, "heap in use");
        } else if from == Some("supervisor") && line.starts_with("supervisor: until-full:") {
            f.built = number_after(line, "built");
            f.full = line.contains("the next failed");
        } else if from == Some("collector") && line.starts_with("collector:") {
            // The last count wins (it is printed each time it settles).
            f.reported = number_after(line, "collector:");
        }
    }
    f
}

/// `cargo xtask bench core|disk [--json]`.
pub fn bench(what: &str, json: bool) -> Result<ExitCode> {
    match what {
        "core" => core(json),
        "disk" => crate::bench_disk::disk(json),
        "net" => crate::bench_net::net(json),
        "swap" => crate::bench_swap::swap(json),
        _ => Err(Failure(format!(
            "unknown benchmark `{what}` (known: core, disk, net, swap)"
        ))),
    }
}

/// Builds everything and a runner that boots it under plain TCG (the
/// scenarios add `-icount` themselves).
pub(crate) fn runner() -> Result<Runner> {
    prereq::ensure(Needs {
        kernel: true,
        lint: false,
        qemu: true,
        iso: false,
        ovmf: false,
    })?;
    let built = artifacts::build()?;
    Ok(Runner::new(Context {
        out_dir: out_dir(),
        kernel: built.kernel,
        archive: built.archive,
        base_entries: built.entries,
        accel: Accel::Tcg,
        make_disk: Some(crate::disk::make_test_disk),
        check_disk: Some(crate::disk::check_test_disk),
    }))
}

/// Boots `t` and parses what it printed; a failed boot fails the bench.
pub(crate) fn boot(runner: &mut Runner, t: &QemuTest) -> Result<Figures> {
    let out = runner.run(t);
    if !out.passed() {
        eprint!("{}", out.report());
        return Err(Failure(format!("bench scenario `{}` failed", t.name)));
    }
    let serial = fs::read_to_string(&out.log).unwrap_or_default();
    Ok(parse(&serial))
}

fn core(json: bool) -> Result<ExitCode> {
    let mut runner = runner()?;
    let mut runs = BTreeMap::new();
    for s in scenarios() {
        let icount: &[&str] = if s.icount {
            &["-icount", "shift=0"]
        } else {
            &[]
        };
        eprintln!(
            "xtask: bench: booting `{}`{}",
            s.name,
            if s.icount {
                " under -icount shift=0"
            } else {
                " (plain TCG, wall clock)"
            }
        );
        let t = QemuTest::new(format!("bench_{}", s.name), Boot::Pvh, "serac.exit=1")
            .config(s.config)
            .qemu_args(icount.iter().chain(s.qemu).copied())
            .allow("* domain * faulted: *")
            .require("KERNEL supervisor ended; * domain(s) alive")
            .timeout(s.timeout);
        runs.insert(s.name, boot(&mut runner, &t)?);
    }
    let get = |run: &str, k: &str| runs.get(run).and_then(|f| f.bench.get(k)).copied();
    let mut fig: Vec<(&str, Option<u64>, &str)> = Vec::new();
    let units = [
        ("syscall_null", "TSC ticks (median)"),
        (
            "ipc_roundtrip",
            "TSC ticks (median): call + reply, 16 bytes, echo server (kernel path)",
        ),
        (
            "ipc_roundtrip_ilwaco",
            "TSC ticks (median): the same through Ilwaco's message packing and a server that touches the payload",
        ),
        ("upcall", "TSC ticks (median)"),
        ("switch", "TSC ticks (median)"),
        ("fault_to_map", "TSC ticks (median)"),
    ];
    for (k, unit) in units {
        fig.push((k, get("core", k), unit));
    }
    fig.push((
        "domain_create",
        get("scale1000", "domain_create"),
        "TSC ticks per domain, supervisor Create + load + grants + Start (median)",
    ));
    let batching = match (get("batch", "batch_events"), get("batch", "batch_upcalls")) {
        (Some(e), Some(u)) if u > 0 => Some(e * 1000 / u),
        _ => None,
    };
    let idle_vs_spin = match (get("idle", "work"), get("spin", "work")) {
        (Some(i), Some(s)) if s > 0 => Some(i * 1000 / s),
        _ => None,
    };
    // Capacity counts only domains that ran and reported in, and only if
    // building stopped because the machine was full, not at the count.
    let cap = runs.get("capacity");
    let built = cap.and_then(|f| f.built);
    let booted = match (cap, built) {
        (Some(f), Some(b)) if f.full => match f.reported {
            Some(r) if r <= b => Some(r),
            Some(r) => {
                return Err(Failure(format!(
                    "bench: {r} domains reported in but only {b} were built"
                )))
            }
            None => None,
        },
        (Some(_), Some(b)) => {
            return Err(Failure(format!(
                "bench: capacity: all {b} idlers were built; the machine never filled (give it less memory)"
            )))
        }
        _ => None,
    };
    let bytes = |r: &str| {
        let f = runs.get(r)?;
        Some(f.kernel_frames? * 4096 + f.heap_kib? * 1024)
    };
    let per_domain = match (bytes("scale1000"), bytes("scale100")) {
        (Some(a), Some(b)) if a >= b => Some((a - b) / 900),
        _ => None,
    };
    let milli = |v: Option<u64>| v.map(|v| format!("{}.{:03}", v / 1000, v % 1000));
    if json {
        let mut parts: Vec<String> = fig
            .iter()
            .map(|(k, v, _)| format!("\"{k}\": {}", v.map_or("null".into(), |v| v.to_string())))
            .collect();
        parts.push(format!(
            "\"batching_factor\": {}",
            milli(batching).unwrap_or("null".into())
        ));
        parts.push(format!(
            "\"idle_vs_spin\": {}",
            milli(idle_vs_spin).unwrap_or("null".into())
        ));
        parts.push(format!(
            "\"domains_booted\": {}",
            booted.map_or("null".into(), |v| v.to_string())
        ));
        parts.push(format!(
            "\"domains_built\": {}",
            built.map_or("null".into(), |v| v.to_string())
        ));
        parts.push(format!(
            "\"kernel_bytes_per_idle_domain\": {}",
            per_domain.map_or("null".into(), |v| v.to_string())
        ));
        parts.push(
            "\"units\": \"syscall_null to domain_create: TSC ticks under -icount shift=0 \
             (instruction path lengths); batching_factor: events per upcall, busy target behind 3 spinners, \
             notified every 100 us; idle_vs_spin: ratio of work, plain TCG; domains_booted: idle domains \
             that reported in when a 64 MiB machine was full (domains_built: built); \
             kernel_bytes_per_idle_domain: bytes\""
                .into(),
        );
        println!("{{{}}}", parts.join(", "));
    } else {
        println!("| figure | value | unit |");
        println!("|---|---:|---|");
        for (k, v, unit) in &fig {
            println!(
                "| {k} | {} | {unit} |",
                v.map_or("n/a".into(), |v| v.to_string())
            );
        }
        println!(
            "| batching_factor | {} | events per upcall: busy target runnable behind 3 spinners, a server notifies it every 100 us ({} events, {} upcalls) |",
            milli(batching).unwrap_or("n/a".into()),
            get("batch", "batch_events").map_or("n/a".into(), |v| v.to_string()),
            get("batch", "batch_upcalls").map_or("n/a".into(), |v| v.to_string()),
        );
        println!(
            "| idle_vs_spin | {} | worker's work with 100 idle-with-timeout waiters / with 100 pollers |",
            milli(idle_vs_spin).unwrap_or("n/a".into())
        );
        println!(
            "| domains_booted | {} | idle domains that ran and reported in, built until creation failed in a 64 MiB machine ({} built) |",
            booted.map_or("n/a".into(), |v| v.to_string()),
            built.map_or("n/a".into(), |v| v.to_string())
        );
        println!(
            "| kernel_bytes_per_idle_domain | {} | (kernel frames + heap) at 1000 idlers minus at 100, / 900 |",
            per_domain.map_or("n/a".into(), |v| v.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_and_kernel_lines() {
        let f = parse(
            "[4:1 bench-core] BENCH ipc_roundtrip 1234\r\n[4:1 bench-core] BENCH batch_events 5\n[4:1 bench-core] BENCH batch_events 7\n\
             [5:1 evil] BENCH ipc_roundtrip 1\n\
             KERNEL stats: 3 domain record(s), 3 created since boot, kernel frames in use since start 40 (160 KiB), heap in use 12 KiB, domain record 900 bytes\n\
             [0:1 supervisor] supervisor: until-full: built 987 of 2046 x idler; the next failed: idler#987: frame pool failed: OutOfMemory\n\
             [2:1 collector] collector: 900 domain(s) reported in\n\
             [2:1 collector] collector: 986 domain(s) reported in\n\
             [9:1 idler] collector: 5000 domain(s) reported in\n",
        );
        assert_eq!(f.bench.get("ipc_roundtrip"), Some(&1234));
        assert_eq!(f.bench.get("batch_events"), Some(&7));
        assert_eq!(f.kernel_frames, Some(40));
        assert_eq!(f.heap_kib, Some(12));
        assert_eq!((f.built, f.full, f.reported), (Some(987), true, Some(986)));
    }
}
