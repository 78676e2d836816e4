//! The operator console on the serial line (docs/operating.md, "The
//! console").
//!
//! The kernel queues what COM1 receives and notifies the supervisor
//! (`CONSOLE_INPUT_NOTIFY`); the serve loop wakes on events between
//! messages and hands the bytes here, so input never holds up exit
//! messages, restarts or pager and vnic requests for longer than one
//! command takes. Parsing and formatting are
//! `serac_supervisor_core::console` (host-tested); this module runs the
//! commands. `kill`, `restart` and `swapout` go through the same request
//! path as a domain's, as `Asker::Console`, the one asker allowed to end
//! or start domains.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use ilwaco::{print, println, sys, time};
use serac_protocol::header::HEADER_LEN;
use serac_protocol::supervisor::{Reply, Request};
use serac_protocol::syscall::{DomainCounter, DomainOp, CONSOLE_HISTORY, CONSOLE_READ_MAX};
use serac_protocol::DomainId;
use serac_supervisor_core::console::{
    self as cc, Command, Edit, LineEditor, Net, Row, Rows, State, Summary, Target, HELP, PS_HEADER,
};
use serac_supervisor_core::manifest::Class;

use crate::domains::{Life, Supervisor, ROOT};

/// `ps` shows every row up to this many instances, else a summary.
const ROWS_MAX: usize = 40;
/// `top` refreshes this often.
const TOP_EVERY_NS: u64 = 2_000_000_000;
/// `log` shows at most this many lines.
const LOG_LINES: usize = 20;
/// The prompt.
const PROMPT: &str = "serac> ";

/// The console's state.
#[derive(Debug, Default)]
pub struct Console {
    editor: LineEditor,
    /// `top`: what it shows (owned: the line is gone) and its next TSC.
    top: Option<(TopRows, u64)>,
    /// CPU ticks per instance at the last `ps`, and the TSC then.
    last_cpu: Vec<u64>,
    last_tsc: u64,
    /// The prompt (and the line typed so far) ends the console's last
    /// line: other output would continue it, so [`Console::interrupt`]
    /// ends it first, and the next key shows it again.
    prompt_open: bool,
}

/// `top`'s rows, owned.
#[derive(Debug, Clone)]
enum TopRows {
    Auto,
    All,
    Named(String),
}

impl TopRows {
    fn rows(&self) -> Rows<'_> {
        match self {
            TopRows::Auto => Rows::Auto,
            TopRows::All => Rows::All,
            TopRows::Named(n) => Rows::Named(n),
        }
    }
}

impl Console {
    /// Says how to use it, once the domains are up.
    pub fn greet(&mut self) {
        println!("supervisor: console on the serial line; type help");
        self.prompt();
    }

    fn prompt(&mut self) {
        print!("{PROMPT}{}", self.editor.line());
        self.prompt_open = true;
    }

    /// The supervisor is about to print something else: end the prompt's
    /// line (what was typed is kept, and shown again at the next key).
    pub fn interrupt(&mut self) {
        if core::mem::take(&mut self.prompt_open) {
            println!();
        }
    }

    /// The TSC deadline of `top`'s next refresh (0: none).
    pub fn deadline(&self) -> u64 {
        self.top.as_ref().map_or(0, |(_, d)| *d)
    }

    /// `top`'s deadline passed: show it again.
    pub fn tick(&mut self, sup: &mut Supervisor<'_>) {
        let Some((rows, _)) = self.top.take() else {
            return;
        };
        self.interrupt();
        self.ps(sup, rows.rows());
        println!("(top: every 2 s; press a key to stop)");
        self.top = Some((rows, after(TOP_EVERY_NS)));
    }

    /// Events woke the serve loop: take and handle the serial input.
    pub fn input(&mut self, sup: &mut Supervisor<'_>) {
        let mut buf = [0u8; CONSOLE_READ_MAX];
        loop {
            let n = match sys::domain_ctl(ROOT, DomainOp::ConsoleInput, 0, 0) {
                Ok(n) => usize::try_from(n).unwrap_or(0).min(buf.len()),
                Err(_) => 0,
            };
            let Some(bytes) = buf.get_mut(..n).filter(|b| !b.is_empty()) else {
                return;
            };
            if sys::ipc_read(HEADER_LEN, bytes).is_err() {
                return;
            }
            for &b in bytes.iter() {
                self.byte(sup, b);
            }
        }
    }

