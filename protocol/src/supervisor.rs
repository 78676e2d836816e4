//! The supervisor's protocol: start, stop, restart and inspect domains.
//!
//! Policy lives here rather than in syscalls: the supervisor holds the
//! `DomainCtl` handles and decides. Ids carry generations, so a request about
//! an old incarnation of a domain fails with `NoSuchDomain` instead of
//! reaching its successor.
//!
//! Authority comes from the sender's badge: only domains the manifest marks
//! `operator=yes` may kill, restart or inspect other domains. Anyone else
//! may `Stat` itself, and its `List` shows only itself; every other request
//! fails with `ServiceError::NotPermitted`, which the stubs return as
//! `ClientError::Service(ServiceError::NotPermitted)` (docs/abi.md,
//! "Supervisor authority").

use crate::client::{rpc, ClientError, Transport, LABEL_SUPERVISOR};
use crate::codec::BoundedStr;
use crate::ids::DomainId;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

pub use crate::client::ServiceError;

/// Longest image name (the boot archive's name field).
pub const IMAGE_NAME_LEN: usize = crate::bootarc::NAME_LEN;
/// An image name in the boot archive.
pub type ImageName = BoundedStr<IMAGE_NAME_LEN>;
/// Ids per [`ListPage`].
pub const LIST_PAGE_LEN: usize = 16;
/// Instances one [`Request::StartService`] starts at most (its reply lists them).
pub const START_BATCH: usize = 16;
/// Operator public keys the manifest may carry (`operator-keys`).
pub const MAX_OPERATOR_KEYS: usize = 4;
/// Longest service name: a domain name (and its disk image's name).
pub const SERVICE_NAME_LEN: usize = 16;
/// A pushed service's name.
pub type ServiceName = BoundedStr<SERVICE_NAME_LEN>;

/// A pushed service, as the push service asks the supervisor to install
/// it (docs/operating.md, "Pushing a service"): its ELF lies in the disk
/// image `image` at `elf_offset`, `elf_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ServiceSpec {
    /// The domain name its instances get (`name#0`, `name#1`, ...).
    pub name: ServiceName,
    /// The disk image holding the signed bundle.
    pub image: ServiceName,
    /// Where the ELF starts in the image's content.
    pub elf_offset: u32,
    /// The ELF's length.
    pub elf_len: u32,
    /// Memory each instance may use, in KiB: its image's pages, `.bss`
    /// and stack must fit.
    pub memory_kib: u32,
    /// A port on the push service's vnic for each instance.
    pub net: bool,
    /// An endpoint to the push service's disk server.
    pub disk: bool,
}

/// Ids of instances [`Request::StartService`] started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct Started {
    /// The ids; only the first `count` are meaningful.
    pub slots: [DomainId; START_BATCH],
    /// How many of `slots` are used.
    pub count: u8,
}

impl Started {
    /// The used ids (a `count` beyond the array is clamped).
    pub fn ids(&self) -> &[DomainId] {
        let n = usize::from(self.count).min(START_BATCH);
        self.slots.get(..n).unwrap_or(&[])
    }
}

/// The operator keys of the manifest (ed25519 public keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct OperatorKeys {
    /// The keys; only the first `count` are meaningful.
    pub keys: [[u8; 32]; MAX_OPERATOR_KEYS],
    /// How many of `keys` are used.
    pub count: u8,
}

impl OperatorKeys {
    /// The used keys (clamped to the array).
    pub fn keys(&self) -> &[[u8; 32]] {
        let n = usize::from(self.count).min(MAX_OPERATOR_KEYS);
        self.keys.get(..n).unwrap_or(&[])
    }
}

/// Which run-queue class a domain is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum DomainClass {
    /// Scheduled ahead of guests.
    Server,
    /// Untrusted application domain.
    Guest,
}

/// What a domain is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum DomainState {
    /// On the run queue or running.
    Runnable,
    /// Waiting in IPC or for its pager.
    Blocked,
    /// In `idle`.
    Idle,
    /// Swapped out whole.
    SwappedOut,
    /// Ended; its slot awaits reuse.
    Dead,
}

/// One domain's state and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct DomainStat {
    /// The domain.
    pub id: DomainId,
    /// Its class.
    pub class: DomainClass,
    /// Its state.
    pub state: DomainState,
    /// Frames bound in the software TLB.
    pub frames_resident: u32,
    /// Pages held in swap.
    pub pages_swapped: u32,
    /// CPU charged, in TSC ticks.
    pub cpu_ticks: u64,
    /// Events raised into its pending mask.
    pub events_raised: u64,
    /// Upcalls that delivered them (batching factor = events / upcalls).
    pub upcalls_delivered: u64,
    /// Software-TLB misses.
    pub faults: u64,
    /// Times the supervisor restarted it.
    pub restarts: u32,
}

