//! Generation-carrying ids: domains and handles, plus the rights bits.
//!
//! Both ids pack into one `u64` as `generation << 32 | index`. Generations
//! start at 1, so the all-zero word is never a live id: a zeroed register or
//! buffer reads as "none". When a slot is reused its generation is bumped,
//! so an id to the old occupant fails visibly instead of reaching the new one.

use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// A protection domain: slot index in the kernel's domain table + generation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    MaxSize,
)]
pub struct DomainId {
    /// Slot in the kernel's domain table.
    pub index: u32,
    /// Bumped every time the slot is reused (restart, new domain).
    pub gen: u32,
}

impl DomainId {
    /// "No domain" (packs to 0).
    pub const NONE: DomainId = DomainId { index: 0, gen: 0 };

    /// A domain id; `gen` 0 is reserved for [`DomainId::NONE`].
    pub const fn new(index: u32, gen: u32) -> DomainId {
        DomainId { index, gen }
    }

    /// The packed form used in registers.
    pub const fn to_raw(self) -> u64 {
        (self.gen as u64) << 32 | self.index as u64
    }

    /// Unpacks a register value; any `u64` is syntactically an id, the
    /// kernel's table decides whether it is live.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "splitting the halves is the point"
    )]
    pub const fn from_raw(raw: u64) -> DomainId {
        DomainId {
            index: raw as u32,
            gen: (raw >> 32) as u32,
        }
    }

    /// Whether this is [`DomainId::NONE`] (generation 0 is never live).
    pub const fn is_none(self) -> bool {
        self.gen == 0
    }

    /// The id the slot's next occupant gets; generation 0 is skipped.
    pub const fn next_gen(self) -> DomainId {
        let gen = match self.gen.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        DomainId {
            index: self.index,
            gen,
        }
    }
}

/// A per-domain handle: slot index in the holder's handle table + generation.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    MaxSize,
)]
pub struct Handle {
    /// Slot in the holder's handle table.
    pub index: u32,
    /// Must equal the slot's current generation to resolve.
    pub gen: u32,
}

impl Handle {
    /// "No handle" (packs to 0), e.g. a message carrying no handle.
    pub const NONE: Handle = Handle { index: 0, gen: 0 };

    /// A handle; `gen` 0 is reserved for [`Handle::NONE`].
    pub const fn new(index: u32, gen: u32) -> Handle {
        Handle { index, gen }
    }

    /// The packed form used in registers and the IPC header.
    pub const fn to_raw(self) -> u64 {
        (self.gen as u64) << 32 | self.index as u64
    }

    /// Unpacks a register value (see [`DomainId::from_raw`]).
    #[allow(
        clippy::cast_possible_truncation,
        reason = "splitting the halves is the point"
    )]
    pub const fn from_raw(raw: u64) -> Handle {
        Handle {
            index: raw as u32,
            gen: (raw >> 32) as u32,
        }
    }

    /// Whether this is [`Handle::NONE`].
    pub const fn is_none(self) -> bool {
        self.gen == 0
    }
}

/// What a handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
#[repr(u8)]
pub enum HandleKind {
    /// Where `call`/`send` deliver; object = serving domain + endpoint number.
    Endpoint = 1,
    /// One-shot right to answer one `call`; consumed by `reply_recv`.
    Reply = 2,
    /// Control of one domain (`domain_ctl`, `map` into it).
    DomainCtl = 3,
    /// Right to `notify` one domain.
    Notification = 4,
    /// One interrupt line, bound to the holder (`irq_ack`).
    Irq = 5,
    /// A range of I/O ports the holder may use.
    IoPort = 6,
    /// Ownership of one frame, movable by IPC (bulk data by transfer).
    Frame = 7,
    /// One PCI function granted to a driver domain (the `device` syscall).
    Device = 8,
}

impl HandleKind {
    /// Every kind, in numeric order.
    pub const ALL: [HandleKind; 8] = [
        HandleKind::Endpoint,
        HandleKind::Reply,
        HandleKind::DomainCtl,
        HandleKind::Notification,
        HandleKind::Irq,
        HandleKind::IoPort,
        HandleKind::Frame,
        HandleKind::Device,
    ];
}

impl TryFrom<u8> for HandleKind {
    type Error = crate::SysError;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        HandleKind::ALL
            .iter()
            .copied()
            .find(|k| *k as u8 == n)
            .ok_or(crate::SysError::BadArgument)
    }
}

/// Rights carried by a handle, a subset of what its kind allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct HandleRights(pub u8);

impl HandleRights {
    /// `call`/`send` on an endpoint, `notify` on a notification.
    pub const SEND: HandleRights = HandleRights(1 << 0);
    /// May be moved to another domain in an IPC message.
    pub const TRANSFER: HandleRights = HandleRights(1 << 1);
    /// `map`/`unmap` into the named domain (a pager's right).
    pub const MAP: HandleRights = HandleRights(1 << 2);
    /// Start, kill, set pager/upcall, give frames (a supervisor's right).
    pub const CONTROL: HandleRights = HandleRights(1 << 3);
    /// `domain_ctl(Create)`: make new domains.
    pub const CREATE: HandleRights = HandleRights(1 << 4);
    /// Every defined bit.
    pub const ALL: HandleRights = HandleRights(0x1f);

