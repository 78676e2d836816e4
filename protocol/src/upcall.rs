//! The upcall convention: pending-event bits and the saved context.
//!
//! Events for a domain set bits in its 64-bit pending mask. When the domain is
//! next dispatched with upcalls enabled and a nonzero mask, the kernel saves
//! the interrupted context into the upcall page ([`crate::layout::UPCALL_PAGE_ADDR`]),
//! clears the page's enable flag, and enters the domain's upcall entry with
//! `rdi` = the whole mask, `rsi` = the notification word (both taken, i.e.
//! cleared, in one step) and `rsp` = the interrupted `rsp` minus the 128-byte
//! red zone, aligned down to 16. The handler resumes the interrupted context
//! from the saved frame and re-enables upcalls itself. `idle` instead returns
//! the taken mask in `rdx`, so an idling domain needs no upcall.

use crate::SysError;

/// The domain's alarm (its `idle` deadline or timer) expired.
pub const ALARM: u64 = 1 << 0;
/// The domain was switched out and back in (it may recheck time).
pub const WAKEUP: u64 = 1 << 1;
/// Some domain notified it; the bits are in the notification word.
pub const NOTIFY: u64 = 1 << 2;
/// First bit of the IRQ lines bound to a driver domain.
pub const IRQ_SHIFT: u32 = 8;
/// How many IRQ lines one domain can have bound.
pub const MAX_IRQS: u32 = 64 - IRQ_SHIFT;
/// Every bit the kernel may set.
pub const ALL_BITS: u64 = ALARM | WAKEUP | NOTIFY | (!0u64 << IRQ_SHIFT);

/// The pending bit of the domain's `n`th bound IRQ line.
pub fn irq_bit(n: u32) -> Result<u64, SysError> {
    if n >= MAX_IRQS {
        return Err(SysError::BadArgument);
    }
    Ok(1 << (IRQ_SHIFT + n))
}

/// Offset in the upcall page of the enable flag (`u64`; nonzero = enabled).
pub const OFF_ENABLED: usize = 0;
/// Offset in the upcall page of the saved [`UpcallFrame`].
pub const OFF_FRAME: usize = 8;

const _: () = assert!(OFF_FRAME + UpcallFrame::LEN <= crate::layout::MAX_PAYLOAD);

/// The interrupted context, as the kernel saves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpcallFrame {
    /// `rip, rsp, rflags`, then `rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15`.
    pub regs: [u64; UpcallFrame::WORDS],
}

impl UpcallFrame {
    /// Registers saved.
    pub const WORDS: usize = 18;
    /// Encoded size in bytes.
    pub const LEN: usize = Self::WORDS * 8;
    /// Index of `rip` in `regs`.
    pub const RIP: usize = 0;
    /// Index of `rsp` in `regs`.
    pub const RSP: usize = 1;
    /// Index of `rflags` in `regs`.
    pub const RFLAGS: usize = 2;

    /// Writes the frame as little-endian words; `BadArgument` if `buf` is short.
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), SysError> {
        let b = buf.get_mut(..Self::LEN).ok_or(SysError::BadArgument)?;
        for (chunk, r) in b.chunks_exact_mut(8).zip(self.regs.iter()) {
            chunk.copy_from_slice(&r.to_le_bytes());
        }
        Ok(())
    }

    /// Reads a frame; `BadArgument` if `buf` is short.
    pub fn decode(buf: &[u8]) -> Result<UpcallFrame, SysError> {
        let b = buf.get(..Self::LEN).ok_or(SysError::BadArgument)?;
        let mut f = UpcallFrame::default();
        for (r, chunk) in f.regs.iter_mut().zip(b.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            *r = u64::from_le_bytes(w);
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_distinct() {
        assert_eq!(ALARM & WAKEUP & NOTIFY, 0);
        assert_eq!(irq_bit(0), Ok(1 << 8));
        assert_eq!(irq_bit(MAX_IRQS - 1), Ok(1 << 63));
        assert!(irq_bit(MAX_IRQS).is_err());
        assert_eq!(ALL_BITS & 0xf8, 0);
    }

    #[test]
    fn frame_round_trips() {
        let mut f = UpcallFrame::default();
        for (i, r) in f.regs.iter_mut().enumerate() {
            *r = (i as u64) << 56 | 0xdead;
        }
        let mut buf = [0u8; UpcallFrame::LEN];
        f.encode(&mut buf).unwrap();
        assert_eq!(UpcallFrame::decode(&buf), Ok(f));
        assert!(UpcallFrame::decode(&buf[..10]).is_err());
    }
}
