//! `cargo xtask swap-sim`: replays page-access traces through the swapper's
//! replacement policies (`serac_pager_policy::replace`) and reports what
//! they would cost.
//!
//! The simulator plays the swapper and the hardware: it keeps the x86
//! accessed and dirty bits of every resident page, harvests them into the
//! policy every `--harvest` accesses and before every eviction, carries out
//! the victims (a write-back is synchronous here) and checks the policy
//! against the truth as it goes: a policy that frees a dirty page or a
//! page it did not hold is reported as broken, not measured.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serac_pager_policy::replace::{
    Action, Bits, Config, Fifo, Page, Replacement, TwoQ, Victims, WsClock,
};
use serac_protocol::DomainId;

use crate::util::{Failure, Result};

/// Bytes in a page.
const PAGE: u64 = 4096;
/// The first line of a trace file.
pub const TRACE_MAGIC: &str = "serac-swap-trace 1";
/// Policies `--policy all` runs.
pub const POLICIES: [&str; 3] = ["wsclock", "2q", "fifo"];

/// `cargo xtask swap-sim --help`.
pub const HELP: &str = "\
cargo xtask swap-sim: replay page-access traces through the swapper's policies.

Usage: cargo xtask swap-sim [OPTIONS]

Trace (one of):
  --zipf ALPHA      Requests pick a domain by Zipf(ALPHA) (default, 0.8)
  --uniform         Requests pick a domain uniformly
  --trace FILE      Replay a recorded trace file (format below)
  --disk-trace IMG  Replay the faults a real run's swapper recorded on its
                    disk `swapper` (kind Disk) in the Serac disk image IMG
Synthetic trace shape (ignored with --trace):
  --domains N       Domains (default 200)
  --pages N         Pages in each domain's working set (default 16)
  --requests N      Requests (default 100000)
  --touch N         Pages a request touches, uniform in its domain's set (default 4)
  --writes P        Fraction of touches that store (default 0.25)
  --seed N          Seed of the generator (default 1)
  --write-trace F   Also write the trace (synthetic or from a disk) to F in
                    the file format
Memory and policy:
  --frames N        Frame budget (default 1024)
  --policy LIST     Comma-separated: wsclock, 2q, fifo, or all (default wsclock,2q)
  --tau T           WSClock's working-set window in clock units
                    (default: frames / touch, the requests it takes to fill memory)
  --idle-after T    Swap out domains idle for T clock units (default 0: never)
  --harvest N       Harvest the accessed/dirty bits every N accesses (default 32)
Cost model `flat` (nothing overlaps):
  --cpu-us N        Microseconds of work per access (default 10)
  --read-us N       Microseconds per page read from swap (default 100)
  --write-us N      Microseconds per page written back (default 100)
Output:
  --json            One JSON object per policy run, in a JSON array
  --svg FILE        Also sweep the frame budget (1/16 .. 16/16 of the pages
                    the trace touches) and plot fault rate against frames

The clock advances one unit per request (synthetic) or as the trace file
says. Reported per policy: accesses, faults (zero-fills of pages never
written plus page-ins from swap), fault rate, write-backs, bytes moved
(4 KiB per page-in or write-back), domain swap-ins (a fault by a domain
with no resident page that was resident before), swap-ins per second and
page-ins per second of simulated time under the cost model, and the
policy's metadata bytes.

Trace file: text, UTF-8. The first non-comment line is
`serac-swap-trace 1`; then one access per line, `TIME DOMAIN VPN r|w`:
TIME a non-decreasing clock value (u64), DOMAIN a domain index (u32), VPN
a virtual page number (decimal, or hex with 0x). `#` starts a comment;
blank lines are skipped. docs/swap-server.md has an example.
";

/// Where accesses come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Domains by Zipf(alpha).
    Zipf(f64),
    /// Domains uniformly.
    Uniform,
    /// A trace file.
    File(PathBuf),
    /// The faults a real run's swapper recorded on its disk `swapper`, in
    /// this Serac disk image.
    Disk(PathBuf),
}

/// The cost model `flat`: every access, read and write costs its time,
/// one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Per access.
    pub cpu_us: u64,
    /// Per page read from swap.
    pub read_us: u64,
    /// Per page written back.
    pub write_us: u64,
}

