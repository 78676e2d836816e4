//! Who may ask the supervisor what (docs/abi.md, "Supervisor authority").
//!
//! The supervisor knows a sender only by the badge the kernel writes into
//! every message: for an endpoint the supervisor granted, the packed
//! `DomainId` of the domain it was granted to. It maps the badge to a live
//! instance ([`Caller`]), or to nobody, and asks [`decide`]:
//!
//! - the operator console on the serial line ([`Asker::Console`]: the
//!   supervisor itself, serving what was typed) may do everything;
//! - an unknown badge (no live instance, e.g. a generation that has since
//!   restarted) is refused everything;
//! - an operator domain (`operator = true` in the manifest) may inspect
//!   every domain (`List`, `Stat`) and ask for a `SwapOut`, but not
//!   `Kill`, `Restart` or `Spawn`: a guest holding an endpoint to the
//!   supervisor never ends or starts domains, only the console (and later
//!   the push service) does;
//! - the push service (`push = true`) may do what an operator may and
//!   also `Kill`, `Restart`, `Install`, `StartService` and read the
//!   `OperatorKeys`: it installs and starts what an operator signed;
//! - `Install`, `StartService` and `OperatorKeys` are the push service's
//!   (and the console's) alone;
//! - any other domain may `Stat` itself and `List` (which shows only
//!   itself); `Kill`, `Restart`, `Spawn` and `SwapOut` are refused, even of
//!   itself: a domain ends itself with `halt`, and a self-restart would make
//!   the supervisor reload its image in a loop at server priority.
//!
//! A refusal is decided before any lookup, so it says nothing about whether
//! the named domain exists.

use core::fmt;

use serac_protocol::supervisor::{ListPage, Request, LIST_PAGE_LEN};
use serac_protocol::DomainId;

/// The sender of a request, as its badge resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The live instance the badge names.
    pub id: DomainId,
    /// Whether its manifest domain has `operator = true`.
    pub operator: bool,
    /// Whether its manifest domain has `push = true`.
    pub push: bool,
}

/// Which domains a granted request may see or touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every domain (an operator).
    All,
    /// This domain only (the caller itself).
    Only(DomainId),
}

impl Scope {
    /// Whether `d` is inside the scope.
    pub fn covers(self, d: DomainId) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(x) => x == d,
        }
    }
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// The operator console (typed on the serial line).
    Console,
    /// A domain, by its endpoint's badge: `None` if the badge names no
    /// live instance.
    Domain(Option<Caller>),
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller is not an operator.
    NotOperator,
    /// Only the console may: `Kill`, `Restart` and `Spawn` from a domain.
    ConsoleOnly,
    /// Only the push service (or the console) may: `Install`,
    /// `StartService`, `OperatorKeys`.
    PushOnly,
    /// The badge names no live instance.
    UnknownCaller,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NotOperator => "not an operator",
            Refusal::ConsoleOnly => "only the console may",
            Refusal::PushOnly => "only the push service may",
            Refusal::UnknownCaller => "the badge names no live domain",
        })
    }
}

/// The answer of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it, within the scope (`List` filters by it).
    Allow(Scope),
    /// Refuse it.
    Deny(Refusal),
}

/// The request's name, for log lines.
pub fn verb(req: &Request) -> &'static str {
    match req {
        Request::Spawn { .. } => "Spawn",
        Request::Kill { .. } => "Kill",
        Request::Restart { .. } => "Restart",
        Request::Stat { .. } => "Stat",
        Request::List { .. } => "List",
        Request::SwapOut { .. } => "SwapOut",
        Request::Install { .. } => "Install",
        Request::StartService { .. } => "StartService",
        Request::OperatorKeys => "OperatorKeys",
    }
}

