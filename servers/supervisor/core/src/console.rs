//! The operator console's pure logic: line editing, the command parser,
//! and the formatting of `ps` (docs/operating.md, "The console").
//!
//! Bytes come from the serial line (the kernel's `ConsoleInput`), so they
//! are untrusted text: nothing here panics on any input, and every bad
//! line becomes one [`ParseError`] that prints as one line.

use core::fmt;

use serac_protocol::DomainId;

/// Bytes one command line may hold; a longer line is rejected whole.
pub const LINE_MAX: usize = 80;

/// What one input byte did to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to show (a control byte, the `\n` of a `\r\n`).
    None,
    /// A printable byte was added: echo it.
    Echo(u8),
    /// The last byte was erased: show the line again.
    Erased,
    /// Enter: the line is ready in [`LineEditor::line`].
    Line,
    /// Enter after a line longer than [`LINE_MAX`]: it was dropped.
    TooLong,
}

/// The line being typed.
#[derive(Debug, Clone)]
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
    /// More was typed than fits: the line is dropped at Enter.
    overflow: bool,
    /// The last byte was `\r` (so a following `\n` is the same Enter).
    after_cr: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    pub const fn new() -> Self {
        LineEditor {
            buf: [0; LINE_MAX],
            len: 0,
            overflow: false,
            after_cr: false,
        }
    }

    /// Feeds one byte: printable ASCII is added, backspace (`0x08` or
    /// `0x7f`) erases, `\r` or `\n` ends the line, anything else is ignored.
    pub fn feed(&mut self, b: u8) -> Edit {
        let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
        match b {
            b'\n' if after_cr => Edit::None,
            b'\r' | b'\n' => {
                let overflow = core::mem::replace(&mut self.overflow, false);
                if overflow {
                    self.len = 0;
                    Edit::TooLong
                } else {
                    Edit::Line
                }
            }
            0x08 | 0x7f => {
                if self.overflow {
                    return Edit::None;
                }
                self.len = self.len.saturating_sub(1);
                Edit::Erased
            }
            0x20..=0x7e => match self.buf.get_mut(self.len) {
                Some(slot) if !self.overflow => {
                    *slot = b;
                    self.len += 1;
                    Edit::Echo(b)
                }
                _ => {
                    self.overflow = true;
                    Edit::None
                }
            },
            _ => Edit::None,
        }
    }

    /// The line typed so far (printable ASCII only).
    pub fn line(&self) -> &str {
        // Only bytes 0x20..=0x7e are ever stored.
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("")
    }

    /// Empties the line (after it was handled).
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }
}

/// A domain named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `index:gen`.
    Id(DomainId),
    /// An instance name: `hello`, `httpd#3`.
    Name(&'a str),
}

/// Which rows `ps` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows<'a> {
    /// Every row when there are few domains, else a summary.
    Auto,
    /// Every row.
    All,
    /// The instances of a manifest domain, or the one instance so named.
    Named(&'a str),
}

/// Most copies one `start` asks for.
pub const START_MAX: u32 = 1000;

