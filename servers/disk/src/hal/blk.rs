//! The virtio-blk device with request slots in DMA memory.
//!
//! virtio-drivers' non-blocking calls (`read_blocks_nb`, `write_blocks_nb`)
//! keep using the request header, data and status buffers after they
//! return, until `complete_*` with the same buffers. Here each of
//! [`SLOTS`] slots owns such a triple in the DMA window, and a slot's
//! state says who may touch it: the CPU only while it is idle, the device
//! only while it is in flight. That is the whole soundness argument of the
//! `unsafe` below, and [`Blk`]'s safe methods enforce it.
//!
//! Completions are taken in used-ring order (`peek_used` gives the head's
//! token, which must be completed first). One more triple (`sync`, a whole
//! block) serves the blocking reads and writes of opening the volume, which
//! wait for the interrupt like everything else.

use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::protocol::Handle;
use ilwaco::sys;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::Error as VirtioError;

use super::dma::{self, DmaError, SeracHal};
use super::pci::DeviceConfig;

/// Requests in flight at once. The queue has 16 descriptors; a request
/// takes 3, or 1 with indirect descriptors.
pub const SLOTS: usize = 8;
/// Bytes of one slot's data buffer: one protocol piece.
pub const SLOT_DATA: usize = 2048;
/// Bytes of the synchronous buffer: one disk block.
pub const SYNC_DATA: usize = 4096;
/// Frames the window needs: the queue (3), slot data (4), headers (1),
/// the block buffer (1), the bounce page (1), and slack.
pub const MIN_FRAMES: usize = 16;
const PAGE: usize = 4096;

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
    /// virtio-drivers' block driver failed to initialise the device.
    Init(VirtioError),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Read { token: u16, len: usize },
    Write { token: u16, len: usize },
}

/// One request's buffers in the window.
#[derive(Debug, Clone, Copy)]
struct Mem {
    req: *mut BlkReq,
    resp: *mut BlkResp,
    data: *mut u8,
    cap: usize,
}

/// The device, its slots, and the synchronous block buffer.
pub struct Blk {
    dev: VirtIOBlk<SeracHal, PciTransport>,
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
}

