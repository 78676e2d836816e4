//! Deciding whether a test passed, from its serial output and how QEMU ended.
//! Pure functions, so the host tests cover them.

use std::time::Duration;

use crate::spec::{QemuTest, EXIT_FAILURE, EXIT_SUCCESS};

/// How the QEMU process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it (not ours).
    Signalled,
    /// It ran past the test's limit and was killed.
    TimedOut(Duration),
}

/// A human reading of a QEMU exit status.
pub fn describe_exit(code: i32) -> String {
    match code {
        EXIT_SUCCESS => "33: the kernel reported success (wrote 0x10 to isa-debug-exit)".into(),
        EXIT_FAILURE => {
            "35: the kernel reported failure (wrote 0x11 to isa-debug-exit: failed test, panic or exception)".into()
        }
        0 => "0: the guest reset or triple-faulted (QEMU runs with -no-reboot), or QEMU was shut down".into(),
        1 => "1: QEMU itself failed (bad arguments or missing file? see the QEMU log)".into(),
        c if c & 1 == 1 && c > 1 && c < 512 => format!(
            "{c}: the kernel wrote {:#x} to isa-debug-exit, which means neither success nor failure",
            c >> 1
        ),
        c => format!("{c}: unexpected"),
    }
}

/// Splits serial output into lines, dropping `\r`, terminal escape sequences
/// (GRUB and firmware emit them) and other control characters.
pub fn clean_lines(serial: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut it = serial.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\n' => lines.push(std::mem::take(&mut cur)),
            '\u{1b}' => {
                if it.peek() == Some(&'[') {
                    // CSI: parameters and intermediates, then a final byte
                    // in 0x40..=0x7e.
                    it.next();
                    for d in it.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            break;
                        }
                    }
                } else {
                    // Two-character escape (ESC 7, ESC c, ...).
                    it.next();
                }
            }
            '\t' => cur.push(c),
            c if c.is_control() => {}
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Who printed a serial line. The kernel writes `[<index>:<gen> <name>] `
/// before every line a domain prints (`serac_kcore::console`), so a line
/// without that prefix is the kernel's (or, on an ISO boot, the firmware's
/// and GRUB's, before the kernel runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The kernel (or firmware before it).
    Kernel,
    /// A domain, by the name the supervisor gave it.
    Domain(&'a str),
}

/// Splits a serial line into its source and the text after the prefix.
pub fn source(line: &str) -> (Source<'_>, &str) {
    let parse = || -> Option<(&str, &str)> {
        let rest = line.strip_prefix('[')?;
        let (id, rest) = rest.split_once(' ')?;
        let (index, gen) = id.split_once(':')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(gen) {
            return None;
        }
        let (name, body) = rest.split_once("] ")?;
        Some((name, body))
    };
    match parse() {
        Some((name, body)) => (Source::Domain(name), body),
        None => (Source::Kernel, line),
    }
}

/// Whether a line is a verdict (`TEST ...` or `BENCH ...`), which counts
/// only from a party that cannot be forged.
fn is_verdict(body: &str) -> bool {
    body.starts_with("TEST ") || body.starts_with("BENCH ")
}

/// Whether `line` may satisfy a required pattern of `test`: any line that
/// is not a verdict; a verdict only from the kernel, the supervisor or a
/// domain the test names in `verdicts_from`.
pub fn trusted_for(test: &QemuTest, line: &str) -> bool {
    let (src, body) = source(line);
    match src {
        Source::Kernel => true,
        Source::Domain(name) => {
            !is_verdict(body)
                || name == "supervisor"
                || test.verdicts_from.iter().any(|v| v == name)
        }
    }
}

