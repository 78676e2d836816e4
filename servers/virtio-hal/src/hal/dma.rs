//! The DMA window and virtio-drivers' `Hal` over it.
//!
//! The supervisor gives the server frames (`frames=` in the manifest); the
//! kernel tells their physical addresses (frame f is at f * 4096) in the
//! grant page. They are bound once, in order, at [`WINDOW`], and never
//! unbound, so every DMA buffer lives in one pinned range: `share` is an
//! offset and a bounds check, `dma_alloc` a first fit over a bitmap that
//! only hands out runs whose frames are physically consecutive.
//!
//! The one exception: a small buffer outside the window (virtio-drivers'
//! blocking calls put request headers and status bytes on the stack).
//! `share` copies such buffers through a bounce page in the window and
//! `unshare` copies them back.
//!
//! Everything is behind one spin lock: the server is one thread, and the
//! lock is never held across a call back into the driver.

use core::ptr::NonNull;

use ilwaco::protocol::syscall::DeviceOp;
use ilwaco::protocol::{Handle, PageRights};
use ilwaco::sys;
use spin::Mutex;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Where the DMA frames are bound (far from the image, heap and stack).
pub const WINDOW: u64 = 0x0000_4000_0000_0000;
/// Most frames the window takes (the size of the bitmap).
pub const MAX_PAGES: usize = 64;
/// Where memory BAR i is mapped: `BARS_AT + i * BAR_STRIDE`.
const BARS_AT: u64 = 0x0000_5000_0000_0000;
const BAR_STRIDE: u64 = 1 << 30;
/// An address that is never bound: what a failed translation points to,
/// so a defect faults the server instead of reaching memory it does not own.
const NOWHERE: u64 = BARS_AT - (1 << 30);
const PAGE: usize = 4096;
/// Bounce chunks: small buffers outside the window (the driver's own).
const CHUNK: usize = 512;
const CHUNKS: usize = PAGE / CHUNK;

/// Why the window could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaError {
    /// No grant page: the manifest gave no `frames=`.
    NoGrant,
    /// Fewer frames than the server needs.
    TooFew(usize),
    /// Binding a frame failed.
    Map(ilwaco::SysError),
    /// Set up twice.
    Again,
}

#[derive(Clone, Copy)]
struct Bar {
    /// Physical base and size (0: absent or I/O).
    base: u64,
    size: u64,
    mapped: bool,
}

struct Window {
    frames: [u64; MAX_PAGES],
    pages: usize,
    used: u64,
    /// The bounce page (a window page index) and its chunks in use.
    bounce: usize,
    bounce_used: u8,
    device: Handle,
    bars: [Bar; 6],
    /// Translations or shares that could not be done (a defect if nonzero).
    faults: u32,
}

static STATE: Mutex<Option<Window>> = Mutex::new(None);

fn page_va(i: usize) -> u64 {
    WINDOW + (i * PAGE) as u64
}

impl Window {
    /// First fit for `n` free pages with consecutive frames.
    fn find(&self, n: usize) -> Option<usize> {
        if n == 0 || n > self.pages {
            return None;
        }
        (0..=self.pages - n).find(|&s| {
            (s..s + n).all(|i| self.used & (1 << i) == 0)
                && (s + 1..s + n).all(|i| self.frames[i] == self.frames[s] + (i - s) as u64)
        })
    }

    fn take(&mut self, s: usize, n: usize) {
        for i in s..s + n {
            self.used |= 1 << i;
        }
    }

    /// The physical address of `len` bytes at `va`, if they lie in the
    /// window on consecutive frames.
    fn phys(&self, va: u64, len: usize) -> Option<u64> {
        let off = va.checked_sub(WINDOW)?;
        let end = off.checked_add(len as u64)?;
        if len == 0 || end > (self.pages * PAGE) as u64 {
            return None;
        }
        let first = usize::try_from(off / PAGE as u64).ok()?;
        let last = usize::try_from((end - 1) / PAGE as u64).ok()?;
        let f0 = self.frames[first];
        (first..=last)
            .all(|i| self.frames[i] == f0 + (i - first) as u64)
            .then_some(f0 * PAGE as u64 + off % PAGE as u64)
    }
}

/// Binds the granted frames at [`WINDOW`] and remembers the device whose
/// BARs `mmio_phys_to_virt` maps. Needs at least `min` frames.
pub fn init(device: Handle, min: usize) -> Result<usize, DmaError> {
    let grant = ilwaco::rt::frame_grant().ok_or(DmaError::NoGrant)?;
    let granted = grant.frames();
    let n = granted.len().min(MAX_PAGES);
    if n < min.max(2) {
        return Err(DmaError::TooFew(n));
    }
    let mut frames = [0u64; MAX_PAGES];
    for (i, f) in granted.iter().take(n).enumerate() {
        sys::map(Handle::NONE, page_va(i), *f, PageRights::READ_WRITE).map_err(DmaError::Map)?;
        frames[i] = *f;
    }
    let mut bars = [Bar {
        base: 0,
        size: 0,
        mapped: false,
    }; 6];
    let mut i = 0;
    while i < 6 {
        let reg = |j: usize| sys::device(device, DeviceOp::ConfigRead, 0x10 + 4 * j as u64, 4);
        let lo = reg(i).unwrap_or(0);
        let size = sys::device(device, DeviceOp::BarInfo, i as u64, 0).unwrap_or(0);
        let wide = lo & 0b111 == 0b100;
        let hi = if wide { reg(i + 1).unwrap_or(0) } else { 0 };
        if size & 1 == 0 && size != 0 {
            bars[i] = Bar {
                base: (lo & !0xf) | hi << 32,
                size,
                mapped: false,
            };
        }
        i += if wide { 2 } else { 1 };
    }
    let mut w = Window {
        frames,
        pages: n,
        used: 0,
        bounce: 0,
        bounce_used: 0,
        device,
        bars,
        faults: 0,
    };
    w.bounce = w.find(1).ok_or(DmaError::TooFew(n))?;
    w.take(w.bounce, 1);
    let mut s = STATE.lock();
    if s.is_some() {
        return Err(DmaError::Again);
    }
    *s = Some(w);
    Ok(n)
}

