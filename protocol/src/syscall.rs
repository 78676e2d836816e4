//! Syscall numbers, the register convention and syscall sub-operations.
//!
//! Convention (x86_64 `syscall`, which clobbers `rcx` and `r11`):
//! number in `rax`; arguments in `rdi, rsi, rdx, r10, r8, r9`; on return `rax`
//! is 0 or a [`crate::SysError`] code and `rdx` carries the value. Numbers are
//! stable ABI; 0 is deliberately no syscall so a zeroed `rax` fails loudly.
//! `docs/abi.md` argues each call.

/// The syscalls. Anything not here is policy and goes through IPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Syscall {
    /// `debug_write(ptr, len)`: bytes to the serial console.
    DebugWrite = 1,
    /// `call(endpoint)`: send the IPC buffer's message, block for the reply.
    Call = 2,
    /// `reply_recv(reply, deadline)`: answer `reply` (or none) and wait for the next
    /// message, until the absolute TSC `deadline` if nonzero (then `WouldBlock`).
    ReplyRecv = 3,
    /// `send(endpoint)`: send without waiting for a reply; fails with `WouldBlock`
    /// if the server is not waiting.
    Send = 4,
    /// `notify(notification, bits)`: OR bits into a domain's notification word.
    Notify = 5,
    /// `idle(deadline)`: block until an event or the absolute TSC deadline.
    Idle = 6,
    /// `halt(code)`: end the calling domain; the supervisor is told.
    Halt = 7,
    /// `map(target, vaddr, frame, rights)`: insert a secure binding.
    Map = 8,
    /// `unmap(target, vaddr)`: remove a binding, returning the frame.
    Unmap = 9,
    /// `irq_ack(irq)`: re-enable an interrupt line bound to the caller.
    IrqAck = 10,
    /// `domain_ctl(handle, op, a, b)`: privileged operations on a domain.
    DomainCtl = 11,
    /// `device(handle, op, a, b)`: the PCI function a `Device` handle names
    /// (configuration space, BAR mapping); see [`DeviceOp`].
    Device = 12,
}

impl Syscall {
    /// Every syscall, in numeric order.
    pub const ALL: [Syscall; 12] = [
        Syscall::DebugWrite,
        Syscall::Call,
        Syscall::ReplyRecv,
        Syscall::Send,
        Syscall::Notify,
        Syscall::Idle,
        Syscall::Halt,
        Syscall::Map,
        Syscall::Unmap,
        Syscall::IrqAck,
        Syscall::DomainCtl,
        Syscall::Device,
    ];

    /// The number placed in `rax`.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// How many argument registers the call reads (the rest are ignored).
    pub const fn arg_count(self) -> usize {
        match self {
            Syscall::DebugWrite | Syscall::Notify | Syscall::Unmap => 2,
            Syscall::Call | Syscall::Send => 1,
            Syscall::ReplyRecv => 2,
            Syscall::Idle | Syscall::Halt | Syscall::IrqAck => 1,
            Syscall::Map | Syscall::DomainCtl | Syscall::Device => 4,
        }
    }
}

impl TryFrom<u64> for Syscall {
    type Error = crate::SysError;

    /// Any `rax` value outside the table is `BadSyscall`, including values
    /// whose low 32 bits would match (no truncation).
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        // A match, not a search: this runs on every syscall.
        Ok(match n {
            1 => Syscall::DebugWrite,
            2 => Syscall::Call,
            3 => Syscall::ReplyRecv,
            4 => Syscall::Send,
            5 => Syscall::Notify,
            6 => Syscall::Idle,
            7 => Syscall::Halt,
            8 => Syscall::Map,
            9 => Syscall::Unmap,
            10 => Syscall::IrqAck,
            11 => Syscall::DomainCtl,
            12 => Syscall::Device,
            _ => return Err(crate::SysError::BadSyscall),
        })
    }
}

/// Most bytes one `debug_write` prints (`MessageTooLarge` beyond). The
/// kernel busy-waits on the UART with interrupts off, so one call must stay
/// short: 256 bytes are about 22 ms at 115200 baud.
pub const DEBUG_WRITE_MAX: u64 = 256;