/// Everything wrong with a run; empty means the test passed.
pub fn judge(test: &QemuTest, serial: &str, ending: Ending) -> Vec<String> {
    let lines = clean_lines(serial);
    let mut problems = Vec::new();
    let counts = |l: &&String, p: &crate::pattern::Pattern| p.matches(l) && trusted_for(test, l);

    match ending {
        Ending::Exited(c) if c == test.exit => {}
        Ending::Exited(c) => problems.push(format!(
            "QEMU exit status {}; expected {}",
            describe_exit(c),
            describe_exit(test.exit)
        )),
        Ending::Signalled => problems.push("QEMU was killed by a signal".into()),
        Ending::TimedOut(t) => problems.push(format!(
            "timed out after {:.0} s (QEMU killed); the kernel never wrote to isa-debug-exit",
            t.as_secs_f64()
        )),
    }

    if let Some(first) = &test.first_line {
        match lines.iter().find(|l| !l.trim().is_empty()) {
            Some(l) if first.matches(l) => {}
            Some(l) => problems.push(format!("first serial line {l:?} does not match {first}")),
            None => problems.push(format!(
                "no serial output at all (expected a first line matching {first})"
            )),
        }
    }
    for p in &test.required {
        if !lines.iter().any(|l| counts(&l, p)) {
            problems.push(format!(
                "no serial line matches {p}{}",
                untrusted_hint(test, &lines, p)
            ));
        }
    }
    // Ordered requirements: each step must match a line after the line
    // that matched the step before (earliest matches, which is optimal).
    for steps in &test.in_order {
        let mut at = 0;
        for (n, p) in steps.iter().enumerate() {
            match lines.iter().skip(at).position(|l| counts(&l, p)) {
                Some(k) => at += k + 1,
                None => {
                    let after = if n == 0 {
                        String::new()
                    } else {
                        format!(" after the line matching {}", steps[n - 1])
                    };
                    problems.push(format!("no serial line matches {p}{after}"));
                    break;
                }
            }
        }
    }
    for p in &test.forbidden {
        if let Some(l) = lines.iter().find(|l| p.matches(l)) {
            problems.push(format!("forbidden line {l:?} (matches {p})"));
        }
    }
    problems
}