    fn byte(&mut self, sup: &mut Supervisor<'_>, b: u8) {
        if self.top.take().is_some() {
            // A key ends `top`, and is not part of the next line.
            println!("console: top stopped");
            self.prompt();
            return;
        }
        let edit = self.editor.feed(b);
        if edit == Edit::None {
            return;
        }
        // The prompt's line was ended by other output: end ours after it.
        let open = core::mem::take(&mut self.prompt_open);
        match edit {
            Edit::None => {}
            Edit::Echo(c) => {
                if !open {
                    // Shown again, with what was typed before this key.
                    let line = self.editor.line();
                    let before = line.get(..line.len().saturating_sub(1)).unwrap_or("");
                    print!("{PROMPT}{before}");
                }
                print!("{}", char::from(c));
                self.prompt_open = true;
            }
            // The kernel prints no control characters for domains: show
            // the line again instead of erasing on the terminal.
            Edit::Erased => {
                if open {
                    println!();
                }
                self.prompt();
            }
            Edit::TooLong => {
                if open {
                    println!();
                }
                println!(
                    "console: error: line longer than {} bytes; ignored",
                    cc::LINE_MAX
                );
                self.prompt();
            }
            Edit::Line => {
                if open {
                    println!();
                }
                let line: String = self.editor.line().into();
                self.editor.clear();
                self.run(sup, &line);
                if self.top.is_none() {
                    self.prompt();
                }
            }
        }
    }

    fn run(&mut self, sup: &mut Supervisor<'_>, line: &str) {
        let cmd = match cc::parse(line) {
            Ok(c) => c,
            Err(e) => {
                println!("console: error: {e}");
                return;
            }
        };
        match cmd {
            Command::Nothing => {}
            Command::Help => {
                for l in HELP {
                    println!("{l}");
                }
            }
            Command::Ps(rows) => self.ps(sup, rows),
            Command::Top(rows) => {
                let owned = match rows {
                    Rows::Auto => TopRows::Auto,
                    Rows::All => TopRows::All,
                    Rows::Named(n) => TopRows::Named(n.into()),
                };
                self.top = Some((owned, 1));
                self.tick(sup);
            }
            Command::Kill(t) => request(sup, "kill", t, |domain| Request::Kill { domain }),
            Command::Restart(t) => request(sup, "restart", t, |domain| Request::Restart { domain }),
            Command::SwapOut(t) => request(sup, "swapout", t, |domain| Request::SwapOut { domain }),
            Command::Start(name, count) => start(sup, name, count),
            Command::Log(t) => match find(sup, t) {
                Ok(i) => log(sup.inst[i].id),
                Err(e) => println!("console: error: {e}"),
            },
        }
    }

    fn ps(&mut self, sup: &mut Supervisor<'_>, rows: Rows<'_>) {
        let now = time::tsc();
        let since = if self.last_tsc != 0 {
            self.last_tsc
        } else {
            time::clock().map_or(now, |c| c.boot_tsc)
        };
        let window = now.saturating_sub(since);
        let n = sup.inst.len();
        self.last_cpu.resize(n, 0);
        let wanted = |sup: &Supervisor<'_>, i: usize| match rows {
            Rows::Auto | Rows::All => true,
            Rows::Named(name) => {
                let mut s = String::new();
                let _ = write!(s, "{}", sup.name(i));
                s == name || sup.m.domains()[sup.inst[i].dom()].name == name
            }
        };
        let shown: Vec<usize> = (0..n).filter(|&i| wanted(sup, i)).collect();
        if shown.is_empty() {
            println!("console: error: no domain matches");
            return;
        }
        let summary = rows == Rows::Auto && shown.len() > ROWS_MAX;
        let mut sum = Summary::default();
        if !summary {
            println!("{PS_HEADER}");
        }
        for &i in &shown {
            let x = sup.inst[i];
            let reaped = x.life == Life::Exited;
            let mem = if reaped { None } else { sup.memory(i) };
            let state = State::of(
                if reaped { None } else { sup.kernel_state(i) },
                mem.is_some_and(|m| m.swapped_out),
                reaped,
            );
            let server = sup.m.domains()[x.dom()].class == Class::Server;
            let cpu = if reaped {
                0
            } else {
                sup.counter(i, DomainCounter::CpuTicks)
            };
            let delta = cpu.saturating_sub(self.last_cpu.get(i).copied().unwrap_or(0));
            if let Some(c) = self.last_cpu.get_mut(i) {
                *c = cpu;
            }
            if summary {
                sum.add(server, state);
                continue;
            }
            let counter = |sup: &Supervisor<'_>, c| if reaped { 0 } else { sup.counter(i, c) };
            let net = sup.port_stats(i).map(|s| Net {
                rx_frames: s.rx_frames,
                tx_frames: s.tx_frames,
            });
            let name = sup.name(i);
            println!(
                "{}",
                Row {
                    id: x.id,
                    name: &name,
                    class: if server { "server" } else { "guest" },
                    state,
                    cpu: delta,
                    window,
                    resident: if reaped {
                        0
                    } else {
                        (sup.pages(i) as u64)
                            .saturating_add(mem.map_or(0, |m| u64::from(m.resident)))
                    },
                    swapped: mem.map(|m| u64::from(m.swapped)),
                    net,
                    upcalls: counter(sup, DomainCounter::UpcallsDelivered),
                    events: counter(sup, DomainCounter::EventsRaised),
                }
            );
        }
        if summary {
            println!(
                "ps: {} domain(s); `ps all` or `ps NAME` for rows",
                shown.len()
            );
            for l in sum.lines() {
                println!("ps: {l}");
            }
        }
        self.last_tsc = now;
    }
}