/// Longest domain name the kernel keeps (it prefixes the domain's console
/// lines with it). Names are `[A-Za-z0-9._-]`.
pub const DOMAIN_NAME_MAX: usize = 16;

/// Whether `name` is a name the kernel accepts at `Create`.
pub fn valid_domain_name(name: &[u8]) -> bool {
    name.len() <= DOMAIN_NAME_MAX
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `a` for `domain_ctl(Create)`: class 0 (server) or 1 (guest), and the
/// length of a name of at most [`DOMAIN_NAME_MAX`] bytes (longer names are
/// cut to that length by the caller).
pub const fn create_arg(class: u64, name_len: usize) -> u64 {
    let len = if name_len > DOMAIN_NAME_MAX {
        DOMAIN_NAME_MAX
    } else {
        name_len
    };
    (class & 0xff) | ((len as u64) << 8)
}

/// `idle` deadline meaning "no timeout: wait for an event only".
pub const IDLE_FOREVER: u64 = u64::MAX;

/// Sub-operations of `domain_ctl`, passed in `rsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DomainOp {
    /// Create an empty, stopped domain; `a` = class (0 server, 1 guest) in
    /// bits 0..8 and the name's length (at most [`DOMAIN_NAME_MAX`]; 0 for
    /// none) in bits 8..16, `b` = the name's address (see [`create_arg`]).
    /// Returns a `DomainCtl` handle to it. Needs `CREATE` on the handle.
    Create = 1,
    /// Start a stopped domain at `rip = a`, `rsp = b`.
    Start = 2,
    /// Kill the domain: unmap everything, free its handles, tell the supervisor.
    Kill = 3,
    /// Hand ownership of frame `a` (owned by the caller) to the domain.
    GiveFrame = 4,
    /// Set the domain's upcall entry point to `a` (0 = upcalls off).
    SetUpcall = 5,
    /// Make endpoint handle `a` of the caller the domain's pager endpoint.
    SetPager = 6,
    /// Read counter `a` (see [`DomainCounter`]) into `rdx`.
    ReadCounter = 7,
    /// Give the domain named by the `DomainCtl` handle `a` (the recipient) a
    /// new handle naming this domain: kind and rights in `b`
    /// (`kind | rights << 8`, see [`grant_arg`]). The badge is the
    /// recipient's `DomainId`. Returns the handle as the recipient sees it.
    /// Needs `CONTROL` on both handles; the granted rights may not exceed
    /// the caller's on this domain's handle.
    Grant = 8,
    /// Restart the domain: drop its bindings, handles and context, bump its
    /// generation and leave it stopped, same slot. Handles naming the old
    /// generation then fail once with `ServerRestarted` and follow the new one.
    Restart = 9,
    /// Bind interrupt line (global system interrupt) `a & 0xffff_ffff`
    /// (with bit 32 set: level-triggered, as PCI INTx is; bit 33: active
    /// low; see [`bind_irq_arg`]) to the domain
    /// named by the `DomainCtl` handle `b`, which gets an `Irq` handle for
    /// it (returned): the line raises the domain's `IRQ(n)` pending bit and
    /// stays masked until `irq_ack`. Device power: needs `CREATE` on the
    /// handle used (the supervisor's root handle).
    BindIrq = 10,
    /// Drop the caller's handle `a` (the handle argument must be `NONE`: a
    /// domain closes only its own handles). Closing a `Reply` handle tells
    /// the waiting caller `PeerDead` (a fault's: kills the faulting domain,
    /// as `FAULT_KILL` would).
    Close = 11,
    /// Give the domain named by the `DomainCtl` handle `b` a `Device`
    /// handle (returned) for the PCI function at `a` (`bus << 8 | dev << 3
    /// | func`). Device power: needs `CREATE` on the handle used. A function
    /// is held by one domain at a time (`AlreadyMapped` otherwise).
    GrantDevice = 12,
    /// The `a`-th PCI function the kernel found (`BadArgument` past the
    /// last): with `b` = 0 packed as [`PciInfo`], with `b` = 1 its
    /// interrupt pin (1 = INTA .. 4 = INTD, 0 none) and, shifted by 8, the
    /// interrupt line firmware wrote. Needs `CREATE` on the handle used.
    PciFunction = 13,
    /// The caller's own frames, in a batch (handle `NONE`): `a` = how many
    /// [`FrameRecord`]s the caller wrote at the start of its IPC payload
    /// (at most [`FRAMES_MAX`]), `b` = [`FRAMES_TAKE`] | [`FRAMES_UNBIND`] |
    /// [`FRAMES_IF_CLEAN`]. Each record is answered in place: where the
    /// frame is bound and whether it was referenced and dirtied since the
    /// owner last took the bits. Per-record errors go in the record's
    /// status (`FrameNotOwned`); the call fails only on bad arguments.
    Frames = 14,
    /// Copies frame `a` (owned by the caller, bound anywhere or nowhere)
    /// into the caller's own page at `b` (page aligned, bound writable in
    /// the caller). Returns its use bits ([`USED_ACCESSED`] |
    /// [`USED_DIRTY`]) and takes them, so a later `Frames` with
    /// [`FRAMES_IF_CLEAN`] refuses to unbind a page written after the copy.
    CopyFrame = 15,
    /// Pager only (handle `NONE`): the domain `a` (packed `DomainId`), whose
    /// pager the caller is, gives back its page tables, IPC buffer and
    /// upcall page; they are rebuilt when it runs again. The domain must be
    /// waiting (`idle`, `reply_recv`) or stopped, else `WouldBlock`. Its
    /// bindings are untouched: the pager unbinds its frames with `Frames`.
    Shrink = 16,
    /// Makes a shared read-only image of the caller's frames (handle
    /// `NONE`): `a` records of 16 bytes at address `b` in the caller, each
    /// `vaddr | rights` (page aligned; `R` or `R|X`) then the frame, with
    /// strictly increasing addresses, frames the caller owns and has bound
    /// nowhere. Returns the image id (1 and up). The frames become shared:
    /// nobody may bind, give or copy them until the image is released.
    ImageCreate = 17,
    /// Attaches image `a`, which the caller made, to the domain: a
    /// software-TLB miss on one of its pages maps the image's frame,
    /// read-only. One image a domain; it stays attached until the domain
    /// ends or restarts. Needs `CONTROL`.
    ImageAttach = 18,
    /// Ends image `a` (handle `NONE`, its maker only): its frames are the
    /// caller's again. `FrameInUse` while any domain has it attached.
    ImageRelease = 19,
    /// What backs page `a` of the domain: `frame << 12 | rights`, plus
    /// [`TRANSLATE_SHARED`] for an image page; `NotMapped` if nothing.
    /// Needs `CONTROL`. (The supervisor reports sharing from it.)
    Translate = 20,
    /// Moves the serial input the kernel received on COM1 (and has not
    /// handed out yet) into the caller's IPC payload, at most
    /// [`CONSOLE_READ_MAX`] bytes; returns how many. Console power: needs `CREATE` on the handle
    /// used (the supervisor's root handle). The kernel raises `NOTIFY` with
    /// [`CONSOLE_INPUT_NOTIFY`] in the first domain when bytes arrive.
    ConsoleInput = 21,
    /// Copies into the caller's IPC payload the up to [`CONSOLE_READ_MAX`] bytes
    /// of recent console output (as printed, prefixes included) that end
    /// `a` bytes before the newest; returns how many (0 past the oldest
    /// kept, [`CONSOLE_HISTORY`] bytes). Needs `CREATE`, like `ConsoleInput`.
    ConsoleLog = 22,
}

