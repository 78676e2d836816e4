//! Syscall error codes.
//!
//! A syscall returns 0 in `rax` on success and one of these codes otherwise.
//! Codes are stable ABI: a code is never renumbered or reused, only added.
//! 0 is not an error, so a zeroed register can never be mistaken for one.

/// Why a syscall (or a kernel-side check backing it) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SysError {
    /// `rax` named no syscall.
    BadSyscall = 1,
    /// An argument is out of its documented range (bad flag bits, misaligned
    /// address, unknown sub-operation).
    BadArgument = 2,
    /// A user pointer is non-canonical, outside the caller's space, or wraps.
    BadPointer = 3,
    /// The handle names no live slot in the caller's table.
    BadHandle = 4,
    /// The handle's generation does not match: it was revoked (and the slot
    /// perhaps reused), or the object it named was restarted.
    StaleHandle = 5,
    /// The handle is of another kind than the syscall needs.
    WrongHandleKind = 6,
    /// The handle lacks a right the operation needs.
    NoRights = 7,
    /// `map` of a frame the caller may not bind.
    FrameNotOwned = 8,
    /// The virtual page already has a binding.
    AlreadyMapped = 9,
    /// The virtual page has no binding.
    NotMapped = 10,
    /// The kernel could not allocate what the operation needs.
    OutOfMemory = 11,
    /// A bounded table (handles, software TLB, timers) is full.
    TableFull = 12,
    /// The payload exceeds [`crate::layout::MAX_PAYLOAD`] or the receiver's buffer.
    MessageTooLarge = 13,
    /// A non-blocking operation would have to block.
    WouldBlock = 14,
    /// The peer died while the operation was outstanding.
    PeerDead = 15,
    /// The server behind an endpoint was restarted since the handle was made;
    /// idempotent requests may be retried, others must re-establish state.
    ServerRestarted = 16,
    /// The frame is already bound in some (possibly other) domain.
    FrameInUse = 17,
    /// The message moves a handle and the receiver did not opt in to
    /// receiving one (`reply_recv` without `RECV_ACCEPT_HANDLE`); the
    /// sender keeps it.
    HandleRefused = 18,
}

impl SysError {
    /// Every code, in numeric order (for tests and tools).
    pub const ALL: [SysError; 18] = [
        SysError::BadSyscall,
        SysError::BadArgument,
        SysError::BadPointer,
        SysError::BadHandle,
        SysError::StaleHandle,
        SysError::WrongHandleKind,
        SysError::NoRights,
        SysError::FrameNotOwned,
        SysError::AlreadyMapped,
        SysError::NotMapped,
        SysError::OutOfMemory,
        SysError::TableFull,
        SysError::MessageTooLarge,
        SysError::WouldBlock,
        SysError::PeerDead,
        SysError::ServerRestarted,
        SysError::FrameInUse,
        SysError::HandleRefused,
    ];

    /// The stable numeric code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// Decodes a code; `None` for 0 (success) and unknown codes.
    pub fn from_code(code: u64) -> Option<SysError> {
        SysError::ALL
            .iter()
            .copied()
            .find(|e| u64::from(e.code()) == code)
    }
}

impl TryFrom<u64> for SysError {
    type Error = u64;

    fn try_from(code: u64) -> Result<Self, u64> {
        SysError::from_code(code).ok_or(code)
    }
}

impl From<SysError> for u64 {
    fn from(e: SysError) -> u64 {
        u64::from(e.code())
    }
}

/// Turns the `(rax, rdx)` pair a syscall returned into a result. An unknown
/// nonzero code (a newer kernel) is reported as `BadSyscall`, never ignored.
pub fn sys_result(rax: u64, rdx: u64) -> Result<u64, SysError> {
    if rax == 0 {
        Ok(rdx)
    } else {
        Err(SysError::from_code(rax).unwrap_or(SysError::BadSyscall))
    }
}

/// The `(rax, rdx)` pair the kernel returns for a result.
pub fn sys_return(r: Result<u64, SysError>) -> (u64, u64) {
    match r {
        Ok(v) => (0, v),
        Err(e) => (u64::from(e), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_dense() {
        for (i, e) in SysError::ALL.iter().enumerate() {
            assert_eq!(e.code() as usize, i + 1);
            assert_eq!(SysError::try_from(u64::from(*e)), Ok(*e));
        }
        assert_eq!(SysError::from_code(0), None);
        assert_eq!(SysError::from_code(SysError::ALL.len() as u64 + 1), None);
        assert_eq!(SysError::from_code(u64::MAX), None);
    }

    #[test]
    fn result_pair_round_trips() {
        assert_eq!(sys_result(0, 7), Ok(7));
        for e in SysError::ALL {
            let (rax, rdx) = sys_return(Err(e));
            assert_eq!(sys_result(rax, rdx), Err(e));
        }
        assert_eq!(sys_result(999, 0), Err(SysError::BadSyscall));
    }
}
