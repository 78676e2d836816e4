//! The boot configurations under `configs/` (docs/operating.md, "The
//! manifest"): each `configs/NAME.toml` is read here, its TOML keys typed,
//! checked by the supervisor's own rules
//! ([`serac_supervisor_core::manifest::Manifest::validate`], so the two
//! cannot drift), and packed as the postcard
//! [`serac_protocol::manifest::Manifest`] that the boot archive carries as
//! `manifest`.
//!
//! An error names the file, the line, the domain and the key:
//! `configs/web.toml:12: domain "httpd": key "count": expected an integer
//! from 1 to 1048576`.
//!
//! A test whose manifest depends on a parameter (a count, a test-end time)
//! takes a file and typed [`Override`]s ([`Config::count`],
//! [`Config::test_end_after_ms`]); they replace a value after the TOML is
//! read and before the rules run, so they are checked like the file.

use std::fmt::Write as _;
use std::path::PathBuf;

use serac_protocol::manifest as wire;
use serac_supervisor_core::manifest::{ErrorKind, Manifest};
use toml::de::{DeTable, DeValue};

/// The directory of the configurations, `configs/` at the repository root.
pub fn dir() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .map_or_else(|| crate_dir.clone(), PathBuf::from)
        .join("configs")
}

/// The configurations' names (`configs/*.toml` without `.toml`), sorted.
pub fn names() -> Result<Vec<String>, String> {
    let d = dir();
    let rd = std::fs::read_dir(&d).map_err(|e| format!("read {}: {e}", d.display()))?;
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    v.sort();
    Ok(v)
}

/// A typed change to a configuration, applied before the rules run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Override {
    /// `count` of the named domain.
    Count(String, u64),
    /// The global `test-end-after-ms`.
    TestEndAfterMs(u64),
    /// One more `operator-keys` entry (64 hex digits).
    OperatorKey(String),
}

/// A configuration to boot: `configs/NAME.toml` and its overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file's name without `.toml`.
    pub name: String,
    /// Applied in order.
    pub overrides: Vec<Override>,
}

impl Config {
    /// `configs/NAME.toml` as it is.
    pub fn new(name: impl Into<String>) -> Self {
        Config {
            name: name.into(),
            overrides: Vec::new(),
        }
    }

    /// With domain `domain`'s `count` set to `n`.
    pub fn count(mut self, domain: &str, n: u64) -> Self {
        self.overrides.push(Override::Count(domain.into(), n));
        self
    }

    /// With `test-end-after-ms` set to `ms`.
    pub fn test_end_after_ms(mut self, ms: u64) -> Self {
        self.overrides.push(Override::TestEndAfterMs(ms));
        self
    }

    /// With `key` (an ed25519 public key, 64 hex digits) added to
    /// `operator-keys`.
    pub fn operator_key(mut self, key: &str) -> Self {
        self.overrides.push(Override::OperatorKey(key.into()));
        self
    }

    /// The file, as errors name it (`configs/NAME.toml`).
    pub fn file(&self) -> String {
        format!("configs/{}.toml", self.name)
    }

    /// Reads, checks and packs it: the bytes of the archive entry `manifest`.
    pub fn pack(&self) -> Result<Vec<u8>, String> {
        let path = dir().join(format!("{}.toml", self.name));
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (the configurations are: {})",
                self.file(),
                names().unwrap_or_default().join(", ")
            )
        })?;
        pack(&self.file(), &text, &self.overrides)
    }
}

