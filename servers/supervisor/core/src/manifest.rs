//! The boot manifest's rules: which domains the supervisor builds, from
//! which images, with which handles.
//!
//! The archive entry `manifest` is a postcard-encoded
//! [`serac_protocol::manifest::Manifest`], which xtask packs from a
//! `configs/*.toml` file; docs/operating.md ("The manifest") lists the keys.
//! [`Manifest::validate`] is the one place the rules live: xtask runs it on
//! what it packs (and maps an [`Error`] to the file's line), and the
//! supervisor runs it again on what it decodes ([`Manifest::decode`]),
//! since the archive is input, not trusted.
//!
//! - `image` and `class` are required; `count` defaults to 1, the flags to
//!   false.
//! - `operator = true` lets the domain kill, restart and inspect other
//!   domains through its endpoint to `supervisor` (see
//!   [`crate::authority`]); an operator without that endpoint is an error,
//!   since it could not act.
//! - A domain needs `pager` or `eager = true`: Ilwaco's stack and `.bss`
//!   are not in the image, so a domain with neither would fault at its
//!   first instruction.
//! - `frames = N` (1 to [`MAX_GRANT_FRAMES`]) gives each instance N zeroed
//!   frames of its own (`GiveFrame`), listed in its grant page
//!   (`serac_protocol::layout::grant`), so it can `map` memory itself.
//! - `until-full = true` builds instances, after every other domain has
//!   started, until one cannot be built (memory or a table ran out) or
//!   `count` is reached, and carries on with those: a capacity test. Such a
//!   domain must be the last, and nothing may name it in `pager`,
//!   `endpoint` or `notify` (its instance 0 may not exist).
//! - `endpoint` / `notify` list names; each gives the domain an `Endpoint`
//!   / `Notification` handle (`SEND`) naming it, in its handle table from
//!   slot 1 upwards: the endpoints in order, then the notifications.
//!   `supervisor` is a reserved name no domain may take. References may
//!   point forwards.
//! - `count = N` makes N instances, named `<name>#<i>` (i from 0) when
//!   N > 1; `endpoint`, `notify`, `pager` and `test-end` naming such a
//!   domain mean its instance 0 (`test-end` waits for all of its instances).
//! - `net = true` gives each instance a port on the vnic: the domain must
//!   have an endpoint to a domain holding `device = "virtio-net"` (the
//!   vnic; the first such endpoint is the one used).
//! - `swap-idle = true` (on a domain another names as its `pager`) tells
//!   that pager to swap out whole every domain idle for its idle time even
//!   with memory free (`serac_protocol::pager::Request::SwapIdle`); by
//!   default it does so only when its free frames run low.
//! - Names are 1 to [`NAME_MAX`] bytes of `A-Z a-z 0-9 _ . -`.
//!
//! Validation is pure and bounded ([`MAX_DOMAINS`], [`MAX_INSTANCES`],
//! [`MAX_LINKS`]); any mistake is an [`Error`] naming the domain and the
//! key, never a panic.

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use serac_protocol::manifest as wire;
pub use serac_protocol::manifest::{MAX_DOMAINS, MAX_LINKS};

/// Most instances over all domains (the sum of the counts): 2²⁰, ten
/// times the 100,000 target. What a machine runs is bounded later, by the
/// kernel's domain slots (sized from RAM) and the supervisor's memory.
pub const MAX_INSTANCES: usize = 1 << 20;
/// Longest domain name: what the kernel keeps, so each domain is created
/// under its whole manifest name.
pub const NAME_MAX: usize = serac_protocol::syscall::DOMAIN_NAME_MAX;
/// Longest image name (the boot archive's name field).
pub const IMAGE_MAX: usize = serac_protocol::bootarc::NAME_LEN;
/// Largest `test-end-after-ms` and `test-linger-ms` (one day).
pub const MAX_TEST_MS: u64 = 86_400_000;
/// Most frames `frames` gives one instance (what its grant page lists).
pub const MAX_GRANT_FRAMES: usize = serac_protocol::layout::grant::MAX_FRAMES;
/// The name that means the supervisor itself in `endpoint` / `notify`.
pub const SUPERVISOR: &str = "supervisor";

/// A PCI function a manifest gives a driver domain (`device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSel {
    /// The first virtio block device (1af4:1001 transitional, 1af4:1042 modern).
    VirtioBlk,
    /// The first virtio network device (1af4:1000, 1af4:1041).
    VirtioNet,
    /// The function at `bus << 8 | dev << 3 | func` (hexadecimal `BB:DD.F`).
    Bdf(u16),
}

impl DeviceSel {
    fn parse(v: &str) -> Option<DeviceSel> {
        match v {
            "virtio-blk" => return Some(DeviceSel::VirtioBlk),
            "virtio-net" => return Some(DeviceSel::VirtioNet),
            _ => {}
        }
        let (bus, rest) = v.split_once(':')?;
        let (dev, func) = rest.split_once('.')?;
        let hex = |s: &str, max: u16| {
            (!s.is_empty() && s.len() <= 2)
                .then(|| u16::from_str_radix(s, 16).ok())
                .flatten()
                .filter(|&n| n <= max)
        };
        let (b, d, f) = (hex(bus, 0xff)?, hex(dev, 0x1f)?, hex(func, 7)?);
        Some(DeviceSel::Bdf(b << 8 | d << 3 | f))
    }

    /// Whether the function `bdf` (vendor, device) is what this selects.
    pub fn matches(self, bdf: u16, vendor: u16, device: u16) -> bool {
        match self {
            DeviceSel::VirtioBlk => vendor == 0x1af4 && matches!(device, 0x1001 | 0x1042),
            DeviceSel::VirtioNet => vendor == 0x1af4 && matches!(device, 0x1000 | 0x1041),
            DeviceSel::Bdf(b) => b == bdf,
        }
    }
}

/// Run-queue class of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `class = "server"`: scheduled ahead of guests, started first.
    Server,
    /// `class = "guest"`.
    Guest,
}

impl Class {
    /// The class byte of `domain_ctl(Create)` (`syscall::create_arg`).
    pub const fn create_class(self) -> u8 {
        match self {
            Class::Server => 0,
            Class::Guest => 1,
        }
    }
}

/// What a link hands the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// `endpoint`: an `Endpoint` handle with `SEND`.
    Endpoint,
    /// `notify`: a `Notification` handle with `SEND`.
    Notify,
}

/// Whom a link (or the pager) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The supervisor (`endpoint = ["supervisor"]`).
    Supervisor,
    /// Instance 0 of the domain with this index in [`Manifest::domains`].
    Domain(usize),
}

/// One name of `endpoint` or `notify`, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link<'a> {
    /// Handle kind to grant.
    pub kind: LinkKind,
    /// The name as written.
    pub name: &'a str,
    /// What it resolved to.
    pub target: Target,
}

