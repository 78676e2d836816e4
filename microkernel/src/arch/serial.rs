//! COM1: the kernel's console and log.
//!
//! The logger goes through `uart_16550` behind a spin lock. The panic and
//! exception paths must work from the first instruction and even while the
//! lock is held, so they use [`raw_write`], which polls the UART directly.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

// COM1 (0x3f8..0x400) is on every PC and QEMU machine; nothing else in
// the kernel touches these ports except `raw_write`, which only polls LSR and
// writes THR (safe to interleave at byte granularity).
static UART: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

/// Initialises COM1 (115200 8N1, FIFO on). Safe to call once, early.
pub fn init() {
    // SAFETY: COM1's eight registers are valid I/O ports for the kernel's
    // whole lifetime (see the note on `UART`).
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    if uart.init(Config::default()).is_ok() {
        *UART.lock() = Some(uart);
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

struct Locked<'a>(&'a mut Uart16550<PioBackend>);

impl Write for Locked<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.split_inclusive('\n') {
            if let Some(line) = chunk.strip_suffix('\n') {
                self.0.send_bytes_exact(line.as_bytes());
                self.0.send_bytes_exact(b"\r\n");
            } else {
                self.0.send_bytes_exact(chunk.as_bytes());
            }
        }
        Ok(())
    }
}

/// Prints formatted text to COM1 (used by `kprintln!`).
pub fn print(args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = UART.lock();
        match guard.as_mut() {
            Some(uart) => {
                let _ = Locked(uart).write_fmt(args);
            }
            None => {
                let _ = RawWriter.write_fmt(args);
            }
        }
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