/// The domain the request names, if it names one.
pub fn target(req: &Request) -> Option<DomainId> {
    match *req {
        Request::Kill { domain }
        | Request::Restart { domain }
        | Request::Stat { domain }
        | Request::SwapOut { domain } => Some(domain),
        Request::Spawn { .. }
        | Request::List { .. }
        | Request::Install { .. }
        | Request::StartService { .. }
        | Request::OperatorKeys => None,
    }
}

/// Whether `asker` may make `req`.
pub fn decide(asker: Asker, req: &Request) -> Decision {
    let caller = match asker {
        Asker::Console => return Decision::Allow(Scope::All),
        Asker::Domain(c) => c,
    };
    let Some(c) = caller else {
        return Decision::Deny(Refusal::UnknownCaller);
    };
    let push_only = matches!(
        req,
        Request::Install { .. } | Request::StartService { .. } | Request::OperatorKeys
    );
    if c.push {
        return match req {
            Request::Spawn { .. } => Decision::Deny(Refusal::ConsoleOnly),
            _ => Decision::Allow(Scope::All),
        };
    }
    if push_only {
        return Decision::Deny(Refusal::PushOnly);
    }
    if c.operator {
        return match req {
            Request::Kill { .. } | Request::Restart { .. } | Request::Spawn { .. } => {
                Decision::Deny(Refusal::ConsoleOnly)
            }
            Request::Install { .. } | Request::StartService { .. } | Request::OperatorKeys => {
                Decision::Deny(Refusal::PushOnly)
            }
            Request::List { .. } | Request::Stat { .. } | Request::SwapOut { .. } => {
                Decision::Allow(Scope::All)
            }
        };
    }
    let own = Scope::Only(c.id);
    match *req {
        Request::List { .. } => Decision::Allow(own),
        Request::Stat { domain } if domain == c.id => Decision::Allow(own),
        Request::Stat { .. }
        | Request::Kill { .. }
        | Request::Restart { .. }
        | Request::Spawn { .. }
        | Request::SwapOut { .. } => Decision::Deny(Refusal::NotOperator),
        Request::Install { .. } | Request::StartService { .. } | Request::OperatorKeys => {
            Decision::Deny(Refusal::PushOnly)
        }
    }
}