/// The notification bit the kernel ORs into the first domain's word when
/// serial input arrives (`DomainOp::ConsoleInput` takes it).
pub const CONSOLE_INPUT_NOTIFY: u64 = 1 << 0;
/// Bytes of console output the kernel keeps for `DomainOp::ConsoleLog`.
pub const CONSOLE_HISTORY: usize = 16384;
/// Most bytes one `ConsoleInput` or `ConsoleLog` copies.
pub const CONSOLE_READ_MAX: usize = 512;

/// `Translate` flag: the page is a shared image page.
pub const TRANSLATE_SHARED: u64 = 0x100;
/// Bytes of one `ImageCreate` record.
pub const IMAGE_RECORD_LEN: usize = 16;

/// Bytes of one [`FrameRecord`] in the IPC payload.
pub const FRAME_RECORD_LEN: usize = 24;
/// Most records one `Frames` call takes.
pub const FRAMES_MAX: usize = crate::layout::MAX_PAYLOAD / FRAME_RECORD_LEN;
/// `Frames` flag: clear the use bits after reporting them.
pub const FRAMES_TAKE: u64 = 1;
/// `Frames` flag: remove each frame's binding (software TLB, page tables,
/// hardware TLB); the use bits found are reported.
pub const FRAMES_UNBIND: u64 = 2;
/// `Frames` flag, with [`FRAMES_UNBIND`]: leave a frame bound if it is dirty.
pub const FRAMES_IF_CLEAN: u64 = 4;
/// Use bit: the page was referenced.
pub const USED_ACCESSED: u8 = 1;
/// Use bit: the page was written.
pub const USED_DIRTY: u8 = 2;

