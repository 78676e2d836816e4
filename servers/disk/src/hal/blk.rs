//! The virtio-blk device with request slots in DMA memory.
//!
//! The driver is ours, on virtio-drivers' PCI transport and virtqueue
//! (`PciTransport`, `VirtQueue`): its `VirtIOBlk` has non-blocking reads
//! and writes but only a blocking flush, which spins on the used ring and
//! would take another request's completion for its own. Here every request
//! kind, `T_FLUSH` included, is added to the queue and completed when the
//! interrupt says so (virtio 1.2, section 5.2.6: a 16-byte header the
//! device reads, the data, a status byte it writes).
//!
//! Each of [`SLOTS`] slots owns a header, data and status buffer in the
//! DMA window, and a slot's state says who may touch it: the CPU only
//! while it is idle, the device only while it is busy. The queue keeps
//! using the buffers between `add` and `pop_used` with the same buffers.
//! That is the whole soundness argument of the `unsafe` below, and
//! [`Blk`]'s safe methods enforce it.
//!
//! Completions are taken in used-ring order (`peek_used` gives the head's
//! token, which must be completed first). One more triple (`sync`, a whole
//! block) serves the blocking requests of opening the volume, which wait
//! for the interrupt like everything else.

use core::sync::atomic::{fence, Ordering};

use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::protocol::Handle;
use ilwaco::sys;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, Transport};
use virtio_drivers::Error as VirtioError;

use super::dma::{self, DmaError, SeracHal};
use super::pci::DeviceConfig;

/// Requests taken at once. The queue has 16 descriptors; a read or a
/// write takes 3, a flush 2, so when reads and writes fill it the rest
/// wait for a completion (`SubmitError::Full`).
pub const SLOTS: usize = 8;
/// Bytes of one slot's data buffer: one protocol piece.
pub const SLOT_DATA: usize = 2048;
/// Bytes of the synchronous buffer: one disk block.
pub const SYNC_DATA: usize = 4096;
/// Frames the window needs: the queue (3), slot data (4), headers (1),
/// the block buffer (1), the bounce page (1), and slack.
pub const MIN_FRAMES: usize = 16;
const PAGE: usize = 4096;
const SECTOR_SIZE: usize = 512;
/// The request queue and its size.
const QUEUE: u16 = 0;
const QUEUE_SIZE: usize = 16;
/// Bytes of a request header: type, reserved, sector (little-endian).
const HEADER: usize = 16;
// Request types and status values (virtio 1.2, 5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;
const S_UNSUPP: u8 = 2;
/// What the status byte holds until the device writes it.
const S_UNSET: u8 = 0xff;

// The features negotiated (virtio 1.2, 5.2.3 and 6): the device's
// read-only flag, its write cache flush, used-ring event suppression, and
// the modern interface `PciTransport` drives.
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_EVENT_IDX: u64 = 1 << 29;
const F_VERSION_1: u64 = 1 << 32;
const FEATURES: u64 = F_RO | F_FLUSH | F_EVENT_IDX | F_VERSION_1;

/// Why the device could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// The `Device` handle did not answer `Info`.
    NoDevice(ilwaco::SysError),
    /// Not a modern virtio-blk function.
    NotVirtioBlk,
    /// The DMA window.
    Dma(DmaError),
    /// virtio-drivers' PCI transport refused the function.
    Transport,
    /// A BAR could not be mapped.
    Bar,
    /// The configuration or the queue could not be set up.
    Init(VirtioError),
    /// The device refused the features (it cleared `FEATURES_OK`).
    Features,
    /// The DMA window has no room for the slots.
    NoMemory,
}

/// Why a request could not be submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// No descriptors free: retry after a completion.
    Full,
    /// The slot is in flight, or the length is not whole sectors up to
    /// the slot's buffer.
    Bad,
    /// The driver refused it.
    Device(VirtioError),
}

/// A request failed on the device (or could not be completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoFailed(pub VirtioError);