/// Translations or shares that went wrong (they point nowhere instead).
pub fn faults() -> u32 {
    STATE.lock().as_ref().map_or(0, |w| w.faults)
}

/// `n` zeroed, physically contiguous pages of the window: (paddr, vaddr).
pub fn alloc(n: usize) -> Option<(u64, u64)> {
    let mut g = STATE.lock();
    let w = g.as_mut()?;
    let s = w.find(n)?;
    w.take(s, n);
    let va = page_va(s);
    // SAFETY: pages s..s+n of the window are bound read-write to frames
    // this domain owns (init), and were free in the bitmap, so no Rust
    // reference or device request covers them.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, n * PAGE) };
    Some((w.frames[s] * PAGE as u64, va))
}

fn free(va: u64, n: usize) {
    let mut g = STATE.lock();
    let Some(w) = g.as_mut() else { return };
    let Some(s) = va.checked_sub(WINDOW).map(|o| (o / PAGE as u64) as usize) else {
        return;
    };
    for i in s..(s + n).min(MAX_PAGES) {
        w.used &= !(1 << i);
    }
}

/// virtio-drivers' platform layer for the driver servers.
#[derive(Debug)]
pub struct SeracHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed pages of the window,
// bound to frames this domain owns and handed to nobody else until
// `dma_dealloc`; `mmio_phys_to_virt` returns addresses inside a BAR the
// kernel mapped uncached for this domain, or an address that is never
// bound; `share` returns the physical address of exactly the buffer (or of
// a bounce copy of it), which is what the device may then access.
unsafe impl Hal for SeracHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match alloc(pages).and_then(|(p, v)| Some((p, NonNull::new(v as *mut u8)?))) {
            Some(r) => r,
            // virtio-drivers turns a zero address into `Error::DmaError`.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        free(vaddr.as_ptr() as u64, pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        let mut g = STATE.lock();
        let va = g.as_mut().and_then(|w| {
            let i = w.bars.iter().position(|b| {
                b.size != 0
                    && paddr >= b.base
                    && paddr.saturating_add(size as u64) <= b.base.saturating_add(b.size)
            })?;
            let at = BARS_AT + i as u64 * BAR_STRIDE;
            if !w.bars[i].mapped {
                if sys::device(w.device, DeviceOp::MapBar, i as u64, at).is_err() {
                    w.faults += 1;
                    return None;
                }
                w.bars[i].mapped = true;
            }
            Some(at + (paddr - w.bars[i].base))
        });
        NonNull::new(va.unwrap_or(NOWHERE) as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let va = buffer.as_ptr() as *mut u8 as u64;
        let len = buffer.len();
        let mut g = STATE.lock();
        let Some(w) = g.as_mut() else { return 0 };
        if let Some(p) = w.phys(va, len) {
            return p;
        }
        // A buffer outside the window: copy it through a bounce chunk.
        let free = (0..CHUNKS).find(|&c| w.bounce_used & (1 << c) == 0);
        match free {
            Some(c) if len <= CHUNK => {
                w.bounce_used |= 1 << c;
                let dst = page_va(w.bounce) + (c * CHUNK) as u64;
                // SAFETY: the caller guarantees `buffer` is valid for
                // reads of `len` bytes; `dst` is chunk c of the bounce
                // page, bound and reserved for this copy, and `len` fits it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        buffer.as_ptr() as *const u8,
                        dst as *mut u8,
                        len,
                    )
                };
                w.frames[w.bounce] * PAGE as u64 + (c * CHUNK) as u64
            }
            _ => {
                // Never with the requests this server makes (each buffer
                // is in the window, the driver's own are a few bytes):
                // let the device hit the bounce page, not foreign memory,
                // and count it so the request is reported as failed.
                w.faults += 1;
                w.frames[w.bounce] * PAGE as u64
            }
        }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let mut g = STATE.lock();
        let Some(w) = g.as_mut() else { return };
        let base = w.frames[w.bounce] * PAGE as u64;
        let Some(off) = paddr.checked_sub(base).filter(|o| *o < PAGE as u64) else {
            return;
        };
        let c = off as usize / CHUNK;
        if w.bounce_used & (1 << c) == 0 {
            return;
        }
        w.bounce_used &= !(1 << c);
        if direction != BufferDirection::DriverToDevice {
            let src = page_va(w.bounce) + off;
            let len = buffer.len().min(CHUNK);
            // SAFETY: the caller guarantees `buffer` is valid for writes
            // of its length; the chunk holds what the device wrote for it.
            unsafe {
                core::ptr::copy_nonoverlapping(src as *const u8, buffer.as_ptr() as *mut u8, len)
            };
        }
    }
}