impl Link<'_> {
    const EMPTY: Link<'static> = Link {
        kind: LinkKind::Endpoint,
        name: "",
        target: Target::Supervisor,
    };
}

/// One domain, validated and resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// The archive entry holding its ELF image.
    pub image: &'a str,
    /// Its class.
    pub class: Class,
    /// How many instances.
    pub count: u32,
    /// Restart it when it faults.
    pub restart: bool,
    /// Bind every page (`.bss`, stack) at load instead of leaving them to a pager.
    pub eager: bool,
    /// The domain whose instance 0 is its pager.
    pub pager: Option<usize>,
    /// `operator`: may act on other domains through the supervisor.
    pub operator: bool,
    /// `frames`: frames given to each instance (0: none, and no grant page).
    pub frames: u16,
    /// `until-full`: build instances until one fails, after the rest.
    pub until_full: bool,
    /// `device`: the PCI function granted to it (a driver domain, trusted
    /// with DMA: there is no IOMMU).
    pub device: Option<DeviceSel>,
    /// `net`: a port on the vnic for each instance.
    pub net: bool,
    /// `swap-idle`: as a pager, swap idle domains out with memory free.
    pub swap_idle: bool,
    /// `push`: the push service, which may install and start services.
    pub push: bool,
    /// A service pushed at run time (not in the manifest file).
    pub pushed: bool,
    links: [Link<'a>; MAX_LINKS],
    n_links: usize,
    /// Line of its `[[domain]]` in the source file (1-based; 0: unknown),
    /// for later error messages.
    pub line: usize,
    /// Index of its instance 0 among all instances.
    pub first_instance: usize,
    pager_name: Option<&'a str>,
}

impl<'a> DomainSpec<'a> {
    const EMPTY: DomainSpec<'static> = DomainSpec {
        name: "",
        image: "",
        class: Class::Guest,
        count: 1,
        restart: false,
        eager: false,
        pager: None,
        operator: false,
        frames: 0,
        until_full: false,
        device: None,
        net: false,
        swap_idle: false,
        push: false,
        pushed: false,
        links: [Link::EMPTY; MAX_LINKS],
        n_links: 0,
        line: 0,
        first_instance: 0,
        pager_name: None,
    };

    /// The endpoints, then the notifications (= handle order).
    pub fn links(&self) -> &[Link<'a>] {
        self.links.get(..self.n_links).unwrap_or(&[])
    }

    /// The name of instance `i` (`name` alone when the count is 1).
    pub fn instance_name(&self, i: u32) -> InstanceName<'a> {
        InstanceName {
            name: self.name,
            index: if self.count > 1 { Some(i) } else { None },
        }
    }
}

/// The printable name of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceName<'a> {
    /// The domain's name.
    pub name: &'a str,
    /// The instance number, for domains with `count` > 1.
    pub index: Option<u32>,
}

impl fmt::Display for InstanceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}#{}", self.name, i),
            None => f.write_str(self.name),
        }
    }
}

/// A validated, resolved manifest. Names borrow from the encoded bytes;
/// the domains are on the heap (at most [`MAX_DOMAINS`]), so the
/// supervisor's 64 KiB stack never holds them all.
#[derive(Debug, Clone)]
pub struct Manifest<'a> {
    domains: Vec<DomainSpec<'a>>,
    instances: usize,
    /// `test-end`: end the run when every instance of this domain has exited.
    pub test_end: Option<usize>,
    /// `test-end-after-ms`: end the run this long after every domain started.
    pub test_end_after_ms: Option<u64>,
    /// `test-linger-ms`: after `test-end`'s domain has ended, keep serving
    /// this long before ending the run (so a test can see what the other
    /// domains did after it: the neighbour of an attacker).
    pub test_linger_ms: Option<u64>,
    /// `operator-keys`: the ed25519 public keys pushes must be signed with.
    pub operator_keys: Vec<[u8; 32]>,
}

/// Domains pushed at run time, beyond the manifest's.
pub const MAX_SERVICES: usize = 32;

/// Why [`Manifest::add_service`] refuses a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceRefusal {
    /// Not a domain name (or `supervisor`).
    BadName,
    /// A domain (from the file, or pushed earlier) has that name.
    Exists,
    /// [`MAX_SERVICES`] services are installed.
    TooMany,
    /// `net` asked, but the push service has no vnic to share.
    NoVnic,
    /// `disk` asked, but the push service has no disk server to share.
    NoDisk,
}

impl fmt::Display for ServiceRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceRefusal::BadName => "not a valid domain name",
            ServiceRefusal::Exists => "a domain of that name exists",
            ServiceRefusal::TooMany => "the host's limit of pushed services is reached",
            ServiceRefusal::NoVnic => "net asked, but the push service has no vnic",
            ServiceRefusal::NoDisk => "disk asked, but the push service has no disk server",
        })
    }
}