/// The options.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    /// The trace.
    pub source: Source,
    /// Domains.
    pub domains: u32,
    /// Pages per domain.
    pub pages: u64,
    /// Requests.
    pub requests: u64,
    /// Pages per request.
    pub touch: u32,
    /// Fraction of stores.
    pub writes: f64,
    /// Generator seed.
    pub seed: u64,
    /// Frame budget.
    pub frames: usize,
    /// Policies to run.
    pub policies: Vec<String>,
    /// WSClock's tau.
    pub tau: Option<u64>,
    /// Idle period.
    pub idle_after: u64,
    /// Harvest period in accesses.
    pub harvest: u64,
    /// Costs.
    pub cost: Cost,
    /// JSON output.
    pub json: bool,
    /// Plot file.
    pub svg: Option<PathBuf>,
    /// Where to write the synthetic trace.
    pub write_trace: Option<PathBuf>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            source: Source::Zipf(0.8),
            domains: 200,
            pages: 16,
            requests: 100_000,
            touch: 4,
            writes: 0.25,
            seed: 1,
            frames: 1024,
            policies: vec!["wsclock".into(), "2q".into()],
            tau: None,
            idle_after: 0,
            harvest: 32,
            cost: Cost {
                cpu_us: 10,
                read_us: 100,
                write_us: 100,
            },
            json: false,
            svg: None,
            write_trace: None,
        }
    }
}

fn num<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> std::result::Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse()
        .map_err(|_| format!("{flag}: `{v}` is not a valid number"))
}

/// Parses `swap-sim`'s options.
pub fn parse(rest: &[String]) -> std::result::Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--zipf" => o.source = Source::Zipf(num("--zipf", it.next())?),
            "--uniform" => o.source = Source::Uniform,
            "--trace" => {
                o.source = Source::File(it.next().ok_or("--trace needs a file")?.into());
            }
            "--disk-trace" => {
                o.source = Source::Disk(it.next().ok_or("--disk-trace needs a disk image")?.into());
            }
            "--domains" => o.domains = num("--domains", it.next())?,
            "--pages" => o.pages = num("--pages", it.next())?,
            "--requests" => o.requests = num("--requests", it.next())?,
            "--touch" => o.touch = num("--touch", it.next())?,
            "--writes" => o.writes = num("--writes", it.next())?,
            "--seed" => o.seed = num("--seed", it.next())?,
            "--frames" => o.frames = num("--frames", it.next())?,
            "--tau" => o.tau = Some(num("--tau", it.next())?),
            "--idle-after" => o.idle_after = num("--idle-after", it.next())?,
            "--harvest" => o.harvest = num("--harvest", it.next())?,
            "--cpu-us" => o.cost.cpu_us = num("--cpu-us", it.next())?,
            "--read-us" => o.cost.read_us = num("--read-us", it.next())?,
            "--write-us" => o.cost.write_us = num("--write-us", it.next())?,
            "--json" => o.json = true,
            "--svg" => o.svg = Some(it.next().ok_or("--svg needs a file")?.into()),
            "--write-trace" => {
                o.write_trace = Some(it.next().ok_or("--write-trace needs a file")?.into());
            }
            "--policy" => {
                let v = it.next().ok_or("--policy needs a list")?;
                o.policies = if v == "all" {
                    POLICIES.iter().map(|s| (*s).to_owned()).collect()
                } else {
                    v.split(',').map(str::to_owned).collect()
                };
                if let Some(bad) = o.policies.iter().find(|p| !POLICIES.contains(&p.as_str())) {
                    return Err(format!(
                        "--policy: no policy `{bad}` (there are {})",
                        POLICIES.join(", ")
                    ));
                }
            }
            other => return Err(format!("`swap-sim`: unknown option `{other}`")),
        }
    }
    if o.domains == 0 || o.pages == 0 || o.touch == 0 || o.harvest == 0 || o.frames == 0 {
        return Err("--domains, --pages, --touch, --harvest and --frames must be positive".into());
    }
    if !(0.0..=1.0).contains(&o.writes) {
        return Err("--writes is a fraction between 0 and 1".into());
    }
    if let Source::Zipf(a) = o.source {
        if !a.is_finite() || a < 0.0 {
            return Err("--zipf takes a finite alpha >= 0".into());
        }
    }
    Ok(o)
}

/// One page access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Clock value.
    pub time: u64,
    /// Domain index.
    pub domain: u32,
    /// Virtual page number.
    pub vpn: u64,
    /// A store.
    pub write: bool,
}

