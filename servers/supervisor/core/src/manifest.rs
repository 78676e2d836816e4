//! The boot manifest: which domains the supervisor builds, from which images,
//! with which handles.
//!
//! The manifest is the archive entry `manifest`, UTF-8 text, one directive a
//! line; `#` starts a comment that runs to the end of the line.
//!
//! ```text
//! domain <name> image=<archive entry> class=server|guest [count=N] [restart=yes|no]
//!        [pager=<domain>] [eager=yes|no] [operator=yes|no] [frames=N] [until-full=yes|no]
//!        [endpoint=<domain>]... [notify=<domain>]... [device=<sel>] [net=yes|no]
//!        [swap-idle=yes|no]
//! test-end=<domain>
//! test-end-after-ms=<n>
//! test-linger-ms=<n>
//! ```
//!
//! (a `domain` directive is one line; it is wrapped above only for reading.)
//!
//! - `image` and `class` are required; `count` defaults to 1, `restart`,
//!   `eager` and `operator` to `no`.
//! - `operator=yes` lets the domain kill, restart and inspect other domains
//!   through its `endpoint=supervisor` (see [`crate::authority`]); an
//!   operator without that endpoint is an error, since it could not act.
//! - A domain needs `pager=` or `eager=yes`: Ilwaco's stack and `.bss` are
//!   not in the image, so a domain with neither would fault at its first
//!   instruction.
//! - `frames=N` (1 to [`MAX_GRANT_FRAMES`]) gives each instance N zeroed
//!   frames of its own (`GiveFrame`), listed in its grant page
//!   (`serac_protocol::layout::grant`), so it can `map` memory itself.
//! - `until-full=yes` builds instances, after every other domain has
//!   started, until one cannot be built (memory or a table ran out) or
//!   `count` is reached, and carries on with those: a capacity test. Such a
//!   domain must be the last `domain` directive, and nothing may name it
//!   in `pager=`, `endpoint=` or `notify=` (its instance 0 may not exist).
//! - `endpoint=x` / `notify=x` give the domain an `Endpoint` / `Notification`
//!   handle (`SEND`) naming `x`; the domain finds them in its handle table from
//!   slot 1 upwards, in the order of these keys. `x` may be `supervisor`, a
//!   reserved name no domain may take. References may point forwards.
//! - `count=N` makes N instances, named `<name>#<i>` (i from 0) when N > 1;
//!   `endpoint=`, `notify=`, `pager=` and `test-end=` naming such a domain
//!   mean its instance 0 (`test-end` waits for all of its instances).
//! - `net=yes` gives each instance a port on the vnic: the domain must
//!   have an `endpoint=` to a domain holding `device=virtio-net` (the
//!   vnic; the first such endpoint is the one used). The supervisor
//!   assigns the port's addresses and configures it before the instance
//!   starts (see the supervisor's `domains.rs`).
//! - `swap-idle=yes` (on a domain another names in `pager=`) tells that
//!   pager to swap out whole every domain idle for its idle time even with
//!   memory free (`serac_protocol::pager::Request::SwapIdle`); by default
//!   (`no`) it does so only when its free frames run low.
//! - Names are 1 to [`NAME_MAX`] bytes of `A-Z a-z 0-9 _ . -`.
//!
//! Parsing is pure and bounded ([`MAX_DOMAINS`], [`MAX_INSTANCES`],
//! [`MAX_LINKS`]); any mistake is an [`Error`] naming the line, never a panic.

use core::fmt;

/// Most `domain` directives.
pub const MAX_DOMAINS: usize = 32;
/// Most instances over all domains (the sum of the counts): 2²⁰, ten
/// times the 100,000 target. What a machine runs is bounded later, by the
/// kernel's domain slots (sized from RAM) and the supervisor's memory.
pub const MAX_INSTANCES: usize = 1 << 20;
/// Most `endpoint=` plus `notify=` keys on one domain.
pub const MAX_LINKS: usize = 8;
/// Longest domain name: what the kernel keeps, so each domain is created
/// under its whole manifest name.
pub const NAME_MAX: usize = serac_protocol::syscall::DOMAIN_NAME_MAX;
/// Longest image name (the boot archive's name field).
pub const IMAGE_MAX: usize = serac_protocol::bootarc::NAME_LEN;
/// Largest `test-end-after-ms` (one day).
pub const MAX_TEST_MS: u64 = 86_400_000;
/// Most frames `frames=` gives one instance (what its grant page lists).
pub const MAX_GRANT_FRAMES: usize = serac_protocol::layout::grant::MAX_FRAMES;
/// The name that means the supervisor itself in `endpoint=` / `notify=`.
pub const SUPERVISOR: &str = "supervisor";

/// A PCI function a manifest gives a driver domain (`device=`).
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
    /// `class=server`: scheduled ahead of guests, started first.
    Server,
    /// `class=guest`.
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
    /// `endpoint=`: an `Endpoint` handle with `SEND`.
    Endpoint,
    /// `notify=`: a `Notification` handle with `SEND`.
    Notify,
}

/// Whom a link (or the pager) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The supervisor (`endpoint=supervisor`).
    Supervisor,
    /// Instance 0 of the domain with this index in [`Manifest::domains`].
    Domain(usize),
}

/// One `endpoint=` or `notify=` key, resolved.
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