/// The TSC `ns` from now.
fn after(ns: u64) -> u64 {
    time::clock()
        .map_or(0, |c| c.deadline_after_ns(time::tsc(), ns))
        .max(1)
}

/// The instance a command names: a live one by name, or any by id.
fn find(sup: &Supervisor<'_>, t: Target<'_>) -> Result<usize, &'static str> {
    match t {
        Target::Id(id) => sup.by_id(id).ok_or("no such domain"),
        Target::Name(name) => {
            let mut s = String::new();
            (0..sup.inst.len())
                .filter(|&i| sup.inst[i].life != Life::Exited)
                .find(|&i| {
                    s.clear();
                    let _ = write!(s, "{}", sup.name(i));
                    s == name
                })
                .ok_or("no such domain (names are like httpd#3; see ps)")
        }
    }
}

/// Serves `make(id)` for the console, through the request path.
fn request(
    sup: &mut Supervisor<'_>,
    verb: &str,
    t: Target<'_>,
    make: impl FnOnce(DomainId) -> Request,
) {
    let i = match find(sup, t) {
        Ok(i) => i,
        Err(e) => {
            println!("console: error: {e}");
            return;
        }
    };
    let id = sup.inst[i].id;
    match crate::serve::on_request(sup, None, make(id)) {
        Reply::Ok | Reply::Restarted(_) => {
            println!("console: {verb} {}:{}: done", id.index, id.gen)
        }
        Reply::Err(e) => println!("console: error: {verb} {}:{}: {e:?}", id.index, id.gen),
        other => println!("console: {verb}: unexpected {other:?}"),
    }
}

/// `start NAME count`: more instances of a manifest domain.
fn start(sup: &mut Supervisor<'_>, name: &str, count: u32) {
    let Some(d) = sup.m.find(name) else {
        println!("console: error: no domain {name:?} in the manifest");
        return;
    };
    for k in 0..count {
        match sup.spawn(d) {
            Ok(i) => {
                let id = sup.inst[i].id;
                println!(
                    "console: started {} as {}:{}",
                    sup.name(i),
                    id.index,
                    id.gen
                );
            }
            Err(f) => {
                println!("console: error: start {name}: {f}; {k} of {count} started");
                return;
            }
        }
    }
}

/// `log`: the domain's lines in the kernel's recent console output.
fn log(id: DomainId) {
    let mut history: Vec<u8> = Vec::new();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut back = 0usize;
    let mut buf = [0u8; CONSOLE_READ_MAX];
    while back < CONSOLE_HISTORY {
        let n = match sys::domain_ctl(ROOT, DomainOp::ConsoleLog, back as u64, 0) {
            Ok(n) => usize::try_from(n).unwrap_or(0).min(buf.len()),
            Err(e) => {
                println!("console: error: log: {e:?}");
                return;
            }
        };
        let Some(b) = buf.get_mut(..n).filter(|b| !b.is_empty()) else {
            break;
        };
        if sys::ipc_read(HEADER_LEN, b).is_err() {
            break;
        }
        chunks.push(b.to_vec());
        back += n;
    }
    for c in chunks.iter().rev() {
        history.extend_from_slice(c);
    }
    // A full ring begins inside a line.
    let cut = back >= CONSOLE_HISTORY;
    let lines: Vec<&str> = cc::log_lines(&history, id, cut).collect();
    let skip = lines.len().saturating_sub(LOG_LINES);
    println!(
        "log {}:{}: {} line(s) in the last {} bytes of output",
        id.index,
        id.gen,
        lines.len(),
        history.len()
    );
    for l in lines.iter().skip(skip) {
        println!("log: {l}");
    }
}