/// Record status bit: the frame is (or, with [`STATUS_UNBOUND`], was) bound.
pub const STATUS_BOUND: u64 = 1;
/// Record status bit: referenced since the bits were last taken.
pub const STATUS_ACCESSED: u64 = 2;
/// Record status bit: written since the bits were last taken.
pub const STATUS_DIRTY: u64 = 4;
/// Record status bit: this call removed the binding.
pub const STATUS_UNBOUND: u64 = 8;

/// One entry of a `Frames` batch. In: `frame`. Out: `status` (the `STATUS_*`
/// bits, and a `SysError` code in bits 8..16 if the entry failed), and
/// where it is bound (`domain`, page-aligned `vaddr`; zero if unbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameRecord {
    /// The frame number (in); on the wire the status replaces it (out).
    pub frame: u64,
    /// `STATUS_*` bits and an error code.
    pub status: u64,
    /// Packed `DomainId` of the domain it is bound in.
    pub domain: u64,
    /// Where.
    pub vaddr: u64,
}

impl FrameRecord {
    /// The record as the caller writes it: the frame, then 16 zero bytes.
    pub fn request(frame: u64) -> [u8; FRAME_RECORD_LEN] {
        let mut b = [0u8; FRAME_RECORD_LEN];
        b[..8].copy_from_slice(&frame.to_le_bytes());
        b
    }

    /// Reads an answered record; `frame` is the one asked about.
    pub fn answer(frame: u64, b: &[u8]) -> Option<FrameRecord> {
        let w = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?))
        };
        Some(FrameRecord {
            frame,
            status: w(0)?,
            domain: w(8)?,
            vaddr: w(16)?,
        })
    }

    /// The answer the kernel writes.
    pub fn encode_answer(status: u64, domain: u64, vaddr: u64) -> [u8; FRAME_RECORD_LEN] {
        let mut b = [0u8; FRAME_RECORD_LEN];
        b[..8].copy_from_slice(&status.to_le_bytes());
        b[8..16].copy_from_slice(&domain.to_le_bytes());
        b[16..].copy_from_slice(&vaddr.to_le_bytes());
        b
    }

    /// The entry's error, if it failed.
    pub fn error(&self) -> Option<crate::SysError> {
        let code = (self.status >> 8) & 0xff;
        if code == 0 {
            None
        } else {
            Some(crate::SysError::from_code(code).unwrap_or(crate::SysError::BadSyscall))
        }
    }

    /// Whether any `STATUS_*` bit in `bit` is set.
    pub fn has(&self, bit: u64) -> bool {
        self.status & bit != 0
    }
}

/// A PCI function as [`DomainOp::PciFunction`] and [`DeviceOp::Info`]
/// report it, packed into one register: `bdf | vendor << 16 | device << 32
/// | class << 48 | subclass << 56`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciInfo {
    /// `bus << 8 | dev << 3 | func`.
    pub bdf: u16,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
}