/// One console command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// An empty line.
    Nothing,
    /// `help`.
    Help,
    /// `ps [all|NAME]`.
    Ps(Rows<'a>),
    /// `top [all|NAME]`: `ps` every 2 s until a key is pressed.
    Top(Rows<'a>),
    /// `kill DOMAIN`.
    Kill(Target<'a>),
    /// `restart DOMAIN`.
    Restart(Target<'a>),
    /// `swapout DOMAIN`.
    SwapOut(Target<'a>),
    /// `start NAME [count]`.
    Start(&'a str, u32),
    /// `log DOMAIN`.
    Log(Target<'a>),
}

/// Why a line is not a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// The first word is no command.
    Unknown(&'a str),
    /// The command needs an argument.
    Missing(&'static str),
    /// An argument more than the command takes.
    Extra(&'a str),
    /// Not `index:gen` nor a name.
    BadDomain(&'a str),
    /// Not a count from 1 to [`START_MAX`].
    BadCount(&'a str),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(w) => write!(f, "unknown command {w:?} (try help)"),
            ParseError::Missing(what) => write!(f, "missing {what} (try help)"),
            ParseError::Extra(w) => write!(f, "unexpected argument {w:?} (try help)"),
            ParseError::BadDomain(w) => {
                write!(
                    f,
                    "{w:?} is not a domain (a name like httpd#3, or index:gen)"
                )
            }
            ParseError::BadCount(w) => write!(f, "{w:?} is not a count from 1 to {START_MAX}"),
        }
    }
}

/// The `help` text, one line per command.
pub const HELP: &[&str] = &[
    "ps [all|NAME]      domains: id, name, class, state, cpu, memory, net, disk, upcalls",
    "top [all|NAME]     ps every 2 s until a key is pressed",
    "kill DOMAIN        end a domain (DOMAIN: a name like httpd#3, or index:gen)",
    "restart DOMAIN     restart a domain in its slot",
    "swapout DOMAIN     ask its pager to swap it out whole",
    "start NAME [N]     start N more instances of manifest domain NAME (default 1)",
    "log DOMAIN         the last lines the domain printed",
    "help               this list",
];

/// Parses a domain argument: `index:gen` or a name of the kernel's
/// character set plus `#` (`DomainId::NONE`, `0:0`, is no domain).
pub fn parse_target(w: &str) -> Result<Target<'_>, ParseError<'_>> {
    if let Some((i, g)) = w.split_once(':') {
        return match (i.parse::<u32>(), g.parse::<u32>()) {
            (Ok(index), Ok(gen)) if gen != 0 => Ok(Target::Id(DomainId::new(index, gen))),
            _ => Err(ParseError::BadDomain(w)),
        };
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '#');
    if !w.is_empty() && w.len() <= 24 && w.chars().all(ok) {
        Ok(Target::Name(w))
    } else {
        Err(ParseError::BadDomain(w))
    }
}

fn rows(w: Option<&str>) -> Result<Rows<'_>, ParseError<'_>> {
    match w {
        None => Ok(Rows::Auto),
        Some("all") => Ok(Rows::All),
        Some(n) => match parse_target(n)? {
            Target::Name(n) => Ok(Rows::Named(n)),
            Target::Id(_) => Err(ParseError::BadDomain(n)),
        },
    }
}

/// Parses one line (words separated by spaces).
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(cmd) = words.next() else {
        return Ok(Command::Nothing);
    };
    let arg = words.next();
    let third = words.next();
    fn need(a: Option<&str>) -> Result<&str, ParseError<'_>> {
        a.ok_or(ParseError::Missing("DOMAIN"))
    }
    let c = match cmd {
        "help" | "?" => Command::Help,
        "ps" => Command::Ps(rows(arg)?),
        "top" => Command::Top(rows(arg)?),
        "kill" => Command::Kill(parse_target(need(arg)?)?),
        "restart" => Command::Restart(parse_target(need(arg)?)?),
        "swapout" => Command::SwapOut(parse_target(need(arg)?)?),
        "log" => Command::Log(parse_target(need(arg)?)?),
        "start" => {
            let name = arg.ok_or(ParseError::Missing("NAME"))?;
            match parse_target(name)? {
                Target::Name(n) if !n.contains('#') => {}
                _ => return Err(ParseError::BadDomain(name)),
            }
            let count = match third {
                None => 1,
                Some(w) => match w.parse::<u32>() {
                    Ok(n) if (1..=START_MAX).contains(&n) => n,
                    _ => return Err(ParseError::BadCount(w)),
                },
            };
            if let Some(extra) = words.next() {
                return Err(ParseError::Extra(extra));
            }
            return Ok(Command::Start(name, count));
        }
        other => return Err(ParseError::Unknown(other)),
    };
    let extra = match c {
        Command::Help => arg,
        _ => third,
    };
    match extra {
        Some(w) => Err(ParseError::Extra(w)),
        None => Ok(c),
    }
}

/// A domain's state as `ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// On the run queue or running.
    Running,
    /// In `idle`, or waiting in `reply_recv` for work.
    Idle,
    /// In `call`/`send`, or waiting for its pager.
    Blocked,
    /// Swapped out whole by its pager.
    SwappedOut,
    /// Built (or restarted) and not started.
    Stopped,
    /// Ended.
    Dead,
}

impl State {
    /// Every state, in the order `ps` summarises them.
    pub const ALL: [State; 6] = [
        State::Running,
        State::Idle,
        State::Blocked,
        State::SwappedOut,
        State::Stopped,
        State::Dead,
    ];

    /// From the kernel's `ReadCounter(State)` (`None`: it refused, i.e.
    /// the record is gone), whether its pager has it swapped out, and
    /// whether the supervisor reaped it.
    pub fn of(kernel: Option<u64>, swapped_out: bool, reaped: bool) -> State {
        use serac_protocol::syscall as s;
        match kernel {
            _ if reaped => State::Dead,
            None | Some(s::STATE_DEAD) => State::Dead,
            Some(s::STATE_STOPPED) => State::Stopped,
            _ if swapped_out => State::SwappedOut,
            Some(s::STATE_RUNNABLE) => State::Running,
            Some(s::STATE_IDLE | s::STATE_RECEIVING) => State::Idle,
            Some(_) => State::Blocked,
        }
    }

    /// Its name in `ps`.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Idle => "idle",
            State::Blocked => "blocked",
            State::SwappedOut => "swapped-out",
            State::Stopped => "stopped",
            State::Dead => "dead",
        }
    }
}

/// Network counters of a `net = true` domain's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    /// Frames the switch queued for it.
    pub rx_frames: u64,
    /// Frames it sent that the switch forwarded.
    pub tx_frames: u64,
}

/// One `ps` row.
#[derive(Clone, Copy)]
pub struct Row<'a> {
    /// The domain.
    pub id: DomainId,
    /// Its instance name.
    pub name: &'a dyn fmt::Display,
    /// `server` or `guest`.
    pub class: &'static str,
    /// Its state.
    pub state: State,
    /// CPU ticks charged in the window.
    pub cpu: u64,
    /// TSC ticks in the window (0: no share shown).
    pub window: u64,
    /// Pages resident (bound by the supervisor, plus its pager's).
    pub resident: u64,
    /// Pages its pager holds swapped (`None`: no pager).
    pub swapped: Option<u64>,
    /// Its port's counters (`None`: no port, or the vnic did not answer).
    pub net: Option<Net>,
    /// Upcalls (and event-returning waits) delivered.
    pub upcalls: u64,
    /// Events raised.
    pub events: u64,
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Row({self})")
    }
}