/// splitmix64: small, and the same stream on every platform and version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    #[allow(clippy::cast_precision_loss, reason = "53 bits fit an f64")]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: no modulo bias worth the name for n << 2^64.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The synthetic trace as an iterator.
#[derive(Debug)]
pub struct Synthetic {
    rng: Rng,
    /// Cumulative weights of the domains (Zipf), or empty (uniform).
    cdf: Vec<f64>,
    opts: Opts,
    request: u64,
    domain: u32,
    left: u32,
}

impl Synthetic {
    /// The trace `o` describes (`o.source` must not be a file).
    pub fn new(o: &Opts) -> Synthetic {
        let mut cdf = Vec::new();
        if let Source::Zipf(alpha) = o.source {
            let mut sum = 0.0;
            for k in 1..=o.domains {
                sum += 1.0 / f64::from(k).powf(alpha);
                cdf.push(sum);
            }
            for c in &mut cdf {
                *c /= sum;
            }
        }
        Synthetic {
            rng: Rng::new(o.seed),
            cdf,
            opts: o.clone(),
            request: 0,
            domain: 0,
            left: 0,
        }
    }
}

impl Iterator for Synthetic {
    type Item = Access;
    fn next(&mut self) -> Option<Access> {
        if self.left == 0 {
            if self.request >= self.opts.requests {
                return None;
            }
            self.request += 1;
            self.left = self.opts.touch;
            self.domain = if self.cdf.is_empty() {
                u32::try_from(self.rng.below(u64::from(self.opts.domains))).unwrap_or(0)
            } else {
                let u = self.rng.unit();
                let i = self.cdf.partition_point(|&c| c <= u);
                u32::try_from(i.min(self.cdf.len() - 1)).unwrap_or(0)
            };
        }
        self.left -= 1;
        Some(Access {
            time: self.request - 1,
            domain: self.domain,
            vpn: self.rng.below(self.opts.pages),
            write: self.rng.unit() < self.opts.writes,
        })
    }
}

/// Parses a trace file's text; errors name the line.
pub fn parse_trace(text: &str) -> Result<Vec<Access>> {
    let mut out = Vec::new();
    let mut header = false;
    let mut last = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |what: &str| Failure(format!("trace line {}: {what}: `{line}`", n + 1));
        if !header {
            if line != TRACE_MAGIC {
                return Err(at(&format!("expected `{TRACE_MAGIC}` first")));
            }
            header = true;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [time, domain, vpn, rw] = f[..] else {
            return Err(at("expected `TIME DOMAIN VPN r|w`"));
        };
        let time: u64 = time.parse().map_err(|_| at("bad TIME"))?;
        if time < last {
            return Err(at("TIME goes back"));
        }
        last = time;
        let domain: u32 = domain.parse().map_err(|_| at("bad DOMAIN"))?;
        let vpn = match vpn.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => vpn.parse(),
        }
        .map_err(|_| at("bad VPN"))?;
        let write = match rw {
            "r" => false,
            "w" => true,
            _ => return Err(at("the access is r or w")),
        };
        out.push(Access {
            time,
            domain,
            vpn,
            write,
        });
    }
    if !header {
        return Err(Failure(format!("trace: no `{TRACE_MAGIC}` line")));
    }
    Ok(out)
}

/// Writes accesses in the trace file format.
pub fn format_trace(accesses: impl Iterator<Item = Access>) -> String {
    let mut s = format!("{TRACE_MAGIC}\n# TIME DOMAIN VPN r|w\n");
    for a in accesses {
        let _ = writeln!(
            s,
            "{} {} {} {}",
            a.time,
            a.domain,
            a.vpn,
            if a.write { 'w' } else { 'r' }
        );
    }
    s
}

/// The faults a swapper recorded on its disk `swapper` (kind Disk) in the
/// Serac disk image at `path` (`servers/swapper`'s `Tracer`): 16-byte
/// records (ms since boot + 1, domain index, vpn with bit 63 for a
/// store), in order, ending at the first all-zero record.
pub fn disk_trace(path: &Path) -> Result<Vec<Access>> {
    let e = crate::disk::find_extent(path, serac_disk_core::Kind::Disk, "swapper")?;
    let bytes =
        std::fs::read(path).map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    parse_disk_trace(&bytes, e.start, e.blocks)
}