/// A manifest error: where and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error<'a> {
    /// The line of the domain at fault (its `line`; 0 for a global key or
    /// an undecodable entry).
    pub line: usize,
    /// The index of the domain at fault, if it is one domain's.
    pub domain: Option<usize>,
    /// Its name, if it has a valid one.
    pub name: Option<&'a str>,
    /// The key at fault, if one is.
    pub key: Option<&'static str>,
    /// What is wrong.
    pub kind: ErrorKind<'a>,
}

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    /// The archive entry is not a postcard-encoded manifest (or has
    /// trailing bytes, or a list longer than its bound).
    Decode,
    /// A required key is absent.
    Missing,
    /// A name with characters outside `A-Z a-z 0-9 _ . -`, or too long.
    BadName(&'a str),
    /// A domain called `supervisor`.
    ReservedName,
    /// Two domains with one name.
    DuplicateName(&'a str),
    /// An empty image name, or one longer than the archive's name field.
    BadImage,
    /// `class` other than `server` / `guest`.
    BadClass(&'a str),
    /// A number outside `1..=max`.
    OutOfRange {
        /// The largest allowed.
        max: u64,
    },
    /// A reference to a domain the manifest does not define.
    UnknownDomain(&'a str),
    /// `pager` naming the domain itself.
    OwnPager,
    /// `pager = "supervisor"`: the supervisor is no pager.
    SupervisorPager,
    /// Neither `pager` nor `eager = true`.
    NoPager,
    /// More than [`MAX_DOMAINS`] domains.
    TooManyDomains,
    /// More than [`MAX_INSTANCES`] instances in all.
    TooManyInstances,
    /// More than [`MAX_LINKS`] `endpoint` and `notify` names.
    TooManyLinks,
    /// A `device` value that names no device.
    BadDevice(&'a str),
    /// A `device` domain with more than one instance.
    DeviceNotSingle,
    /// `test-linger-ms` without a `test-end` to linger after.
    LingerWithoutTestEnd,
    /// `operator = true` without an endpoint to `supervisor`.
    OperatorWithoutEndpoint,
    /// An `until-full = true` domain that is not the last.
    UntilFullNotLast,
    /// A `pager`, `endpoint` or `notify` naming an `until-full` domain.
    UntilFullNamed(&'a str),
    /// `net = true` without an endpoint to a `device = "virtio-net"` domain.
    NetWithoutVnic,
    /// `swap-idle = true` on a domain nobody names as its `pager`.
    SwapIdleNotPager,
    /// More than [`serac_protocol::supervisor::MAX_OPERATOR_KEYS`] keys.
    TooManyKeys,
    /// An operator key that is not 64 hex digits.
    BadKey(&'a str),
    /// `push = true` without an endpoint to `supervisor`, or with more
    /// than one instance.
    BadPush,
}

impl fmt::Display for ErrorKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Decode => f.write_str("not a postcard-encoded manifest"),
            ErrorKind::Missing => f.write_str("missing (it is required)"),
            ErrorKind::BadName(n) => write!(
                f,
                "expected a name of 1 to {NAME_MAX} of A-Z a-z 0-9 _ . - (found \"{n}\")"
            ),
            ErrorKind::ReservedName => write!(f, "\"{SUPERVISOR}\" is reserved"),
            ErrorKind::DuplicateName(n) => write!(f, "a second domain named \"{n}\""),
            ErrorKind::BadImage => {
                write!(f, "expected an archive entry name of 1 to {IMAGE_MAX} bytes")
            }
            ErrorKind::BadClass(v) => {
                write!(f, "expected \"server\" or \"guest\" (found \"{v}\")")
            }
            ErrorKind::OutOfRange { max } => write!(f, "expected an integer from 1 to {max}"),
            ErrorKind::UnknownDomain(n) => write!(f, "no domain \"{n}\""),
            ErrorKind::OwnPager => f.write_str("a domain cannot be its own pager"),
            ErrorKind::SupervisorPager => f.write_str("the supervisor is not a pager"),
            ErrorKind::NoPager => f.write_str(
                "missing: a domain needs a pager or eager = true (its stack and .bss are not in the image)",
            ),
            ErrorKind::TooManyDomains => write!(f, "more than {MAX_DOMAINS} domains"),
            ErrorKind::TooManyInstances => {
                write!(f, "more than {MAX_INSTANCES} instances in all")
            }
            ErrorKind::TooManyLinks => {
                write!(f, "more than {MAX_LINKS} endpoint and notify names")
            }
            ErrorKind::BadDevice(v) => write!(
                f,
                "expected \"virtio-blk\", \"virtio-net\" or a PCI address like \"00:03.0\" (found \"{v}\")"
            ),
            ErrorKind::DeviceNotSingle => {
                f.write_str("a device holder has exactly one instance (count 1, no until-full)")
            }
            ErrorKind::LingerWithoutTestEnd => f.write_str("needs a test-end to linger after"),
            ErrorKind::OperatorWithoutEndpoint => write!(
                f,
                "an operator needs \"{SUPERVISOR}\" in its endpoint list to act through"
            ),
            ErrorKind::UntilFullNotLast => f.write_str("only the last domain may be until-full"),
            ErrorKind::UntilFullNamed(n) => write!(
                f,
                "\"{n}\" is until-full: pager, endpoint and notify may not name it"
            ),
            ErrorKind::NetWithoutVnic => f.write_str(
                "net = true needs an endpoint to a domain with device = \"virtio-net\"",
            ),
            ErrorKind::SwapIdleNotPager => {
                f.write_str("swap-idle is a pager's, and no domain names this one as its pager")
            }
            ErrorKind::TooManyKeys => write!(
                f,
                "more than {} keys",
                serac_protocol::supervisor::MAX_OPERATOR_KEYS
            ),
            ErrorKind::BadKey(k) => write!(
                f,
                "expected an ed25519 public key as 64 hex digits (found \"{k}\")"
            ),
            ErrorKind::BadPush => write!(
                f,
                "the push service has one instance and \"{SUPERVISOR}\" in its endpoint list"
            ),
        }
    }
}

impl<'a> Error<'a> {
    /// What is wrong, without the line: `domain "httpd": key "count": ...`
    /// (xtask puts the file and the key's own line in front).
    pub fn what(&self) -> impl fmt::Display + 'a {
        What(*self)
    }
}

struct What<'a>(Error<'a>);

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        match (e.name, e.domain) {
            (Some(n), _) => write!(f, "domain \"{n}\": ")?,
            (None, Some(i)) => write!(f, "domain #{}: ", i + 1)?,
            (None, None) => {}
        }
        if let Some(k) = e.key {
            write!(f, "key \"{k}\": ")?;
        }
        write!(f, "{}", e.kind)
    }
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line != 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "{}", self.what())
    }
}

/// An error of a global key (no domain).
fn global<'a>(key: &'static str, kind: ErrorKind<'a>) -> Error<'a> {
    Error {
        line: 0,
        domain: None,
        name: None,
        key: Some(key),
        kind,
    }
}

/// A 32-byte key from 64 hex digits.
fn parse_key(k: &str) -> Option<[u8; 32]> {
    let b = k.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut key = [0u8; 32];
    for (i, out) in key.iter_mut().enumerate() {
        *out = digit(*b.get(2 * i)?)? << 4 | digit(*b.get(2 * i + 1)?)?;
    }
    Some(key)
}

/// The kernel's rule for domain names (`Create`), and not empty.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && serac_protocol::syscall::valid_domain_name(n.as_bytes())
}

/// `Some(n)` in `1..=max`, or the error; `None` stays `None`.
fn ranged(v: Option<u64>, max: u64) -> Result<Option<u64>, ErrorKind<'static>> {
    match v {
        Some(n) if n == 0 || n > max => Err(ErrorKind::OutOfRange { max }),
        v => Ok(v),
    }
}

/// A decode error (not postcard, trailing bytes, too many domains).
fn undecodable<'a, E>(_: E) -> Error<'a> {
    Error {
        line: 0,
        domain: None,
        name: None,
        key: None,
        kind: ErrorKind::Decode,
    }
}

impl<'a> Manifest<'a> {
    fn empty() -> Self {
        Manifest {
            domains: Vec::new(),
            instances: 0,
            test_end: None,
            test_end_after_ms: None,
            test_linger_ms: None,
            operator_keys: Vec::new(),
        }
    }

