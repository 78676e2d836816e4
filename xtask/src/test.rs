//! `test`: everything CI runs, in order, with one summary line at the end.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serac_boot::host;
use serac_tests::qemu::{Accel, Firmware};
use serac_tests::{Boot, Context, Runner};

use crate::artifacts::{self, Built};
use crate::cli::TestOpts;
use crate::prereq::{self, Needs};
use crate::tcb;
use crate::util::{cargo, out_dir, Result, KERNEL_TARGET};

struct Tally {
    results: Vec<(String, bool, Duration, String)>,
    /// Each failed QEMU test's problems, repeated after the summary: CI
    /// keeps only the end of the output.
    why: Vec<(String, Vec<String>)>,
}

impl Tally {
    fn record(&mut self, name: &str, ok: bool, t: Duration, note: &str) {
        let verdict = if ok { "ok" } else { "FAILED" };
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        println!(
            "xtask: {name} ... {verdict} [{:.1} s]{note}",
            t.as_secs_f64()
        );
        self.results.push((name.to_owned(), ok, t, note));
    }
}

/// Problems repeated per failed test after the summary, and their width.
const WHY_LINES: usize = 4;
const WHY_CHARS: usize = 240;

/// `s` cut to at most `max` characters, marked when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{} ...", &s[..i]),
        None => s.to_owned(),
    }
}

/// The step that runs the `tcb` audit in-process (it has no cargo arguments).
const TCB_STEP: &str = "tcb";

/// One cargo step: name and arguments ([`TCB_STEP`] is the audit instead).
fn cargo_steps() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("fmt", vec!["fmt", "--all", "--check"]),
        // Without --workspace, cargo uses the root's default-members: the
        // host crates. The kernel only builds for its own target.
        (
            "clippy-host",
            vec!["clippy", "--all-targets", "--", "-D", "warnings"],
        ),
        // The kernel and every ring-3 crate (everything but the host tools),
        // for their own target.
        (
            "clippy-target",
            vec![
                "clippy",
                "--workspace",
                "--exclude",
                "xtask",
                "--exclude",
                "serac-tests",
                "--exclude",
                "serac-boot",
                "--exclude",
                "serac-config",
                "--target",
                KERNEL_TARGET,
                "--",
                "-D",
                "warnings",
            ],
        ),
        // Ilwaco is no default member (it builds for the target), but its
        // tests (a fake disk server, the tar reader) run on the host.
        (
            "clippy-host-ilwaco",
            vec!["clippy", "-p", "ilwaco", "--tests", "--", "-D", "warnings"],
        ),
        // After clippy (the code is clean), before the tests.
        (TCB_STEP, vec![]),
        ("host-tests", vec!["test"]),
        ("host-tests-ilwaco", vec!["test", "-p", "ilwaco", "--lib"]),
    ]
}

/// The `tcb` step: the audit of `cargo xtask tcb`, failing on the same terms.
fn tcb_step(tally: &mut Tally) {
    println!("xtask: ==> {TCB_STEP}: cargo xtask tcb");
    let t = Instant::now();
    let (ok, note) = match tcb::audit(Path::new(".")) {
        Ok(r) => {
            println!("xtask: tcb: {}", r.headline());
            let failures = r.failures();
            for f in &failures {
                eprintln!("error: tcb: {f}");
            }
            (
                failures.is_empty(),
                failures.first().cloned().unwrap_or_default(),
            )
        }
        Err(e) => (false, e.to_string()),
    };
    tally.record(TCB_STEP, ok, t.elapsed(), &note);
}