impl PciInfo {
    /// Packs into one register.
    pub const fn to_raw(self) -> u64 {
        self.bdf as u64
            | (self.vendor as u64) << 16
            | (self.device as u64) << 32
            | (self.class as u64) << 48
            | (self.subclass as u64) << 56
    }

    /// Unpacks.
    pub const fn from_raw(v: u64) -> Self {
        PciInfo {
            bdf: v as u16,
            vendor: (v >> 16) as u16,
            device: (v >> 32) as u16,
            class: (v >> 48) as u8,
            subclass: (v >> 56) as u8,
        }
    }
}

/// Sub-operations of the `device` syscall, passed in `rsi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DeviceOp {
    /// The function, packed as [`PciInfo`].
    Info = 1,
    /// Read `b` bytes (1, 2 or 4, aligned) of configuration space at `a`.
    ConfigRead = 2,
    /// Write the low `a >> 16` bytes (1, 2 or 4, aligned) of `b` at
    /// configuration offset `a & 0xffff`. The BARs (0x10..0x28) and the
    /// expansion ROM (0x30..0x34) are the kernel's: `NoRights`.
    ConfigWrite = 3,
    /// Map memory BAR `a` whole, read-write and uncached, at page-aligned
    /// `b` in the caller. I/O or absent BARs are `BadArgument`.
    MapBar = 4,
    /// Size in bytes of BAR `a` (0 if absent), with bit 0 set for an I/O BAR.
    BarInfo = 5,
}

impl DeviceOp {
    /// Every sub-operation, in numeric order.
    pub const ALL: [DeviceOp; 5] = [
        DeviceOp::Info,
        DeviceOp::ConfigRead,
        DeviceOp::ConfigWrite,
        DeviceOp::MapBar,
        DeviceOp::BarInfo,
    ];
}

impl TryFrom<u64> for DeviceOp {
    type Error = crate::SysError;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        DeviceOp::ALL
            .iter()
            .copied()
            .find(|o| u64::from(*o as u32) == n)
            .ok_or(crate::SysError::BadArgument)
    }
}

/// `reply_recv` flag (in `rdx`): the next message may move a handle into
/// the caller's table. Without it, a message that carries one is refused
/// with `HandleRefused` and the sender keeps its handle.
pub const RECV_ACCEPT_HANDLE: u64 = 1;

/// `reply_recv` flag (in `rdx`): pending events end the wait too. With no
/// message waiting, the call returns `WouldBlock` with `rdx` = the pending
/// mask, taken as `idle` takes it (a deadline's expiry leaves `rdx` = 0).
pub const RECV_WAKE_ON_EVENT: u64 = 2;

/// Packs the `a` argument of [`DomainOp::BindIrq`].
pub const fn bind_irq_arg(gsi: u32, level: bool, active_low: bool) -> u64 {
    gsi as u64 | (level as u64) << 32 | (active_low as u64) << 33
}

/// Packs the `b` argument of [`DomainOp::Grant`].
pub const fn grant_arg(kind: crate::HandleKind, rights: crate::HandleRights) -> u64 {
    (kind as u64) | ((rights.0 as u64) << 8)
}

impl DomainOp {
    /// Every sub-operation, in numeric order.
    pub const ALL: [DomainOp; 22] = [
        DomainOp::Create,
        DomainOp::Start,
        DomainOp::Kill,
        DomainOp::GiveFrame,
        DomainOp::SetUpcall,
        DomainOp::SetPager,
        DomainOp::ReadCounter,
        DomainOp::Grant,
        DomainOp::Restart,
        DomainOp::BindIrq,
        DomainOp::Close,
        DomainOp::GrantDevice,
        DomainOp::PciFunction,
        DomainOp::Frames,
        DomainOp::CopyFrame,
        DomainOp::Shrink,
        DomainOp::ImageCreate,
        DomainOp::ImageAttach,
        DomainOp::ImageRelease,
        DomainOp::Translate,
        DomainOp::ConsoleInput,
        DomainOp::ConsoleLog,
    ];
}