/// The `ps` header, matching [`Row`]'s columns.
pub const PS_HEADER: &str =
    "ID        NAME             CLASS  STATE        CPU%   RES   SWAP  NET rx/tx        DISK  UPCALLS   EVENTS  BATCH";

/// `part` per `whole` in tenths of a percent, `None` without a window.
pub fn permille(part: u64, whole: u64) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    Some((u128::from(part) * 1000 / u128::from(whole)).min(1000) as u64)
}

/// Events per upcall in hundredths: the batching factor.
pub fn batching(events: u64, upcalls: u64) -> Option<u64> {
    (upcalls != 0)
        .then(|| (u128::from(events) * 100 / u128::from(upcalls)).min(u128::from(u64::MAX)) as u64)
}

/// Writes `v` in a column of `width`, or `-`.
struct Opt<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.pad("-"),
        }
    }
}

/// Pads `args` as one column (cut at 40 bytes).
fn pad(f: &mut fmt::Formatter<'_>, args: fmt::Arguments<'_>) -> fmt::Result {
    let mut b = [0u8; 40];
    let mut w = Buf(&mut b, 0);
    let _ = fmt::Write::write_fmt(&mut w, args);
    let n = w.1;
    f.pad(core::str::from_utf8(b.get(..n).unwrap_or(&[])).unwrap_or("?"))
}

/// Tenths (`123` prints `12.3`), padded.
struct Tenths(u64);

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        pad(f, format_args!("{}.{}", self.0 / 10, self.0 % 10))
    }
}

/// Hundredths (`250` prints `2.50`), padded.
struct Hundredths(u64);

impl fmt::Display for Hundredths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        pad(f, format_args!("{}.{:02}", self.0 / 100, self.0 % 100))
    }
}

