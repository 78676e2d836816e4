//! Kernel → supervisor: a domain ended.
//!
//! Sent with label [`crate::header::LABEL_EXIT`]; the kernel encodes it with
//! postcard into a fixed buffer of [`EXIT_MSG_MAX`] bytes. A fault stops only
//! the faulting domain; what happens next (restart, leave dead) is the
//! supervisor's policy.

use crate::ids::DomainId;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

/// The CPU exception (or kernel-detected condition) that stopped a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum FaultKind {
    /// A miss the pager refused (`FAULT_KILL`), or a domain without a pager.
    PageFault,
    /// A write or fetch against the binding's rights.
    Protection,
    /// `#GP`.
    GeneralProtection,
    /// `#UD`.
    InvalidOpcode,
    /// `#DE`.
    DivideError,
    /// `#BP` / `#DB`.
    Debug,
    /// `#AC`.
    Alignment,
    /// `#SS`.
    StackSegment,
    /// `#MF` / `#XM`.
    FloatingPoint,
    /// Any other vector.
    Other(u8),
    /// The pager could not bring the page back (`FAULT_KILL_LOST`): its
    /// swap copy failed to read or failed its checksum. Nothing was mapped.
    PageLost,
}

/// Why a domain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum ExitReason {
    /// It called `halt(code)`.
    Halted(u64),
    /// It faulted.
    Fault {
        /// Which fault.
        kind: FaultKind,
        /// The faulting address (`cr2`) for memory faults, else 0.
        vaddr: u64,
        /// Where.
        rip: u64,
        /// The exception's error code, else 0.
        error: u64,
    },
    /// A `domain_ctl(Kill)`.
    Killed,
}

/// The exit message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct DomainExit {
    /// The domain that ended (its slot may be reused with a new generation).
    pub domain: DomainId,
    /// Why.
    pub reason: ExitReason,
}

/// The kernel's fixed buffer size for encoding a [`DomainExit`].
pub const EXIT_MSG_MAX: usize = DomainExit::POSTCARD_MAX_SIZE;

// The kernel keeps both of its message buffers on its stack: keep them tiny.
const _: () = assert!(EXIT_MSG_MAX <= 64 && crate::pager::FAULT_MSG_MAX <= 64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
    use crate::supervisor::tests::domain;
    use crate::testutil::round_trip;
    use proptest::prelude::*;
    use std::vec;

    fn kind() -> impl Strategy<Value = FaultKind> {
        prop_oneof![
            Just(FaultKind::PageFault),
            Just(FaultKind::Protection),
            Just(FaultKind::GeneralProtection),
            Just(FaultKind::InvalidOpcode),
            Just(FaultKind::DivideError),
            Just(FaultKind::Debug),
            Just(FaultKind::Alignment),
            Just(FaultKind::StackSegment),
            Just(FaultKind::FloatingPoint),
            any::<u8>().prop_map(FaultKind::Other),
            Just(FaultKind::PageLost),
        ]
    }

    fn reason() -> impl Strategy<Value = ExitReason> {
        prop_oneof![
            any::<u64>().prop_map(ExitReason::Halted),
            (kind(), any::<(u64, u64, u64)>()).prop_map(|(kind, (vaddr, rip, error))| {
                ExitReason::Fault {
                    kind,
                    vaddr,
                    rip,
                    error,
                }
            }),
            Just(ExitReason::Killed),
        ]
    }

    proptest! {
        #[test]
        fn exits_round_trip(domain in domain(), reason in reason()) {
            round_trip(&DomainExit { domain, reason });
        }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<DomainExit>(&v);
        }
    }
}