/// One `domain` directive, resolved.
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
    /// `operator=yes`: may act on other domains through the supervisor.
    pub operator: bool,
    /// `frames=`: frames given to each instance (0: none, and no grant page).
    pub frames: u16,
    /// `until-full=`: build instances until one fails, after the rest.
    pub until_full: bool,
    /// `device=`: the PCI function granted to it (a driver domain, trusted
    /// with DMA: there is no IOMMU).
    pub device: Option<DeviceSel>,
    /// `net=yes`: a port on the vnic for each instance.
    pub net: bool,
    /// `swap-idle=yes`: as a pager, swap idle domains out with memory free.
    pub swap_idle: bool,
    links: [Link<'a>; MAX_LINKS],
    n_links: usize,
    /// Line of the directive (1-based), for later error messages.
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
        links: [Link::EMPTY; MAX_LINKS],
        n_links: 0,
        line: 0,
        first_instance: 0,
        pager_name: None,
    };

    /// The `endpoint=` and `notify=` keys, in manifest order (= handle order).
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

/// A parsed, resolved manifest. Names borrow from the text.
#[derive(Debug, Clone)]
pub struct Manifest<'a> {
    domains: [DomainSpec<'a>; MAX_DOMAINS],
    n_domains: usize,
    instances: usize,
    /// `test-end=`: end the run when every instance of this domain has exited.
    pub test_end: Option<usize>,
    /// `test-end-after-ms=`: end the run this long after every domain started.
    pub test_end_after_ms: Option<u64>,
    /// `test-linger-ms=`: after `test-end=`'s domain has ended, keep serving
    /// this long before ending the run (so a test can see what the other
    /// domains did after it: the neighbour of an attacker).
    pub test_linger_ms: Option<u64>,
}

/// A manifest error: where and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error<'a> {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ErrorKind<'a>,
}

