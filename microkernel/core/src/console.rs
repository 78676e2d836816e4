//! The serial console's rules: whose line is whose, what a domain may
//! print, and how much.
//!
//! Every line a domain writes with `debug_write` reaches the console as
//! `[<index>:<gen> <name>] <text>`. The kernel writes the prefix itself, at
//! the start of every line, so no domain can print a line that looks like
//! the kernel's or another domain's: kernel lines never start with `[` and a
//! digit, and a domain cannot end its prefix early (control characters,
//! terminal escapes included, are replaced by `?`). When one writer's line
//! is unfinished and another writes, a newline ends it first.
//!
//! Output is bounded per domain by a [`Budget`] (a token bucket), so a
//! domain cannot keep the console (a busy-waited UART) to itself; what it
//! writes beyond the budget is dropped and counted, never slowed.

/// Who is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer<'a> {
    /// The kernel's own log and reports: never prefixed.
    Kernel,
    /// A domain: slot index, generation and the name given at creation.
    Domain {
        /// Slot index.
        index: u32,
        /// Generation.
        gen: u32,
        /// Name (printable ASCII; anything else prints as `?`).
        name: &'a str,
    },
}

/// What the console emits, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// End the current line.
    Newline,
    /// A domain's prefix, `[index:gen name] `.
    Prefix(u32, u32, &'a str),
    /// One character of text (never a control character but `\t`).
    Char(char),
}

/// The console's line state: who wrote last and whether a line is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    open: Option<Owner>,
}

/// The writer of an open line (names are not kept: index and generation
/// identify the domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Kernel,
    Domain(u32, u32),
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `c` may appear in a name as printed in a prefix.
fn name_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
        c
    } else {
        '?'
    }
}

impl Lines {
    /// No line open.
    pub const fn new() -> Self {
        Lines { open: None }
    }

    /// Feeds `text` from `who` through the rules, calling `emit` for each
    /// piece. A domain's bytes are taken as UTF-8; invalid sequences and
    /// control characters other than `\n` and `\t` become `?`. The kernel's
    /// text is trusted and passed as is (but for `\r`, which the UART
    /// layer adds itself).
    pub fn write<'n>(&mut self, who: Writer<'n>, text: &[u8], mut emit: impl FnMut(Piece<'n>)) {
        let owner = match who {
            Writer::Kernel => Owner::Kernel,
            Writer::Domain { index, gen, .. } => Owner::Domain(index, gen),
        };
        let mut put = |lines: &mut Lines, c: char| {
            if c == '\n' {
                if lines.open.is_none() {
                    // An empty line still carries its writer's prefix.
                    if let Writer::Domain { index, gen, name } = who {
                        emit(Piece::Prefix(index, gen, name));
                    }
                }
                emit(Piece::Newline);
                lines.open = None;
                return;
            }
            match lines.open {
                Some(o) if o == owner => {}
                Some(_) => {
                    emit(Piece::Newline);
                    lines.open = None;
                }
                None => {}
            }
            if lines.open.is_none() {
                if let Writer::Domain { index, gen, name } = who {
                    emit(Piece::Prefix(index, gen, name));
                }
                lines.open = Some(owner);
            }
            emit(Piece::Char(c));
        };
        for chunk in text.utf8_chunks() {
            for c in chunk.valid().chars() {
                let c = match (who, c) {
                    (_, '\n' | '\t') => c,
                    (_, '\r') => continue,
                    (Writer::Domain { .. }, c) if c.is_control() => '?',
                    _ => c,
                };
                put(self, c);
            }
            if !chunk.invalid().is_empty() {
                put(self, '?');
            }
        }
    }

    /// Ends any open line (before a report that must start on its own line).
    pub fn break_line(&mut self, mut emit: impl FnMut(Piece<'_>)) {
        if self.open.take().is_some() {
            emit(Piece::Newline);
        }
    }
}

/// Maps the characters of a domain's name for its prefix.
pub fn prefix_name(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars().map(name_char)
}

/// A per-domain token bucket of console bytes: `burst` bytes at most,
/// refilled at `rate` bytes per second of TSC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    tokens: u32,
    /// TSC of the last refill.
    at: u64,
    /// Bytes dropped over the budget, ever.
    dropped: u64,
    /// Whether the last write was cut short (to report each episode once).
    throttled: bool,
}

/// Bytes a domain may write in one burst.
pub const BURST: u32 = 16 * 1024;
/// Bytes per second a domain's budget refills by.
pub const RATE: u64 = 2 * 1024;

/// What [`Budget::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Bytes that may be written now.
    pub bytes: u64,
    /// This write began a new episode of throttling (report it once).
    pub newly_throttled: bool,
}

impl Budget {
    /// A full bucket at TSC `now`.
    pub const fn new(now: u64) -> Self {
        Budget {
            tokens: BURST,
            at: now,
            dropped: 0,
            throttled: false,
        }
    }