/// Any `Display` padded as one column (names, ids).
struct Cell<'a>(&'a dyn fmt::Display);

impl fmt::Display for Cell<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        pad(f, format_args!("{}", self.0))
    }
}

/// A fixed buffer for the cells (long text is cut).
struct Buf<'a>(&'a mut [u8], usize);

impl fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            let Some(slot) = self.0.get_mut(self.1) else {
                return Ok(());
            };
            *slot = b;
            self.1 += 1;
        }
        Ok(())
    }
}

struct Id(DomainId);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.index, self.0.gen)
    }
}

struct NetCell(Option<Net>);

impl fmt::Display for NetCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{}/{}", n.rx_frames, n.tx_frames),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<9} {:<16} {:<6} {:<11} {:>5} {:>5} {:>6}  {:<15} {:>5} {:>8} {:>8} {:>6}",
            Cell(&Id(self.id)),
            Cell(self.name),
            self.class,
            self.state.name(),
            Opt(permille(self.cpu, self.window).map(Tenths)),
            self.resident,
            Opt(self.swapped),
            Cell(&NetCell(self.net)),
            "-",
            self.upcalls,
            self.events,
            Opt(batching(self.events, self.upcalls).map(Hundredths)),
        )
    }
}

/// Counts by class and state, for `ps` with many domains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `[server, guest][state]` counts, states in [`State::ALL`] order.
    pub counts: [[u64; 6]; 2],
}

impl Summary {
    /// Counts one domain.
    pub fn add(&mut self, server: bool, s: State) {
        let c = usize::from(!server);
        let k = State::ALL.iter().position(|&x| x == s).unwrap_or(0);
        if let Some(n) = self.counts.get_mut(c).and_then(|r| r.get_mut(k)) {
            *n += 1;
        }
    }

    /// One line per class with any domain: `guest: 1990 idle, 10 running`.
    pub fn lines(&self) -> impl Iterator<Item = SummaryLine<'_>> {
        self.counts
            .iter()
            .zip(["server", "guest"])
            .filter(|(r, _)| r.iter().any(|&n| n > 0))
            .map(|(r, class)| SummaryLine { class, counts: r })
    }
}

/// One class's line of a [`Summary`].
#[derive(Debug, Clone, Copy)]
pub struct SummaryLine<'a> {
    class: &'static str,
    counts: &'a [u64; 6],
}