/// The records of a trace extent of `blocks` from block `start` of `disk`.
pub fn parse_disk_trace(disk: &[u8], start: u64, blocks: u64) -> Result<Vec<Access>> {
    let mut out = Vec::new();
    let mut last = 0u64;
    for b in 0..blocks {
        let at = usize::try_from((start + b) * PAGE).map_err(|_| Failure("too big".into()))?;
        let Some(block) = disk.get(at..at + PAGE as usize) else {
            return Err(Failure("the trace extent runs past the image".into()));
        };
        for r in block.chunks_exact(16) {
            let ms = u64::from(u32::from_le_bytes([r[0], r[1], r[2], r[3]]));
            if ms == 0 {
                return Ok(out);
            }
            let domain = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
            let v = u64::from_le_bytes([r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]]);
            // The clock never runs back; a record that does is not one.
            if ms < last {
                return Err(Failure(format!(
                    "trace record {} runs back in time",
                    out.len()
                )));
            }
            last = ms;
            out.push(Access {
                time: ms,
                domain,
                vpn: v & !(1 << 63),
                write: v >> 63 == 1,
            });
        }
    }
    Ok(out)
}

/// What one run cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The policy.
    pub policy: String,
    /// Frame budget.
    pub frames: usize,
    /// Accesses replayed.
    pub accesses: u64,
    /// Faults on pages that were not resident.
    pub faults: u64,
    /// Of those, pages never written before (zero-filled, no read).
    pub zero_fills: u64,
    /// Of those, pages read back from swap.
    pub page_ins: u64,
    /// Pages written back.
    pub write_backs: u64,
    /// Faults by a domain with no resident page that had been resident.
    pub domain_swap_ins: u64,
    /// Domains swapped out whole for being idle.
    pub domain_swap_outs: u64,
    /// Simulated microseconds under the cost model.
    pub sim_us: u64,
    /// The policy's metadata.
    pub metadata_bytes: usize,
}

impl Report {
    /// Faults per access.
    #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
    pub fn fault_rate(&self) -> f64 {
        if self.accesses == 0 {
            0.0
        } else {
            self.faults as f64 / self.accesses as f64
        }
    }
    /// Bytes read and written.
    pub fn bytes_moved(&self) -> u64 {
        (self.page_ins + self.write_backs) * PAGE
    }
    #[allow(clippy::cast_precision_loss, reason = "a ratio for people")]
    fn per_s(&self, n: u64) -> f64 {
        if self.sim_us == 0 {
            0.0
        } else {
            n as f64 * 1e6 / self.sim_us as f64
        }
    }
    /// Domain swap-ins per simulated second.
    pub fn swap_ins_per_s(&self) -> f64 {
        self.per_s(self.domain_swap_ins)
    }
    /// Page-ins per simulated second.
    pub fn page_ins_per_s(&self) -> f64 {
        self.per_s(self.page_ins)
    }
}

/// A policy by name.
pub fn policy(name: &str, cfg: Config, tau: u64) -> Result<Box<dyn Replacement>> {
    let p: Box<dyn Replacement> = match name {
        "wsclock" => Box::new(WsClock::new(cfg, tau).map_err(|e| Failure(format!("{e:?}")))?),
        "2q" => Box::new(TwoQ::new(cfg).map_err(|e| Failure(format!("{e:?}")))?),
        "fifo" => Box::new(Fifo::new(cfg).map_err(|e| Failure(format!("{e:?}")))?),
        other => return Err(Failure(format!("no policy `{other}`"))),
    };
    Ok(p)
}

#[derive(Debug, Default, Clone, Copy)]
struct Hw {
    referenced: bool,
    dirty: bool,
    /// Holds data the swap area does not.
    unsaved: bool,
    /// On the to-harvest list.
    pending: bool,
}

/// The swapper and the hardware around one policy.
struct Sim<'a> {
    p: &'a mut dyn Replacement,
    frames: usize,
    cost: Cost,
    resident: HashMap<Page, Hw>,
    per_domain: HashMap<DomainId, usize>,
    pending: Vec<Page>,
    on_disk: HashSet<Page>,
    seen: HashSet<DomainId>,
    out: Victims,
    idle: Vec<DomainId>,
    r: Report,
}

fn page_of(a: &Access) -> Page {
    // Generation 1: every trace domain is live once.
    Page::new(DomainId::new(a.domain, 1), a.vpn)
}