/// One `List` page: the ids of `live` (in order) whose slot index is at
/// least `from_index` and which `scope` covers; `next` is the index of the
/// first one that did not fit.
pub fn list_page(
    live: impl IntoIterator<Item = DomainId>,
    from_index: u32,
    scope: Scope,
) -> ListPage {
    let mut page = ListPage {
        slots: [DomainId::NONE; LIST_PAGE_LEN],
        count: 0,
        next: None,
    };
    let mut n = 0;
    for id in live
        .into_iter()
        .filter(|id| id.index >= from_index && scope.covers(*id))
    {
        let Some(slot) = page.slots.get_mut(n) else {
            page.next = Some(id.index);
            break;
        };
        *slot = id;
        n += 1;
    }
    // `n` is at most LIST_PAGE_LEN (16).
    page.count = u8::try_from(n).unwrap_or(u8::MAX);
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serac_protocol::supervisor::{DomainClass, ImageName};
    use std::string::ToString;
    use std::vec::Vec;

    const ME: DomainId = DomainId::new(4, 1);
    const NEIGHBOUR: DomainId = DomainId::new(2, 1);

    fn plain(id: DomainId) -> Asker {
        Asker::Domain(Some(Caller {
            id,
            operator: false,
            push: false,
        }))
    }

    fn push_requests() -> [Request; 3] {
        let name = serac_protocol::supervisor::ServiceName::new("svc").unwrap();
        [
            Request::Install {
                spec: serac_protocol::supervisor::ServiceSpec {
                    name,
                    image: name,
                    elf_offset: 0,
                    elf_len: 1,
                    memory_kib: 1,
                    net: false,
                    disk: false,
                },
                check_only: false,
            },
            Request::StartService { name, count: 1 },
            Request::OperatorKeys,
        ]
    }

    #[test]
    fn only_the_push_service_and_the_console_install_and_start() {
        let push = Asker::Domain(Some(Caller {
            id: ME,
            operator: false,
            push: true,
        }));
        let operator = Asker::Domain(Some(Caller {
            id: ME,
            operator: true,
            push: false,
        }));
        for r in push_requests() {
            assert_eq!(decide(push, &r), Decision::Allow(Scope::All));
            assert_eq!(decide(Asker::Console, &r), Decision::Allow(Scope::All));
            assert_eq!(decide(operator, &r), Decision::Deny(Refusal::PushOnly));
            assert_eq!(decide(plain(ME), &r), Decision::Deny(Refusal::PushOnly));
            assert_eq!(
                decide(Asker::Domain(None), &r),
                Decision::Deny(Refusal::UnknownCaller)
            );
        }
        // The push service may end and restart domains, never `Spawn`.
        assert_eq!(
            decide(push, &Request::Kill { domain: NEIGHBOUR }),
            Decision::Allow(Scope::All)
        );
        assert_eq!(
            decide(push, &Request::Restart { domain: NEIGHBOUR }),
            Decision::Allow(Scope::All)
        );
        let spawn = every_request(NEIGHBOUR)[0];
        assert_eq!(decide(push, &spawn), Decision::Deny(Refusal::ConsoleOnly));
    }

    fn every_request(d: DomainId) -> [Request; 6] {
        [
            Request::Spawn {
                image: ImageName::new("x").unwrap(),
                class: DomainClass::Guest,
            },
            Request::Kill { domain: d },
            Request::Restart { domain: d },
            Request::Stat { domain: d },
            Request::List { from_index: 0 },
            Request::SwapOut { domain: d },
        ]
    }

    #[test]
    fn a_non_operator_sees_only_itself_and_touches_nothing() {
        let me = plain(ME);
        let deny = Decision::Deny(Refusal::NotOperator);
        for d in [NEIGHBOUR, ME] {
            assert_eq!(decide(me, &Request::Kill { domain: d }), deny);
            assert_eq!(decide(me, &Request::Restart { domain: d }), deny);
            assert_eq!(decide(me, &Request::SwapOut { domain: d }), deny);
        }
        assert_eq!(decide(me, &Request::Stat { domain: NEIGHBOUR }), deny);
        assert_eq!(
            decide(me, &Request::Stat { domain: ME }),
            Decision::Allow(Scope::Only(ME))
        );
        assert_eq!(
            decide(me, &Request::List { from_index: 0 }),
            Decision::Allow(Scope::Only(ME))
        );
        assert_eq!(decide(me, &every_request(ME)[0]), deny);
        // Another generation of itself is another domain.
        let old = DomainId::new(ME.index, ME.gen + 1);
        assert_eq!(decide(me, &Request::Stat { domain: old }), deny);
    }

    #[test]
    fn the_console_may_do_everything_operators_inspect_unknown_callers_nothing() {
        let op = Asker::Domain(Some(Caller {
            id: ME,
            operator: true,
            push: false,
        }));
        for r in every_request(NEIGHBOUR) {
            assert_eq!(
                decide(Asker::Console, &r),
                Decision::Allow(Scope::All),
                "{r:?}"
            );
            let changes = matches!(
                r,
                Request::Kill { .. } | Request::Restart { .. } | Request::Spawn { .. }
            );
            let want = if changes {
                Decision::Deny(Refusal::ConsoleOnly)
            } else {
                Decision::Allow(Scope::All)
            };
            assert_eq!(decide(op, &r), want, "{r:?}");
            assert_eq!(
                decide(Asker::Domain(None), &r),
                Decision::Deny(Refusal::UnknownCaller)
            );
        }
        assert_eq!(Refusal::ConsoleOnly.to_string(), "only the console may");
    }

    #[test]
    fn names_and_targets() {
        let names: Vec<_> = every_request(NEIGHBOUR).iter().map(verb).collect();
        assert_eq!(
            names,
            ["Spawn", "Kill", "Restart", "Stat", "List", "SwapOut"]
        );
        let targets: Vec<_> = every_request(NEIGHBOUR).iter().map(target).collect();
        let n = Some(NEIGHBOUR);
        assert_eq!(targets, [None, n, n, n, None, n]);
        assert_eq!(Refusal::NotOperator.to_string(), "not an operator");
    }

    #[test]
    fn list_pages() {
        let ids: Vec<_> = (1..=20).map(|i| DomainId::new(i, 1)).collect();
        let p = list_page(ids.iter().copied(), 0, Scope::All);
        assert_eq!(p.ids(), &ids[..16]);
        assert_eq!(p.next, Some(17));
        let p = list_page(ids.iter().copied(), 17, Scope::All);
        assert_eq!((p.ids(), p.next), (&ids[16..], None));
        let me = DomainId::new(5, 1);
        let p = list_page(ids.iter().copied(), 0, Scope::Only(me));
        assert_eq!((p.ids(), p.next), (&[me][..], None));
        assert!(list_page(ids.iter().copied(), 6, Scope::Only(me))
            .ids()
            .is_empty());
        // The caller's old generation is not itself.
        let p = list_page([DomainId::new(5, 2)], 0, Scope::Only(me));
        assert!(p.ids().is_empty());
    }

    fn id() -> impl Strategy<Value = DomainId> {
        (0u32..8, 1u32..4).prop_map(|(i, g)| DomainId::new(i, g))
    }

    fn request() -> impl Strategy<Value = Request> {
        (id(), 0usize..6, any::<u32>()).prop_map(|(d, k, from)| match k {
            5 => Request::List { from_index: from },
            k => every_request(d)[k],
        })
    }

    proptest! {
        /// No domain, operator or not, may kill, restart or start one.
        #[test]
        fn no_domain_ends_or_starts_domains(me in id(), operator in any::<bool>(), req in request()) {
            let asker = Asker::Domain(Some(Caller { id: me, operator, push: false }));
            if matches!(req, Request::Kill { .. } | Request::Restart { .. } | Request::Spawn { .. }) {
                prop_assert!(matches!(decide(asker, &req), Decision::Deny(_)));
            }
        }

        /// The invariant: a non-operator is never allowed to act on, or
        /// see, another domain, and never allowed to change anything.
        #[test]
        fn a_non_operator_never_reaches_another_domain(
            me in id(),
            req in request(),
            live in proptest::collection::vec(id(), 0..40),
        ) {
            match decide(plain(me), &req) {
                Decision::Deny(r) => prop_assert_eq!(r, Refusal::NotOperator),
                Decision::Allow(scope) => {
                    let reads = matches!(req, Request::List { .. } | Request::Stat { .. });
                    prop_assert!(reads, "{:?} allowed", req);
                    prop_assert!(target(&req).is_none_or(|t| t == me));
                    prop_assert_eq!(scope, Scope::Only(me));
                    let from = match req { Request::List { from_index } => from_index, _ => 0 };
                    let page = list_page(live.iter().copied(), from, scope);
                    prop_assert!(page.ids().iter().all(|&d| d == me));
                }
            }
        }

        /// An operator's `List` pages through every live id, in order.
        #[test]
        fn operator_pages_cover_everything(live in proptest::collection::vec(0u32..64, 0..60)) {
            let mut live = live;
            live.sort_unstable();
            live.dedup();
            let ids: Vec<_> = live.iter().map(|&i| DomainId::new(i, 1)).collect();
            let mut seen = Vec::new();
            let mut from = Some(0);
            while let Some(f) = from {
                let p = list_page(ids.iter().copied(), f, Scope::All);
                prop_assert!(p.ids().len() <= LIST_PAGE_LEN);
                seen.extend_from_slice(p.ids());
                from = p.next;
            }
            prop_assert_eq!(seen, ids);
        }
    }
}