impl fmt::Display for SummaryLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.counts.iter().sum();
        write!(f, "{}: {total} domain(s):", self.class)?;
        let mut first = true;
        for (n, s) in self.counts.iter().zip(State::ALL) {
            if *n > 0 {
                write!(f, "{} {n} {}", if first { "" } else { "," }, s.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

/// The lines of console `history` (the kernel's output ring, oldest
/// first) that domain `id` printed, without their `\r`; the first line
/// is skipped when `cut` (the ring began inside it).
pub fn log_lines(history: &[u8], id: DomainId, cut: bool) -> impl Iterator<Item = &str> {
    let mut prefix = [0u8; 24];
    let mut w = Buf(&mut prefix, 0);
    let _ = fmt::Write::write_fmt(&mut w, format_args!("[{}:{} ", id.index, id.gen));
    let n = w.1;
    history
        .split(|&b| b == b'\n')
        .skip(usize::from(cut))
        .filter(move |l| l.starts_with(prefix.get(..n).unwrap_or(&[])))
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| core::str::from_utf8(l).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn typed(e: &mut LineEditor, s: &[u8]) -> Vec<Edit> {
        s.iter().map(|&b| e.feed(b)).collect()
    }

    #[test]
    fn line_editing() {
        let mut e = LineEditor::new();
        let edits = typed(&mut e, b"px\x7fs\r\n");
        assert_eq!(
            edits,
            [
                Edit::Echo(b'p'),
                Edit::Echo(b'x'),
                Edit::Erased,
                Edit::Echo(b's'),
                Edit::Line,
                Edit::None
            ]
        );
        assert_eq!(e.line(), "ps");
        e.clear();
        assert_eq!(
            typed(&mut e, b"\x1b[A\x08\n"),
            [
                Edit::None,
                Edit::Echo(b'['),
                Edit::Echo(b'A'),
                Edit::Erased,
                Edit::Line
            ]
        );
        assert_eq!(e.line(), "[");
        e.clear();
        let long = [b'a'; LINE_MAX + 5];
        typed(&mut e, &long);
        assert_eq!(e.feed(b'\r'), Edit::TooLong);
        assert_eq!(e.line(), "");
        typed(&mut e, b"help");
        assert_eq!(e.feed(b'\n'), Edit::Line);
        assert_eq!(e.line(), "help");
        // Exactly full is fine.
        e.clear();
        typed(&mut e, &long[..LINE_MAX]);
        assert_eq!(e.feed(b'\r'), Edit::Line);
        assert_eq!(e.line().len(), LINE_MAX);
    }

    #[test]
    fn commands() {
        let id = |i, g| Target::Id(DomainId::new(i, g));
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse("   "), Ok(Command::Nothing));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("ps"), Ok(Command::Ps(Rows::Auto)));
        assert_eq!(parse(" ps  all "), Ok(Command::Ps(Rows::All)));
        assert_eq!(parse("ps httpd"), Ok(Command::Ps(Rows::Named("httpd"))));
        assert_eq!(parse("top"), Ok(Command::Top(Rows::Auto)));
        assert_eq!(
            parse("kill httpd#3"),
            Ok(Command::Kill(Target::Name("httpd#3")))
        );
        assert_eq!(parse("kill 4:2"), Ok(Command::Kill(id(4, 2))));
        assert_eq!(
            parse("restart vnic"),
            Ok(Command::Restart(Target::Name("vnic")))
        );
        assert_eq!(parse("swapout 7:1"), Ok(Command::SwapOut(id(7, 1))));
        assert_eq!(parse("log hello"), Ok(Command::Log(Target::Name("hello"))));
        assert_eq!(parse("start ticker"), Ok(Command::Start("ticker", 1)));
        assert_eq!(parse("start httpd 12"), Ok(Command::Start("httpd", 12)));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("frobnicate"), Err(ParseError::Unknown("frobnicate")));
        assert_eq!(parse("kill"), Err(ParseError::Missing("DOMAIN")));
        assert_eq!(parse("start"), Err(ParseError::Missing("NAME")));
        assert_eq!(parse("kill a b"), Err(ParseError::Extra("b")));
        assert_eq!(parse("help me"), Err(ParseError::Extra("me")));
        assert_eq!(parse("ps all x"), Err(ParseError::Extra("x")));
        assert_eq!(parse("kill 4:0"), Err(ParseError::BadDomain("4:0")));
        assert_eq!(parse("kill 4:x"), Err(ParseError::BadDomain("4:x")));
        assert_eq!(parse("kill :"), Err(ParseError::BadDomain(":")));
        assert_eq!(parse("kill a$b"), Err(ParseError::BadDomain("a$b")));
        assert_eq!(parse("ps 3:1"), Err(ParseError::BadDomain("3:1")));
        assert_eq!(
            parse("start httpd#2"),
            Err(ParseError::BadDomain("httpd#2"))
        );
        assert_eq!(parse("start httpd 0"), Err(ParseError::BadCount("0")));
        assert_eq!(parse("start httpd 1001"), Err(ParseError::BadCount("1001")));
        assert_eq!(parse("start httpd -1"), Err(ParseError::BadCount("-1")));
        assert_eq!(parse("start httpd 2 3"), Err(ParseError::Extra("3")));
        let msg = parse("frobnicate").unwrap_err().to_string();
        assert_eq!(msg, "unknown command \"frobnicate\" (try help)");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn states() {
        use serac_protocol::syscall as s;
        let cases = [
            (Some(s::STATE_RUNNABLE), false, false, State::Running),
            (Some(s::STATE_IDLE), false, false, State::Idle),
            (Some(s::STATE_RECEIVING), false, false, State::Idle),
            (Some(s::STATE_BLOCKED), false, false, State::Blocked),
            (Some(s::STATE_IDLE), true, false, State::SwappedOut),
            (Some(s::STATE_BLOCKED), true, false, State::SwappedOut),
            (Some(s::STATE_STOPPED), false, false, State::Stopped),
            (Some(s::STATE_DEAD), false, false, State::Dead),
            (None, false, false, State::Dead),
            (Some(s::STATE_RUNNABLE), false, true, State::Dead),
        ];
        for (kernel, out, reaped, want) in cases {
            assert_eq!(
                State::of(kernel, out, reaped),
                want,
                "{kernel:?} {out} {reaped}"
            );
        }
    }

    #[test]
    fn ps_rows() {
        let name = "httpd#3";
        let row = Row {
            id: DomainId::new(12, 1),
            name: &name,
            class: "guest",
            state: State::Idle,
            cpu: 25,
            window: 1000,
            resident: 40,
            swapped: Some(3),
            net: Some(Net {
                rx_frames: 7,
                tx_frames: 9,
            }),
            upcalls: 4,
            events: 10,
        };
        let s = row.to_string();
        assert!(
            s.starts_with("12:1      httpd#3          guest  idle         "),
            "{s}"
        );
        assert!(s.contains("  2.5 "), "{s}");
        assert!(s.contains(" 40      3  7/9 "), "{s}");
        assert!(s.ends_with("     4       10   2.50"), "{s}");
        assert_eq!(s.len(), PS_HEADER.len(), "{s}\n{PS_HEADER}");
        let bare = Row {
            window: 0,
            swapped: None,
            net: None,
            upcalls: 0,
            ..row
        };
        let s = bare.to_string();
        assert_eq!(
            s.matches(" - ").count() + usize::from(s.ends_with(" -")),
            5,
            "{s}"
        );
        assert_eq!(permille(1, 3), Some(333));
        assert_eq!(permille(5, 0), None);
        assert_eq!(permille(u64::MAX, 1), Some(1000));
        assert_eq!(batching(u64::MAX, 1), Some(u64::MAX));
        // A long name is cut, never a panic.
        let long = "a-very-long-name-indeed-longer-than-forty-bytes-for-sure";
        let _ = Row { name: &long, ..row }.to_string();
    }

    #[test]
    fn summaries() {
        let mut s = Summary::default();
        for _ in 0..3 {
            s.add(false, State::Idle);
        }
        s.add(false, State::SwappedOut);
        s.add(true, State::Running);
        let lines: Vec<String> = s.lines().map(|l| l.to_string()).collect();
        assert_eq!(
            lines,
            [
                "server: 1 domain(s): 1 running",
                "guest: 4 domain(s): 3 idle, 1 swapped-out"
            ]
        );
    }

    #[test]
    fn logs() {
        let h = b"ter] x\r\n[3:1 hello] a\r\n[0:1 supervisor] log: [3:1 hello] a\r\n[13:1 b] c\r\n[3:1 hello] b\n[3:1 hel";
        let got: Vec<&str> = log_lines(h, DomainId::new(3, 1), true).collect();
        assert_eq!(got, ["[3:1 hello] a", "[3:1 hello] b", "[3:1 hel"]);
        let got: Vec<&str> = log_lines(b"[3:1 x] y", DomainId::new(3, 1), true).collect();
        assert!(got.is_empty());
        assert!(log_lines(b"", DomainId::new(1, 1), false).next().is_none());
    }

    proptest! {
        /// Any bytes: no panic, the line stays printable and bounded, and
        /// parsing it never panics.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut e = LineEditor::new();
            for b in bytes {
                if e.feed(b) == Edit::Line {
                    let l = e.line();
                    prop_assert!(l.len() <= LINE_MAX);
                    prop_assert!(l.bytes().all(|b| (0x20..=0x7e).contains(&b)));
                    if let Err(err) = parse(l) {
                        prop_assert!(!err.to_string().contains('\n'));
                    }
                    e.clear();
                }
            }
        }

        #[test]
        fn parse_any_text(s in "\\PC{0,60}") {
            if let Err(err) = parse(&s) {
                prop_assert!(!err.to_string().contains('\n'));
            }
            let _ = log_lines(s.as_bytes(), DomainId::new(1, 1), false).count();
        }
    }
}