fn selected(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// `cargo xtask test`.
pub fn test(o: &TestOpts) -> Result<ExitCode> {
    let filter = o.filter.as_deref();
    let qemu_tests: Vec<_> = serac_tests::all()
        .into_iter()
        .filter(|t| selected(filter, &format!("qemu:{}", t.name)))
        .collect();
    let steps: Vec<_> = cargo_steps()
        .into_iter()
        .filter(|(n, _)| selected(filter, n))
        .collect();
    let need_build = !qemu_tests.is_empty() || selected(filter, "build");
    let any_iso = qemu_tests.iter().any(|t| matches!(t.boot, Boot::Iso(_)));
    let any_ovmf = qemu_tests
        .iter()
        .any(|t| t.boot == Boot::Iso(Firmware::Ovmf));
    if steps.is_empty() && !need_build {
        return Err(format!(
            "--filter {:?} matches no step or test (steps: fmt, clippy-host, clippy-target, \
             clippy-host-ilwaco, tcb, host-tests, host-tests-ilwaco, build, qemu:<name>)",
            filter.unwrap_or_default()
        )
        .into());
    }
    prereq::ensure(Needs {
        kernel: true,
        lint: true,
        qemu: !qemu_tests.is_empty(),
        iso: any_iso,
        ovmf: any_ovmf,
    })?;

    let start = Instant::now();
    let mut tally = Tally {
        results: Vec::new(),
        why: Vec::new(),
    };
    for (name, args) in steps {
        if name == TCB_STEP {
            tcb_step(&mut tally);
            continue;
        }
        println!("xtask: ==> {name}: cargo {}", args.join(" "));
        let t = Instant::now();
        let (ok, note) = match host::status(cargo().args(&args)) {
            Ok(st) if st.success() => (true, String::new()),
            Ok(st) => (false, format!("`cargo {}` failed: {st}", args.join(" "))),
            Err(e) => (false, e.to_string()),
        };
        tally.record(name, ok, t.elapsed(), &note);
    }

    let mut built: Option<Built> = None;
    if need_build {
        println!("xtask: ==> build");
        let t = Instant::now();
        match artifacts::build() {
            Ok(b) => {
                tally.record("build", true, t.elapsed(), "");
                built = Some(b);
            }
            Err(e) => tally.record("build", false, t.elapsed(), &e.to_string()),
        }
    }

    if !qemu_tests.is_empty() {
        match built {
            None => {
                for t in &qemu_tests {
                    tally.record(
                        &format!("qemu:{}", t.name),
                        false,
                        Duration::ZERO,
                        "skipped: the build failed",
                    );
                }
            }
            Some(b) => {
                let (accel, warning) = Accel::choose(o.kvm);
                if let Some(w) = warning {
                    eprintln!("warning: {w}");
                }
                let mut runner = Runner::new(Context {
                    out_dir: out_dir(),
                    kernel: b.kernel,
                    archive: b.archive,
                    base_entries: b.entries,
                    accel,
                    make_disk: Some(crate::disk::make_test_disk),
                    check_disk: Some(crate::disk::check_test_disk),
                });
                for t in &qemu_tests {
                    println!(
                        "xtask: ==> qemu:{} (timeout {} s)",
                        t.name,
                        t.timeout.as_secs()
                    );
                    let out = runner.run(t);
                    tally.record(&format!("qemu:{}", t.name), out.passed(), out.elapsed, "");
                    if !out.passed() {
                        print!("{}", out.report());
                        tally.why.push((t.name.clone(), out.problems.clone()));
                    }
                }
            }
        }
    }

    let passed = tally.results.iter().filter(|r| r.1).count();
    let failed = tally.results.len() - passed;
    println!("\nxtask: summary");
    for (name, ok, t, note) in &tally.results {
        println!(
            "  {:<8} {name:<28} {:>6.1} s{}",
            if *ok { "ok" } else { "FAILED" },
            t.as_secs_f64(),
            if *ok { "" } else { note.as_str() }
        );
    }
    println!(
        "{passed} passed, {failed} failed ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    for (name, problems) in &tally.why {
        println!("xtask: why qemu:{name} failed (its report is above):");
        for p in problems.iter().take(WHY_LINES) {
            println!("    - {}", clip(p, WHY_CHARS));
        }
        if problems.len() > WHY_LINES {
            println!("    - and {} more", problems.len() - WHY_LINES);
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_cuts_long_problems_only() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 3), "abc ...");
        assert_eq!(clip("ééé", 2), "éé ...");
    }
}
