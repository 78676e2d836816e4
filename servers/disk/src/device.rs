//! Waiting for the device, and the volume's blocking view of it.
//!
//! The device interrupt is the function's INTx line, bound to this domain
//! by the supervisor (the `Irq` handle after the `Device` handle). The
//! kernel masks the line when it raises our `IRQ(0)` bit; the server's
//! `reply_recv` (with `RECV_WAKE_ON_EVENT`) or [`Irq::wait`] (`idle`, for
//! waits on the device alone) returns that bit, and [`Irq::acknowledge`]
//! reads the ISR (which de-asserts the level-triggered line) and only then
//! unmasks it with `irq_ack`, so the line neither storms nor loses a
//! completion: one that lands after the ISR read asserts it again and
//! fires once unmasked.
//!
//! **Fallback, temporary:** without an `Irq` handle (a supervisor that
//! does not bind INTx yet) the server cannot be woken by the device, and
//! waits with short deadlines instead ([`FALLBACK_US`]), checking the
//! used ring after each. It says so in its log line at start.
#![forbid(unsafe_code)]

use ilwaco::protocol::upcall::irq_bit;
use ilwaco::protocol::Handle;
use ilwaco::{sys, time};
use serac_disk_core::{Block, BlockDevice};

use crate::hal::blk::{Blk, IoFailed, SubmitError, SYNC_DATA};

/// The fallback's polling period, in microseconds.
pub const FALLBACK_US: u64 = 1000;
/// Longest sleep waiting for an interrupt; then the used ring is looked at
/// again anyway.
const WATCHDOG_MS: u64 = 50;

/// How the server learns that the device completed something.
#[derive(Debug, Clone, Copy)]
pub enum Irq {
    /// The bound INTx line: its handle and its pending bit.
    Line(Handle, u64),
    /// No line: short deadlines (see the module docs).
    Deadline(u64),
}

impl Irq {
    /// The line behind handle `h` if it is an `Irq` handle (an `irq_ack`
    /// of an unmasked line changes nothing), else the fallback.
    pub fn probe(h: Handle) -> Irq {
        let ticks = time::tsc_hz().unwrap_or(1_000_000_000) / 1_000_000 * FALLBACK_US;
        match (sys::irq_ack(h), irq_bit(0)) {
            (Ok(_), Ok(bit)) => Irq::Line(h, bit),
            _ => Irq::Deadline(ticks.max(1)),
        }
    }

    /// Sleeps until the device may have completed something (its interrupt,
    /// or at most 50 ms), then leaves the line ready to interrupt again.
    /// For waits on the device alone: the server waits for requests and
    /// the interrupt together ([`Irq::deadline`], [`Irq::acknowledge`]).
    pub fn wait(&self, blk: &mut Blk) {
        match *self {
            Irq::Line(..) => {
                // A bounded sleep: the kernel keeps the page tables of a
                // domain that idles less than 100 ms, and the caller looks
                // at the used ring again after any wake.
                let until = time::tsc().saturating_add(self.watchdog());
                let mask = sys::idle(until).unwrap_or(0);
                self.acknowledge(blk, mask);
            }
            Irq::Deadline(ticks) => {
                let _ = sys::idle(time::tsc().saturating_add(ticks));
                blk.ack_interrupt();
            }
        }
    }

    /// After a wait that the events `mask` ended: if the line fired, reads
    /// the ISR (de-asserting the line) and only then unmasks it.
    pub fn acknowledge(&self, blk: &mut Blk, mask: u64) {
        if let Irq::Line(h, bit) = *self {
            if mask & bit != 0 {
                blk.ack_interrupt();
                let _ = sys::irq_ack(h);
            }
        }
    }

    /// The deadline of a `reply_recv` that waits for requests and the
    /// device (with `RECV_WAKE_ON_EVENT`): none with the line, whose
    /// interrupt ends the wait (`Blk::take` fences so that no completion
    /// slips between an interrupt and a look); the fallback's poll while
    /// `busy`.
    pub fn deadline(&self, busy: bool) -> u64 {
        match *self {
            Irq::Deadline(ticks) if busy => time::tsc().saturating_add(ticks),
            _ => 0,
        }
    }

    fn watchdog(&self) -> u64 {
        time::tsc_hz().unwrap_or(1_000_000_000) / 1000 * WATCHDOG_MS
    }

    /// Whether interrupts really arrive (not the fallback).
    pub fn is_line(&self) -> bool {
        matches!(self, Irq::Line(..))
    }
}

/// Why a blocking block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncError {
    /// The request could not be started.
    Submit(SubmitError),
    /// The device failed it.
    Io(IoFailed),
    /// A block number past what a sector number can say.
    Range,
}

/// The device as a [`BlockDevice`] of 4 KiB blocks, one request at a time,
/// sleeping until each completes. For opening the volume, before any
/// client request is in flight.
#[derive(Debug)]
pub struct SyncDisk<'a> {
    /// The device.
    pub blk: &'a mut Blk,
    /// How to wait for it.
    pub irq: Irq,
}

impl SyncDisk<'_> {
    fn run(&mut self, block: u64, write: bool) -> Result<(), SyncError> {
        let sector = block
            .checked_mul((SYNC_DATA / 512) as u64)
            .ok_or(SyncError::Range)?;
        self.blk
            .sync_start(sector, write)
            .map_err(SyncError::Submit)?;
        self.wait()
    }

    /// Sleeps until the synchronous request completes.
    fn wait(&mut self) -> Result<(), SyncError> {
        loop {
            if let Some(r) = self.blk.sync_poll() {
                return r.map_err(SyncError::Io);
            }
            self.irq.wait(self.blk);
        }
    }
}

impl BlockDevice for SyncDisk<'_> {
    type Error = SyncError;

    fn block_count(&self) -> u64 {
        self.blk.sectors() / (SYNC_DATA / 512) as u64
    }

    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), SyncError> {
        self.run(block, false)?;
        self.blk.sync_copy_out(buf).map_err(SyncError::Submit)
    }

    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), SyncError> {
        self.blk.sync_fill(buf).map_err(SyncError::Submit)?;
        self.run(block, true)
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        if self.blk.sync_start_flush().map_err(SyncError::Submit)? {
            self.wait()?;
        }
        Ok(())
    }
}
