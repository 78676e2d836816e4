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
use serac_tests::spec::{Boot, QemuTest, Source};

use crate::artifacts;
use crate::prereq::{self, Needs};
use crate::util::{out_dir, Failure, Result};

const SWAPPER: &str = "domain swapper image=swapper class=server eager=yes\n";

/// One boot: a manifest, and the figures it yields.
struct Scenario {
    name: &'static str,
    manifest: String,
    timeout: Duration,
    /// Under `-icount shift=0` (deterministic path lengths); the macro
    /// scenarios run in plain TCG and yield wall-clock ratios instead.
    icount: bool,
}

fn scenarios() -> Vec<Scenario> {
    let idle_vs = |helper: &str| {
        format!(
            "{SWAPPER}domain bench-worker image=bench-worker class=guest pager=swapper\n\
             domain {helper} image={helper} class=guest pager=swapper count=100\n\
             test-end=bench-worker\n"
        )
    };
    let scale = |n: u32| {
        format!(
            "{SWAPPER}domain idler image=idler class=guest pager=swapper count={n}\n\
             test-end-after-ms=200\n"
        )
    };
    vec![
        Scenario {
            name: "core",
            manifest: format!(
                "{SWAPPER}domain pong image=pong class=server pager=swapper\n\
                 domain bench-echo image=bench-echo class=server pager=swapper\n\
                 domain bench-sleeper image=bench-sleeper class=guest pager=swapper\n\
                 domain bench-yielder image=bench-yielder class=guest pager=swapper\n\
                 domain bench-core image=bench-core class=guest pager=swapper endpoint=pong notify=bench-core notify=bench-sleeper notify=bench-yielder endpoint=bench-echo\n\
                 test-end=bench-core\n"
            ),
            timeout: Duration::from_secs(120),
            icount: true,
        },
        Scenario {
            name: "idle",
            manifest: idle_vs("bench-waiter"),
            timeout: Duration::from_secs(120),
            icount: false,
        },
        Scenario {
            name: "spin",
            manifest: idle_vs("bench-poller"),
            timeout: Duration::from_secs(120),
            icount: false,
        },
        Scenario {
            name: "scale100",
            manifest: scale(100),
            timeout: Duration::from_secs(180),
            icount: true,
        },
        Scenario {
            name: "scale1000",
            manifest: scale(1000),
            timeout: Duration::from_secs(300),
            icount: true,
        },
    ]
}

/// What one boot printed.
#[derive(Debug, Default)]
struct Figures {
    bench: BTreeMap<String, u64>,
    /// From `KERNEL stats:`: kernel frames in use since start, heap KiB.
    kernel_frames: Option<u64>,
    heap_kib: Option<u64>,
    /// From the supervisor's test-end line: domains running.
    running: Option<u64>,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn parse(serial: &str) -> Figures {
    let mut f = Figures::default();
    for line in serial.lines() {
        let line = line.trim_end_matches('\r');
        // Figures count only from parties a guest cannot impersonate: the
        // kernel, the supervisor and the benchmark's own domains.
        let (from, line) = match source(line) {
            (JudgeSource::Kernel, body) => (Some("kernel"), body),
            (JudgeSource::Domain(n), body) if n == "supervisor" || n.starts_with("bench-") => {
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
            f.kernel_frames = number_after(line, "kernel frames in use since start");
            f.heap_kib = number_after(line, "heap in use");
        } else if from == Some("supervisor") && line.starts_with("supervisor: test end:") {
            f.running = number_after(line, "test end:");
        }
    }
    f
}

/// `cargo xtask bench core [--json]`.
pub fn bench(what: &str, json: bool) -> Result<ExitCode> {
    if what != "core" {
        return Err(Failure(format!("unknown benchmark `{what}` (known: core)")));
    }
    prereq::ensure(Needs {
        kernel: true,
        lint: false,
        qemu: true,
        iso: false,
        ovmf: false,
    })?;
    let built = artifacts::build()?;
    let mut runner = Runner::new(Context {
        out_dir: out_dir(),
        kernel: built.kernel,
        archive: built.archive,
        base_entries: built.entries,
        accel: Accel::Tcg,
    });
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
            .with_file("manifest", Source::Bytes(s.manifest.into_bytes()))
            .qemu_args(icount.iter().copied())
            .allow("* domain * faulted: *")
            .require("KERNEL supervisor ended; * domain(s) alive")
            .timeout(s.timeout);
        let out = runner.run(&t);
        if !out.passed() {
            eprint!("{}", out.report());
            return Err(Failure(format!("bench scenario `{}` failed", s.name)));
        }
        let serial = fs::read_to_string(&out.log).unwrap_or_default();
        runs.insert(s.name, parse(&serial));
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
    let batching = match (get("core", "batch_events"), get("core", "batch_deliveries")) {
        (Some(e), Some(d)) if d > 0 => Some(e * 1000 / d),
        _ => None,
    };
    let idle_vs_spin = match (get("idle", "work"), get("spin", "work")) {
        (Some(i), Some(s)) if s > 0 => Some(i * 1000 / s),
        _ => None,
    };
    // The supervisor counts every running instance: the 1000 idlers and
    // the swapper that pages for them.
    let booted = runs
        .get("scale1000")
        .and_then(|f| f.running)
        .map(|n| n.saturating_sub(1));
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
            "\"kernel_bytes_per_idle_domain\": {}",
            per_domain.map_or("null".into(), |v| v.to_string())
        ));
        parts.push(
            "\"units\": \"syscall_null to domain_create: TSC ticks under -icount shift=0 \
             (instruction path lengths); batching_factor: events per delivery; idle_vs_spin: \
             ratio of work, plain TCG; kernel_bytes_per_idle_domain: bytes\""
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
            "| batching_factor | {} | events per delivery, 1000-notification storm against a descheduled domain |",
            milli(batching).unwrap_or("n/a".into())
        );
        println!(
            "| idle_vs_spin | {} | worker's work with 100 idle-with-timeout waiters / with 100 pollers |",
            milli(idle_vs_spin).unwrap_or("n/a".into())
        );
        println!(
            "| domains_booted | {} | idle domains running in a 256 MiB machine |",
            booted.map_or("n/a".into(), |v| v.to_string())
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
             [0:1 supervisor] supervisor: test end: 1000 domain(s) running after 200 ms\n",
        );
        assert_eq!(f.bench.get("ipc_roundtrip"), Some(&1234));
        assert_eq!(f.bench.get("batch_events"), Some(&7));
        assert_eq!(f.kernel_frames, Some(40));
        assert_eq!(f.heap_kib, Some(12));
        assert_eq!(f.running, Some(1000));
    }
}
