//! The pager's protocol: software-TLB misses from the kernel, and paging
//! requests shaped for a swapping pager.
//!
//! A miss blocks the faulting domain and sends its pager a [`Fault`] with
//! label [`crate::header::LABEL_FAULT`]. The pager binds the page with `map`
//! and answers the fault's reply handle with an empty payload and label
//! [`FAULT_RESUME`] (retry the access) or [`FAULT_KILL`] (the access is
//! invalid: the kernel kills the domain and tells the supervisor). The kernel
//! reads only that label, never a payload. Every pager request is idempotent:
//! paging a page in or out twice ends in the same state.

use crate::client::{rpc, ClientError, Transport, LABEL_PAGER};
use crate::ids::DomainId;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

pub use crate::client::ServiceError;

/// Reply label to a [`Fault`]: the page is bound, resume the domain.
pub const FAULT_RESUME: u32 = 0;
/// Reply label to a [`Fault`]: the access is invalid, kill the domain.
pub const FAULT_KILL: u32 = 1;
/// Reply label to a [`Fault`]: the page's swap copy is lost (a read error
/// or a checksum mismatch); the kernel kills the domain with
/// `FaultKind::PageLost`, so the supervisor's exit message says why.
pub const FAULT_KILL_LOST: u32 = 2;

/// The kind of access that missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum Access {
    /// Load.
    Read,
    /// Store.
    Write,
    /// Instruction fetch.
    Exec,
}

/// Kernel → pager: `domain` missed on `vaddr` at instruction `rip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Fault {
    /// The faulting domain (blocked until the reply).
    pub domain: DomainId,
    /// The faulting address (not page aligned).
    pub vaddr: u64,
    /// What the access was.
    pub access: Access,
    /// Where it happened.
    pub rip: u64,
}

/// The kernel's fixed buffer size for encoding a [`Fault`].
pub const FAULT_MSG_MAX: usize = Fault::POSTCARD_MAX_SIZE;

/// Requests to the pager (from the supervisor, or a domain about itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request {
    /// Bring the page at `vaddr` in ahead of a fault (prefetch).
    PageIn {
        /// Whose page.
        domain: DomainId,
        /// Any address in the page.
        vaddr: u64,
    },
    /// Write the page out and unbind it.
    PageOut {
        /// Whose page.
        domain: DomainId,
        /// Any address in the page.
        vaddr: u64,
    },
    /// Swap the whole domain out.
    SwapOut {
        /// The domain.
        domain: DomainId,
    },
    /// Bring the domain's working set back in.
    SwapIn {
        /// The domain.
        domain: DomainId,
    },
    /// The domain is gone: drop its frames and swap slots.
    Revoke {
        /// The domain.
        domain: DomainId,
    },
    /// Counters.
    Stats,
    /// Supervisor → pager: frames `first .. first + count` were just given
    /// to the pager with `domain_ctl(GiveFrame)`. A repeated grant of the
    /// same range is refused as overlapping and changes nothing.
    Grant {
        /// First frame number.
        first: u64,
        /// How many frames.
        count: u64,
    },
    /// Supervisor → pager: faults of `domain` in `start .. end` (page
    /// aligned) may be zero-filled (its `.bss`, stack, heap).
    Region {
        /// The domain.
        domain: DomainId,
        /// First address (page aligned).
        start: u64,
        /// End (exclusive, page aligned).
        end: u64,
    },
    /// `domain`'s memory as the pager sees it (for the operator console).
    DomainMem {
        /// The domain.
        domain: DomainId,
    },
    /// Supervisor → pager: when to swap idle domains out whole. By default
    /// only when the pager's free frames run low (memory is a cache of
    /// active domains); with `always`, every domain idle for the pager's
    /// idle time, memory free or not (the manifest's `swap-idle=yes`).
    SwapIdle {
        /// Swap idle domains out even with memory free.
        always: bool,
    },
}

impl Request {
    /// Every pager request is idempotent (see the module docs).
    pub fn is_idempotent(&self) -> bool {
        true
    }
}

/// The pager's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct PagerStats {
    /// Frames bound to domains.
    pub resident: u32,
    /// Pages in swap.
    pub swapped: u32,
    /// Faults handled.
    pub faults: u64,
    /// Pages read from swap.
    pub page_ins: u64,
    /// Pages written to swap.
    pub page_outs: u64,
    /// Device errors (each failed the request that met it).
    pub io_errors: u64,
    /// Frames more it can take (its pool's room): what the supervisor
    /// gives it at most.
    pub room: u64,
    /// Frames in its pool bound to nobody now: the supervisor starts paged
    /// domains only while there are enough (see its `domains.rs`).
    pub free: u64,
}

/// One domain's memory, as [`Request::DomainMem`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct DomainMem {
    /// Pages of the domain bound to the pager's frames now.
    pub resident: u32,
    /// Pages of the domain held in swap only.
    pub swapped: u32,
    /// Times the domain was brought back in after a whole swap-out.
    pub swap_ins: u32,
    /// Times the domain was swapped out whole.
    pub swap_outs: u32,
    /// Whether it is swapped out whole now (its tables given back).
    pub swapped_out: bool,
}

/// Replies from the pager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Reply {
    /// Done.
    Ok,
    /// `Stats`.
    Stats(PagerStats),
    /// `DomainMem`.
    DomainMem(DomainMem),
    /// The request failed; an I/O error is never reported as success.
    Err(ServiceError),
}

crate::impl_messages!(LABEL_PAGER, Request, Reply);