/// What is wrong with a manifest line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind<'a> {
    /// The text is not UTF-8.
    NotUtf8,
    /// The first word is not `domain`, `test-end=` or `test-end-after-ms=`.
    UnknownDirective(&'a str),
    /// `domain` with no name after it.
    MissingName,
    /// A name with characters outside `A-Z a-z 0-9 _ . -`, or too long.
    BadName(&'a str),
    /// A domain called `supervisor`.
    ReservedName(&'a str),
    /// Two domains with one name.
    DuplicateName(&'a str),
    /// A word that is not `key=value`.
    NotKeyValue(&'a str),
    /// A key this format does not have.
    UnknownKey(&'a str),
    /// A key that may appear once appears twice.
    DuplicateKey(&'a str),
    /// `key=` with nothing after it.
    EmptyValue(&'a str),
    /// `class=` other than `server` / `guest`.
    BadClass(&'a str),
    /// A `yes`/`no` key with another value.
    BadYesNo {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a str,
    },
    /// Not a decimal number (or it overflows).
    BadNumber {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a str,
    },
    /// A number outside `1..=max`.
    OutOfRange {
        /// The key.
        key: &'a str,
        /// The value.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// A required key is missing.
    MissingKey(&'static str),
    /// An image name longer than the archive's name field.
    ImageTooLong(&'a str),
    /// A reference to a domain the manifest does not define.
    UnknownDomain(&'a str),
    /// `pager=` naming the domain itself.
    OwnPager(&'a str),
    /// `pager=supervisor`: the supervisor is no pager.
    SupervisorPager,
    /// Neither `pager=` nor `eager=yes`.
    NoPager(&'a str),
    /// More than [`MAX_DOMAINS`] directives.
    TooManyDomains,
    /// More than [`MAX_INSTANCES`] instances in all.
    TooManyInstances,
    /// More than [`MAX_LINKS`] `endpoint=`/`notify=` keys.
    TooManyLinks,
    /// A second `test-end=` or `test-end-after-ms=`.
    DuplicateTestEnd(&'a str),
    /// Extra words after a one-word directive.
    Unexpected(&'a str),
    /// A `device=` value that names no device.
    BadDevice(&'a str),
    /// A `device=` domain with more than one instance.
    DeviceNotSingle(&'a str),
    /// `test-linger-ms=` without a `test-end=` to linger after.
    LingerWithoutTestEnd,
    /// `operator=yes` without `endpoint=supervisor`.
    OperatorWithoutEndpoint(&'a str),
    /// An `until-full=yes` domain that is not the last `domain` directive.
    UntilFullNotLast(&'a str),
    /// A `pager=`, `endpoint=` or `notify=` naming an `until-full=yes` domain.
    UntilFullNamed(&'a str),
    /// `net=yes` without an `endpoint=` to a `device=virtio-net` domain.
    NetWithoutVnic(&'a str),
    /// `swap-idle=yes` on a domain nobody names in `pager=`.
    SwapIdleNotPager(&'a str),
}

impl fmt::Display for ErrorKind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::NotUtf8 => f.write_str("not UTF-8"),
            ErrorKind::UnknownDirective(w) => write!(
                f,
                "unknown directive `{w}` (expected domain, test-end=, test-end-after-ms= or test-linger-ms=)"
            ),
            ErrorKind::MissingName => f.write_str("`domain` needs a name"),
            ErrorKind::BadName(n) => {
                write!(f, "bad name `{n}` (1 to {NAME_MAX} of A-Z a-z 0-9 _ . -)")
            }
            ErrorKind::ReservedName(n) => write!(f, "the name `{n}` is reserved"),
            ErrorKind::DuplicateName(n) => write!(f, "duplicate domain name `{n}`"),
            ErrorKind::NotKeyValue(w) => write!(f, "expected key=value, found `{w}`"),
            ErrorKind::UnknownKey(k) => write!(f, "unknown key `{k}`"),
            ErrorKind::DuplicateKey(k) => write!(f, "duplicate key `{k}`"),
            ErrorKind::EmptyValue(k) => write!(f, "`{k}=` needs a value"),
            ErrorKind::BadClass(v) => write!(f, "bad class `{v}` (server or guest)"),
            ErrorKind::BadYesNo { key, value } => {
                write!(f, "bad value `{value}` for `{key}` (yes or no)")
            }
            ErrorKind::BadNumber { key, value } => {
                write!(f, "bad number `{value}` for `{key}`")
            }
            ErrorKind::OutOfRange { key, value, max } => {
                write!(f, "`{key}={value}` out of range (1 to {max})")
            }
            ErrorKind::MissingKey(k) => write!(f, "missing `{k}=`"),
            ErrorKind::ImageTooLong(i) => {
                write!(f, "image name `{i}` longer than {IMAGE_MAX} bytes")
            }
            ErrorKind::UnknownDomain(n) => write!(f, "unknown domain `{n}`"),
            ErrorKind::OwnPager(n) => write!(f, "`{n}` cannot be its own pager"),
            ErrorKind::SupervisorPager => f.write_str("the supervisor is not a pager"),
            ErrorKind::NoPager(n) => write!(
                f,
                "`{n}` needs pager=<domain> or eager=yes (its stack and .bss are not in the image)"
            ),
            ErrorKind::TooManyDomains => write!(f, "more than {MAX_DOMAINS} domains"),
            ErrorKind::TooManyInstances => {
                write!(f, "more than {MAX_INSTANCES} instances in all")
            }
            ErrorKind::TooManyLinks => {
                write!(f, "more than {MAX_LINKS} endpoint=/notify= keys")
            }
            ErrorKind::DuplicateTestEnd(k) => write!(f, "second `{k}=`"),
            ErrorKind::Unexpected(w) => write!(f, "unexpected `{w}`"),
            ErrorKind::BadDevice(v) => write!(
                f,
                "bad device `{v}` (virtio-blk, virtio-net or a PCI address like 00:03.0)"
            ),
            ErrorKind::DeviceNotSingle(n) => {
                write!(f, "`{n}` holds a device, so it has exactly one instance")
            }
            ErrorKind::LingerWithoutTestEnd => {
                f.write_str("`test-linger-ms=` needs a `test-end=` to linger after")
            }
            ErrorKind::OperatorWithoutEndpoint(n) => write!(
                f,
                "`{n}` is an operator but has no endpoint=supervisor to act through"
            ),
            ErrorKind::NetWithoutVnic(n) => write!(
                f,
                "`{n}` has net=yes but no endpoint= to a domain with device=virtio-net"
            ),
            ErrorKind::SwapIdleNotPager(n) => write!(
                f,
                "`{n}` has swap-idle=yes but no domain names it in pager="
            ),
            ErrorKind::UntilFullNotLast(n) => {
                write!(f, "`{n}` has until-full=yes but is not the last domain")
            }
            ErrorKind::UntilFullNamed(n) => write!(
                f,
                "`{n}` has until-full=yes: pager=, endpoint= and notify= may not name it"
            ),
        }
    }
}

impl fmt::Display for Error<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

fn err(line: usize, kind: ErrorKind<'_>) -> Error<'_> {
    Error { line, kind }
}

/// The kernel's rule for domain names (`Create`), and not empty.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && serac_protocol::syscall::valid_domain_name(n.as_bytes())
}

fn number<'a>(line: usize, key: &'a str, value: &'a str) -> Result<u64, Error<'a>> {
    let bad = || err(line, ErrorKind::BadNumber { key, value });
    if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    value.bytes().try_fold(0u64, |acc, c| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(c - b'0')))
            .ok_or_else(bad)
    })
}

fn ranged<'a>(line: usize, key: &'a str, value: &'a str, max: u64) -> Result<u64, Error<'a>> {
    let n = number(line, key, value)?;
    if n == 0 || n > max {
        return Err(err(line, ErrorKind::OutOfRange { key, value: n, max }));
    }
    Ok(n)
}

fn yes_no<'a>(line: usize, key: &'a str, value: &'a str) -> Result<bool, Error<'a>> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(err(line, ErrorKind::BadYesNo { key, value })),
    }
}

fn split_kv(word: &str) -> Option<(&str, &str)> {
    word.split_once('=')
}

impl<'a> Manifest<'a> {
    /// Parses raw manifest bytes (the archive entry).
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Manifest<'a>, Error<'a>> {
        match core::str::from_utf8(bytes) {
            Ok(text) => Manifest::parse(text),
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or(&[]);
                let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
                Err(err(line, ErrorKind::NotUtf8))
            }
        }
    }

    /// Parses and resolves a manifest.
    pub fn parse(text: &'a str) -> Result<Manifest<'a>, Error<'a>> {
        let mut m = Manifest {
            domains: [DomainSpec::EMPTY; MAX_DOMAINS],
            n_domains: 0,
            instances: 0,
            test_end: None,
            test_end_after_ms: None,
            test_linger_ms: None,
        };
        let mut test_end: Option<(usize, &'a str)> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or("");
            let mut words = content.split_ascii_whitespace();
            let Some(first) = words.next() else {
                continue;
            };
            if first == "domain" {
                m.domain_line(line, words)?;
                continue;
            }
            let Some((key, value)) = split_kv(first) else {
                return Err(err(line, ErrorKind::UnknownDirective(first)));
            };
            match key {
                "test-end" | "test-end-after-ms" | "test-linger-ms" => {}
                _ => return Err(err(line, ErrorKind::UnknownDirective(first))),
            }
            if let Some(extra) = words.next() {
                return Err(err(line, ErrorKind::Unexpected(extra)));
            }
            if value.is_empty() {
                return Err(err(line, ErrorKind::EmptyValue(key)));
            }
            if key == "test-end" {
                if test_end.is_some() {
                    return Err(err(line, ErrorKind::DuplicateTestEnd(key)));
                }
                test_end = Some((line, value));
            } else if key == "test-linger-ms" {
                if m.test_linger_ms.is_some() {
                    return Err(err(line, ErrorKind::DuplicateTestEnd(key)));
                }
                m.test_linger_ms = Some(ranged(line, key, value, MAX_TEST_MS)?);
            } else {
                if m.test_end_after_ms.is_some() {
                    return Err(err(line, ErrorKind::DuplicateTestEnd(key)));
                }
                m.test_end_after_ms = Some(ranged(line, key, value, MAX_TEST_MS)?);
            }
        }
        m.resolve()?;
        if let Some((line, name)) = test_end {
            let d = m
                .find(name)
                .ok_or(err(line, ErrorKind::UnknownDomain(name)))?;
            m.test_end = Some(d);
        } else if m.test_linger_ms.is_some() {
            return Err(err(0, ErrorKind::LingerWithoutTestEnd));
        }
        Ok(m)
    }

    fn domain_line(
        &mut self,
        line: usize,
        mut words: core::str::SplitAsciiWhitespace<'a>,
    ) -> Result<(), Error<'a>> {
        let name = words.next().ok_or(err(line, ErrorKind::MissingName))?;
        if split_kv(name).is_some() || !valid_name(name) {
            return Err(err(line, ErrorKind::BadName(name)));
        }
        if name == SUPERVISOR {
            return Err(err(line, ErrorKind::ReservedName(name)));
        }
        if self.find(name).is_some() {
            return Err(err(line, ErrorKind::DuplicateName(name)));
        }
        let mut d = DomainSpec {
            name,
            line,
            ..DomainSpec::EMPTY
        };
        let (mut image, mut class) = (None, None);
        let (mut count, mut restart, mut eager) = (None, None, None);
        let (mut operator, mut until_full, mut net) = (None, None, None);
        let mut swap_idle = None;
        for w in words {
            let (key, value) = split_kv(w).ok_or(err(line, ErrorKind::NotKeyValue(w)))?;
            if value.is_empty() {
                return Err(err(line, ErrorKind::EmptyValue(key)));
            }
            let dup = err(line, ErrorKind::DuplicateKey(key));
            match key {
                "image" => {
                    if value.len() > IMAGE_MAX {
                        return Err(err(line, ErrorKind::ImageTooLong(value)));
                    }
                    image.replace(value).map_or(Ok(()), |_| Err(dup))?;
                }
                "class" => {
                    let c = match value {
                        "server" => Class::Server,
                        "guest" => Class::Guest,
                        _ => return Err(err(line, ErrorKind::BadClass(value))),
                    };
                    class.replace(c).map_or(Ok(()), |_| Err(dup))?;
                }
                "count" => {
                    let n = ranged(line, key, value, MAX_INSTANCES as u64)?;
                    count.replace(n).map_or(Ok(()), |_| Err(dup))?;
                }
                "restart" => {
                    let v = yes_no(line, key, value)?;
                    restart.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "eager" => {
                    let v = yes_no(line, key, value)?;
                    eager.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "operator" => {
                    let v = yes_no(line, key, value)?;
                    operator.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "until-full" => {
                    let v = yes_no(line, key, value)?;
                    until_full.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "net" => {
                    let v = yes_no(line, key, value)?;
                    net.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "swap-idle" => {
                    let v = yes_no(line, key, value)?;
                    swap_idle.replace(v).map_or(Ok(()), |_| Err(dup))?;
                }
                "frames" => {
                    let n = ranged(line, key, value, MAX_GRANT_FRAMES as u64)?;
                    if d.frames != 0 {
                        return Err(dup);
                    }
                    // `ranged` bounded it by MAX_GRANT_FRAMES, which fits a u16.
                    d.frames = u16::try_from(n).unwrap_or(u16::MAX);
                }
                "pager" => {
                    d.pager_name.replace(value).map_or(Ok(()), |_| Err(dup))?;
                }
                "device" => {
                    let sel =
                        DeviceSel::parse(value).ok_or(err(line, ErrorKind::BadDevice(value)))?;
                    d.device.replace(sel).map_or(Ok(()), |_| Err(dup))?;
                }
                "endpoint" | "notify" => {
                    let kind = if key == "endpoint" {
                        LinkKind::Endpoint
                    } else {
                        LinkKind::Notify
                    };
                    let slot = d
                        .links
                        .get_mut(d.n_links)
                        .ok_or(err(line, ErrorKind::TooManyLinks))?;
                    *slot = Link {
                        kind,
                        name: value,
                        target: Target::Supervisor,
                    };
                    d.n_links += 1;
                }
                _ => return Err(err(line, ErrorKind::UnknownKey(key))),
            }
        }
        d.image = image.ok_or(err(line, ErrorKind::MissingKey("image")))?;
        d.class = class.ok_or(err(line, ErrorKind::MissingKey("class")))?;
        d.restart = restart.unwrap_or(false);
        d.eager = eager.unwrap_or(false);
        d.operator = operator.unwrap_or(false);
        d.net = net.unwrap_or(false);
        d.swap_idle = swap_idle.unwrap_or(false);
        if d.operator
            && !d
                .links()
                .iter()
                .any(|l| l.kind == LinkKind::Endpoint && l.name == SUPERVISOR)
        {
            return Err(err(line, ErrorKind::OperatorWithoutEndpoint(name)));
        }
        d.until_full = until_full.unwrap_or(false);
        if let Some(last) = self.domains().last().filter(|l| l.until_full) {
            return Err(err(last.line, ErrorKind::UntilFullNotLast(last.name)));
        }
        // `ranged` bounded it by MAX_INSTANCES, which fits a u32.
        d.count = u32::try_from(count.unwrap_or(1)).unwrap_or(u32::MAX);
        // A function has one holder.
        if d.device.is_some() && (d.count != 1 || d.until_full) {
            return Err(err(line, ErrorKind::DeviceNotSingle(name)));
        }
        if d.pager_name.is_none() && !d.eager {
            return Err(err(line, ErrorKind::NoPager(name)));
        }
        let total = self.instances + d.count as usize;
        if total > MAX_INSTANCES {
            return Err(err(line, ErrorKind::TooManyInstances));
        }
        d.first_instance = self.instances;
        let slot = self
            .domains
            .get_mut(self.n_domains)
            .ok_or(err(line, ErrorKind::TooManyDomains))?;
        *slot = d;
        self.n_domains += 1;
        self.instances = total;
        Ok(())
    }

    /// Resolves `pager=`, `endpoint=` and `notify=` names to indices.
    fn resolve(&mut self) -> Result<(), Error<'a>> {
        for i in 0..self.n_domains {
            let d = self.domains[i];
            let named = d
                .pager_name
                .into_iter()
                .chain(d.links().iter().map(|l| l.name));
            for n in named {
                if self.find(n).is_some_and(|j| self.domains[j].until_full) {
                    return Err(err(d.line, ErrorKind::UntilFullNamed(n)));
                }
            }
            let mut resolved = d;
            if let Some(p) = d.pager_name {
                if p == SUPERVISOR {
                    return Err(err(d.line, ErrorKind::SupervisorPager));
                }
                if p == d.name {
                    return Err(err(d.line, ErrorKind::OwnPager(p)));
                }
                let j = self
                    .find(p)
                    .ok_or(err(d.line, ErrorKind::UnknownDomain(p)))?;
                resolved.pager = Some(j);
            }
            for l in resolved.links.iter_mut().take(d.n_links) {
                l.target = if l.name == SUPERVISOR {
                    Target::Supervisor
                } else {
                    Target::Domain(
                        self.find(l.name)
                            .ok_or(err(d.line, ErrorKind::UnknownDomain(l.name)))?,
                    )
                };
            }
            self.domains[i] = resolved;
        }
        for i in 0..self.n_domains {
            let d = self.domains[i];
            if d.net && self.vnic_of(i).is_none() {
                return Err(err(d.line, ErrorKind::NetWithoutVnic(d.name)));
            }
            if d.swap_idle && !self.is_pager(i) {
                return Err(err(d.line, ErrorKind::SwapIdleNotPager(d.name)));
            }
        }
        Ok(())
    }

    /// The vnic domain `d`'s port is on: its first `endpoint=` to a domain
    /// holding `device=virtio-net` (`None` for a domain without `net=yes`).
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

    /// The index of the domain called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.domains().iter().position(|d| d.name == name)
    }

    /// The domains, in manifest order.
    pub fn domains(&self) -> &[DomainSpec<'a>] {
        self.domains.get(..self.n_domains).unwrap_or(&[])
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
    use std::format;
    use std::string::{String, ToString};

    const EXAMPLE: &str = "\
# domain <name> image=<entry> class=server|guest ...
domain swapper  image=swapper  class=server eager=yes
domain pong     image=pong     class=server pager=swapper restart=yes
domain ping     image=ping     class=guest  pager=swapper endpoint=pong   # a comment
domain idler    image=idler    class=guest  pager=swapper count=1000 frames=3
test-end=ping
";

    fn kind(text: &str) -> ErrorKind<'_> {
        Manifest::parse(text).unwrap_err().kind
    }

    fn line(text: &str) -> usize {
        Manifest::parse(text).unwrap_err().line
    }

    #[test]
    fn parses_the_example() {
        let m = Manifest::parse(EXAMPLE).unwrap();
        let d = m.domains();
        assert_eq!(d.len(), 4);
        assert_eq!(m.instance_count(), 1003);
        assert_eq!(d[0].name, "swapper");
        assert_eq!(
            (d[0].class, d[0].eager, d[0].pager),
            (Class::Server, true, None)
        );
        assert_eq!((d[1].restart, d[1].pager), (true, Some(0)));
        assert_eq!(d[2].class, Class::Guest);
        assert_eq!(
            d[2].links(),
            &[Link {
                kind: LinkKind::Endpoint,
                name: "pong",
                target: Target::Domain(1)
            }]
        );
        assert_eq!((d[3].count, d[3].first_instance, d[3].line), (1000, 3, 5));
        assert_eq!((d[2].frames, d[3].frames), (0, 3));
        assert_eq!(m.test_end, Some(2));
        assert_eq!(m.test_end_after_ms, None);
        assert!(m.is_pager(0) && !m.is_pager(1));
        assert_eq!(Class::Server.create_class(), 0);
        assert_eq!(Class::Guest.create_class(), 1);
    }

    #[test]
    fn names_instances() {
        let m = Manifest::parse(EXAMPLE).unwrap();
        let name = |i| m.instance_name(i).unwrap().to_string();
        assert_eq!(name(0), "swapper");
        assert_eq!(name(2), "ping");
        assert_eq!(name(3), "idler#0");
        assert_eq!(name(1002), "idler#999");
        assert_eq!(m.instance(1002), Some((3, 999)));
        assert_eq!(m.instance(1003), None);
        assert!(m.instance_name(5000).is_none());
    }

    #[test]
    fn forward_references_links_and_defaults() {
        let m = Manifest::parse(
            "domain a image=a class=guest pager=p endpoint=supervisor notify=b endpoint=b\n\
             domain b image=bimg class=server pager=p count=2\n\
             domain p image=swapper class=server eager=yes\n\
             test-end-after-ms=250\n",
        )
        .unwrap();
        let a = m.domains()[0];
        let kinds: std::vec::Vec<_> = a.links().iter().map(|l| (l.kind, l.target)).collect();
        assert_eq!(
            kinds,
            [
                (LinkKind::Endpoint, Target::Supervisor),
                (LinkKind::Notify, Target::Domain(1)),
                (LinkKind::Endpoint, Target::Domain(1)),
            ]
        );
        assert_eq!(
            (a.count, a.restart, a.eager, a.pager),
            (1, false, false, Some(2))
        );
        assert_eq!(m.domains()[1].image, "bimg");
        assert_eq!(m.instance_name(2).unwrap().to_string(), "b#1");
        assert_eq!(m.test_end_after_ms, Some(250));
        assert_eq!(m.test_end, None);
    }

    #[test]
    fn operators() {
        // `operator=yes` may come before the endpoint it needs.
        let m = Manifest::parse(
            "domain ops image=o class=guest eager=yes operator=yes endpoint=supervisor count=2\n\
             domain plain image=p class=guest eager=yes endpoint=supervisor\n\
             domain off image=p class=guest eager=yes operator=no\n",
        )
        .unwrap();
        let ops: std::vec::Vec<bool> = m.domains().iter().map(|d| d.operator).collect();
        assert_eq!(ops, [true, false, false]);
        let e = Manifest::parse("\ndomain a image=a class=guest eager=yes operator=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: bad value `x` for `operator` (yes or no)"
        );
        let e = Manifest::parse("domain a image=a class=guest eager=yes operator=yes").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: `a` is an operator but has no endpoint=supervisor to act through"
        );
    }

    #[test]
    fn empty_and_comment_only() {
        for t in ["", "# serac boot manifest v0\n", "\n   \n\t# x\n"] {
            let m = Manifest::parse(t).unwrap();
            assert_eq!((m.domains().len(), m.instance_count()), (0, 0));
        }
    }

    #[test]
    fn every_error_kind() {
        let ok = "domain s image=s class=server eager=yes\n";
        let with = |extra: &str| format!("{ok}{extra}\n");
        assert_eq!(kind("dom x"), ErrorKind::UnknownDirective("dom"));
        assert_eq!(
            kind("test-ending=x"),
            ErrorKind::UnknownDirective("test-ending=x")
        );
        assert_eq!(kind("domain"), ErrorKind::MissingName);
        assert_eq!(kind("domain a/b image=x"), ErrorKind::BadName("a/b"));
        assert_eq!(
            kind("domain image=x class=guest"),
            ErrorKind::BadName("image=x")
        );
        let long = "n".repeat(NAME_MAX + 1);
        assert_eq!(
            kind(&format!("domain {long} image=x")),
            ErrorKind::BadName(&long)
        );
        assert_eq!(
            kind("domain supervisor image=s class=server eager=yes"),
            ErrorKind::ReservedName("supervisor")
        );
        assert_eq!(
            kind(&with("domain s image=t class=guest eager=yes")),
            ErrorKind::DuplicateName("s")
        );
        assert_eq!(
            kind("domain a image=a class=guest eager"),
            ErrorKind::NotKeyValue("eager")
        );
        assert_eq!(
            kind("domain a image=a colour=red"),
            ErrorKind::UnknownKey("colour")
        );
        assert_eq!(
            kind("domain a image=a image=b"),
            ErrorKind::DuplicateKey("image")
        );
        assert_eq!(
            kind("domain a class=guest class=guest"),
            ErrorKind::DuplicateKey("class")
        );
        assert_eq!(
            kind("domain a count=1 count=2"),
            ErrorKind::DuplicateKey("count")
        );
        assert_eq!(
            kind("domain a eager=no eager=no"),
            ErrorKind::DuplicateKey("eager")
        );
        assert_eq!(
            kind("domain a restart=no restart=no"),
            ErrorKind::DuplicateKey("restart")
        );
        assert_eq!(
            kind("domain a pager=s pager=s"),
            ErrorKind::DuplicateKey("pager")
        );
        assert_eq!(
            kind("domain a frames=1 frames=1"),
            ErrorKind::DuplicateKey("frames")
        );
        assert_eq!(
            kind("domain a frames=257"),
            ErrorKind::OutOfRange {
                key: "frames",
                value: 257,
                max: MAX_GRANT_FRAMES as u64
            }
        );
        assert_eq!(
            kind("domain a frames=0"),
            ErrorKind::OutOfRange {
                key: "frames",
                value: 0,
                max: MAX_GRANT_FRAMES as u64
            }
        );
        assert_eq!(
            kind("domain a until-full=yes until-full=no"),
            ErrorKind::DuplicateKey("until-full")
        );
        assert_eq!(
            kind("domain a until-full=1"),
            ErrorKind::BadYesNo {
                key: "until-full",
                value: "1"
            }
        );
        assert_eq!(
            kind(&with("domain a image=a class=guest eager=yes until-full=yes\ndomain b image=b class=guest eager=yes")),
            ErrorKind::UntilFullNotLast("a")
        );
        assert_eq!(
            kind(&with("domain b image=b class=guest eager=yes notify=a\ndomain a image=a class=guest eager=yes until-full=yes")),
            ErrorKind::UntilFullNamed("a")
        );
        assert_eq!(
            kind("domain a image=a class=server eager=yes until-full=yes\ndomain b image=b class=guest pager=a"),
            ErrorKind::UntilFullNotLast("a")
        );
        let text = with("domain a image=a class=guest eager=yes count=2047 until-full=yes notify=s\ntest-end-after-ms=5");
        let m = Manifest::parse(&text).unwrap();
        assert!(m.domains()[1].until_full && !m.domains()[0].until_full);
        assert_eq!(kind("domain a image="), ErrorKind::EmptyValue("image"));
        assert_eq!(kind("domain a class=kernel"), ErrorKind::BadClass("kernel"));
        assert_eq!(
            kind("domain a eager=true"),
            ErrorKind::BadYesNo {
                key: "eager",
                value: "true"
            }
        );
        assert_eq!(
            kind("domain a restart=1"),
            ErrorKind::BadYesNo {
                key: "restart",
                value: "1"
            }
        );
        assert_eq!(
            kind("domain a operator=maybe"),
            ErrorKind::BadYesNo {
                key: "operator",
                value: "maybe"
            }
        );
        assert_eq!(
            kind("domain a operator=no operator=no"),
            ErrorKind::DuplicateKey("operator")
        );
        assert_eq!(
            kind("domain a image=a class=guest eager=yes operator=yes"),
            ErrorKind::OperatorWithoutEndpoint("a")
        );
        assert_eq!(
            kind(&with(
                "domain a image=a class=guest eager=yes operator=yes endpoint=s"
            )),
            ErrorKind::OperatorWithoutEndpoint("a")
        );
        assert_eq!(
            kind("domain a image=a class=guest eager=yes operator=yes notify=supervisor"),
            ErrorKind::OperatorWithoutEndpoint("a")
        );
        assert_eq!(
            kind("domain a count=-1"),
            ErrorKind::BadNumber {
                key: "count",
                value: "-1"
            }
        );
        assert_eq!(
            kind("domain a count=99999999999999999999999"),
            ErrorKind::BadNumber {
                key: "count",
                value: "99999999999999999999999"
            }
        );
        assert_eq!(
            kind("domain a count=0"),
            ErrorKind::OutOfRange {
                key: "count",
                value: 0,
                max: MAX_INSTANCES as u64
            }
        );
        assert_eq!(
            kind("test-end-after-ms=x1"),
            ErrorKind::BadNumber {
                key: "test-end-after-ms",
                value: "x1"
            }
        );
        assert_eq!(
            kind("test-end-after-ms=86400001"),
            ErrorKind::OutOfRange {
                key: "test-end-after-ms",
                value: 86_400_001,
                max: MAX_TEST_MS
            }
        );
        assert_eq!(
            kind("domain a class=guest eager=yes"),
            ErrorKind::MissingKey("image")
        );
        assert_eq!(
            kind("domain a image=a eager=yes"),
            ErrorKind::MissingKey("class")
        );
        let long_img = "i".repeat(IMAGE_MAX + 1);
        assert_eq!(
            kind(&format!("domain a image={long_img}")),
            ErrorKind::ImageTooLong(&long_img)
        );
        assert_eq!(
            kind(&with("domain a image=a class=guest pager=nobody")),
            ErrorKind::UnknownDomain("nobody")
        );
        assert_eq!(
            kind(&with(
                "domain a image=a class=guest eager=yes endpoint=ghost"
            )),
            ErrorKind::UnknownDomain("ghost")
        );
        assert_eq!(
            kind(&with("domain a image=a class=guest eager=yes notify=ghost")),
            ErrorKind::UnknownDomain("ghost")
        );
        assert_eq!(
            kind(&with("test-end=ghost")),
            ErrorKind::UnknownDomain("ghost")
        );
        assert_eq!(
            kind("domain a image=a class=guest pager=a"),
            ErrorKind::OwnPager("a")
        );
        assert_eq!(
            kind("domain a image=a class=guest pager=supervisor"),
            ErrorKind::SupervisorPager
        );
        assert_eq!(
            kind("domain a image=a class=guest"),
            ErrorKind::NoPager("a")
        );
        assert_eq!(
            kind("domain a image=a class=guest eager=no"),
            ErrorKind::NoPager("a")
        );
        assert_eq!(
            kind(&with("test-end=s\ntest-end=s")),
            ErrorKind::DuplicateTestEnd("test-end")
        );
        assert_eq!(
            kind("test-end-after-ms=1\ntest-end-after-ms=2"),
            ErrorKind::DuplicateTestEnd("test-end-after-ms")
        );
        assert_eq!(kind(&with("test-end=s s")), ErrorKind::Unexpected("s"));
        assert_eq!(kind("test-linger-ms=5"), ErrorKind::LingerWithoutTestEnd);
        assert_eq!(
            kind("domain a image=a class=server eager=yes device=floppy"),
            ErrorKind::BadDevice("floppy")
        );
        assert_eq!(
            kind("domain a image=a class=server eager=yes device=00:20.0"),
            ErrorKind::BadDevice("00:20.0")
        );
        assert_eq!(
            kind("domain a image=a class=server eager=yes count=2 device=virtio-blk"),
            ErrorKind::DeviceNotSingle("a")
        );
        // net=yes needs an endpoint to the vnic (the virtio-net holder).
        assert_eq!(
            kind("domain g image=g class=guest eager=yes net=yes"),
            ErrorKind::NetWithoutVnic("g")
        );
        assert_eq!(
            kind("domain d image=d class=server eager=yes device=virtio-blk\ndomain g image=g class=guest eager=yes endpoint=d net=yes"),
            ErrorKind::NetWithoutVnic("g")
        );
        // swap-idle= is a pager's.
        assert_eq!(
            kind("domain p image=p class=server eager=yes swap-idle=yes"),
            ErrorKind::SwapIdleNotPager("p")
        );
        let m = Manifest::parse(
            "domain p image=p class=server eager=yes swap-idle=yes\ndomain g image=g class=guest pager=p\n",
        )
        .unwrap();
        assert!(m.domains()[0].swap_idle && !m.domains()[1].swap_idle);
        assert_eq!(
            kind("domain g image=g class=guest eager=yes net=maybe"),
            ErrorKind::BadYesNo {
                key: "net",
                value: "maybe"
            }
        );
        let m = Manifest::parse("domain g image=g class=guest eager=yes endpoint=supervisor endpoint=v net=yes count=2\ndomain h image=h class=guest eager=yes endpoint=v\ndomain v image=v class=server eager=yes device=virtio-net\n").unwrap();
        assert_eq!(m.vnic_of(0), Some(2));
        assert!(m.domains()[0].net && !m.domains()[1].net);
        assert_eq!((m.vnic_of(1), m.vnic_of(2)), (None, None));
        let m = Manifest::parse("domain a image=a class=server eager=yes device=01:1f.7\ndomain b image=b class=server eager=yes device=virtio-blk\n").unwrap();
        assert_eq!(m.domains()[0].device, Some(DeviceSel::Bdf(0x1ff)));
        assert!(DeviceSel::Bdf(0x1ff).matches(0x1ff, 1, 2));
        assert!(DeviceSel::VirtioBlk.matches(0x18, 0x1af4, 0x1042));
        assert!(!DeviceSel::VirtioBlk.matches(0x18, 0x1af4, 0x1041));
        assert_eq!(
            kind(&with("test-end=s\ntest-linger-ms=1\ntest-linger-ms=2")),
            ErrorKind::DuplicateTestEnd("test-linger-ms")
        );
        let text = with("test-end=s\ntest-linger-ms=40");
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.test_linger_ms, Some(40));
        assert_eq!(kind("test-end="), ErrorKind::EmptyValue("test-end"));
        assert_eq!(
            Manifest::parse_bytes(b"# ok\n\ndomain \xff").unwrap_err(),
            Error {
                line: 3,
                kind: ErrorKind::NotUtf8
            }
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            line("# c\n\ndomain a image=a class=guest eager=yes\ndomain b"),
            4
        );
        // A bad reference is reported at the line that makes it.
        assert_eq!(
            line("domain s image=s class=server eager=yes\n# c\ndomain a image=a class=guest pager=x\n"),
            3
        );
        assert_eq!(
            line("domain s image=s class=server eager=yes\n\n\ntest-end=x"),
            4
        );
        let e = Manifest::parse("\ndomain a class=kernel").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: bad class `kernel` (server or guest)"
        );
    }

    #[test]
    fn limits() {
        let mut t = String::new();
        for i in 0..MAX_DOMAINS {
            t += &format!("domain d{i} image=x class=guest eager=yes\n");
        }
        let m = Manifest::parse(&t).unwrap();
        assert_eq!(m.domains().len(), MAX_DOMAINS);
        t += "domain one-more image=x class=guest eager=yes\n";
        assert_eq!(
            Manifest::parse(&t).unwrap_err(),
            Error {
                line: MAX_DOMAINS + 1,
                kind: ErrorKind::TooManyDomains
            }
        );

        let max = MAX_INSTANCES;
        let text = format!("domain a image=a class=guest eager=yes count={max}");
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.instance_count(), max);
        assert_eq!(
            m.instance_name(max - 1).unwrap().to_string(),
            format!("a#{}", max - 1)
        );
        let over = format!(
            "domain a image=a class=guest eager=yes count={}\ndomain b image=b class=guest eager=yes count=2",
            max - 1
        );
        assert_eq!(
            Manifest::parse(&over).unwrap_err(),
            Error {
                line: 2,
                kind: ErrorKind::TooManyInstances
            }
        );

        let mut links = String::from(
            "domain s image=s class=server eager=yes\ndomain a image=a class=guest eager=yes",
        );
        for _ in 0..MAX_LINKS {
            links += " endpoint=s";
        }
        assert_eq!(
            Manifest::parse(&links).unwrap().domains()[1].links().len(),
            MAX_LINKS
        );
        links += " notify=s";
        assert_eq!(
            Manifest::parse(&links).unwrap_err(),
            Error {
                line: 2,
                kind: ErrorKind::TooManyLinks
            }
        );
        assert!(Manifest::parse(&format!(
            "domain {} image=x class=guest eager=yes",
            "n".repeat(NAME_MAX)
        ))
        .is_ok());
        assert!(Manifest::parse(&format!(
            "domain a image={} class=guest eager=yes",
            "i".repeat(IMAGE_MAX)
        ))
        .is_ok());
    }

    #[test]
    fn every_message_prints() {
        // Display never panics and mentions the line.
        let bad = [
            "x",
            "domain",
            "domain a!",
            "domain supervisor",
            "domain a image=a image=a",
            "domain a q",
            "domain a z=1",
            "domain a image=",
            "domain a class=x",
            "domain a eager=x",
            "domain a count=x",
            "domain a count=0",
            "domain a image=a class=guest",
            "domain a image=a class=guest pager=a",
            "domain a image=a class=guest pager=supervisor",
            "domain a operator=1",
            "domain a image=a class=guest eager=yes operator=yes",
            "test-end=x",
            "test-end=x y",
        ];
        for t in bad {
            let e = Manifest::parse(t).unwrap_err();
            assert!(e.to_string().starts_with("line 1: "), "{t}: {e}");
        }
    }
}