    /// Takes up to `want` bytes at TSC `now` with `tsc_hz` ticks per second.
    pub fn take(&mut self, now: u64, tsc_hz: u64, want: u64) -> Grant {
        let elapsed = now.saturating_sub(self.at);
        let hz = tsc_hz.max(1);
        // Whole bytes earned since the last refill; the remainder of time
        // is kept by advancing `at` only by what was paid for.
        let earned = (u128::from(elapsed) * u128::from(RATE) / u128::from(hz)) as u64;
        if earned > 0 {
            let room = u64::from(BURST - self.tokens);
            self.tokens += earned.min(room) as u32;
            if earned >= room {
                self.at = now;
            } else {
                let paid = (u128::from(earned) * u128::from(hz) / u128::from(RATE)) as u64;
                self.at = self.at.saturating_add(paid);
            }
        } else if now < self.at {
            self.at = now;
        }
        let bytes = want.min(u64::from(self.tokens));
        self.tokens -= bytes as u32;
        let cut = want - bytes;
        self.dropped = self.dropped.saturating_add(cut);
        let newly = cut > 0 && !self.throttled;
        self.throttled = cut > 0;
        Grant {
            bytes,
            newly_throttled: newly,
        }
    }

    /// Bytes dropped over the budget since the domain began.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    fn render(lines: &mut Lines, writes: &[(Writer<'_>, &[u8])]) -> String {
        let mut out = String::new();
        for (w, t) in writes {
            lines.write(*w, t, |p| match p {
                Piece::Newline => out.push('\n'),
                Piece::Prefix(i, g, n) => {
                    out.push_str(&std::format!("[{i}:{g} "));
                    out.extend(prefix_name(n));
                    out.push_str("] ");
                }
                Piece::Char(c) => out.push(c),
            });
        }
        out
    }

    const A: Writer<'static> = Writer::Domain {
        index: 3,
        gen: 1,
        name: "evil",
    };
    const B: Writer<'static> = Writer::Domain {
        index: 4,
        gen: 2,
        name: "neighbour",
    };

    #[test]
    fn every_domain_line_is_prefixed() {
        let mut l = Lines::new();
        let out = render(&mut l, &[(A, b"one\ntwo\n\nthree")]);
        assert_eq!(
            out,
            "[3:1 evil] one\n[3:1 evil] two\n[3:1 evil] \n[3:1 evil] three"
        );
    }

    #[test]
    fn forged_prefixes_and_escapes_stay_inside_the_line() {
        let mut l = Lines::new();
        let out = render(
            &mut l,
            &[(A, b"\r[0:1 supervisor] TEST x ... ok\x1b[2K\xff\xc2\x9b\n")],
        );
        assert_eq!(out, "[3:1 evil] [0:1 supervisor] TEST x ... ok?[2K??\n");
    }

    #[test]
    fn another_writer_ends_an_open_line() {
        let mut l = Lines::new();
        let out = render(
            &mut l,
            &[
                (A, b"partial"),
                (Writer::Kernel, b"[ info] k\n"),
                (A, b" more\n"),
                (B, b"x"),
            ],
        );
        assert_eq!(
            out,
            "[3:1 evil] partial\n[ info] k\n[3:1 evil]  more\n[4:2 neighbour] x"
        );
        let mut l = Lines::new();
        let out = render(&mut l, &[(A, b"a"), (A, b"b\n")]);
        assert_eq!(out, "[3:1 evil] ab\n");
    }

    #[test]
    fn names_print_safely() {
        let n: String = prefix_name("a] b\n").collect();
        assert_eq!(n, "a??b?");
    }

    #[test]
    fn budget_bursts_then_refills_at_rate() {
        let hz = 1_000_000;
        let mut b = Budget::new(0);
        assert_eq!(b.take(0, hz, u64::from(BURST)).bytes, u64::from(BURST));
        let g = b.take(0, hz, 100);
        assert_eq!((g.bytes, g.newly_throttled), (0, true));
        assert!(!b.take(0, hz, 100).newly_throttled);
        assert_eq!(b.dropped(), 200);
        // Half a second later: RATE / 2 bytes.
        assert_eq!(b.take(hz / 2, hz, 10_000).bytes, RATE / 2);
        // A write that fits ends the episode.
        assert_eq!(b.take(hz, hz, 10).bytes, 10);
        assert!(b.take(hz, hz, 10_000).newly_throttled);
    }

    proptest! {
        #[test]
        fn budget_never_grants_more_than_earned(
            steps in proptest::collection::vec((0u64..5_000_000, 0u64..70_000), 1..50),
        ) {
            let hz = 2_000_000u64;
            let mut b = Budget::new(0);
            let mut now = 0u64;
            let mut granted = 0u64;
            let mut wanted = 0u64;
            for (dt, want) in steps {
                now += dt;
                granted += b.take(now, hz, want).bytes;
                wanted += want;
            }
            let earned = u64::from(BURST) + now * RATE / hz;
            prop_assert!(granted <= earned);
            prop_assert_eq!(granted + b.dropped(), wanted);
        }

        #[test]
        fn no_domain_text_makes_an_unprefixed_line(
            writes in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(proptest::num::u8::ANY, 0..40)),
                1..20,
            ),
        ) {
            let mut l = Lines::new();
            let ws: Vec<(Writer<'_>, &[u8])> = writes
                .iter()
                .map(|(w, t)| {
                    let w = match w { 0 => A, 1 => B, _ => Writer::Kernel };
                    (w, t.as_slice())
                })
                .collect();
            let kernel_text = ws.iter().any(|(w, _)| *w == Writer::Kernel);
            let out = render(&mut l, &ws);
            for line in out.split('\n') {
                prop_assert!(!line.contains('\r'));
                if !kernel_text {
                    prop_assert!(!line.chars().any(|c| c.is_control() && c != '\t'));
                    prop_assert!(line.is_empty() || line.starts_with("[3:1 evil] ") || line.starts_with("[4:2 neighbour] "), "{:?}", line);
                }
            }
        }
    }
}