/// What a request does with its slot's data buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The device writes `len` bytes into it.
    Read,
    /// The device reads `len` bytes from it.
    Write,
    /// No data: the device's write cache to stable storage.
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Busy { kind: Kind, token: u16, len: usize },
}

/// One request's buffers in the window.
#[derive(Debug, Clone, Copy)]
struct Mem {
    req: *mut u8,
    resp: *mut u8,
    data: *mut u8,
    cap: usize,
}

/// The device, its slots, and the synchronous block buffer.
pub struct Blk {
    transport: PciTransport,
    queue: VirtQueue<SeracHal, QUEUE_SIZE>,
    features: u64,
    capacity: u64,
    mem: [Mem; SLOTS],
    state: [State; SLOTS],
    sync_mem: Mem,
    sync: State,
    bdf: u16,
}

impl core::fmt::Debug for Blk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Blk")
            .field("bdf", &self.bdf)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for Blk {
    fn drop(&mut self) {
        // The device must not use the queue's memory once it is freed.
        self.transport.queue_unset(QUEUE);
    }
}

/// What a completed slot was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// A read of `len` bytes into slot `slot`.
    Read {
        /// The slot.
        slot: usize,
        /// Bytes read.
        len: usize,
    },
    /// A write from slot `slot`.
    Write {
        /// The slot.
        slot: usize,
    },
    /// A flush on slot `slot`.
    Flush {
        /// The slot.
        slot: usize,
    },
}

fn lay_out(page: u64, req_at: usize, data: u64, cap: usize) -> Mem {
    // 32 bytes a slot: the header at 32·i, the status byte at 32·i + 16
    // (i < 128, inside the page).
    let req = (page + (req_at * 32) as u64) as *mut u8;
    let resp = (page + (req_at * 32 + HEADER) as u64) as *mut u8;
    Mem {
        req,
        resp,
        data: data as *mut u8,
        cap,
    }
}