    /// Decodes the archive entry (a postcard [`wire::Manifest`], no
    /// trailing bytes) and validates it. It reads one domain at a time, so
    /// the whole wire form (13 KiB) is never on the stack.
    pub fn decode(bytes: &'a [u8]) -> Result<Manifest<'a>, Error<'a>> {
        use postcard::take_from_bytes;
        // The field order of `wire::Manifest`: the domains (a length, then
        // each), then the globals.
        let (n, mut rest) = take_from_bytes::<usize>(bytes).map_err(undecodable)?;
        if n > MAX_DOMAINS {
            return Err(undecodable(()));
        }
        let mut m = Manifest::empty();
        m.domains.try_reserve_exact(n).map_err(undecodable)?;
        for i in 0..n {
            let (d, r) = take_from_bytes::<wire::Domain<'a>>(rest).map_err(undecodable)?;
            rest = r;
            m.domain(i, &d)?;
        }
        type Keys<'a> = heapless::Vec<&'a str, { serac_protocol::supervisor::MAX_OPERATOR_KEYS }>;
        type Globals<'a> = (Option<&'a str>, Option<u64>, Option<u64>, Keys<'a>);
        let ((end, after, linger, keys), r) =
            take_from_bytes::<Globals<'a>>(rest).map_err(undecodable)?;
        if !r.is_empty() {
            return Err(undecodable(()));
        }
        m.keys(&keys)?;
        m.finish(end, after, linger)
    }

    /// Checks every rule and resolves the names: the one validator, for
    /// xtask and (through [`Manifest::decode`]) the supervisor alike.
    pub fn validate(w: &wire::Manifest<'a>) -> Result<Manifest<'a>, Error<'a>> {
        let mut m = Manifest::empty();
        m.domains
            .try_reserve_exact(w.domains.len())
            .map_err(undecodable)?;
        for (i, d) in w.domains.iter().enumerate() {
            m.domain(i, d)?;
        }
        m.keys(&w.operator_keys)?;
        m.finish(w.test_end, w.test_end_after_ms, w.test_linger_ms)
    }