/// A page of domain ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ListPage {
    /// The ids; only the first `count` are meaningful.
    pub slots: [DomainId; LIST_PAGE_LEN],
    /// How many of `slots` are used (clamped to the array by [`ListPage::ids`]).
    pub count: u8,
    /// Index to pass to the next `List`, if there are more.
    pub next: Option<u32>,
}

impl ListPage {
    /// The used ids; a `count` beyond the array (a lying server) is clamped.
    pub fn ids(&self) -> &[DomainId] {
        let n = usize::from(self.count).min(LIST_PAGE_LEN);
        self.slots.get(..n).unwrap_or(&[])
    }
}

/// Requests to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request {
    /// Start a new domain from a boot-archive image.
    Spawn {
        /// Image name.
        image: ImageName,
        /// Run-queue class.
        class: DomainClass,
    },
    /// Kill exactly this incarnation.
    Kill {
        /// The domain.
        domain: DomainId,
    },
    /// Kill and start again from the same image with a new generation.
    Restart {
        /// The domain.
        domain: DomainId,
    },
    /// State and counters of one domain.
    Stat {
        /// The domain.
        domain: DomainId,
    },
    /// Live domains with slot index `>= from_index`.
    List {
        /// First slot index to report.
        from_index: u32,
    },
    /// Ask the pager to swap the domain out whole.
    SwapOut {
        /// The domain.
        domain: DomainId,
    },
    // Appended for the push service; earlier requests keep their codes.
    /// Push service only: register `spec` as a new domain (no instance
    /// yet). With `check_only`, only check that it would be accepted (its
    /// image need not exist yet): the push service asks before it writes
    /// anything to the disk.
    Install {
        /// The service.
        spec: ServiceSpec,
        /// Check, do not install.
        check_only: bool,
    },
    /// Push service only: start `count` (at most [`START_BATCH`]) more
    /// instances of the installed service `name`.
    StartService {
        /// The service.
        name: ServiceName,
        /// How many.
        count: u32,
    },
    /// Push service only: the manifest's operator keys.
    OperatorKeys,
}

impl Request {
    /// Whether sending twice equals sending once. `Kill` and `SwapOut` name a
    /// generation, so a repeat finds the same end state; `Spawn` and
    /// `Restart` create a new incarnation each time.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Request::Spawn { .. }
            | Request::Restart { .. }
            | Request::Install { .. }
            | Request::StartService { .. } => false,
            Request::OperatorKeys
            | Request::Kill { .. }
            | Request::Stat { .. }
            | Request::List { .. }
            | Request::SwapOut { .. } => true,
        }
    }
}

/// Replies from the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Reply {
    /// Done, nothing to return.
    Ok,
    /// `Spawn`: the new domain.
    Spawned(DomainId),
    /// `Restart`: the new incarnation.
    Restarted(DomainId),
    /// `Stat`.
    Stat(DomainStat),
    /// `List`.
    List(ListPage),
    /// The request failed.
    Err(ServiceError),
    /// `StartService`: the instances started.
    Started(Started),
    /// `OperatorKeys`.
    Keys(OperatorKeys),
}

crate::impl_messages!(LABEL_SUPERVISOR, Request, Reply);