/// Explains a verdict that was printed, but by a party the test does not trust.
fn untrusted_hint(test: &QemuTest, lines: &[String], p: &crate::pattern::Pattern) -> String {
    match lines.iter().find(|l| p.matches(l) && !trusted_for(test, l)) {
        Some(l) => format!(" from a trusted party (ignored {l:?}: a verdict counts only from the kernel, the supervisor or {:?})", test.verdicts_from),
        None => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use crate::qemu::Firmware;
    use crate::spec::{all, Boot, QemuTest};

    fn get(name: &str) -> QemuTest {
        all().into_iter().find(|t| t.name == name).unwrap()
    }

    const GOOD: &str =
        "Serac 0.1.0 booting via pvh, 254 MiB usable\r\nstage: idt\r\nTEST boot ... ok\r\n";

    #[test]
    fn clean_strips_cr_and_escapes() {
        let l = clean_lines("\u{1b}[2J\u{1b}[1;1Hhello\r\n\u{1b}7x\u{7}y\nlast");
        assert_eq!(l, vec!["hello", "xy", "last"]);
    }

    #[test]
    fn good_boot_passes() {
        assert!(judge(&get("boot_pvh"), GOOD, Ending::Exited(33)).is_empty());
    }

    #[test]
    fn wrong_exit_and_missing_line_fail() {
        let p = judge(
            &get("boot_pvh"),
            "Serac 0.1.0 booting via pvh, 254 MiB usable\n",
            Ending::Exited(0),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("triple-faulted"));
        assert!(p[1].contains("TEST boot ... ok"));
    }

    #[test]
    fn timeout_and_silence_fail() {
        let p = judge(
            &get("boot_pvh"),
            "",
            Ending::TimedOut(Duration::from_secs(15)),
        );
        assert!(p[0].contains("timed out after 15 s"));
        assert!(p.iter().any(|x| x.contains("no serial output")));
    }

    #[test]
    fn wrong_boot_path_fails() {
        let t = QemuTest::new("x", Boot::Iso(Firmware::SeaBios), "");
        let p = judge(&t, GOOD, Ending::Exited(33));
        assert!(p.iter().any(|x| x.contains("via multiboot2")), "{p:?}");
    }

    #[test]
    fn pvh_boot_line_must_come_first() {
        let out = format!("noise\n{GOOD}");
        let p = judge(&get("boot_pvh"), &out, Ending::Exited(33));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("first serial line"));
    }

    #[test]
    fn iso_tolerates_firmware_output() {
        let out = "\u{1b}[2J\u{1b}[01;01HBdsDxe: loading Boot0001\n  Booting `Serac'\n\nSerac 0.1.0 booting via multiboot2, 249 MiB usable\r\nTEST boot ... ok\r\n";
        assert!(judge(&get("boot_iso_ovmf"), out, Ending::Exited(33)).is_empty());
    }

    #[test]
    fn forbidden_lines_fail() {
        let out = format!("{GOOD}TEST other ... FAILED: nope\n");
        let p = judge(&get("boot_pvh"), &out, Ending::Exited(33));
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("forbidden"));
    }

    #[test]
    fn panic_and_exception_tests_accept_their_lines() {
        let out = "Serac 0.1.0 booting via pvh, 254 MiB usable\nPANIC at microkernel/src/main.rs:40:9: deliberate panic\n";
        assert!(judge(&get("panic_reported"), out, Ending::Exited(35)).is_empty());
        let out = "Serac 0.1.0 booting via pvh, 254 MiB usable\nEXCEPTION #14 page fault error=0x0 rip=0xffffffff80012345 cr2=0xdeadbeef000\n";
        assert!(judge(&get("exception_reported"), out, Ending::Exited(35)).is_empty());
        // The test wants the page fault at the address it provoked.
        let out = "Serac 0.1.0 booting via pvh, 254 MiB usable\nEXCEPTION #6 invalid opcode error=0x0 rip=0xffffffff80012345\n";
        assert!(!judge(&get("exception_reported"), out, Ending::Exited(35)).is_empty());
        // A panic is not an exception.
        let out =
            "Serac 0.1.0 booting via pvh, 254 MiB usable\nPANIC at a.rs:1:1: deliberate panic\n";
        assert!(!judge(&get("exception_reported"), out, Ending::Exited(35)).is_empty());
    }

    #[test]
    fn sources_come_from_the_kernel_prefix() {
        assert_eq!(
            source("[3:1 evil] TEST x ... ok"),
            (Source::Domain("evil"), "TEST x ... ok")
        );
        assert_eq!(
            source("[ info] domain: x"),
            (Source::Kernel, "[ info] domain: x")
        );
        assert_eq!(source("[a:1 x] y"), (Source::Kernel, "[a:1 x] y"));
        assert_eq!(
            source("TEST boot ... ok"),
            (Source::Kernel, "TEST boot ... ok")
        );
    }

    #[test]
    fn forged_verdicts_do_not_count() {
        let t = QemuTest::new("x", Boot::Pvh, "")
            .require("[%d:%d %s] TEST isolation ... ok")
            .verdicts_from("neighbour");
        let head = "Serac 0.1.0 booting via pvh, 254 MiB usable\n";
        let forged = format!("{head}[3:1 evil] TEST isolation ... ok\n");
        let p = judge(&t, &forged, Ending::Exited(33));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("ignored"), "{p:?}");
        for good in [
            "[4:1 neighbour] TEST isolation ... ok",
            "[0:1 supervisor] TEST isolation ... ok",
        ] {
            let out = format!("{head}{good}\n");
            assert!(judge(&t, &out, Ending::Exited(33)).is_empty());
        }
        // A domain cannot print an unprefixed line, so only the kernel's
        // own `TEST` lines arrive without one.
        let t = QemuTest::new("x", Boot::Pvh, "").require("TEST boot ... ok");
        let out = format!("{head}[3:1 evil] TEST boot ... ok\n");
        assert!(!judge(&t, &out, Ending::Exited(33)).is_empty());
    }

    #[test]
    fn ordered_requirements_need_their_order() {
        let t = QemuTest::new("x", Boot::Pvh, "")
            .require_in_order(["attack done", "[%d:%d n] tick %d"]);
        let head = "Serac 0.1.0 booting via pvh, 254 MiB usable\n";
        let ok = format!("{head}[2:1 n] tick 1\nattack done\n[2:1 n] tick 2\n");
        assert!(judge(&t, &ok, Ending::Exited(33)).is_empty());
        let late = format!("{head}[2:1 n] tick 1\nattack done\n");
        let p = judge(&t, &late, Ending::Exited(33));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("after the line matching `attack done`"),
            "{p:?}"
        );
    }

    #[test]
    fn exit_descriptions() {
        assert!(describe_exit(3).contains("0x1"));
        assert!(describe_exit(33).contains("success"));
    }
}