    /// Parses `operator-keys`.
    fn keys(&mut self, keys: &[&'a str]) -> Result<(), Error<'a>> {
        for &k in keys {
            let key = parse_key(k).ok_or(global("operator-keys", ErrorKind::BadKey(k)))?;
            self.operator_keys
                .try_reserve(1)
                .map_err(|_| global("operator-keys", ErrorKind::TooManyKeys))?;
            self.operator_keys.push(key);
        }
        Ok(())
    }

    /// The push service (`push = true`), if there is one.
    pub fn push_service(&self) -> Option<usize> {
        self.domains().iter().position(|d| d.push)
    }

    /// Whether [`Manifest::add_service`] would accept the service.
    pub fn check_service(
        &self,
        name: &str,
        t: usize,
        net: bool,
        disk: Option<usize>,
    ) -> Result<(), ServiceRefusal> {
        if !valid_name(name) || name == SUPERVISOR {
            return Err(ServiceRefusal::BadName);
        }
        if self.find(name).is_some() {
            return Err(ServiceRefusal::Exists);
        }
        let pushed = self.domains().iter().filter(|d| d.pushed).count();
        if pushed >= MAX_SERVICES {
            return Err(ServiceRefusal::TooMany);
        }
        let tmpl = self.domains().get(t).ok_or(ServiceRefusal::NoVnic)?;
        if net && self.vnic_of(t).is_none() {
            return Err(ServiceRefusal::NoVnic);
        }
        if let Some(s) = disk {
            let linked = tmpl
                .links()
                .iter()
                .any(|l| l.kind == LinkKind::Endpoint && l.target == Target::Domain(s));
            if !linked {
                return Err(ServiceRefusal::NoDisk);
            }
        }
        Ok(())
    }

    /// Adds pushed service `name` (image `image`) as a new domain built
    /// like the push service `t`: a guest with `t`'s pager, an endpoint
    /// to `t`'s vnic if `net`, and one to `disk` (a disk server `t` has an
    /// endpoint to) if given, in that order. It has no instance yet
    /// (`count` 0): they are started one by one, numbered from `name#0`.
    /// Returns its index.
    pub fn add_service(
        &mut self,
        name: &'a str,
        image: &'a str,
        t: usize,
        net: bool,
        disk: Option<usize>,
    ) -> Result<usize, ServiceRefusal> {
        self.check_service(name, t, net, disk)?;
        if image.is_empty() || image.len() > IMAGE_MAX {
            return Err(ServiceRefusal::BadName);
        }
        let tmpl = *self.domains().get(t).ok_or(ServiceRefusal::NoVnic)?;
        let mut d = DomainSpec {
            name,
            image,
            class: Class::Guest,
            count: 0,
            pager: tmpl.pager,
            eager: tmpl.pager.is_none(),
            net,
            line: 0,
            first_instance: self.instances,
            pushed: true,
            ..DomainSpec::EMPTY
        };
        let mut link = |target: usize| {
            if let Some(slot) = d.links.get_mut(d.n_links) {
                *slot = Link {
                    kind: LinkKind::Endpoint,
                    name: self.domains[target].name,
                    target: Target::Domain(target),
                };
                d.n_links += 1;
            }
        };
        if net {
            link(self.vnic_of(t).ok_or(ServiceRefusal::NoVnic)?);
        }
        if let Some(s) = disk {
            link(s);
        }
        self.domains
            .try_reserve(1)
            .map_err(|_| ServiceRefusal::TooMany)?;
        self.domains.push(d);
        Ok(self.domains.len() - 1)
    }

    /// The globals, then the rules across domains.
    fn finish(
        mut self,
        test_end: Option<&'a str>,
        after: Option<u64>,
        linger: Option<u64>,
    ) -> Result<Manifest<'a>, Error<'a>> {
        self.test_end_after_ms =
            ranged(after, MAX_TEST_MS).map_err(|k| global("test-end-after-ms", k))?;
        self.test_linger_ms =
            ranged(linger, MAX_TEST_MS).map_err(|k| global("test-linger-ms", k))?;
        self.resolve()?;
        match test_end {
            Some(name) => {
                let d = self
                    .find(name)
                    .ok_or(global("test-end", ErrorKind::UnknownDomain(name)))?;
                self.test_end = Some(d);
            }
            None if self.test_linger_ms.is_some() => {
                return Err(global("test-linger-ms", ErrorKind::LingerWithoutTestEnd));
            }
            None => {}
        }
        Ok(self)
    }

    /// Checks domain `i` on its own and appends it.
    fn domain(&mut self, i: usize, w: &wire::Domain<'a>) -> Result<(), Error<'a>> {
        let line = w.line as usize;
        let named = w.name.filter(|n| valid_name(n) && *n != SUPERVISOR);
        let err = |key: &'static str, kind| Error {
            line,
            domain: Some(i),
            name: named,
            key: Some(key),
            kind,
        };
        let name = w.name.ok_or(err("name", ErrorKind::Missing))?;
        if !valid_name(name) {
            return Err(err("name", ErrorKind::BadName(name)));
        }
        if name == SUPERVISOR {
            return Err(err("name", ErrorKind::ReservedName));
        }
        if self.find(name).is_some() {
            return Err(err("name", ErrorKind::DuplicateName(name)));
        }
        if let Some(last) = self.domains().last().filter(|l| l.until_full) {
            return Err(Error {
                line: last.line,
                domain: Some(i - 1),
                name: Some(last.name),
                key: Some("until-full"),
                kind: ErrorKind::UntilFullNotLast,
            });
        }
        let image = w.image.ok_or(err("image", ErrorKind::Missing))?;
        if image.is_empty() || image.len() > IMAGE_MAX {
            return Err(err("image", ErrorKind::BadImage));
        }
        let class = match w.class.ok_or(err("class", ErrorKind::Missing))? {
            "server" => Class::Server,
            "guest" => Class::Guest,
            other => return Err(err("class", ErrorKind::BadClass(other))),
        };
        let count = ranged(w.count, MAX_INSTANCES as u64).map_err(|k| err("count", k))?;
        let frames = ranged(w.frames, MAX_GRANT_FRAMES as u64).map_err(|k| err("frames", k))?;
        let device = match w.device {
            Some(v) => Some(DeviceSel::parse(v).ok_or(err("device", ErrorKind::BadDevice(v)))?),
            None => None,
        };
        let mut d = DomainSpec {
            name,
            image,
            class,
            // `ranged` bounded them by MAX_INSTANCES and MAX_GRANT_FRAMES.
            count: count.map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            frames: frames.map_or(0, |n| u16::try_from(n).unwrap_or(u16::MAX)),
            restart: w.restart.unwrap_or(false),
            eager: w.eager.unwrap_or(false),
            operator: w.operator.unwrap_or(false),
            until_full: w.until_full.unwrap_or(false),
            net: w.net.unwrap_or(false),
            swap_idle: w.swap_idle.unwrap_or(false),
            push: w.push.unwrap_or(false),
            device,
            line,
            first_instance: self.instances,
            pager_name: w.pager,
            ..DomainSpec::EMPTY
        };
        let links = w
            .endpoint
            .iter()
            .map(|&n| (LinkKind::Endpoint, n))
            .chain(w.notify.iter().map(|&n| (LinkKind::Notify, n)));
        for (kind, name) in links {
            let key = match kind {
                LinkKind::Endpoint => "endpoint",
                LinkKind::Notify => "notify",
            };
            let slot = d
                .links
                .get_mut(d.n_links)
                .ok_or(err(key, ErrorKind::TooManyLinks))?;
            *slot = Link {
                kind,
                name,
                target: Target::Supervisor,
            };
            d.n_links += 1;
        }
        if d.operator
            && !d
                .links()
                .iter()
                .any(|l| l.kind == LinkKind::Endpoint && l.name == SUPERVISOR)
        {
            return Err(err("operator", ErrorKind::OperatorWithoutEndpoint));
        }
        if d.push
            && (d.count != 1
                || d.until_full
                || !d
                    .links()
                    .iter()
                    .any(|l| l.kind == LinkKind::Endpoint && l.name == SUPERVISOR))
        {
            return Err(err("push", ErrorKind::BadPush));
        }
        // A function has one holder.
        if d.device.is_some() && (d.count != 1 || d.until_full) {
            return Err(err("device", ErrorKind::DeviceNotSingle));
        }
        if w.pager.is_none() && !d.eager {
            return Err(err("pager", ErrorKind::NoPager));
        }
        let total = self.instances + d.count as usize;
        if total > MAX_INSTANCES {
            return Err(err("count", ErrorKind::TooManyInstances));
        }
        if self.domains.len() == MAX_DOMAINS {
            return Err(Error {
                key: None,
                ..err("name", ErrorKind::TooManyDomains)
            });
        }
        // Reserved up front (and at most MAX_DOMAINS): no allocation here.
        self.domains.push(d);
        self.instances = total;
        Ok(())
    }

    /// Resolves `pager`, `endpoint` and `notify` names to indices.
    fn resolve(&mut self) -> Result<(), Error<'a>> {
        for i in 0..self.domains.len() {
            let d = self.domains[i];
            let pager = d.pager_name;
            let err = |key: &'static str, kind| Error {
                line: d.line,
                domain: Some(i),
                name: Some(d.name),
                key: Some(key),
                kind,
            };
            let link_key = |l: &Link<'_>| match l.kind {
                LinkKind::Endpoint => "endpoint",
                LinkKind::Notify => "notify",
            };
            let named = pager
                .map(|p| ("pager", p))
                .into_iter()
                .chain(d.links().iter().map(|l| (link_key(l), l.name)));
            for (key, n) in named {
                if self.find(n).is_some_and(|j| self.domains[j].until_full) {
                    return Err(err(key, ErrorKind::UntilFullNamed(n)));
                }
            }
            let mut resolved = d;
            if let Some(p) = pager {
                if p == SUPERVISOR {
                    return Err(err("pager", ErrorKind::SupervisorPager));
                }
                if p == d.name {
                    return Err(err("pager", ErrorKind::OwnPager));
                }
                let j = self
                    .find(p)
                    .ok_or(err("pager", ErrorKind::UnknownDomain(p)))?;
                resolved.pager = Some(j);
            }
            for l in resolved.links.iter_mut().take(d.n_links) {
                l.target = if l.name == SUPERVISOR {
                    Target::Supervisor
                } else {
                    Target::Domain(
                        self.find(l.name)
                            .ok_or(err(link_key(l), ErrorKind::UnknownDomain(l.name)))?,
                    )
                };
            }
            self.domains[i] = resolved;
        }
        for i in 0..self.domains.len() {
            let d = self.domains[i];
            let err = |key, kind| Error {
                line: d.line,
                domain: Some(i),
                name: Some(d.name),
                key: Some(key),
                kind,
            };
            if d.net && self.vnic_of(i).is_none() {
                return Err(err("net", ErrorKind::NetWithoutVnic));
            }
            if d.swap_idle && !self.is_pager(i) {
                return Err(err("swap-idle", ErrorKind::SwapIdleNotPager));
            }
        }
        Ok(())
    }

    /// The vnic domain `d`'s port is on: its first endpoint to a domain
    /// holding `device = "virtio-net"` (`None` for a domain without `net`).
    pub fn vnic_of(&self, d: usize) -> Option<usize> {
        let spec = self.domains().get(d).filter(|s| s.net)?;
        spec.links().iter().find_map(|l| match (l.kind, l.target) {
            (LinkKind::Endpoint, Target::Domain(v))
                if self.domains().get(v)?.device == Some(DeviceSel::VirtioNet) =>
            {
                Some(v)
            }
            _ => None,
        })
    }

    /// Ports the manifest file puts on vnic domain `v`: the instances of
    /// the domains whose [`vnic_of`](Self::vnic_of) it is, pushed services
    /// aside (the supervisor sizes the vnic's heap run by this and finds
    /// the run again by it, so it must not change after boot).
    pub fn ports_on(&self, v: usize) -> u64 {
        (0..self.domains().len())
            .filter(|&d| !self.domains()[d].pushed && self.vnic_of(d) == Some(v))
            .map(|d| u64::from(self.domains()[d].count))
            .sum()
    }

    /// The index of the domain called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.domains().iter().position(|d| d.name == name)
    }

    /// The domains, in manifest order.
    pub fn domains(&self) -> &[DomainSpec<'a>] {
        &self.domains
    }

    /// Total instances (the sum of the counts).
    pub fn instance_count(&self) -> usize {
        self.instances
    }

    /// Which domain instance `i` belongs to, and its number within it.
    pub fn instance(&self, i: usize) -> Option<(usize, u32)> {
        self.domains().iter().enumerate().find_map(|(d, s)| {
            let k = i.checked_sub(s.first_instance)?;
            let k = u32::try_from(k).ok()?;
            (k < s.count).then_some((d, k))
        })
    }

    /// The printable name of instance `i`.
    pub fn instance_name(&self, i: usize) -> Option<InstanceName<'a>> {
        let (d, k) = self.instance(i)?;
        Some(self.domains().get(d)?.instance_name(k))
    }

    /// Whether some domain names domain `d` as its pager.
    pub fn is_pager(&self, d: usize) -> bool {
        self.domains().iter().any(|s| s.pager == Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    /// A wire manifest from lines in the shape of the TOML keys
    /// (`name image=x class=guest endpoint=a endpoint=b test-end=...`),
    /// so the rules can be tested without TOML (xtask's tests cover that).
    fn wire(text: &str) -> wire::Manifest<'_> {
        let mut m = wire::Manifest::default();
        for (n, l) in text.lines().enumerate() {
            let mut words = l.split_whitespace();
            let Some(first) = words.next() else { continue };
            if let Some((k, v)) = first.split_once('=') {
                let num = v.parse().ok();
                match k {
                    "test-end" => m.test_end = Some(v),
                    "test-end-after-ms" => m.test_end_after_ms = num,
                    "test-linger-ms" => m.test_linger_ms = num,
                    _ => panic!("{k}"),
                }
                continue;
            }
            let mut d = wire::Domain {
                name: (first != "-").then_some(first),
                line: n as u32 + 1,
                ..wire::Domain::default()
            };
            for w in words {
                let (k, v) = w.split_once('=').unwrap();
                let yes = Some(v == "yes");
                match k {
                    "image" => d.image = Some(v),
                    "class" => d.class = Some(v),
                    "count" => d.count = v.parse().ok(),
                    "frames" => d.frames = v.parse().ok(),
                    "pager" => d.pager = Some(v),
                    "device" => d.device = Some(v),
                    "restart" => d.restart = yes,
                    "eager" => d.eager = yes,
                    "operator" => d.operator = yes,
                    "until-full" => d.until_full = yes,
                    "net" => d.net = yes,
                    "swap-idle" => d.swap_idle = yes,
                    "push" => d.push = yes,
                    "endpoint" => d.endpoint.push(v).unwrap(),
                    "notify" => d.notify.push(v).unwrap(),
                    _ => panic!("{k}"),
                }
            }
            m.domains.push(d).unwrap();
        }
        m
    }

    fn check(text: &str) -> Result<(), (Option<&'static str>, std::string::String)> {
        let w = wire(text);
        Manifest::validate(&w)
            .map(|_| ())
            .map_err(|e| (e.key, e.kind.to_string()))
    }

    fn kind(text: &str) -> (Option<&'static str>, std::string::String) {
        check(text).unwrap_err()
    }

    const EXAMPLE: &str = "\
swapper image=swapper class=server eager=yes
pong image=pong class=server pager=swapper restart=yes
ping image=ping class=guest pager=swapper endpoint=pong
idler image=idler class=guest pager=swapper count=1000 frames=3
test-end=ping";

    const PUSHY: &str = "\
swapper image=swapper class=server eager=yes
disk image=disk class=server eager=yes device=virtio-blk
vnic image=vnic class=server eager=yes device=virtio-net
control image=control class=server pager=swapper endpoint=supervisor endpoint=vnic endpoint=disk net=yes push=yes";

    #[test]
    fn pushed_services_are_built_like_the_push_service() {
        let w = wire(PUSHY);
        let mut m = Manifest::validate(&w).unwrap();
        let t = m.push_service().unwrap();
        assert_eq!(m.domains()[t].name, "control");
        let before = m.instance_count();
        let d = m.add_service("web2", "web2", t, true, Some(1)).unwrap();
        let s = m.domains()[d];
        assert_eq!((s.pushed, s.count, s.class), (true, 0, Class::Guest));
        assert_eq!(
            (s.pager, s.net, s.push, s.operator),
            (Some(0), true, false, false)
        );
        let targets: Vec<_> = s.links().iter().map(|l| (l.kind, l.target)).collect();
        assert_eq!(
            targets,
            [
                (LinkKind::Endpoint, Target::Domain(2)),
                (LinkKind::Endpoint, Target::Domain(1))
            ]
        );
        assert_eq!(m.instance_count(), before, "no instance until started");
        assert_eq!(m.find("web2"), Some(d));
        // Names taken, reserved or malformed; a disk the push service has no
        // endpoint to.
        for (name, disk, r) in [
            ("web2", None, ServiceRefusal::Exists),
            ("swapper", None, ServiceRefusal::Exists),
            ("supervisor", None, ServiceRefusal::BadName),
            ("two words", None, ServiceRefusal::BadName),
            ("", None, ServiceRefusal::BadName),
            ("web3", Some(0), ServiceRefusal::NoDisk),
        ] {
            assert_eq!(m.check_service(name, t, false, disk), Err(r), "{name}");
            assert_eq!(m.add_service(name, "x", t, false, disk), Err(r), "{name}");
        }
        assert_eq!(m.domains().len(), 5, "refusals add nothing");
        // Up to the limit, then TooMany.
        let names: Vec<std::string::String> =
            (0..MAX_SERVICES).map(|i| std::format!("s{i}")).collect();
        let mut added = 1;
        for n in &names {
            match m.add_service(n, n, t, false, None) {
                Ok(_) => added += 1,
                Err(e) => {
                    assert_eq!(e, ServiceRefusal::TooMany);
                    break;
                }
            }
        }
        assert_eq!(added, MAX_SERVICES);
        assert_eq!(
            m.add_service("last", "last", t, false, None),
            Err(ServiceRefusal::TooMany)
        );
    }

    #[test]
    fn a_push_service_without_a_vnic_refuses_net() {
        let w = wire(
            "\
swapper image=swapper class=server eager=yes
control image=control class=server pager=swapper endpoint=supervisor push=yes",
        );
        let mut m = Manifest::validate(&w).unwrap();
        let t = m.push_service().unwrap();
        assert_eq!(
            m.add_service("web2", "web2", t, true, None),
            Err(ServiceRefusal::NoVnic)
        );
        assert!(m.add_service("web2", "web2", t, false, None).is_ok());
    }

    #[test]
    fn resolves_the_example() {
        let w = wire(EXAMPLE);
        let m = Manifest::validate(&w).unwrap();
        let d = m.domains();
        assert_eq!((d.len(), m.instance_count()), (4, 1003));
        assert_eq!(
            (d[0].class, d[0].eager, d[0].pager),
            (Class::Server, true, None)
        );
        assert_eq!((d[1].restart, d[1].pager), (true, Some(0)));
        assert_eq!(
            d[2].links(),
            &[Link {
                kind: LinkKind::Endpoint,
                name: "pong",
                target: Target::Domain(1)
            }]
        );
        assert_eq!((d[3].count, d[3].first_instance, d[3].line), (1000, 3, 4));
        assert_eq!((d[2].frames, d[3].frames), (0, 3));
        assert_eq!((m.test_end, m.test_end_after_ms), (Some(2), None));
        assert!(m.is_pager(0) && !m.is_pager(1));
        let name = |i| m.instance_name(i).unwrap().to_string();
        assert_eq!(
            (name(0), name(3), name(1002)),
            ("swapper".into(), "idler#0".into(), "idler#999".into())
        );
        assert_eq!((m.instance(1002), m.instance(1003)), (Some((3, 999)), None));
        assert_eq!(Class::Guest.create_class(), 1);
    }

    #[test]
    fn decodes_what_it_validates() {
        let w = wire(EXAMPLE);
        let mut buf = [0u8; 512];
        let bytes = postcard::to_slice(&w, &mut buf).unwrap();
        let m = Manifest::decode(bytes).unwrap();
        assert_eq!(m.domains()[3].name, "idler");
        // Every truncation is a typed error, never a panic.
        for n in 0..bytes.len() {
            assert_eq!(
                Manifest::decode(&bytes[..n]).unwrap_err().kind,
                ErrorKind::Decode
            );
        }
        let e = Manifest::decode(b"\xff\xff").unwrap_err();
        assert_eq!(e.to_string(), "not a postcard-encoded manifest");
    }

    #[test]
    fn links_endpoints_first_then_notifications() {
        let w = wire(
            "a image=a class=guest pager=p notify=b endpoint=supervisor endpoint=b\n\
             b image=bimg class=server pager=p count=2\n\
             p image=swapper class=server eager=yes\n\
             test-end-after-ms=250",
        );
        let m = Manifest::validate(&w).unwrap();
        let a = m.domains()[0];
        let kinds: Vec<_> = a.links().iter().map(|l| (l.kind, l.target)).collect();
        assert_eq!(
            kinds,
            [
                (LinkKind::Endpoint, Target::Supervisor),
                (LinkKind::Endpoint, Target::Domain(1)),
                (LinkKind::Notify, Target::Domain(1)),
            ]
        );
        assert_eq!(
            (a.count, a.restart, a.eager, a.pager),
            (1, false, false, Some(2))
        );
        assert_eq!(m.instance_name(2).unwrap().to_string(), "b#1");
        assert_eq!((m.test_end_after_ms, m.test_end), (Some(250), None));
    }

    #[test]
    fn every_rule() {
        let s = "s image=s class=server eager=yes\n";
        let with = |extra: &str| std::format!("{s}{extra}");
        let cases: &[(&str, &str, &str)] = &[
            ("- image=a class=guest eager=yes", "name", "missing (it is required)"),
            ("a/b image=a class=guest eager=yes", "name", "expected a name of 1 to 16 of A-Z a-z 0-9 _ . - (found \"a/b\")"),
            ("nnnnnnnnnnnnnnnnn image=a class=guest eager=yes", "name", "expected a name of 1 to 16 of A-Z a-z 0-9 _ . - (found \"nnnnnnnnnnnnnnnnn\")"),
            ("supervisor image=s class=server eager=yes", "name", "\"supervisor\" is reserved"),
            ("s image=s class=server eager=yes\ns image=t class=guest eager=yes", "name", "a second domain named \"s\""),
            ("a class=guest eager=yes", "image", "missing (it is required)"),
            ("a image=a eager=yes", "class", "missing (it is required)"),
            ("a image=a class=kernel eager=yes", "class", "expected \"server\" or \"guest\" (found \"kernel\")"),
            ("a image=a class=guest eager=yes count=0", "count", "expected an integer from 1 to 1048576"),
            ("a image=a class=guest eager=yes count=1048577", "count", "expected an integer from 1 to 1048576"),
            ("a image=a class=guest eager=yes frames=0", "frames", "expected an integer from 1 to 256"),
            ("a image=a class=guest eager=yes frames=257", "frames", "expected an integer from 1 to 256"),
            ("a image=a class=guest", "pager", "missing: a domain needs a pager or eager = true (its stack and .bss are not in the image)"),
            ("a image=a class=guest eager=no", "pager", "missing: a domain needs a pager or eager = true (its stack and .bss are not in the image)"),
            ("a image=a class=guest pager=a", "pager", "a domain cannot be its own pager"),
            ("a image=a class=guest pager=supervisor", "pager", "the supervisor is not a pager"),
            ("a image=a class=guest pager=nobody", "pager", "no domain \"nobody\""),
            ("a image=a class=guest eager=yes endpoint=ghost", "endpoint", "no domain \"ghost\""),
            ("a image=a class=guest eager=yes notify=ghost", "notify", "no domain \"ghost\""),
            ("test-end=ghost", "test-end", "no domain \"ghost\""),
            ("test-end-after-ms=86400001", "test-end-after-ms", "expected an integer from 1 to 86400000"),
            ("test-end-after-ms=0", "test-end-after-ms", "expected an integer from 1 to 86400000"),
            ("test-linger-ms=5", "test-linger-ms", "needs a test-end to linger after"),
            ("a image=a class=guest eager=yes operator=yes", "operator", "an operator needs \"supervisor\" in its endpoint list to act through"),
            ("a image=a class=guest eager=yes operator=yes endpoint=s", "operator", "an operator needs \"supervisor\" in its endpoint list to act through"),
            ("a image=a class=guest eager=yes operator=yes notify=supervisor", "operator", "an operator needs \"supervisor\" in its endpoint list to act through"),
            ("a image=a class=server eager=yes device=floppy", "device", "expected \"virtio-blk\", \"virtio-net\" or a PCI address like \"00:03.0\" (found \"floppy\")"),
            ("a image=a class=server eager=yes device=00:20.0", "device", "expected \"virtio-blk\", \"virtio-net\" or a PCI address like \"00:03.0\" (found \"00:20.0\")"),
            ("a image=a class=server eager=yes count=2 device=virtio-blk", "device", "a device holder has exactly one instance (count 1, no until-full)"),
            ("a image=a class=server eager=yes until-full=yes device=virtio-blk", "device", "a device holder has exactly one instance (count 1, no until-full)"),
            ("g image=g class=guest eager=yes net=yes", "net", "net = true needs an endpoint to a domain with device = \"virtio-net\""),
            ("p image=p class=server eager=yes swap-idle=yes", "swap-idle", "swap-idle is a pager's, and no domain names this one as its pager"),
            ("d image=d class=server eager=yes device=virtio-blk\ng image=g class=guest eager=yes endpoint=d net=yes", "net", "net = true needs an endpoint to a domain with device = \"virtio-net\""),
            ("a image=a class=guest eager=yes until-full=yes\nb image=b class=guest eager=yes", "until-full", "only the last domain may be until-full"),
            ("a image=a class=server eager=yes until-full=yes\nb image=b class=guest pager=a", "until-full", "only the last domain may be until-full"),
            ("b image=b class=guest eager=yes notify=a\na image=a class=guest eager=yes until-full=yes", "notify", "\"a\" is until-full: pager, endpoint and notify may not name it"),
            ("a image=a class=guest eager=yes count=1048575\nb image=b class=guest eager=yes count=2", "count", "more than 1048576 instances in all"),
        ];
        for &(text, key, msg) in cases {
            // Alone, and after a valid domain.
            for t in [std::string::String::from(text), with(text)] {
                assert_eq!(kind(&t), (Some(key), msg.into()), "{t}");
            }
        }
        let long_img = "i".repeat(IMAGE_MAX + 1);
        for img in ["", long_img.as_str()] {
            let w = wire::Manifest {
                domains: [wire::Domain {
                    name: Some("a"),
                    image: Some(img),
                    class: Some("guest"),
                    eager: Some(true),
                    ..wire::Domain::default()
                }]
                .into_iter()
                .collect(),
                ..wire::Manifest::default()
            };
            let e = Manifest::validate(&w).unwrap_err();
            assert_eq!((e.key, e.kind), (Some("image"), ErrorKind::BadImage));
        }
        // until-full last, named by nobody: fine.
        let t = with("a image=a class=guest eager=yes count=2047 until-full=yes notify=s\ntest-end-after-ms=5");
        let w = wire(&t);
        let m = Manifest::validate(&w).unwrap();
        assert!(m.domains()[1].until_full && !m.domains()[0].until_full);
        let w = wire("g image=g class=guest eager=yes endpoint=supervisor endpoint=v net=yes count=2\nh image=h class=guest eager=yes endpoint=v\nv image=v class=server eager=yes device=virtio-net");
        let m = Manifest::validate(&w).unwrap();
        assert_eq!(
            (m.vnic_of(0), m.vnic_of(1), m.vnic_of(2)),
            (Some(2), None, None)
        );
        // g's two instances have ports on v; h (no net) and v none.
        assert_eq!((m.ports_on(2), m.ports_on(0), m.ports_on(1)), (2, 0, 0));
        let w = wire("a image=a class=server eager=yes device=01:1f.7\nb image=b class=server eager=yes device=virtio-blk");
        let m = Manifest::validate(&w).unwrap();
        assert_eq!(m.domains()[0].device, Some(DeviceSel::Bdf(0x1ff)));
        assert!(DeviceSel::Bdf(0x1ff).matches(0x1ff, 1, 2));
        assert!(DeviceSel::VirtioBlk.matches(0x18, 0x1af4, 0x1042));
        assert!(!DeviceSel::VirtioBlk.matches(0x18, 0x1af4, 0x1041));
        let t = with("test-end=s\ntest-linger-ms=40");
        let w = wire(&t);
        assert_eq!(Manifest::validate(&w).unwrap().test_linger_ms, Some(40));
        let w =
            wire("p image=p class=server eager=yes swap-idle=yes\ng image=g class=guest pager=p");
        let m = Manifest::validate(&w).unwrap();
        assert!(m.domains()[0].swap_idle && !m.domains()[1].swap_idle);
        let w = wire("ops image=o class=guest eager=yes operator=yes endpoint=supervisor count=2\noff image=p class=guest eager=yes operator=no");
        let ops: Vec<bool> = Manifest::validate(&w)
            .unwrap()
            .domains()
            .iter()
            .map(|d| d.operator)
            .collect();
        assert_eq!(ops, [true, false]);
    }

    #[test]
    fn errors_name_line_domain_and_key() {
        let w =
            wire("s image=s class=server eager=yes\nhttpd image=h class=guest eager=yes count=0");
        let e = Manifest::validate(&w).unwrap_err();
        assert_eq!((e.line, e.domain), (2, Some(1)));
        assert_eq!(
            e.to_string(),
            "line 2: domain \"httpd\": key \"count\": expected an integer from 1 to 1048576"
        );
        let w = wire("a/b image=x class=guest eager=yes");
        assert_eq!(
            Manifest::validate(&w).unwrap_err().what().to_string(),
            "domain #1: key \"name\": expected a name of 1 to 16 of A-Z a-z 0-9 _ . - (found \"a/b\")"
        );
    }

    #[test]
    fn limits() {
        let names: Vec<std::string::String> =
            (0..MAX_DOMAINS).map(|i| std::format!("d{i}")).collect();
        let mut w = wire::Manifest::default();
        for n in &names {
            w.domains
                .push(wire::Domain {
                    name: Some(n),
                    image: Some("x"),
                    class: Some("guest"),
                    eager: Some(true),
                    ..wire::Domain::default()
                })
                .unwrap();
        }
        assert_eq!(Manifest::validate(&w).unwrap().domains().len(), MAX_DOMAINS);
        let max = std::format!("a image=a class=guest eager=yes count={MAX_INSTANCES}");
        let w = wire(&max);
        let m = Manifest::validate(&w).unwrap();
        assert_eq!(m.instance_count(), MAX_INSTANCES);
        let mut links = std::string::String::from(
            "s image=s class=server eager=yes\na image=a class=guest eager=yes",
        );
        for _ in 0..MAX_LINKS {
            links += " endpoint=s";
        }
        let w = wire(&links);
        assert_eq!(
            Manifest::validate(&w).unwrap().domains()[1].links().len(),
            MAX_LINKS
        );
        let mut w = wire(&links);
        w.domains[1].notify.push("s").unwrap();
        let e = Manifest::validate(&w).unwrap_err();
        assert_eq!((e.key, e.kind), (Some("notify"), ErrorKind::TooManyLinks));
        let n16 = std::format!(
            "{} image={} class=guest eager=yes",
            "n".repeat(NAME_MAX),
            "i".repeat(IMAGE_MAX)
        );
        assert!(check(&n16).is_ok());
    }
}