impl TryFrom<u64> for DomainOp {
    type Error = crate::SysError;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        DomainOp::ALL
            .iter()
            .copied()
            .find(|o| u64::from(*o as u32) == n)
            .ok_or(crate::SysError::BadArgument)
    }
}

/// Counters readable with `domain_ctl(ReadCounter)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DomainCounter {
    /// CPU time charged, in TSC ticks.
    CpuTicks = 1,
    /// Events raised into the pending mask.
    EventsRaised = 2,
    /// Upcalls (or idle returns) that delivered events.
    UpcallsDelivered = 3,
    /// Software-TLB misses sent to the pager.
    Faults = 4,
    /// The domain's `DomainId` (packed), so a creator learns its child's id.
    Id = 5,
    /// The generation its handle table gives fresh slots: generations stay
    /// monotonic across restarts, so a restarted domain's handles granted
    /// at start are `Handle::new(slot, this)`, not generation 1.
    HandleBase = 6,
    /// Where the domain is in its life, as [`STATE_RUNNABLE`] and the
    /// constants beside it.
    State = 7,
}

/// `ReadCounter(State)`: created, not started (or restarted, not started).
pub const STATE_STOPPED: u64 = 0;
/// `ReadCounter(State)`: on the run queue or running.
pub const STATE_RUNNABLE: u64 = 1;
/// `ReadCounter(State)`: in `idle`.
pub const STATE_IDLE: u64 = 2;
/// `ReadCounter(State)`: in `reply_recv`, waiting for a message.
pub const STATE_RECEIVING: u64 = 3;
/// `ReadCounter(State)`: in `call`/`send`, or waiting for its pager.
pub const STATE_BLOCKED: u64 = 4;
/// `ReadCounter(State)`: ended, its record not reaped yet.
pub const STATE_DEAD: u64 = 5;

impl TryFrom<u64> for DomainCounter {
    type Error = crate::SysError;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        match n {
            1 => Ok(DomainCounter::CpuTicks),
            2 => Ok(DomainCounter::EventsRaised),
            3 => Ok(DomainCounter::UpcallsDelivered),
            4 => Ok(DomainCounter::Faults),
            5 => Ok(DomainCounter::Id),
            6 => Ok(DomainCounter::HandleBase),
            7 => Ok(DomainCounter::State),
            _ => Err(crate::SysError::BadArgument),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SysError;
    use proptest::prelude::*;

    #[test]
    fn numbers_round_trip() {
        for s in Syscall::ALL {
            assert_eq!(Syscall::try_from(u64::from(s.number())), Ok(s));
        }
        for o in DomainOp::ALL {
            assert_eq!(DomainOp::try_from(o as u64), Ok(o));
        }
        assert_eq!(Syscall::try_from(0), Err(SysError::BadSyscall));
        assert_eq!(Syscall::try_from(1 << 32 | 1), Err(SysError::BadSyscall));
    }

    #[test]
    fn create_arg_and_names() {
        assert_eq!(create_arg(1, 7), 1 | 7 << 8);
        assert_eq!(create_arg(0, 16), 16 << 8);
        // Longer names are cut by the caller; the length never spills over.
        assert_eq!(create_arg(1, 300), 1 | 16 << 8);
        assert_eq!(create_arg(0x1ff, 0), 0xff);
        assert!(valid_domain_name(b"bench-core.2_x"));
        assert!(valid_domain_name(b"abcdefghijklmnop"));
        assert!(valid_domain_name(b""));
        assert!(!valid_domain_name(b"abcdefghijklmnopq"));
        for bad in [
            &b"a b"[..],
            b"a#1",
            b"a/b",
            b"\x1b[31m",
            b"caf\xc3\xa9",
            b"a\n",
            b"]",
        ] {
            assert!(!valid_domain_name(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn rejects_everything_outside_the_table(n in any::<u64>()) {
            let known = (1..=Syscall::ALL.len() as u64).contains(&n);
            prop_assert_eq!(Syscall::try_from(n).is_ok(), known);
            if let Ok(s) = Syscall::try_from(n) {
                prop_assert_eq!(u64::from(s.number()), n);
            }
        }
    }
}