impl Sim<'_> {
    fn broken(&self, what: &str) -> Failure {
        Failure(format!(
            "swap-sim: policy {} is broken: {what}",
            self.p.name()
        ))
    }

    fn harvest(&mut self) {
        for page in std::mem::take(&mut self.pending) {
            if let Some(hw) = self.resident.get_mut(&page) {
                self.p.harvest(
                    page,
                    Bits {
                        referenced: hw.referenced,
                        dirty: hw.dirty,
                    },
                );
                *hw = Hw {
                    unsaved: hw.unsaved,
                    ..Hw::default()
                };
            }
        }
    }

    /// Carries out the victims in `self.out`; returns the pages freed.
    fn apply(&mut self) -> Result<usize> {
        let mut freed = 0;
        let victims: Vec<_> = self.out.as_slice().to_vec();
        for v in victims {
            let Some(hw) = self.resident.get(&v.page).copied() else {
                return Err(self.broken(&format!("victim {:?} is not resident", v.page)));
            };
            match v.action {
                Action::Free => {
                    if hw.unsaved {
                        return Err(self.broken(&format!("dropped dirty {:?}", v.page)));
                    }
                    self.resident.remove(&v.page);
                    if let Some(n) = self.per_domain.get_mut(&v.page.domain) {
                        *n -= 1;
                    }
                    freed += 1;
                }
                Action::WriteBack => {
                    self.r.write_backs += 1;
                    self.r.sim_us += self.cost.write_us;
                    self.on_disk.insert(v.page);
                    // The swapper copies the page with CopyFrame, which
                    // takes its use bits: a write-back leaves it clean.
                    if let Some(hw) = self.resident.get_mut(&v.page) {
                        hw.unsaved = false;
                        hw.dirty = false;
                    }
                    self.p.written(v.page);
                }
            }
        }
        self.out.clear();
        Ok(freed)
    }

    fn make_room(&mut self) -> Result {
        for _ in 0..8 {
            if self.resident.len() < self.frames {
                return Ok(());
            }
            self.harvest();
            self.p.evict(1, &mut self.out);
            self.apply()?;
        }
        Err(self.broken("no frame after 8 evictions"))
    }

    fn swap_out_idle(&mut self) -> Result {
        self.idle.clear();
        self.p.idle_domains(&mut self.idle);
        for d in std::mem::take(&mut self.idle) {
            self.harvest();
            for _ in 0..4 {
                self.p.swap_out(d, &mut self.out);
                if self.out.is_empty() {
                    break;
                }
                self.apply()?;
            }
            if self.per_domain.get(&d).copied().unwrap_or(0) != 0 {
                return Err(self.broken(&format!("{d:?} not swapped out whole")));
            }
            self.r.domain_swap_outs += 1;
        }
        Ok(())
    }

    fn access(&mut self, a: &Access) -> Result {
        let page = page_of(a);
        self.r.accesses += 1;
        self.r.sim_us += self.cost.cpu_us;
        self.p.tick(a.time);
        if !self.resident.contains_key(&page) {
            if self.frames == 0 {
                return Err(Failure("swap-sim: --frames must be positive".into()));
            }
            self.r.faults += 1;
            let here = self.per_domain.get(&page.domain).copied().unwrap_or(0);
            if here == 0 && self.seen.contains(&page.domain) {
                self.r.domain_swap_ins += 1;
            }
            self.seen.insert(page.domain);
            self.make_room()?;
            self.p
                .fault(page, a.write)
                .map_err(|e| self.broken(&format!("fault refused after eviction: {e:?}")))?;
            if self.on_disk.contains(&page) {
                self.r.page_ins += 1;
                self.r.sim_us += self.cost.read_us;
            } else {
                self.r.zero_fills += 1;
            }
            self.resident.insert(page, Hw::default());
            *self.per_domain.entry(page.domain).or_default() += 1;
        }
        let hw = self.resident.entry(page).or_default();
        hw.referenced = true;
        hw.dirty |= a.write;
        hw.unsaved |= a.write;
        if !hw.pending {
            hw.pending = true;
            self.pending.push(page);
        }
        Ok(())
    }
}