    /// Whether every bit of `need` is present.
    pub const fn contains(self, need: HandleRights) -> bool {
        self.0 & need.0 == need.0
    }

    /// Union of two right sets.
    pub const fn union(self, other: HandleRights) -> HandleRights {
        HandleRights(self.0 | other.0)
    }

    /// Checked decoding: unknown bits are an error, not silently dropped.
    pub fn from_bits(bits: u64) -> Result<HandleRights, crate::SysError> {
        if bits & !u64::from(HandleRights::ALL.0) != 0 {
            return Err(crate::SysError::BadArgument);
        }
        u8::try_from(bits)
            .map(HandleRights)
            .map_err(|_| crate::SysError::BadArgument)
    }
}

/// Rights of a page binding (`map`'s `rights` argument, an STLB entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct PageRights(u8);

impl PageRights {
    /// Readable.
    pub const R: u8 = 1 << 0;
    /// Writable (x86 needs R with it).
    pub const W: u8 = 1 << 1;
    /// Executable.
    pub const X: u8 = 1 << 2;
    /// Uncached device memory: set only by the kernel for BAR mappings,
    /// never accepted from a domain (`from_bits` refuses it).
    pub const UC: u8 = 1 << 3;
    /// Read-only data.
    pub const READ: PageRights = PageRights(Self::R);
    /// Read-write data.
    pub const READ_WRITE: PageRights = PageRights(Self::R | Self::W);
    /// Code.
    pub const READ_EXEC: PageRights = PageRights(Self::R | Self::X);

    /// Checked decoding: must be readable (x86 has no write-only or
    /// execute-only pages without PKU) and carry no unknown bits.
    pub fn from_bits(bits: u64) -> Result<PageRights, crate::SysError> {
        let known = u64::from(Self::R | Self::W | Self::X);
        if bits & !known != 0 || bits & u64::from(Self::R) == 0 {
            return Err(crate::SysError::BadArgument);
        }
        u8::try_from(bits)
            .map(PageRights)
            .map_err(|_| crate::SysError::BadArgument)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether writable.
    pub const fn writable(self) -> bool {
        self.0 & Self::W != 0
    }
    /// Whether executable.
    pub const fn executable(self) -> bool {
        self.0 & Self::X != 0
    }
    /// Read-write uncached device memory (a BAR page; kernel-made only).
    pub const DEVICE: PageRights = PageRights(Self::R | Self::W | Self::UC);
    /// Whether uncached (device memory).
    pub const fn uncached(self) -> bool {
        self.0 & Self::UC != 0
    }
    /// Whether an access of kind `a` is allowed.
    pub const fn allows(self, a: crate::pager::Access) -> bool {
        match a {
            crate::pager::Access::Read => true,
            crate::pager::Access::Write => self.writable(),
            crate::pager::Access::Exec => self.executable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn none_is_zero_and_not_live() {
        assert_eq!(Handle::NONE.to_raw(), 0);
        assert_eq!(DomainId::NONE.to_raw(), 0);
        assert!(Handle::from_raw(0).is_none());
        assert!(!Handle::new(0, 1).is_none());
        assert_eq!(DomainId::new(3, u32::MAX).next_gen(), DomainId::new(3, 1));
    }

    #[test]
    fn rights_decoding_is_checked() {
        assert!(PageRights::from_bits(0).is_err());
        assert!(PageRights::from_bits(u64::from(PageRights::W)).is_err());
        assert!(PageRights::from_bits(8).is_err());
        assert_eq!(PageRights::from_bits(3), Ok(PageRights::READ_WRITE));
        assert!(HandleRights::from_bits(0x20).is_err());
        assert!(HandleRights::ALL.contains(HandleRights::MAP));
        for k in HandleKind::ALL {
            assert_eq!(HandleKind::try_from(k as u8), Ok(k));
        }
        assert!(HandleKind::try_from(0).is_err());
    }

    proptest! {
        #[test]
        fn packing_round_trips(index in any::<u32>(), gen in any::<u32>(), raw in any::<u64>()) {
            prop_assert_eq!(Handle::from_raw(Handle::new(index, gen).to_raw()), Handle::new(index, gen));
            prop_assert_eq!(DomainId::from_raw(DomainId::new(index, gen).to_raw()), DomainId::new(index, gen));
            prop_assert_eq!(Handle::from_raw(raw).to_raw(), raw);
        }

        #[test]
        fn generations_distinguish(index in any::<u32>(), g1 in 1u32.., g2 in 1u32..) {
            prop_assume!(g1 != g2);
            prop_assert_ne!(Handle::new(index, g1).to_raw(), Handle::new(index, g2).to_raw());
            let d = DomainId::new(index, g1);
            prop_assert_ne!(d, d.next_gen());
            prop_assert!(!d.next_gen().is_none());
        }
    }
}
