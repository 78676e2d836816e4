//! The pager requests the swapper understands.
//!
//! [`Request`] is `serac_protocol::pager::Request` with two variants
//! appended, [`Request::Grant`] and [`Request::Region`]. Postcard encodes an
//! enum by variant index, so every encoding of the protocol's enum decodes
//! to the same variant here (a test checks this), and the two enums can be
//! merged by appending the variants to `protocol/src/pager.rs` without any
//! change on the wire. Until then, the supervisor may encode this enum
//! (with label `LABEL_PAGER`; replies are `serac_protocol::pager::Reply`).

use postcard::experimental::max_size::MaxSize;
use serac_protocol::client::{rpc, ClientError, Transport, LABEL_PAGER};
use serac_protocol::pager::{self, Reply};
use serac_protocol::DomainId;
use serde::{Deserialize, Serialize};

/// Requests to the pager: the protocol's, then the swapper's additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request {
    /// As `pager::Request::PageIn`.
    PageIn {
        /// Whose page.
        domain: DomainId,
        /// Any address in the page.
        vaddr: u64,
    },
    /// As `pager::Request::PageOut`.
    PageOut {
        /// Whose page.
        domain: DomainId,
        /// Any address in the page.
        vaddr: u64,
    },
    /// As `pager::Request::SwapOut`.
    SwapOut {
        /// The domain.
        domain: DomainId,
    },
    /// As `pager::Request::SwapIn`.
    SwapIn {
        /// The domain.
        domain: DomainId,
    },
    /// As `pager::Request::Revoke`: the domain is gone, its frames are free.
    Revoke {
        /// The domain.
        domain: DomainId,
    },
    /// As `pager::Request::Stats`.
    Stats,
    /// Supervisor → pager: frames `first .. first + count` were just given
    /// to the pager with `domain_ctl(GiveFrame)`. Idempotent: a repeated
    /// grant of the same range is refused as overlapping and changes nothing.
    Grant {
        /// First frame number.
        first: u64,
        /// How many frames.
        count: u64,
    },
    /// Supervisor → pager: faults of `domain` in `start .. end` (page
    /// aligned) may be zero-filled (its `.bss`, stack, heap). Without any
    /// region the pager uses a default window over the Ilwaco image.
    Region {
        /// The domain.
        domain: DomainId,
        /// First address (page aligned).
        start: u64,
        /// End (exclusive, page aligned).
        end: u64,
    },
}

impl From<pager::Request> for Request {
    fn from(r: pager::Request) -> Request {
        match r {
            pager::Request::PageIn { domain, vaddr } => Request::PageIn { domain, vaddr },
            pager::Request::PageOut { domain, vaddr } => Request::PageOut { domain, vaddr },
            pager::Request::SwapOut { domain } => Request::SwapOut { domain },
            pager::Request::SwapIn { domain } => Request::SwapIn { domain },
            pager::Request::Revoke { domain } => Request::Revoke { domain },
            pager::Request::Stats => Request::Stats,
        }
    }
}

impl serac_protocol::client::Request for Request {
    const LABEL: u32 = LABEL_PAGER;
    type Reply = Reply;
    fn is_idempotent(&self) -> bool {
        // Grants of the same range overlap and are refused the second time;
        // regions are a set. Everything else is idempotent per the protocol.
        true
    }
}

/// Tells the pager about frames given to it (see [`Request::Grant`]).
pub fn grant<T: Transport>(t: &mut T, first: u64, count: u64) -> Result<(), ClientError> {
    match rpc(t, &Request::Grant { first, count })? {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}

/// Names a zero-fill region of `domain` (see [`Request::Region`]).
pub fn region<T: Transport>(
    t: &mut T,
    domain: DomainId,
    start: u64,
    end: u64,
) -> Result<(), ClientError> {
    match rpc(t, &Request::Region { domain, start, end })? {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serac_protocol::codec::{decode, encode};

    #[test]
    fn protocol_encodings_decode_to_the_same_variant() {
        let d = DomainId::new(7, 3);
        let all = [
            pager::Request::PageIn {
                domain: d,
                vaddr: 0x40_1234,
            },
            pager::Request::PageOut {
                domain: d,
                vaddr: u64::MAX,
            },
            pager::Request::SwapOut { domain: d },
            pager::Request::SwapIn { domain: d },
            pager::Request::Revoke { domain: d },
            pager::Request::Stats,
        ];
        for r in all {
            let mut a = [0u8; pager::Request::POSTCARD_MAX_SIZE];
            let mut b = [0u8; Request::POSTCARD_MAX_SIZE];
            let theirs = encode(&r, &mut a).unwrap();
            assert_eq!(decode::<Request>(theirs), Ok(Request::from(r)));
            assert_eq!(encode(&Request::from(r), &mut b).unwrap(), theirs);
        }
        let mut b = [0u8; Request::POSTCARD_MAX_SIZE];
        let g = encode(
            &Request::Grant {
                first: 0x1000,
                count: 4,
            },
            &mut b,
        )
        .unwrap();
        assert!(
            decode::<pager::Request>(g).is_err(),
            "unknown to the old enum"
        );
    }
}
