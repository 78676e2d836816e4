//! COM1: the kernel's console and log.
//!
//! The logger goes through `uart_16550` behind a spin lock. The panic and
//! exception paths must work from the first instruction and even while the
//! lock is held, so they use [`raw_write`], which polls the UART directly.

use core::fmt::{self, Write};
use serac_kcore::console::{prefix_name, Lines, Piece, Writer};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

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
    if uart.init(Config::default()).is_ok() {
        CONSOLE.lock().uart = Some(uart);
    }
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

/// The UART and the console's line state, behind one lock.
struct Console {
    uart: Option<Uart16550<PioBackend>>,
    lines: Lines,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: None,
    lines: Lines::new(),
});

fn send(uart: &mut Option<Uart16550<PioBackend>>, bytes: &[u8]) {
    match uart.as_mut() {
        Some(u) => u.send_bytes_exact(bytes),
        None => bytes.iter().for_each(|&b| raw_byte(b)),
    }
}

fn emit(uart: &mut Option<Uart16550<PioBackend>>, p: Piece<'_>) {
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
struct Raw<'a>(&'a mut Option<Uart16550<PioBackend>>);

impl Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        send(self.0, s.as_bytes());
        Ok(())
    }
}

/// Kernel text through the line rules.
struct KernelText<'a>(&'a mut Console);

impl Write for KernelText<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Console { uart, lines } = &mut *self.0;
        lines.write(Writer::Kernel, s.as_bytes(), |p| emit(uart, p));
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
        let Console { uart, lines } = &mut *console;
        lines.write(Writer::Domain { index, gen, name }, bytes, |p| {
            emit(uart, p)
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