/// Typed client of the supervisor.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// A client calling through `transport`.
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    fn call(&mut self, req: Request) -> Result<Reply, ClientError> {
        rpc(&mut self.transport, &req)
    }

    /// Starts `image`. A name over [`IMAGE_NAME_LEN`] bytes fails locally
    /// with `Service(BadRequest)`.
    pub fn spawn(&mut self, image: &str, class: DomainClass) -> Result<DomainId, ClientError> {
        let image = ImageName::new(image).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        match self.call(Request::Spawn { image, class })? {
            Reply::Spawned(d) => Ok(d),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Kills `domain` (operators only).
    pub fn kill(&mut self, domain: DomainId) -> Result<(), ClientError> {
        expect_ok(self.call(Request::Kill { domain })?)
    }

    /// Restarts `domain`, returning its new id (operators only).
    pub fn restart(&mut self, domain: DomainId) -> Result<DomainId, ClientError> {
        match self.call(Request::Restart { domain })? {
            Reply::Restarted(d) => Ok(d),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// State and counters of `domain` (any domain for an operator, else
    /// only the caller itself).
    pub fn stat(&mut self, domain: DomainId) -> Result<DomainStat, ClientError> {
        match self.call(Request::Stat { domain })? {
            Reply::Stat(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// One page of live domains from `from_index` on (for a non-operator,
    /// at most itself).
    pub fn list(&mut self, from_index: u32) -> Result<ListPage, ClientError> {
        match self.call(Request::List { from_index })? {
            Reply::List(p) => Ok(p),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Asks for `domain` to be swapped out.
    pub fn swap_out(&mut self, domain: DomainId) -> Result<(), ClientError> {
        expect_ok(self.call(Request::SwapOut { domain })?)
    }

    /// Installs (or with `check_only`, checks) a pushed service (the push
    /// service only).
    pub fn install(&mut self, spec: ServiceSpec, check_only: bool) -> Result<(), ClientError> {
        expect_ok(self.call(Request::Install { spec, check_only })?)
    }

    /// Starts up to [`START_BATCH`] instances of service `name`.
    pub fn start_service(&mut self, name: &str, count: u32) -> Result<Started, ClientError> {
        let name = ServiceName::new(name).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        match self.call(Request::StartService { name, count })? {
            Reply::Started(s) => Ok(s),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// The manifest's operator keys (the push service only).
    pub fn operator_keys(&mut self) -> Result<OperatorKeys, ClientError> {
        match self.call(Request::OperatorKeys)? {
            Reply::Keys(k) => Ok(k),
            _ => Err(ClientError::UnexpectedReply),
        }
    }
}

fn expect_ok(r: Reply) -> Result<(), ClientError> {
    match r {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::fake::FakeServer;
    use crate::codec::{decode, encode};
    use crate::testutil::round_trip;
    use crate::SysError;
    use proptest::prelude::*;

    pub(crate) fn domain() -> impl Strategy<Value = DomainId> {
        (any::<u32>(), any::<u32>()).prop_map(|(i, g)| DomainId::new(i, g))
    }

    fn class() -> impl Strategy<Value = DomainClass> {
        prop_oneof![Just(DomainClass::Server), Just(DomainClass::Guest)]
    }

    pub(crate) fn service_error() -> impl Strategy<Value = ServiceError> {
        // Over ten arms, prop_oneof! builds a Vec.
        use std::vec;
        prop_oneof![
            Just(ServiceError::BadRequest),
            Just(ServiceError::NotPermitted),
            Just(ServiceError::NoSuchDomain),
            Just(ServiceError::NoSuchImage),
            Just(ServiceError::NoResources),
            Just(ServiceError::Io),
            Just(ServiceError::ServerRestarted),
            Just(ServiceError::Unsupported),
            Just(ServiceError::OutOfRange),
            Just(ServiceError::ReadOnly),
            Just(ServiceError::Misaligned),
            Just(ServiceError::TooLarge),
            Just(ServiceError::Corrupt),
            Just(ServiceError::NoSuchExtent),
            Just(ServiceError::BadHandle),
            Just(ServiceError::NoSuchPort),
            Just(ServiceError::AddressInUse),
            Just(ServiceError::Exists),
            Just(ServiceError::Busy),
        ]
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            ("\\PC{0,12}", class()).prop_filter_map("too long", |(s, class)| {
                Some(Request::Spawn {
                    image: ImageName::new(&s)?,
                    class,
                })
            }),
            domain().prop_map(|domain| Request::Kill { domain }),
            domain().prop_map(|domain| Request::Restart { domain }),
            domain().prop_map(|domain| Request::Stat { domain }),
            any::<u32>().prop_map(|from_index| Request::List { from_index }),
            domain().prop_map(|domain| Request::SwapOut { domain }),
        ]
    }

    fn state() -> impl Strategy<Value = DomainState> {
        prop_oneof![
            Just(DomainState::Runnable),
            Just(DomainState::Blocked),
            Just(DomainState::Idle),
            Just(DomainState::SwappedOut),
            Just(DomainState::Dead),
        ]
    }

    fn stat() -> impl Strategy<Value = DomainStat> {
        (
            domain(),
            class(),
            state(),
            any::<(u32, u32, u64, u64, u64, u64, u32)>(),
        )
            .prop_map(
                |(id, class, state, (fr, ps, cpu, ev, up, fa, rs))| DomainStat {
                    id,
                    class,
                    state,
                    frames_resident: fr,
                    pages_swapped: ps,
                    cpu_ticks: cpu,
                    events_raised: ev,
                    upcalls_delivered: up,
                    faults: fa,
                    restarts: rs,
                },
            )
    }

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Ok),
            domain().prop_map(Reply::Spawned),
            domain().prop_map(Reply::Restarted),
            stat().prop_map(Reply::Stat),
            (
                proptest::array::uniform16(domain()),
                any::<u8>(),
                any::<Option<u32>>()
            )
                .prop_map(|(slots, count, next)| Reply::List(ListPage {
                    slots,
                    count,
                    next
                })),
            service_error().prop_map(Reply::Err),
        ]
    }

    #[test]
    fn worst_case_fits() {
        let big = DomainId::new(u32::MAX, u32::MAX);
        round_trip(&Request::Spawn {
            image: ImageName::new(&"x".repeat(IMAGE_NAME_LEN)).unwrap(),
            class: DomainClass::Guest,
        });
        round_trip(&Reply::List(ListPage {
            slots: [big; LIST_PAGE_LEN],
            count: u8::MAX,
            next: Some(u32::MAX),
        }));
        let p = ListPage {
            slots: [big; LIST_PAGE_LEN],
            count: 200,
            next: None,
        };
        assert_eq!(p.ids().len(), LIST_PAGE_LEN);
    }

    #[test]
    fn stub_retries_idempotent_requests_once_after_restart() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |_label: u32, _req: &[u8], _reply: &mut [u8]| Err(SysError::ServerRestarted),
        };
        let mut c = Client::new(&mut srv);
        assert_eq!(
            c.kill(DomainId::new(1, 1)),
            Err(ClientError::Sys(SysError::ServerRestarted))
        );
        assert_eq!(srv.calls, 2);
        let mut c = Client::new(&mut srv);
        assert!(c.spawn("httpd", DomainClass::Guest).is_err());
        assert_eq!(srv.calls, 3);
    }

    #[test]
    fn stub_talks_to_a_fake_supervisor() {
        let mut first = true;
        let mut srv = FakeServer {
            calls: 0,
            serve: |label: u32, req: &[u8], reply: &mut [u8]| {
                assert_eq!(label, LABEL_SUPERVISOR);
                let r = match decode::<Request>(req) {
                    Ok(Request::Spawn { image, .. }) if image.as_str() == "httpd" => {
                        Reply::Spawned(DomainId::new(4, 1))
                    }
                    Ok(Request::Stat { .. }) if first => {
                        first = false;
                        Reply::Err(ServiceError::ServerRestarted)
                    }
                    Ok(Request::Stat { domain }) => Reply::Err(if domain.gen == 1 {
                        ServiceError::NoSuchDomain
                    } else {
                        ServiceError::Io
                    }),
                    _ => Reply::Err(ServiceError::BadRequest),
                };
                Ok(encode(&r, reply)
                    .map_err(|_| SysError::MessageTooLarge)?
                    .len())
            },
        };
        let mut c = Client::new(&mut srv);
        let d = c.spawn("httpd", DomainClass::Guest).unwrap();
        assert_eq!(d, DomainId::new(4, 1));
        // First Stat hits a restart and is retried, because it is idempotent.
        assert_eq!(
            c.stat(d),
            Err(ClientError::Service(ServiceError::NoSuchDomain))
        );
        assert_eq!(
            c.kill(d),
            Err(ClientError::Service(ServiceError::BadRequest))
        );
        assert_eq!(
            c.spawn(&"y".repeat(IMAGE_NAME_LEN + 1), DomainClass::Guest),
            Err(ClientError::Service(ServiceError::BadRequest))
        );
        assert_eq!(srv.calls, 4);
    }

    #[test]
    fn stub_surfaces_a_refusal_as_a_typed_error_and_never_retries_it() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, _: &[u8], reply: &mut [u8]| {
                Ok(encode(&Reply::Err(ServiceError::NotPermitted), reply)
                    .map_err(|_| SysError::MessageTooLarge)?
                    .len())
            },
        };
        let denied = ClientError::Service(ServiceError::NotPermitted);
        let d = DomainId::new(2, 1);
        let mut c = Client::new(&mut srv);
        assert_eq!(c.kill(d), Err(denied));
        assert_eq!(c.restart(d), Err(denied));
        assert_eq!(c.stat(d), Err(denied));
        assert_eq!(c.list(0), Err(denied));
        assert_eq!(c.swap_out(d), Err(denied));
        assert_eq!(c.spawn("x", DomainClass::Guest), Err(denied));
        // One call each: a refusal is an answer, not a restart to retry.
        assert_eq!(srv.calls, 6);
    }

    #[test]
    fn bad_reply_is_an_error_not_a_panic() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, _: &[u8], r: &mut [u8]| {
                r[0] = 0xff;
                Ok(1)
            },
        };
        assert!(matches!(
            Client::new(&mut srv).list(0),
            Err(ClientError::Codec(_))
        ));
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, _: &[u8], _: &mut [u8]| Ok(usize::MAX),
        };
        assert!(matches!(
            Client::new(&mut srv).list(0),
            Err(ClientError::Codec(_))
        ));
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request()) { round_trip(&r); }

        #[test]
        fn replies_round_trip(r in reply()) { round_trip(&r); }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<Request>(&v);
            let _ = decode::<Reply>(&v);
        }
    }
}
