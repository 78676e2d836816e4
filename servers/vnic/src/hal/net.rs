//! The virtio-net device with receive and transmit buffers in DMA memory.
//!
//! virtio-drivers' `VirtIONetRaw` keeps using a buffer handed to
//! `receive_begin`/`transmit_begin` until the matching `*_complete`. Each
//! buffer here has a state saying who may touch it: the CPU only while it
//! is idle, the device only while it is posted (its token recorded). That
//! is the soundness argument of the `unsafe` below; [`Net`]'s safe
//! methods keep to it.
//!
//! Receive buffers are posted at start and re-posted as soon as their
//! frame has been handed on (one that cannot be re-posted is retried on
//! the next [`Net::receive`]). A transmitted frame is copied once into an
//! idle transmit buffer behind the virtio-net header.

use core::sync::atomic::{fence, Ordering};

use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::protocol::Handle;
use ilwaco::sys;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::Error as VirtioError;

use super::dma::{self, DmaError, SeracHal};
use super::pci::DeviceConfig;

/// Descriptors per queue.
const QUEUE: usize = 32;
/// Receive buffers posted at once.
pub const RX_BUFS: usize = 16;
/// Transmit buffers.
pub const TX_BUFS: usize = 16;
/// Bytes of one buffer: the header (at most 12) and a full frame.
const BUF: usize = 2048;
const PAGE: usize = 4096;
/// Frames the window needs: two queues (2 pages each), the buffers (16),
/// the bounce page, and slack.
pub const MIN_FRAMES: usize = 24;

/// Why the device could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// The `Device` handle did not answer `Info`.
    NoDevice(ilwaco::SysError),
    /// Not a virtio-net function.
    NotVirtioNet,
    /// The DMA window.
    Dma(DmaError),
    /// virtio-drivers' PCI transport refused the function.
    Transport,
    /// A BAR could not be mapped.
    Bar,
    /// virtio-drivers' net driver failed to initialise the device.
    Init(VirtioError),
    /// The DMA window has no room for the buffers.
    NoMemory,
}

/// Why a frame was not handed to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxError {
    /// No idle transmit buffer or descriptor: try after [`Net::reclaim`].
    Full,
    /// Longer than a buffer holds.
    TooLong,
    /// The driver refused it.
    Device(VirtioError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Posted(u16),
}

/// A buffer in the window and who holds it.
#[derive(Debug, Clone, Copy)]
struct Buf {
    at: *mut u8,
    state: State,
}

/// Counters of the device side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevStats {
    /// Frames received from the device.
    pub rx_frames: u64,
    /// Frames handed to the device.
    pub tx_frames: u64,
    /// Received buffers the device reported wrongly (too short, too long).
    pub rx_errors: u64,
    /// Failed re-posts of receive buffers (retried later).
    pub repost_failures: u64,
    /// Transmissions the device completed with an error.
    pub tx_errors: u64,
}

