//! COM1: the kernel's console and log.
//!
//! The logger goes through `uart_16550` behind a spin lock. The panic and
//! exception paths must work from the first instruction and even while the
//! lock is held, so they use [`raw_write`], which polls the UART directly.
//!
//! Input: COM1's receive interrupt (ISA IRQ 4, routed as GSI 4 by the
//! kernel itself, never bound to a domain) drains the UART into a small
//! ring that the supervisor takes with `DomainOp::ConsoleInput`. What goes
//! out through the lock is also kept in a history ring (`ConsoleLog`).

use core::fmt::{self, Write};
use serac_kcore::console::{prefix_name, Lines, Piece, Writer};
use serac_kcore::ring::ByteRing;
use serac_protocol::syscall::CONSOLE_HISTORY;
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::spec::registers::IER;
use uart_16550::{Config, Uart16550};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
/// COM1's interrupt line (ISA IRQ 4; QEMU and PCs route it to GSI 4).
pub const COM1_GSI: u32 = 4;
/// Serial input held until the supervisor takes it; more is dropped.
const INPUT_BYTES: usize = 256;

// COM1 (0x3f8..0x400) is on every PC and QEMU machine; nothing else in
// the kernel touches these ports except `raw_write`, which only polls LSR and
// writes THR (safe to interleave at byte granularity). The UART lives in
// `CONSOLE` below.

/// Initialises COM1 (115200 8N1, FIFO on). Safe to call once, early.
pub fn init() {
    // SAFETY: COM1's eight registers are valid I/O ports for the kernel's
    // whole lifetime (see the note on `UART`).
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    let config = Config {
        interrupts: IER::DATA_READY,
        ..Config::default()
    };
    if uart.init(config).is_ok() {
        CONSOLE.lock().uart = Some(uart);
    }
}

/// Moves what COM1 received into the input ring (the receive interrupt).
/// Returns whether anything arrived.
pub fn receive() -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut c = CONSOLE.lock();
        let Console { uart, input, .. } = &mut *c;
        let Some(u) = uart.as_mut() else { return false };
        let mut got = false;
        // Bounded: the FIFO holds 16; a stuck "data ready" cannot hang us.
        for _ in 0..64 {
            let Ok(b) = u.try_receive_byte() else { break };
            input.push(b);
            got = true;
        }
        got
    })
}

/// Takes queued serial input into `out`; returns how many bytes.
pub fn take_input(out: &mut [u8]) -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| CONSOLE.lock().input.take(out))
}

/// Copies recent console output ending `back` bytes before the newest.
pub fn history(back: usize, out: &mut [u8]) -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| CONSOLE.lock().history.tail(back, out))
}

/// Writes to COM1 without taking any lock. For panics and exceptions.
pub fn raw_write(s: &str) {
    for b in s.bytes() {
        raw_byte(b);
    }
}

fn raw_byte(b: u8) {
    let mut lsr: Port<u8> = Port::new(COM1 + 5);
    let mut thr: Port<u8> = Port::new(COM1);
    for _ in 0..100_000 {
        // SAFETY: reading COM1's line status register has no side effects.
        if unsafe { lsr.read() } & 0x20 != 0 {
            break;
        }
    }
    // SAFETY: writing COM1's transmit register sends one byte.
    unsafe { thr.write(b) };
}

/// A `fmt::Write` over the lock-free path.
pub struct RawWriter;

impl fmt::Debug for RawWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawWriter")
    }
}

impl Write for RawWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        raw_write(s);
        Ok(())
    }
}

/// The UART, the console's line state and its rings, behind one lock.
struct Console {
    uart: Option<Uart16550<PioBackend>>,
    lines: Lines,
    input: ByteRing<INPUT_BYTES>,
    history: ByteRing<CONSOLE_HISTORY>,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: None,
    lines: Lines::new(),
    input: ByteRing::new(),
    history: ByteRing::new(),
});

/// The UART and the history ring, while `lines` is borrowed apart.
struct Out<'a> {
    uart: &'a mut Option<Uart16550<PioBackend>>,
    history: &'a mut ByteRing<CONSOLE_HISTORY>,
}

fn send(out: &mut Out<'_>, bytes: &[u8]) {
    for &b in bytes {
        out.history.record(b);
    }
    match out.uart.as_mut() {
        Some(u) => u.send_bytes_exact(bytes),
        None => bytes.iter().for_each(|&b| raw_byte(b)),
    }
}

fn emit(uart: &mut Out<'_>, p: Piece<'_>) {
    match p {
        Piece::Newline => send(uart, b"\r\n"),
        Piece::Prefix(index, gen, name) => {
            let _ = write!(Raw(uart), "[{index}:{gen} ");
            for c in prefix_name(name) {
                send(uart, c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            send(uart, b"] ");
        }
        Piece::Char(c) => send(uart, c.encode_utf8(&mut [0; 4]).as_bytes()),
    }
}

/// Plain bytes to the UART (for the prefix's numbers).
struct Raw<'a, 'b>(&'a mut Out<'b>);

impl Write for Raw<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        send(self.0, s.as_bytes());
        Ok(())
    }
}

/// Kernel text through the line rules.
struct KernelText<'a>(&'a mut Console);

impl Write for KernelText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Console {
            uart,
            lines,
            history,
            ..
        } = &mut *self.0;
        let mut out = Out { uart, history };
        lines.write(Writer::Kernel, s.as_bytes(), |p| emit(&mut out, p));
        Ok(())
    }
}

/// Prints formatted text to COM1 (used by `kprintln!` and the logger).
pub fn print(args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut console = CONSOLE.lock();
        let _ = KernelText(&mut console).write_fmt(args);
    });
}

/// Writes a domain's `debug_write` bytes, each line behind the kernel's
/// `[index:gen name] ` prefix (see `serac_kcore::console`).
pub fn domain_write(index: u32, gen: u32, name: &str, bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut console = CONSOLE.lock();
        let Console {
            uart,
            lines,
            history,
            ..
        } = &mut *console;
        let mut out = Out { uart, history };
        lines.write(Writer::Domain { index, gen, name }, bytes, |p| {
            emit(&mut out, p)
        });
    });
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => " warn",
            log::Level::Info => " info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        print(format_args!("[{level}] {}\n", record.args()));
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Routes the `log` crate to COM1.
pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