/// Replays `trace` through `p`.
pub fn simulate(
    p: &mut dyn Replacement,
    trace: impl Iterator<Item = Access>,
    harvest: u64,
    idle: bool,
    cost: Cost,
) -> Result<Report> {
    let frames = p.capacity();
    let name = p.name().to_owned();
    let mut sim = Sim {
        p,
        frames,
        cost,
        resident: HashMap::new(),
        per_domain: HashMap::new(),
        pending: Vec::new(),
        on_disk: HashSet::new(),
        seen: HashSet::new(),
        out: Victims::with_capacity(64).map_err(|_| Failure("out of memory".into()))?,
        idle: Vec::with_capacity(64),
        r: Report {
            policy: name,
            frames,
            ..Report::default()
        },
    };
    for a in trace {
        sim.access(&a)?;
        if sim.r.accesses.is_multiple_of(harvest.max(1)) {
            sim.harvest();
            if idle {
                sim.swap_out_idle()?;
            }
        }
    }
    if sim.p.resident() != sim.resident.len() {
        return Err(sim.broken("its resident count disagrees with the simulator's"));
    }
    sim.r.metadata_bytes = sim.p.metadata_bytes();
    Ok(sim.r)
}

/// The trace `o` names, as a list (file) or a generator (synthetic).
fn trace<'a>(o: &Opts, file: Option<&'a [Access]>) -> Box<dyn Iterator<Item = Access> + 'a> {
    match file {
        Some(t) => Box::new(t.iter().copied()),
        None => Box::new(Synthetic::new(o)),
    }
}

/// One run of every policy at `frames`.
pub fn run_all(o: &Opts, file: Option<&[Access]>, frames: usize) -> Result<Vec<Report>> {
    let tau = o.tau.unwrap_or((frames / o.touch.max(1) as usize) as u64);
    let cfg = Config {
        frames,
        idle_after: o.idle_after,
    };
    o.policies
        .iter()
        .map(|name| {
            let mut p = policy(name, cfg, tau)?;
            simulate(
                p.as_mut(),
                trace(o, file),
                o.harvest,
                o.idle_after > 0,
                o.cost,
            )
        })
        .collect()
}

fn json(r: &Report, o: &Opts) -> String {
    let trace = match &o.source {
        Source::Zipf(a) => format!("zipf({a})"),
        Source::Uniform => "uniform".into(),
        Source::File(p) => format!("file {}", p.display()).replace(['"', '\\'], "_"),
        Source::Disk(p) => format!("disk trace {}", p.display()).replace(['"', '\\'], "_"),
    };
    format!(
        "{{\"policy\": \"{}\", \"trace\": \"{trace}\", \"frames\": {}, \"accesses\": {}, \"faults\": {}, \
         \"fault_rate\": {:.6}, \"zero_fills\": {}, \"page_ins\": {}, \"write_backs\": {}, \
         \"bytes_moved\": {}, \"domain_swap_ins\": {}, \"domain_swap_outs\": {}, \"sim_us\": {}, \
         \"swap_ins_per_s\": {:.3}, \"page_ins_per_s\": {:.3}, \"metadata_bytes\": {}, \
         \"cost_model\": \"flat: {} us per access, {} us per page read, {} us per page written, serial\"}}",
        r.policy,
        r.frames,
        r.accesses,
        r.faults,
        r.fault_rate(),
        r.zero_fills,
        r.page_ins,
        r.write_backs,
        r.bytes_moved(),
        r.domain_swap_ins,
        r.domain_swap_outs,
        r.sim_us,
        r.swap_ins_per_s(),
        r.page_ins_per_s(),
        r.metadata_bytes,
        o.cost.cpu_us,
        o.cost.read_us,
        o.cost.write_us,
    )
}