/// The virtio-net device and its buffers.
pub struct Net {
    dev: VirtIONetRaw<SeracHal, PciTransport, QUEUE>,
    rx: [Buf; RX_BUFS],
    tx: [Buf; TX_BUFS],
    /// Length handed to the device with each posted transmit buffer.
    tx_len: [usize; TX_BUFS],
    /// Bytes of the virtio-net header before each frame.
    hdr: usize,
    bdf: u16,
    /// Counters.
    pub stats: DevStats,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("bdf", &self.bdf)
            .field("hdr", &self.hdr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Net {
    /// Brings up the virtio-net function behind `dev`: binds the DMA
    /// window, builds the PCI transport and the raw net driver, lays out
    /// the buffers and posts every receive buffer.
    pub fn new(dev: Handle) -> Result<Net, SetupError> {
        let raw = sys::device(dev, DeviceOp::Info, 0, 0).map_err(SetupError::NoDevice)?;
        let info = ilwaco::protocol::syscall::PciInfo::from_raw(raw);
        // 0x1041 modern-only, 0x1000 transitional (both have the modern
        // capabilities PciTransport uses).
        if info.vendor != 0x1af4 || !matches!(info.device, 0x1041 | 0x1000) {
            return Err(SetupError::NotVirtioNet);
        }
        dma::init(dev, MIN_FRAMES).map_err(SetupError::Dma)?;
        let df = DeviceFunction {
            bus: (info.bdf >> 8) as u8,
            device: ((info.bdf >> 3) & 0x1f) as u8,
            function: (info.bdf & 7) as u8,
        };
        let mut root = PciRoot::new(DeviceConfig::new(dev));
        let transport =
            PciTransport::new::<SeracHal, _>(&mut root, df).map_err(|_| SetupError::Transport)?;
        if dma::faults() != 0 {
            return Err(SetupError::Bar);
        }
        let raw = VirtIONetRaw::<SeracHal, _, QUEUE>::new(transport).map_err(SetupError::Init)?;
        let (_, rx_mem) = dma::alloc(RX_BUFS * BUF / PAGE).ok_or(SetupError::NoMemory)?;
        let (_, tx_mem) = dma::alloc(TX_BUFS * BUF / PAGE).ok_or(SetupError::NoMemory)?;
        let buf = |base: u64, i: usize| Buf {
            at: (base + (i * BUF) as u64) as *mut u8,
            state: State::Idle,
        };
        let mut probe = [0u8; 16];
        let hdr = raw
            .fill_buffer_header(&mut probe)
            .map_err(SetupError::Init)?;
        let mut net = Net {
            dev: raw,
            rx: core::array::from_fn(|i| buf(rx_mem, i)),
            tx: core::array::from_fn(|i| buf(tx_mem, i)),
            tx_len: [0; TX_BUFS],
            hdr,
            bdf: info.bdf,
            stats: DevStats::default(),
        };
        for i in 0..RX_BUFS {
            net.post(i).map_err(SetupError::Init)?;
        }
        Ok(net)
    }

    /// The function's packed bus/device/function.
    pub fn bdf(&self) -> u16 {
        self.bdf
    }

    /// The device's own MAC (the uplink's; guests have theirs).
    pub fn mac(&self) -> [u8; 6] {
        self.dev.mac_address()
    }

    /// Reads the ISR, which de-asserts the device's interrupt line.
    pub fn ack_interrupt(&mut self) {
        let _ = self.dev.ack_interrupt();
    }

    /// Hands receive buffer `i` to the device.
    fn post(&mut self, i: usize) -> Result<(), VirtioError> {
        let Some(b) = self.rx.get_mut(i).filter(|b| b.state == State::Idle) else {
            return Err(VirtioError::InvalidParam);
        };
        // SAFETY: the buffer is idle: the device does not hold it and no
        // reference to it exists; it is BUF bytes of the window, which the
        // device may write until `receive_complete`, and nothing touches it
        // before that (its state is Posted).
        let token = unsafe {
            let s = core::slice::from_raw_parts_mut(b.at, BUF);
            self.dev.receive_begin(s)?
        };
        b.state = State::Posted(token);
        Ok(())
    }

    /// Takes every frame the device has received, in order, hands each to
    /// `f` and posts its buffer again; returns how many.
    pub fn receive(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(token) = self.dev.poll_receive() {
            let Some(i) = self.rx.iter().position(|b| b.state == State::Posted(token)) else {
                // A token we never posted: the device is confused. Stop
                // rather than complete a buffer we do not own.
                self.stats.rx_errors += 1;
                break;
            };
            let at = self.rx[i].at;
            // SAFETY: buffer i is the one posted with `token` (same
            // pointer and length as at `receive_begin`); after this call
            // the device no longer holds it.
            let r = unsafe {
                let s = core::slice::from_raw_parts_mut(at, BUF);
                self.dev.receive_complete(token, s)
            };
            // The completion moved `used_event` (EVENT_IDX) with a release
            // store: the next look at the used index must come after it is
            // visible, or a frame written in between would neither
            // interrupt nor be seen. virtio-drivers has no full fence there.
            fence(Ordering::SeqCst);
            self.rx[i].state = State::Idle;
            match r {
                Ok((hdr, len)) if hdr.saturating_add(len) <= BUF => {
                    // SAFETY: the buffer is idle (completed above) and
                    // `hdr + len <= BUF`; the shared borrow ends before the
                    // buffer is posted again.
                    let frame = unsafe { core::slice::from_raw_parts(at.add(hdr), len) };
                    f(frame);
                    n += 1;
                    self.stats.rx_frames += 1;
                }
                _ => self.stats.rx_errors += 1,
            }
            if self.post(i).is_err() {
                self.stats.repost_failures += 1;
            }
        }
        // Buffers a failed re-post left idle.
        for i in 0..RX_BUFS {
            if self.rx[i].state == State::Idle && self.post(i).is_err() {
                self.stats.repost_failures += 1;
                break;
            }
        }
        n
    }

    /// Completes finished transmissions, freeing their buffers.
    pub fn reclaim(&mut self) -> usize {
        let mut n = 0;
        while let Some(token) = self.dev.poll_transmit() {
            let Some(i) = self.tx.iter().position(|b| b.state == State::Posted(token)) else {
                self.stats.tx_errors += 1;
                break;
            };
            let (at, len) = (self.tx[i].at, self.tx_len[i]);
            // SAFETY: buffer i was posted with `token` as these `len`
            // bytes, the same slice `transmit_begin` was given.
            let r = unsafe {
                let s = core::slice::from_raw_parts(at, len);
                self.dev.transmit_complete(token, s)
            };
            // As in `receive`.
            fence(Ordering::SeqCst);
            self.tx[i].state = State::Idle;
            if r.is_err() {
                self.stats.tx_errors += 1;
            }
            n += 1;
        }
        n
    }

    /// Idle transmit buffers (descriptors permitting).
    pub fn tx_free(&self) -> usize {
        if !self.dev.can_send() {
            return 0;
        }
        self.tx.iter().filter(|b| b.state == State::Idle).count()
    }

    /// Copies `frame` behind a header into an idle buffer and hands it to
    /// the device.
    pub fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        let len = self.hdr + frame.len();
        if len > BUF {
            return Err(TxError::TooLong);
        }
        let i = self
            .tx
            .iter()
            .position(|b| b.state == State::Idle)
            .ok_or(TxError::Full)?;
        let at = self.tx[i].at;
        // SAFETY: the buffer is idle (the device does not hold it, no
        // reference exists) and `len <= BUF`; the mutable borrow ends
        // before `transmit_begin` takes a shared one for the device.
        let token = unsafe {
            let s = core::slice::from_raw_parts_mut(at, len);
            self.dev.fill_buffer_header(s).map_err(TxError::Device)?;
            s[self.hdr..].copy_from_slice(frame);
            self.dev
                .transmit_begin(core::slice::from_raw_parts(at, len))
        };
        match token {
            Ok(t) => {
                self.tx[i].state = State::Posted(t);
                self.tx_len[i] = len;
                self.stats.tx_frames += 1;
                Ok(())
            }
            Err(VirtioError::QueueFull) => Err(TxError::Full),
            Err(e) => Err(TxError::Device(e)),
        }
    }
}