fn lay_out(page: u64, req_at: usize, data: u64, cap: usize) -> Mem {
    let req = (page + (req_at * 32) as u64) as *mut BlkReq;
    let resp = (page + (req_at * 32 + 16) as u64) as *mut BlkResp;
    // SAFETY: `page` is a zeroed window page only this slot layout uses;
    // offsets 32·i and 32·i+16 (i < 128) are inside it and aligned for
    // `BlkReq` (8) and `BlkResp` (1); writing initialises them.
    unsafe {
        req.write(BlkReq::default());
        resp.write(BlkResp::default());
    }
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
        let transport =
            PciTransport::new::<SeracHal, _>(&mut root, df).map_err(|_| SetupError::Transport)?;
        // The transport computed its register addresses; a BAR that could
        // not be mapped points nowhere: stop before anything touches it.
        if dma::faults() != 0 {
            return Err(SetupError::Bar);
        }
        let blk = VirtIOBlk::<SeracHal, _>::new(transport).map_err(SetupError::Init)?;
        let (_, headers) = dma::alloc(1).ok_or(SetupError::NoMemory)?;
        let (_, data) = dma::alloc(SLOTS * SLOT_DATA / PAGE).ok_or(SetupError::NoMemory)?;
        let (_, block) = dma::alloc(SYNC_DATA / PAGE).ok_or(SetupError::NoMemory)?;
        let mem =
            core::array::from_fn(|i| lay_out(headers, i, data + (i * SLOT_DATA) as u64, SLOT_DATA));
        Ok(Blk {
            dev: blk,
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
        self.dev.capacity()
    }

    /// Whether the device is read-only.
    pub fn read_only(&self) -> bool {
        self.dev.readonly()
    }

    /// Requests the device holds now (slots and the synchronous one).
    pub fn in_flight(&self) -> usize {
        self.state.iter().filter(|s| **s != State::Idle).count()
            + usize::from(self.sync != State::Idle)
    }

    /// Reads the ISR, which de-asserts the device's interrupt line.
    pub fn ack_interrupt(&mut self) {
        let _ = self.dev.ack_interrupt();
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
        let m = self.idle_mem(slot, len)?;
        Self::check_len(len, m.cap)?;
        let token = self.start(m, sector, len, false)?;
        self.state[slot] = State::Read { token, len };
        Ok(())
    }

    /// Starts writing the first `len` bytes of slot `slot` (see
    /// [`fill`](Self::fill)) at `sector`.
    pub fn submit_write(
        &mut self,
        slot: usize,
        sector: u64,
        len: usize,
    ) -> Result<(), SubmitError> {
        let m = self.idle_mem(slot, len)?;
        Self::check_len(len, m.cap)?;
        let token = self.start(m, sector, len, true)?;
        self.state[slot] = State::Write { token, len };
        Ok(())
    }

    fn start(&mut self, m: Mem, sector: u64, len: usize, write: bool) -> Result<u16, SubmitError> {
        let sector = usize::try_from(sector).map_err(|_| SubmitError::Bad)?;
        // SAFETY: `m` is an idle triple (checked by the callers), so these
        // are the only references to its memory; `len <= m.cap` keeps the
        // slice inside its buffer. The caller marks the slot in flight
        // before returning, and nothing touches it until it completes.
        let r = unsafe {
            let req = &mut *m.req;
            let resp = &mut *m.resp;
            if write {
                let buf = core::slice::from_raw_parts(m.data, len);
                self.dev.write_blocks_nb(sector, req, buf, resp)
            } else {
                let buf = core::slice::from_raw_parts_mut(m.data, len);
                self.dev.read_blocks_nb(sector, req, buf, resp)
            }
        };
        match r {
            Ok(t) => Ok(t),
            Err(VirtioError::QueueFull) => Err(SubmitError::Full),
            Err(e) => Err(SubmitError::Device(e)),
        }
    }

    fn finish(&mut self, m: Mem, token: u16, len: usize, write: bool) -> Result<(), IoFailed> {
        // SAFETY: the device finished with this triple (its token is the
        // head of the used ring), and these are the same buffers and
        // lengths that were submitted with it.
        let r = unsafe {
            let req = &*m.req;
            let resp = &mut *m.resp;
            if write {
                let buf = core::slice::from_raw_parts(m.data, len);
                self.dev.complete_write_blocks(token, req, buf, resp)
            } else {
                let buf = core::slice::from_raw_parts_mut(m.data, len);
                self.dev.complete_read_blocks(token, req, buf, resp)
            }
        };
        r.map_err(IoFailed)
    }

    /// Takes the next completion off the used ring, if it is a slot's:
    /// the slot is idle again (its data readable) and the result says
    /// whether the device did it. `None` if nothing completed (or the head
    /// is the synchronous request, see [`sync_poll`](Self::sync_poll)).
    pub fn take(&mut self) -> Option<(Done, Result<(), IoFailed>)> {
        let head = self.dev.peek_used()?;
        let slot = self.state.iter().position(|s| match s {
            State::Read { token, .. } | State::Write { token, .. } => *token == head,
            State::Idle => false,
        })?;
        let (m, st) = (self.mem[slot], self.state[slot]);
        let (done, r) = match st {
            State::Read { token, len } => {
                (Done::Read { slot, len }, self.finish(m, token, len, false))
            }
            State::Write { token, len } => (Done::Write { slot }, self.finish(m, token, len, true)),
            State::Idle => return None,
        };
        self.state[slot] = State::Idle;
        Some((done, r))
    }

    /// Starts the synchronous read or write of one whole block at `sector`
    /// (a write sends what [`sync_fill`](Self::sync_fill) put there).
    pub fn sync_start(&mut self, sector: u64, write: bool) -> Result<(), SubmitError> {
        if self.sync != State::Idle {
            return Err(SubmitError::Bad);
        }
        let token = self.start(self.sync_mem, sector, SYNC_DATA, write)?;
        self.sync = if write {
            State::Write {
                token,
                len: SYNC_DATA,
            }
        } else {
            State::Read {
                token,
                len: SYNC_DATA,
            }
        };
        Ok(())
    }

    /// Completes the synchronous request if it is the head of the used
    /// ring: `None` while it is not done.
    pub fn sync_poll(&mut self) -> Option<Result<(), IoFailed>> {
        let head = self.dev.peek_used()?;
        let (token, write) = match self.sync {
            State::Read { token, .. } => (token, false),
            State::Write { token, .. } => (token, true),
            State::Idle => return None,
        };
        if head != token {
            return None;
        }
        let r = self.finish(self.sync_mem, token, SYNC_DATA, write);
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

    /// Flushes the device's write cache. virtio-drivers 0.13 has no
    /// non-blocking flush: its `flush` spins on the used ring until the
    /// device answers, and would take another request's completion for its
    /// own, so it is only allowed with nothing in flight (`SubmitError::Bad`
    /// otherwise). The spin lasts one flush of the host's file.
    pub fn flush(&mut self) -> Result<(), SubmitError> {
        if self.in_flight() != 0 {
            return Err(SubmitError::Bad);
        }
        let before = dma::faults();
        let r = self.dev.flush().map_err(SubmitError::Device);
        if dma::faults() != before {
            return Err(SubmitError::Device(VirtioError::DmaError));
        }
        r
    }
}