/// `cargo xtask swap-sim`.
pub fn swap_sim(o: &Opts, cwd: &Path) -> Result<ExitCode> {
    let file = match &o.source {
        Source::File(p) => {
            let p = cwd.join(p);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| Failure(format!("cannot read {}: {e}", p.display())))?;
            Some(parse_trace(&text)?)
        }
        Source::Disk(p) => {
            let t = disk_trace(&cwd.join(p))?;
            eprintln!(
                "swap-sim: {} faults recorded by the swapper in {}",
                t.len(),
                p.display()
            );
            Some(t)
        }
        _ => None,
    };
    if let Some(w) = &o.write_trace {
        let w = cwd.join(w);
        let text = match &file {
            Some(t) => format_trace(t.iter().copied()),
            None => format_trace(Synthetic::new(o)),
        };
        std::fs::write(&w, text)
            .map_err(|e| Failure(format!("cannot write {}: {e}", w.display())))?;
    }
    let reports = run_all(o, file.as_deref(), o.frames)?;
    if o.json {
        let rows: Vec<String> = reports.iter().map(|r| json(r, o)).collect();
        println!("[{}]", rows.join(",\n "));
    } else {
        println!(
            "| policy | frames | accesses | fault rate | zero-fills | page-ins | write-backs | MiB moved | domain swap-ins | swap-ins/s | page-ins/s | metadata B/frame |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &reports {
            println!(
                "| {} | {} | {} | {:.4} | {} | {} | {} | {:.1} | {} | {:.1} | {:.1} | {} |",
                r.policy,
                r.frames,
                r.accesses,
                r.fault_rate(),
                r.zero_fills,
                r.page_ins,
                r.write_backs,
                r.bytes_moved() as f64 / f64::from(1u32 << 20),
                r.domain_swap_ins,
                r.swap_ins_per_s(),
                r.page_ins_per_s(),
                r.metadata_bytes / r.frames.max(1),
            );
        }
        println!(
            "cost model flat: {} us per access, {} us per page read, {} us per page written, nothing overlapped",
            o.cost.cpu_us, o.cost.read_us, o.cost.write_us
        );
    }
    if let Some(svg) = &o.svg {
        let total = match &file {
            Some(t) => t.iter().map(page_of).collect::<HashSet<_>>().len(),
            None => o.domains as usize * o.pages as usize,
        };
        let mut curves: Vec<(String, Vec<(usize, f64)>)> =
            o.policies.iter().map(|p| (p.clone(), Vec::new())).collect();
        for k in 1..=16 {
            let frames = (total * k / 16).max(1);
            for (c, r) in curves.iter_mut().zip(run_all(o, file.as_deref(), frames)?) {
                c.1.push((frames, r.fault_rate()));
            }
        }
        let path = cwd.join(svg);
        crate::swap_plot::plot(&path, &curves)?;
        eprintln!("swap-sim: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const COST: Cost = Cost {
        cpu_us: 10,
        read_us: 100,
        write_us: 100,
    };

    #[test]
    fn disk_trace_records_end_at_zeros_and_keep_order() {
        let mut disk = vec![0u8; 3 * 4096];
        let rec = |ms: u32, d: u32, vpn: u64, w: bool| {
            let mut r = Vec::new();
            r.extend_from_slice(&ms.to_le_bytes());
            r.extend_from_slice(&d.to_le_bytes());
            r.extend_from_slice(&(vpn | u64::from(w) << 63).to_le_bytes());
            r
        };
        // The extent starts at block 1; a second block carries on.
        let mut at = 4096;
        for (i, r) in [rec(5, 3, 0x400, true), rec(5, 4, 0x401, false)]
            .iter()
            .enumerate()
        {
            disk[at + i * 16..at + i * 16 + 16].copy_from_slice(r);
        }
        at = 4096 + 4096 - 16;
        disk[at..at + 16].copy_from_slice(&rec(7, 3, 0x402, false));
        disk[8192..8208].copy_from_slice(&rec(9, 5, 0x9, true));
        // Block 1 has zeros between its records: the reader stops there.
        let t = parse_disk_trace(&disk, 1, 2).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].time, t[0].domain, t[0].vpn, t[0].write),
            (5, 3, 0x400, true)
        );
        assert!(!t[1].write);
        // A record that runs back in time is refused.
        disk[4096 + 16..4096 + 32].copy_from_slice(&rec(2, 4, 0x401, false));
        assert!(parse_disk_trace(&disk, 1, 2).is_err());
        // An extent past the image is an error, not a panic.
        assert!(parse_disk_trace(&disk, 3, 1).is_err());
    }

    /// Worked by hand in docs/swap-server.md ("The simulator's own test"),
    /// from FIFO's rule alone: 2 frames, two domains.
    const HAND: &str = "\
# a hand-checked trace
serac-swap-trace 1
0 0 1 w
1 0 2 r
2 0 1 w   # hit
3 1 7 r
4 1 7 w   # hit
5 1 8 r
6 0 1 r
7 0 2 r
8 1 0x7 r
";

    #[test]
    fn fifo_on_the_hand_trace() {
        let t = parse_trace(HAND).unwrap();
        let mut p = policy(
            "fifo",
            Config {
                frames: 2,
                idle_after: 0,
            },
            0,
        )
        .unwrap();
        let r = simulate(p.as_mut(), t.into_iter(), 1, false, COST).unwrap();
        assert_eq!(r.accesses, 9);
        assert_eq!(r.faults, 7);
        assert_eq!(r.zero_fills, 5);
        assert_eq!(r.page_ins, 2);
        assert_eq!(r.write_backs, 2);
        assert_eq!(r.domain_swap_ins, 2);
        assert_eq!(r.bytes_moved(), 4 * 4096);
        assert_eq!(r.sim_us, 9 * 10 + 2 * 100 + 2 * 100);
        assert!((r.fault_rate() - 7.0 / 9.0).abs() < 1e-12);
        assert!((r.swap_ins_per_s() - 2.0 / 490e-6).abs() < 1e-6);
    }

    #[test]
    fn every_policy_replays_a_zipf_trace_within_its_budget() {
        let o = Opts {
            domains: 20,
            pages: 8,
            requests: 2000,
            frames: 40,
            policies: POLICIES.iter().map(|s| (*s).to_owned()).collect(),
            idle_after: 50,
            ..Opts::default()
        };
        for r in run_all(&o, None, o.frames).unwrap() {
            assert_eq!(r.accesses, 2000 * 4);
            assert_eq!(r.faults, r.zero_fills + r.page_ins);
            // 160 pages in 40 frames: some must fault again.
            assert!(r.page_ins > 0, "{r:?}");
            assert!(r.faults < r.accesses);
        }
    }

    #[test]
    fn all_memory_faults_each_page_once() {
        let o = Opts {
            source: Source::Uniform,
            domains: 5,
            pages: 4,
            requests: 500,
            frames: 20,
            policies: POLICIES.iter().map(|s| (*s).to_owned()).collect(),
            ..Opts::default()
        };
        for r in run_all(&o, None, 20).unwrap() {
            assert_eq!((r.faults, r.page_ins, r.write_backs), (20, 0, 0), "{r:?}");
        }
    }

    #[test]
    fn zipf_picks_domains_by_rank() {
        let o = Opts {
            domains: 10,
            requests: 100_000,
            touch: 1,
            ..Opts::default()
        };
        let mut n = [0u32; 10];
        for a in Synthetic::new(&o) {
            n[a.domain as usize] += 1;
        }
        // Zipf(0.8) over 10: P(rank 1) = 1 / sum_k k^-0.8 = 1 / 3.5651 = 0.2805
        // (k = 1..10), P(rank 10) = 10^-0.8 * 0.2805 = 0.0445.
        let p = |i: usize| f64::from(n[i]) / 100_000.0;
        assert!((p(0) - 0.2805).abs() < 0.005, "{}", p(0));
        assert!((p(9) - 0.0445).abs() < 0.003, "{}", p(9));
    }

    #[test]
    fn trace_files_round_trip_and_bad_lines_are_named() {
        let o = Opts {
            requests: 50,
            ..Opts::default()
        };
        let a: Vec<Access> = Synthetic::new(&o).collect();
        assert_eq!(parse_trace(&format_trace(a.iter().copied())).unwrap(), a);
        for (bad, line) in [
            ("0 0 1 r\n", 1),
            ("serac-swap-trace 1\n0 0 1 x\n", 2),
            ("serac-swap-trace 1\n5 0 1 r\n4 0 1 r\n", 3),
            ("serac-swap-trace 1\n0 0 r\n", 2),
            ("serac-swap-trace 1\n0 -1 1 r\n", 2),
        ] {
            let e = parse_trace(bad).unwrap_err().0;
            assert!(e.contains(&format!("line {line}")), "{e}");
        }
        assert!(parse_trace("# nothing\n").is_err());
    }

    #[test]
    fn options() {
        let p = |s: &str| parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>());
        let o = p("--uniform --frames 64 --policy all --json").unwrap();
        assert_eq!(o.source, Source::Uniform);
        assert_eq!((o.frames, o.json, o.policies.len()), (64, true, 3));
        assert_eq!(p("--zipf 1.2").unwrap().source, Source::Zipf(1.2));
        for bad in [
            "--policy lru",
            "--frames x",
            "--writes 2",
            "--zipf -1",
            "--pages 0",
            "--bogus",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