/// Where each key was: the line of every key of every domain, and of the
/// globals (1-based).
#[derive(Debug, Default)]
struct Lines {
    domains: Vec<(usize, Vec<(&'static str, usize)>)>,
    globals: Vec<(&'static str, usize)>,
}

fn find(keys: &[(&'static str, usize)], key: &str) -> Option<usize> {
    keys.iter().find(|(k, _)| *k == key).map(|&(_, l)| l)
}

/// The domain keys and what each takes.
const DOMAIN_KEYS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("image", Kind::Str),
    ("class", Kind::Str),
    ("count", Kind::Int),
    ("restart", Kind::Bool),
    ("pager", Kind::Str),
    ("eager", Kind::Bool),
    ("operator", Kind::Bool),
    ("frames", Kind::Int),
    ("until-full", Kind::Bool),
    ("endpoint", Kind::Names),
    ("notify", Kind::Names),
    ("device", Kind::Str),
    ("net", Kind::Bool),
    ("swap-idle", Kind::Bool),
    ("push", Kind::Bool),
];

const GLOBAL_KEYS: &[(&str, Kind)] = &[
    ("test-end", Kind::Str),
    ("test-end-after-ms", Kind::Int),
    ("test-linger-ms", Kind::Int),
    ("operator-keys", Kind::Strs),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Names,
    Strs,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Str => "expected a string",
            Kind::Int => "expected an integer",
            Kind::Bool => "expected true or false",
            Kind::Names => "expected a list of domain names",
            Kind::Strs => "expected a list of strings",
        }
    }
}

/// A typed value borrowed from the document.
enum Val<'t> {
    Str(&'t str),
    Int(u64),
    Bool(bool),
    Names(Vec<&'t str>),
}

/// Types `v` as `kind`; `None` when it is something else. A negative
/// integer reads as 0, which every range rejects (they start at 1).
fn typed<'t>(v: &'t DeValue<'_>, kind: Kind) -> Option<Val<'t>> {
    Some(match kind {
        Kind::Str => Val::Str(v.as_str()?),
        Kind::Bool => Val::Bool(v.as_bool()?),
        Kind::Int => {
            let i = v.as_integer()?;
            let n = i64::from_str_radix(i.as_str(), i.radix()).ok()?;
            Val::Int(u64::try_from(n).unwrap_or(0))
        }
        Kind::Names | Kind::Strs => Val::Names(
            v.as_array()?
                .iter()
                .map(|e| e.get_ref().as_str())
                .collect::<Option<Vec<_>>>()?,
        ),
    })
}

/// Checks and packs the TOML `text` of `file` with `overrides`.
pub fn pack(file: &str, text: &str, overrides: &[Override]) -> Result<Vec<u8>, String> {
    let line = |off: usize| 1 + text.get(..off).unwrap_or(text).matches('\n').count();
    let at = |l: usize, what: &dyn std::fmt::Display| {
        if l == 0 {
            format!("{file}: {what}")
        } else {
            format!("{file}:{l}: {what}")
        }
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let l = e.span().map_or(0, |s| line(s.start));
        at(l, &e.message().trim_end())
    })?;
    let mut w = wire::Manifest::default();
    let mut lines = Lines::default();
    for (k, v) in doc.get_ref() {
        let key = k.get_ref().as_ref();
        let kl = line(k.span().start);
        if key == "domain" {
            let tables = v
                .get_ref()
                .as_array()
                .filter(|a| a.iter().all(|t| t.get_ref().is_table()))
                .ok_or_else(|| at(kl, &"key \"domain\": expected [[domain]] tables"))?;
            for (i, t) in tables.iter().enumerate() {
                let n = t.span().start;
                // The table's span starts at its first key: its header is
                // the line before it, or the `[[domain]]` before that.
                let header = text
                    .get(..n)
                    .and_then(|b| b.rfind("[[domain]]"))
                    .map_or(line(n), line);
                let table = t
                    .get_ref()
                    .as_table()
                    .ok_or_else(|| at(kl, &"expected a table"))?;
                let (d, keys) = domain(i, table, header, &line, &at)?;
                if w.domains.push(d).is_err() {
                    return Err(at(header, &ErrorKind::TooManyDomains));
                }
                lines.domains.push((header, keys));
            }
            continue;
        }
        let Some(&(name, kind)) = GLOBAL_KEYS.iter().find(|(n, _)| *n == key) else {
            return Err(at(
                kl,
                &format!("unknown key \"{key}\" (expected [[domain]], test-end, test-end-after-ms, test-linger-ms or operator-keys)"),
            ));
        };
        let val = typed(v.get_ref(), kind).ok_or_else(|| {
            at(
                line(v.span().start),
                &format!("key \"{name}\": {}", kind.expected()),
            )
        })?;
        lines.globals.push((name, line(v.span().start)));
        match val {
            Val::Str(s) => w.test_end = Some(s),
            Val::Int(n) if name == "test-end-after-ms" => w.test_end_after_ms = Some(n),
            Val::Int(n) => w.test_linger_ms = Some(n),
            Val::Names(keys) => {
                for k in keys {
                    w.operator_keys.push(k).map_err(|_| {
                        at(
                            line(v.span().start),
                            &format!("key \"{name}\": {}", ErrorKind::TooManyKeys),
                        )
                    })?;
                }
            }
            Val::Bool(_) => {}
        }
    }
    for o in overrides {
        match o {
            Override::Count(d, n) => {
                let dom = w
                    .domains
                    .iter_mut()
                    .find(|x| x.name == Some(d.as_str()))
                    .ok_or_else(|| at(0, &format!("override: no domain \"{d}\"")))?;
                dom.count = Some(*n);
            }
            Override::TestEndAfterMs(ms) => w.test_end_after_ms = Some(*ms),
            Override::OperatorKey(k) => w
                .operator_keys
                .push(k.as_str())
                .map_err(|_| at(0, &format!("override: {}", ErrorKind::TooManyKeys)))?,
        }
    }
    if let Err(e) = Manifest::validate(&w) {
        let l = match e.domain {
            Some(i) => lines.domains.get(i).map_or(0, |(h, keys)| {
                e.key.and_then(|k| find(keys, k)).unwrap_or(*h)
            }),
            None => e.key.and_then(|k| find(&lines.globals, k)).unwrap_or(0),
        };
        return Err(at(l, &e.what()));
    }
    postcard::to_allocvec(&w).map_err(|e| at(0, &format!("cannot encode: {e}")))
}

type KeyLines = Vec<(&'static str, usize)>;

/// One `[[domain]]` table (the `i`th, whose header is on line `header`).
fn domain<'t>(
    i: usize,
    table: &'t DeTable<'_>,
    header: usize,
    line: &dyn Fn(usize) -> usize,
    at: &dyn Fn(usize, &dyn std::fmt::Display) -> String,
) -> Result<(wire::Domain<'t>, KeyLines), String> {
    let who = table
        .get("name")
        .and_then(|v| v.get_ref().as_str())
        .map_or_else(
            || format!("domain #{}", i + 1),
            |n| format!("domain \"{n}\""),
        );
    let mut d = wire::Domain {
        line: u32::try_from(header).unwrap_or(0),
        ..wire::Domain::default()
    };
    let mut keys = Vec::new();
    for (k, v) in table {
        let key: &str = k.get_ref().as_ref();
        let kl = line(k.span().start);
        let Some(&(name, kind)) = DOMAIN_KEYS.iter().find(|(n, _)| *n == key) else {
            let mut all = String::new();
            for (n, _) in DOMAIN_KEYS {
                let _ = write!(all, "{}{n}", if all.is_empty() { "" } else { ", " });
            }
            if GLOBAL_KEYS.iter().any(|(n, _)| *n == key) {
                all = "them before the first [[domain]]".into();
                return Err(at(
                    kl,
                    &format!("{who}: unknown key \"{key}\" (a global: put {all})"),
                ));
            }
            return Err(at(
                kl,
                &format!("{who}: unknown key \"{key}\" (expected one of {all})"),
            ));
        };
        keys.push((name, kl));
        let val: Val<'t> = typed(v.get_ref(), kind)
            .ok_or_else(|| at(kl, &format!("{who}: key \"{name}\": {}", kind.expected())))?;
        match (name, val) {
            ("name", Val::Str(s)) => d.name = Some(s),
            ("image", Val::Str(s)) => d.image = Some(s),
            ("class", Val::Str(s)) => d.class = Some(s),
            ("pager", Val::Str(s)) => d.pager = Some(s),
            ("device", Val::Str(s)) => d.device = Some(s),
            ("count", Val::Int(n)) => d.count = Some(n),
            ("frames", Val::Int(n)) => d.frames = Some(n),
            ("restart", Val::Bool(b)) => d.restart = Some(b),
            ("eager", Val::Bool(b)) => d.eager = Some(b),
            ("operator", Val::Bool(b)) => d.operator = Some(b),
            ("until-full", Val::Bool(b)) => d.until_full = Some(b),
            ("net", Val::Bool(b)) => d.net = Some(b),
            ("swap-idle", Val::Bool(b)) => d.swap_idle = Some(b),
            ("push", Val::Bool(b)) => d.push = Some(b),
            (list, Val::Names(names)) => {
                let dest = if list == "endpoint" {
                    &mut d.endpoint
                } else {
                    &mut d.notify
                };
                for n in names {
                    dest.push(n).map_err(|_| {
                        at(
                            kl,
                            &format!("{who}: key \"{list}\": {}", ErrorKind::TooManyLinks),
                        )
                    })?;
                }
            }
            _ => {}
        }
    }
    Ok((d, keys))
}