/// Typed client of the pager.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// A client calling through `transport`.
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    fn ok(&mut self, req: Request) -> Result<(), ClientError> {
        match rpc(&mut self.transport, &req)? {
            Reply::Ok => Ok(()),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// See [`Request::PageIn`].
    pub fn page_in(&mut self, domain: DomainId, vaddr: u64) -> Result<(), ClientError> {
        self.ok(Request::PageIn { domain, vaddr })
    }
    /// See [`Request::PageOut`].
    pub fn page_out(&mut self, domain: DomainId, vaddr: u64) -> Result<(), ClientError> {
        self.ok(Request::PageOut { domain, vaddr })
    }
    /// See [`Request::SwapOut`].
    pub fn swap_out(&mut self, domain: DomainId) -> Result<(), ClientError> {
        self.ok(Request::SwapOut { domain })
    }
    /// See [`Request::SwapIn`].
    pub fn swap_in(&mut self, domain: DomainId) -> Result<(), ClientError> {
        self.ok(Request::SwapIn { domain })
    }
    /// See [`Request::Revoke`].
    pub fn revoke(&mut self, domain: DomainId) -> Result<(), ClientError> {
        self.ok(Request::Revoke { domain })
    }
    /// See [`Request::Stats`].
    pub fn stats(&mut self) -> Result<PagerStats, ClientError> {
        match rpc(&mut self.transport, &Request::Stats)? {
            Reply::Stats(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }
    /// See [`Request::DomainMem`].
    pub fn domain_mem(&mut self, domain: DomainId) -> Result<DomainMem, ClientError> {
        match rpc(&mut self.transport, &Request::DomainMem { domain })? {
            Reply::DomainMem(m) => Ok(m),
            _ => Err(ClientError::UnexpectedReply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeServer;
    use crate::codec::{decode, encode};
    use crate::supervisor::tests::{domain, service_error};
    use crate::testutil::round_trip;
    use crate::SysError;
    use proptest::prelude::*;

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::Exec)]
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            (domain(), any::<u64>()).prop_map(|(domain, vaddr)| Request::PageIn { domain, vaddr }),
            (domain(), any::<u64>()).prop_map(|(domain, vaddr)| Request::PageOut { domain, vaddr }),
            domain().prop_map(|domain| Request::SwapOut { domain }),
            domain().prop_map(|domain| Request::SwapIn { domain }),
            domain().prop_map(|domain| Request::Revoke { domain }),
            Just(Request::Stats),
            domain().prop_map(|domain| Request::DomainMem { domain }),
            any::<bool>().prop_map(|always| Request::SwapIdle { always }),
        ]
    }

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Ok),
            (any::<(u32, u32, u64, u64, u64, u64, u64)>(), any::<u64>()).prop_map(
                |((resident, swapped, faults, page_ins, page_outs, io_errors, room), free)| {
                    Reply::Stats(PagerStats {
                        resident,
                        swapped,
                        faults,
                        page_ins,
                        page_outs,
                        io_errors,
                        room,
                        free,
                    })
                }
            ),
            any::<(u32, u32, u32, u32, bool)>().prop_map(
                |(resident, swapped, swap_ins, swap_outs, swapped_out)| {
                    Reply::DomainMem(DomainMem {
                        resident,
                        swapped,
                        swap_ins,
                        swap_outs,
                        swapped_out,
                    })
                }
            ),
            service_error().prop_map(Reply::Err),
        ]
    }

    proptest! {
        #[test]
        fn faults_round_trip(domain in domain(), vaddr in any::<u64>(), access in access(), rip in any::<u64>()) {
            let f = Fault { domain, vaddr, access, rip };
            round_trip(&f);
            let mut buf = [0u8; FAULT_MSG_MAX];
            prop_assert!(encode(&f, &mut buf).is_ok());
        }

        #[test]
        fn requests_round_trip(r in request()) {
            prop_assert!(r.is_idempotent());
            round_trip(&r);
        }

        #[test]
        fn replies_round_trip(r in reply()) { round_trip(&r); }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Request>(&v);
            let _ = decode::<Reply>(&v);
            let _ = decode::<Fault>(&v);
        }
    }

    #[test]
    fn stub_round_trip() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |label: u32, req: &[u8], reply: &mut [u8]| {
                assert_eq!(label, LABEL_PAGER);
                let r = match decode::<Request>(req) {
                    Ok(Request::Stats) => Reply::Stats(PagerStats {
                        faults: 3,
                        ..Default::default()
                    }),
                    Ok(Request::PageIn { .. }) => Reply::Ok,
                    Ok(Request::DomainMem { domain }) if domain == DomainId::new(1, 1) => {
                        Reply::DomainMem(DomainMem {
                            resident: 4,
                            swapped: 12,
                            swapped_out: true,
                            ..Default::default()
                        })
                    }
                    _ => Reply::Err(ServiceError::Io),
                };
                Ok(encode(&r, reply)
                    .map_err(|_| SysError::MessageTooLarge)?
                    .len())
            },
        };
        let mut c = Client::new(&mut srv);
        assert_eq!(c.stats().unwrap().faults, 3);
        c.page_in(DomainId::new(1, 1), 0x40_0000).unwrap();
        let m = c.domain_mem(DomainId::new(1, 1)).unwrap();
        assert_eq!((m.resident, m.swapped, m.swapped_out), (4, 12, true));
        assert_eq!(
            c.domain_mem(DomainId::new(2, 1)),
            Err(ClientError::Service(ServiceError::Io))
        );
        assert_eq!(
            c.revoke(DomainId::new(1, 1)),
            Err(ClientError::Service(ServiceError::Io))
        );
    }
}