impl Blk {
    /// Brings up the virtio-blk function behind `dev`: binds the DMA
    /// window, builds virtio-drivers' PCI transport and block driver, and
    /// lays out the slots. Interrupts are left enabled on the device.
    pub fn new(dev: Handle) -> Result<Blk, SetupError> {
        let raw = sys::device(dev, DeviceOp::Info, 0, 0).map_err(SetupError::NoDevice)?;
        let info = ilwaco::protocol::syscall::PciInfo::from_raw(raw);
        // 0x1042: a modern-only virtio block device (what PciTransport drives).
        if info.vendor != 0x1af4 || info.device != 0x1042 {
            return Err(SetupError::NotVirtioBlk);
        }
        dma::init(dev, MIN_FRAMES).map_err(SetupError::Dma)?;
        let df = DeviceFunction {
            bus: (info.bdf >> 8) as u8,
            device: ((info.bdf >> 3) & 0x1f) as u8,
            function: (info.bdf & 7) as u8,
        };
        let mut root = PciRoot::new(DeviceConfig::new(dev));
        let mut transport =
            PciTransport::new::<SeracHal, _>(&mut root, df).map_err(|_| SetupError::Transport)?;
        // The transport computed its register addresses; a BAR that could
        // not be mapped points nowhere: stop before anything touches it.
        if dma::faults() != 0 {
            return Err(SetupError::Bar);
        }
        let (_, headers) = dma::alloc(1).ok_or(SetupError::NoMemory)?;
        let (_, data) = dma::alloc(SLOTS * SLOT_DATA / PAGE).ok_or(SetupError::NoMemory)?;
        let (_, block) = dma::alloc(SYNC_DATA / PAGE).ok_or(SetupError::NoMemory)?;
        let mem =
            core::array::from_fn(|i| lay_out(headers, i, data + (i * SLOT_DATA) as u64, SLOT_DATA));
        // Device initialisation (virtio 1.2, 3.1.1): features, then the
        // configuration (the capacity, two words), the queue, DRIVER_OK.
        transport.set_status(DeviceStatus::empty());
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let features = transport.read_device_features() & FEATURES;
        transport.write_driver_features(features);
        let ok = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
        transport.set_status(ok);
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            return Err(SetupError::Features);
        }
        transport.set_guest_page_size(PAGE as u32);
        let capacity = transport
            .read_consistent(|| {
                let lo = transport.read_config_space::<u32>(0)?;
                let hi = transport.read_config_space::<u32>(4)?;
                Ok(u64::from(lo) | u64::from(hi) << 32)
            })
            .map_err(SetupError::Init)?;
        let event_idx = features & F_EVENT_IDX != 0;
        let queue =
            VirtQueue::new(&mut transport, QUEUE, false, event_idx).map_err(SetupError::Init)?;
        transport.finish_init();
        Ok(Blk {
            transport,
            queue,
            features,
            capacity,
            mem,
            state: [State::Idle; SLOTS],
            sync_mem: lay_out(headers, SLOTS, block, SYNC_DATA),
            sync: State::Idle,
            bdf: info.bdf,
        })
    }

    /// The function's packed bus/device/function.
    pub fn bdf(&self) -> u16 {
        self.bdf
    }

    /// Device size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.capacity
    }

    /// Whether the device is read-only.
    pub fn read_only(&self) -> bool {
        self.features & F_RO != 0
    }

    /// Requests the device holds now (slots and the synchronous one).
    pub fn in_flight(&self) -> usize {
        self.state.iter().filter(|s| **s != State::Idle).count()
            + usize::from(self.sync != State::Idle)
    }

    /// Reads the ISR, which de-asserts the device's interrupt line.
    pub fn ack_interrupt(&mut self) {
        let _ = self.transport.ack_interrupt();
    }

    /// Copies `data` into idle slot `slot`'s buffer.
    pub fn fill(&mut self, slot: usize, data: &[u8]) -> Result<(), SubmitError> {
        let m = self.idle_mem(slot, data.len())?;
        // SAFETY: the slot is idle, so the device is not using its buffer
        // and no reference to it exists; `data.len() <= cap`, the buffer's
        // size in the window.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), m.data, data.len()) };
        Ok(())
    }

    /// Copies the first `out.len()` bytes of idle slot `slot`'s buffer.
    pub fn copy_out(&self, slot: usize, out: &mut [u8]) -> Result<(), SubmitError> {
        let m = self.idle_mem(slot, out.len())?;
        // SAFETY: as for `fill`, reading.
        unsafe { core::ptr::copy_nonoverlapping(m.data, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Hands the first `len` bytes of idle slot `slot`'s buffer to `f` in
    /// place (a read's data, encoded straight into the reply).
    pub fn with_data<R>(
        &self,
        slot: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SubmitError> {
        let m = self.idle_mem(slot, len)?;
        // SAFETY: the slot is idle, so the device does not write its
        // buffer, and only `&mut self` methods (which cannot run while this
        // `&self` borrow lasts) write it from the CPU; `len <= cap` keeps
        // the slice inside the buffer, which lives as long as the window.
        let data = unsafe { core::slice::from_raw_parts(m.data, len) };
        Ok(f(data))
    }

    fn idle_mem(&self, slot: usize, len: usize) -> Result<Mem, SubmitError> {
        match (self.state.get(slot), self.mem.get(slot)) {
            (Some(State::Idle), Some(m)) if len <= m.cap => Ok(*m),
            _ => Err(SubmitError::Bad),
        }
    }

    fn check_len(len: usize, cap: usize) -> Result<(), SubmitError> {
        if len == 0 || !len.is_multiple_of(SECTOR_SIZE) || len > cap {
            return Err(SubmitError::Bad);
        }
        Ok(())
    }

    /// Starts reading `len` bytes from `sector` into slot `slot`.
    pub fn submit_read(&mut self, slot: usize, sector: u64, len: usize) -> Result<(), SubmitError> {
        self.submit(slot, Kind::Read, sector, len)
    }

    /// Starts writing the first `len` bytes of slot `slot` (see
    /// [`fill`](Self::fill)) at `sector`.
    pub fn submit_write(
        &mut self,
        slot: usize,
        sector: u64,
        len: usize,
    ) -> Result<(), SubmitError> {
        self.submit(slot, Kind::Write, sector, len)
    }

    /// Starts flushing the device's write cache on slot `slot`: it
    /// completes (through [`take`](Self::take)) once every write the device
    /// completed before it is on stable storage. `Ok(false)`: the device
    /// has no write cache to flush (no `VIRTIO_BLK_F_FLUSH`), so completed
    /// writes are stable already and nothing was submitted.
    pub fn submit_flush(&mut self, slot: usize) -> Result<bool, SubmitError> {
        if self.features & F_FLUSH == 0 {
            return Ok(false);
        }
        self.submit(slot, Kind::Flush, 0, 0).map(|()| true)
    }

    fn submit(
        &mut self,
        slot: usize,
        kind: Kind,
        sector: u64,
        len: usize,
    ) -> Result<(), SubmitError> {
        let m = self.idle_mem(slot, len)?;
        if kind != Kind::Flush {
            Self::check_len(len, m.cap)?;
        }
        let token = self.start(m, kind, sector, len)?;
        self.state[slot] = State::Busy { kind, token, len };
        Ok(())
    }

    fn start(&mut self, m: Mem, kind: Kind, sector: u64, len: usize) -> Result<u16, SubmitError> {
        let t = match kind {
            Kind::Read => T_IN,
            Kind::Write => T_OUT,
            Kind::Flush => T_FLUSH,
        };
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&t.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        // SAFETY: `m` is an idle triple (checked by the callers), so the
        // device is not using it and these are the only references to its
        // memory; the header is HEADER bytes and the status one byte at
        // their places in the header page, and `len <= m.cap` keeps the
        // data slice inside its buffer. The caller marks the slot busy
        // before returning, and nothing touches it until it completes.
        let r = unsafe {
            core::ptr::copy_nonoverlapping(header.as_ptr(), m.req, HEADER);
            m.resp.write_volatile(S_UNSET);
            let req = core::slice::from_raw_parts(m.req, HEADER);
            let resp = core::slice::from_raw_parts_mut(m.resp, 1);
            match kind {
                Kind::Read => {
                    let buf = core::slice::from_raw_parts_mut(m.data, len);
                    self.queue.add(&[req], &mut [buf, resp])
                }
                Kind::Write => {
                    let buf = core::slice::from_raw_parts(m.data, len);
                    self.queue.add(&[req, buf], &mut [resp])
                }
                Kind::Flush => self.queue.add(&[req], &mut [resp]),
            }
        };
        match r {
            Ok(token) => {
                if self.queue.should_notify() {
                    self.transport.notify(QUEUE);
                }
                Ok(token)
            }
            Err(VirtioError::QueueFull) => Err(SubmitError::Full),
            Err(e) => Err(SubmitError::Device(e)),
        }
    }

    fn finish(&mut self, m: Mem, kind: Kind, token: u16, len: usize) -> Result<(), IoFailed> {
        // SAFETY: the device finished with this triple (its token is the
        // head of the used ring), and these are the same buffers and
        // lengths that were added with it; after `pop_used` the device no
        // longer writes the status byte, which is then read.
        let status = unsafe {
            let req = core::slice::from_raw_parts(m.req, HEADER);
            let resp = core::slice::from_raw_parts_mut(m.resp, 1);
            let popped = match kind {
                Kind::Read => {
                    let buf = core::slice::from_raw_parts_mut(m.data, len);
                    self.queue.pop_used(token, &[req], &mut [buf, resp])
                }
                Kind::Write => {
                    let buf = core::slice::from_raw_parts(m.data, len);
                    self.queue.pop_used(token, &[req, buf], &mut [resp])
                }
                Kind::Flush => self.queue.pop_used(token, &[req], &mut [resp]),
            };
            popped.map_err(IoFailed)?;
            m.resp.read_volatile()
        };
        match status {
            S_OK => Ok(()),
            S_UNSUPP => Err(IoFailed(VirtioError::Unsupported)),
            // S_IOERR, or a status the device never wrote.
            _ => Err(IoFailed(VirtioError::IoError)),
        }
    }

    /// Takes the next completion off the used ring, if it is a slot's:
    /// the slot is idle again (its data readable) and the result says
    /// whether the device did it. `None` if nothing completed (or the head
    /// is the synchronous request, see [`sync_poll`](Self::sync_poll)).
    pub fn take(&mut self) -> Option<(Done, Result<(), IoFailed>)> {
        let head = self.queue.peek_used()?;
        let slot = self.state.iter().position(|s| match s {
            State::Busy { token, .. } => *token == head,
            State::Idle => false,
        })?;
        let State::Busy { kind, token, len } = self.state[slot] else {
            return None;
        };
        let r = self.finish(self.mem[slot], kind, token, len);
        // `pop_used` has moved `used_event` (EVENT_IDX) with a release
        // store; the next `peek_used` must not read the used index before
        // that store is visible, or a completion written in between would
        // neither interrupt nor be seen (x86 reorders a load before an
        // earlier store). virtio-drivers has no full fence there.
        fence(Ordering::SeqCst);
        self.state[slot] = State::Idle;
        let done = match kind {
            Kind::Read => Done::Read { slot, len },
            Kind::Write => Done::Write { slot },
            Kind::Flush => Done::Flush { slot },
        };
        Some((done, r))
    }

    /// Starts the synchronous read or write of one whole block at `sector`
    /// (a write sends what [`sync_fill`](Self::sync_fill) put there).
    pub fn sync_start(&mut self, sector: u64, write: bool) -> Result<(), SubmitError> {
        let kind = if write { Kind::Write } else { Kind::Read };
        self.sync_submit(kind, sector, SYNC_DATA)
    }

    /// Starts a synchronous flush; `Ok(false)` as for
    /// [`submit_flush`](Self::submit_flush).
    pub fn sync_start_flush(&mut self) -> Result<bool, SubmitError> {
        if self.features & F_FLUSH == 0 {
            return Ok(false);
        }
        self.sync_submit(Kind::Flush, 0, 0).map(|()| true)
    }

    fn sync_submit(&mut self, kind: Kind, sector: u64, len: usize) -> Result<(), SubmitError> {
        if self.sync != State::Idle {
            return Err(SubmitError::Bad);
        }
        let token = self.start(self.sync_mem, kind, sector, len)?;
        self.sync = State::Busy { kind, token, len };
        Ok(())
    }

    /// Completes the synchronous request if it is the head of the used
    /// ring: `None` while it is not done.
    pub fn sync_poll(&mut self) -> Option<Result<(), IoFailed>> {
        let head = self.queue.peek_used()?;
        let State::Busy { kind, token, len } = self.sync else {
            return None;
        };
        if head != token {
            return None;
        }
        let r = self.finish(self.sync_mem, kind, token, len);
        self.sync = State::Idle;
        Some(r)
    }

    /// Copies a block into the synchronous buffer (it must be idle).
    pub fn sync_fill(&mut self, block: &[u8; SYNC_DATA]) -> Result<(), SubmitError> {
        if self.sync != State::Idle {
            return Err(SubmitError::Bad);
        }
        // SAFETY: the synchronous triple is idle: no request uses it and
        // no reference to it exists; the buffer is SYNC_DATA bytes.
        unsafe { core::ptr::copy_nonoverlapping(block.as_ptr(), self.sync_mem.data, SYNC_DATA) };
        Ok(())
    }

    /// Copies the synchronous buffer out (it must be idle).
    pub fn sync_copy_out(&self, block: &mut [u8; SYNC_DATA]) -> Result<(), SubmitError> {
        if self.sync != State::Idle {
            return Err(SubmitError::Bad);
        }
        // SAFETY: as for `sync_fill`, reading.
        unsafe {
            core::ptr::copy_nonoverlapping(self.sync_mem.data, block.as_mut_ptr(), SYNC_DATA)
        };
        Ok(())
    }
}
