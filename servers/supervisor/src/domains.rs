//! Building, starting, restarting and reaping the manifest's domains
//! (docs/abi.md section 10, "Building a domain").
//!
//! Every image page is a frame of the supervisor's memory grant: bound in
//! the supervisor's scratch window, zeroed and filled (with the bytes of
//! every segment on that page, see `plan`), unbound, then bound in the
//! child with the page's rights. The frame stays the
//! supervisor's; the instance remembers which frames it got (in order), so
//! a restart binds the same frames again and a reaped domain returns them
//! to the pool.
//!
//! Domain ids: after `Create`, and again after every `Restart`, the
//! supervisor reads the child's `DomainId` with
//! `domain_ctl(ReadCounter, DomainCounter::Id)`; the kernel's exit messages
//! and the pager protocol name domains by it.
//!
//! Ends: when a domain ends, the kernel keeps its record (state Dead) and
//! sends the supervisor a `LABEL_EXIT` message. The supervisor then either
//! restarts it in place ([`Supervisor::restart`]: same slot and lineage,
//! next generation, and the handles other domains hold fail once with
//! `ServerRestarted` and then follow it) or reaps it ([`Supervisor::reap`]:
//! `Kill` of a dead domain frees its slot).
//!
//! `frames=`: after the image pages an instance's log holds its grant
//! page and the frames given to it (`GiveFrame`, zeroed first). When it
//! ends the kernel hands those back to the supervisor, unbound, so a
//! restart gives the same frames again and a reap returns them to the pool.
//!
//! Memory: a manifest may ask for `MAX_INSTANCES` (2²⁰) instances, so an
//! instance's record is kept small (32 bytes) and an image frame is logged
//! as a 4-byte pool offset. Both vectors are reserved up front: what does
//! not fit Ilwaco's 1 MiB static heap grows the heap from the frame pool
//! (`sys::grow_heap`), and a manifest whose bookkeeping does not fit even
//! so is refused at boot instead of running out later. The boot log's
//! `supervisor: bookkeeping` line gives the bytes per instance.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use ilwaco::ipc::Endpoint;
use ilwaco::println;
use ilwaco::rt::BootArgs;
use ilwaco::{sys, time};
use serac_protocol::bootarc::{Archive, ArchiveError};
use serac_protocol::client::{rpc, ClientError, ServiceError};
use serac_protocol::disk::DiskClient;
use serac_protocol::layout::grant::{FrameGrant, BYTES as GRANT_BYTES};
use serac_protocol::layout::GRANT_PAGE_ADDR;
use serac_protocol::net::{
    PortConfig, Reply as NetReply, ReplyRef, Request as NetRequest, RequestRef,
};
use serac_protocol::pager;
use serac_protocol::supervisor::{ServiceSpec, Started, START_BATCH};
use serac_protocol::syscall::{
    bind_irq_arg, grant_arg, DomainCounter, DomainOp, PciInfo, STATE_DEAD, STATE_IDLE,
    STATE_RECEIVING, TRANSLATE_SHARED,
};
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, PageRights, SysError};
use serac_supervisor_core::authority::Caller;
use serac_supervisor_core::frames::FramePool;
use serac_supervisor_core::intx::{self, Chipset};
use serac_supervisor_core::manifest::{
    Class, DeviceSel, DomainSpec, InstanceName, LinkKind, Manifest, ServiceRefusal, Target,
    MAX_GRANT_FRAMES,
};
use serac_supervisor_core::plan::{Copy as PageCopy, Page, Plan};

/// The supervisor's `DomainCtl` handle on itself (abi.md section 10).
pub const ROOT: Handle = Handle::new(1, 1);
/// The scratch page image frames are filled through.
const SCRATCH: u64 = sys::SCRATCH_BASE;
/// A disk block (pushed images are read in them).
const BLOCK: usize = serac_protocol::disk::BLOCK_SIZE;
/// Domains with a larger count get one summary line instead of one per instance.
const VERBOSE_MAX: u32 = 100;
/// A paged domain starts only while its pager has this many frames free
/// (about four httpd's first faults): a boot of more than memory holds
/// then waits for the pager to swap idle domains out, instead of starting
/// them all into a thrash.
const START_RESERVE: u64 = 256;
/// A paced start's state ([`Supervisor::pace`]).
#[derive(Debug, Default)]
struct Pacer {
    /// Starts left in this wave.
    budget: u64,
    /// Domains in the last wave, and the pager's free frames before it.
    wave: u64,
    free_at_wave: u64,
    /// Frames one domain takes (smoothed over the waves).
    per_domain: u64,
    /// When progress was last printed.
    shown: u64,
    /// Instances started and not yet seen settled (in `idle`, in
    /// `reply_recv`, or gone): at most [`START_WINDOW`].
    busy: Vec<usize>,
    /// Each server instance's CPU ticks at the last progress line, and
    /// the TSC then: the next line says where the time went since.
    cpu: Vec<(usize, u64)>,
    cpu_tsc: u64,
}

/// How long a start waits for that at most before it goes ahead anyway.
const START_WAIT_NS: u64 = 60_000_000_000;
/// The longest wait for a wave's free frames to stop falling.
const SETTLE_MAX_NS: u64 = 10_000_000_000;
/// Paged domains starting at once. One still starting (in a call to its
/// disk, or a fault) looks idle to its pager and is swapped out
/// half-started, then in again to go on; and domains started together
/// progress together, so none of 1,024 was done before all were. At
/// 10,000 httpd that thrash starved the boot.
const START_WINDOW: usize = 64;
/// Starting domains are waited for while one of them settled in this
/// long; then they count as settled (a spinner never waits).
const SETTLE_STALL_NS: u64 = 10_000_000_000;
/// Progress of a paced boot, this often.
const PROGRESS_NS: u64 = 10_000_000_000;
/// Restarts of one instance before the supervisor gives up on it.
pub const MAX_RESTARTS: u8 = 8;
/// Most separate `Grant` runs one pager records
/// (`serac_pager_policy::pool::MAX_RANGES`).
const PAGER_MAX_RUNS: usize = 64;
/// Pager refusals logged one by one; later ones are only counted.
const LOGGED_REFUSALS: u32 = 4;
/// Refused requests logged per caller; later ones are only counted, so a
/// flood cannot turn the supervisor into a serial-port amplifier.
pub const LOGGED_DENIALS: u8 = 8;
/// Instances sampled for `BENCH domain_create`.
const BENCH_SAMPLES: usize = 256;

/// A failed step: what was attempted, on which instance, and the error.
#[derive(Debug, Clone, Copy)]
pub struct Fail<'a> {
    /// The step (`create`, `map`, `grant`...).
    pub what: &'static str,
    /// The kernel's answer.
    pub err: SysError,
    name: Option<InstanceName<'a>>,
}

impl fmt::Display for Fail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(n) => write!(f, "{n}: {} failed: {:?}", self.what, self.err),
            None => write!(f, "{} failed: {:?}", self.what, self.err),
        }
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Created and loaded (or restarted), not started yet.
    Built,
    /// Started (runnable, blocked or idle: the supervisor cannot tell).
    Running,
    /// Ended and reaped (or being reaped): its slot is free, its frames are
    /// back in the pool.
    Exited,
}

/// One instance of a manifest domain (kept small: there may be 100,000).
#[derive(Debug, Clone, Copy)]
pub struct Instance {
    /// The supervisor's `DomainCtl` handle on it (it follows restarts).
    pub ctl: Handle,
    /// Its id, as the kernel reported it.
    pub id: DomainId,
    /// Its frames: `frame_log[frames_start ..][.. frames_len]`, in plan order.
    frames_start: u32,
    frames_len: u16,
    /// Its number within its domain (`count` is at most 2²⁰).
    ordinal: u32,
    /// Index of its domain in the manifest (at most 32).
    dom: u8,
    /// Where it is in its life.
    pub life: Life,
    /// Times restarted.
    pub restarts: u8,
    /// Its requests the supervisor refused (saturating).
    pub denied: u8,
}

// The per-instance record must stay small (see the module docs).
const _: () = assert!(core::mem::size_of::<Instance>() <= 32);

impl Instance {
    /// Index of its domain in the manifest.
    pub fn dom(&self) -> usize {
        usize::from(self.dom)
    }
}

/// Per-domain data fixed at boot: its image and load plan, and once the
/// first instance is loaded, the kernel's shared image of its read-only
/// pages (0: none yet, or every page is private).
#[derive(Debug, Clone)]
struct Image<'a> {
    bytes: &'a [u8],
    plan: Plan,
    shared: u64,
    /// The shared image's pages: (vaddr, frame).
    shared_pages: Vec<(u64, u64)>,
}

/// Whether `page` of an image is shared by all its domains: read-only
/// pages are (code, rodata); anything writable is each domain's own.
fn is_shared(page: &Page) -> bool {
    !page.rights.writable()
}

/// Per-instance build cost for `BENCH domain_create`: every `stride`-th
/// instance is sampled and sums the TSC deltas of its build phases
/// (Create + load, grants + SetPager, Region + Start).
#[derive(Debug, Default)]
struct Bench {
    stride: usize,
    ticks: Vec<u64>,
}

impl Bench {
    fn new(instances: usize) -> Bench {
        let stride = instances.div_ceil(BENCH_SAMPLES).max(1);
        let mut ticks = Vec::new();
        if ticks.try_reserve_exact(instances.div_ceil(stride)).is_ok() {
            ticks.resize(instances.div_ceil(stride), 0);
        }
        Bench { stride, ticks }
    }

    /// Charges instance `i` the ticks since `since`.
    fn add(&mut self, i: usize, since: u64) {
        let stride = self.stride.max(1);
        if !i.is_multiple_of(stride) {
            return;
        }
        if let Some(t) = self.ticks.get_mut(i / stride) {
            *t = t.saturating_add(time::tsc().saturating_sub(since));
        }
    }

    /// Median of the sampled instances that were built (an `until-full`
    /// domain leaves the rest at 0).
    fn median(&mut self) -> Option<u64> {
        self.ticks.retain(|&t| t > 0);
        self.ticks.sort_unstable();
        self.ticks.get(self.ticks.len() / 2).copied()
    }
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor<'a> {
    /// The manifest.
    /// The manifest (owned: pushed services are appended at run time).
    pub m: Box<Manifest<'a>>,
    images: Vec<Image<'a>>,
    /// Every instance, in manifest order.
    pub inst: Vec<Instance>,
    /// Image frames of every instance, as pool offsets.
    frame_log: Vec<u32>,
    pool: Box<FramePool>,
    /// Per manifest domain that is a pager: the supervisor's endpoint to
    /// its instance 0 (for `SetPager` and the pager requests), else NONE.
    pager_ep: Vec<Handle>,
    /// The supervisor's endpoints to other servers it calls (disk servers,
    /// to name their clients): (instance, endpoint).
    server_eps: Vec<(usize, Handle)>,
    bench: Bench,
    /// `Region` requests pagers refused (their domains get the pager's
    /// default window instead).
    refusals: u32,
    /// Ports that could not be configured or detached (logged up to
    /// `LOGGED_REFUSALS`, then counted).
    port_failures: u32,
    /// Requests refused because their badge named no live instance.
    pub denied_unknown: u32,
    /// Frame runs given to each pager instance: (instance, first, count).
    /// A restarted pager gets these same frames back, those still bound in
    /// its clients included, so its crash loses no page and leaks no frame.
    pager_runs: Vec<(usize, u64, u64)>,
}

/// Heap bytes the per-instance tables of `n` instances with `pages` image
/// pages in all take, with the `BENCH` samples.
fn bookkeeping_bytes(n: usize, pages: usize) -> usize {
    n.saturating_mul(core::mem::size_of::<Instance>())
        .saturating_add(pages.saturating_mul(core::mem::size_of::<u32>()))
        .saturating_add(BENCH_SAMPLES * 8)
}

/// Grows the heap from the pool so that `need` more bytes fit, unless
/// Ilwaco's static heap has them free (kept at a quarter for everything
/// else); returns the bytes added. The growth holds all of `need`: a
/// block cannot straddle the static heap and the grown one, and the
/// instance table is one block (3.2 MB for 100,000).
fn grow_for(pool: &mut FramePool, need: usize) -> u64 {
    let spare = (sys::HEAP_SIZE / 4 * 3).saturating_sub(sys::heap_in_use());
    // The allocator's headers and a reallocation's slack: an eighth more.
    let want = need.saturating_add(need / 8);
    let mut grown = 0;
    if need <= spare {
        return 0;
    }
    while grown < want as u64 {
        let Some(f) = pool.alloc() else { break };
        match sys::grow_heap(f) {
            Ok(total) => grown = total,
            Err(_) => {
                pool.free(f);
                break;
            }
        }
    }
    grown
}

fn fail<'a>(what: &'static str, err: SysError) -> Fail<'a> {
    Fail {
        what,
        err,
        name: None,
    }
}

/// Runs `f`, once more if the first try met `ServerRestarted` (a handle on a
/// restarted domain fails once, then follows the new generation).
fn retry<T>(mut f: impl FnMut() -> Result<T, SysError>) -> Result<T, SysError> {
    match f() {
        Err(SysError::ServerRestarted) => f(),
        r => r,
    }
}

/// One vnic control request (`Configure`, `Detach`: idempotent, so
/// retried once after `ServerRestarted`) answered `Ok`. Through the
/// borrowed message forms: the typed client's owned ones hold a 4 KiB
/// batch inline, too much for the supervisor's stack on the exit path.
fn net_control(ep: Handle, req: &RequestRef<'_>) -> Result<(), ClientError> {
    use serac_protocol::client::{Transport, LABEL_NET};
    let mut out = [0u8; 64];
    let bytes = serac_protocol::codec::encode(req, &mut out).map_err(ClientError::Codec)?;
    let mut back = [0u8; 64];
    let n = match Endpoint(ep).call(LABEL_NET, bytes, &mut back) {
        Err(SysError::ServerRestarted) => Endpoint(ep).call(LABEL_NET, bytes, &mut back),
        r => r,
    }
    .map_err(ClientError::Sys)?;
    let reply: ReplyRef<'_> = serac_protocol::codec::decode_borrowed(back.get(..n).unwrap_or(&[]))
        .map_err(ClientError::Codec)?;
    match reply {
        NetReply::Ok => Ok(()),
        NetReply::Err(e) => Err(ClientError::Service(e)),
        _ => Err(ClientError::UnexpectedReply),
    }
}

fn ctl(h: Handle, op: DomainOp, a: u64, b: u64) -> Result<u64, SysError> {
    retry(|| sys::domain_ctl(h, op, a, b))
}

/// The id of the domain `c` names (it changes with every restart).
fn read_id(c: Handle) -> Result<DomainId, SysError> {
    ctl(c, DomainOp::ReadCounter, DomainCounter::Id as u64, 0).map(DomainId::from_raw)
}

/// One pager request that is answered with `Reply::Ok`.
/// Frames pager `ep` can still take (its pool's room; the swapper, before
/// its first grant, the most it sizes tables for): more would be given
/// away and never used.
fn pager_room(ep: Handle) -> Option<usize> {
    match rpc(&mut Endpoint(ep), &pager::Request::Stats) {
        Ok(pager::Reply::Stats(s)) => usize::try_from(s.room).ok(),
        _ => None,
    }
}

fn pager_call(ep: Handle, req: &pager::Request) -> Result<(), ClientError> {
    match rpc(&mut Endpoint(ep), req)? {
        pager::Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
    }
}

impl<'a> Supervisor<'a> {
    /// Checks every image against the archive and plans its pages; on a
    /// problem prints `supervisor: manifest line N: ...` and returns the halt code.
    pub fn new(m: Box<Manifest<'a>>, archive: &Archive<'a>, args: BootArgs) -> Result<Self, u64> {
        let mut images = Vec::with_capacity(m.domains().len());
        // Frames the images need; `until-full` domains take what is left.
        let (mut pages, mut fill_pages) = (0u64, 0u64);
        for (di, d) in m.domains().iter().enumerate() {
            let bytes = match archive.find(d.image) {
                Ok(e) => e.data,
                Err(ArchiveError::NotFound) => {
                    println!(
                        "supervisor: manifest line {}: no image `{}` in the boot archive",
                        d.line, d.image
                    );
                    return Err(crate::EXIT_MANIFEST);
                }
                Err(e) => {
                    println!(
                        "supervisor: manifest line {}: image `{}`: boot archive entry rejected: {e:?}",
                        d.line, d.image
                    );
                    return Err(crate::EXIT_MANIFEST);
                }
            };
            let plan = match Plan::new(bytes, d.eager) {
                Ok(p) if p.page_count() <= u64::from(u16::MAX) => p,
                Ok(_) => {
                    println!(
                        "supervisor: manifest line {}: image `{}` has more than {} pages",
                        d.line,
                        d.image,
                        u16::MAX
                    );
                    return Err(crate::EXIT_MANIFEST);
                }
                Err(e) => {
                    println!(
                        "supervisor: manifest line {}: image `{}` cannot be loaded: {e:?}",
                        d.line, d.image
                    );
                    return Err(crate::EXIT_MANIFEST);
                }
            };
            // Read-only pages are shared: one frame each for all instances.
            let ro = plan.pages().filter(is_shared).count() as u64;
            let per_instance = plan.page_count() - ro + extras(&m, di) as u64;
            let all = per_instance.saturating_mul(u64::from(d.count)) + ro;
            if d.until_full {
                fill_pages = fill_pages.saturating_add(all);
            } else {
                pages = pages.saturating_add(all);
            }
            images.push(Image {
                bytes,
                plan,
                shared: 0,
                shared_pages: Vec::new(),
            });
        }
        let mut pool = Box::new(FramePool::new(args.a2, args.a3));
        println!(
            "supervisor: memory grant: {} frames from frame {:#x}{}",
            args.a3,
            args.a2,
            if args.a3 > pool.len() as u64 {
                " (only the first ones the pool's bitmap holds used)"
            } else {
                ""
            }
        );
        if pages > pool.free_count() as u64 {
            println!(
                "supervisor: the images need {pages} frames, the grant has {}",
                pool.free_count()
            );
            return Err(crate::EXIT_BUILD);
        }
        // `pages` fits: it is at most the pool's size; so does the rest.
        let pages = usize::try_from(pages + fill_pages.min(pool.free_count() as u64 - pages))
            .unwrap_or(usize::MAX);
        let n = m.instance_count();
        let grown = grow_for(&mut pool, bookkeeping_bytes(n, pages));
        let mut inst = Vec::new();
        let mut frame_log = Vec::new();
        if inst.try_reserve_exact(n).is_err() || frame_log.try_reserve_exact(pages).is_err() {
            println!(
                "supervisor: not enough heap to track {n} instance(s) with {pages} image page(s)"
            );
            return Err(crate::EXIT_BUILD);
        }
        println!(
            "supervisor: bookkeeping for {n} instance(s): {} bytes each and {} per image page, {} KiB of heap in use",
            core::mem::size_of::<Instance>(),
            core::mem::size_of::<u32>(),
            sys::heap_in_use() / 1024
        );
        if grown > 0 {
            println!(
                "supervisor: heap grown by {} KiB from the pool (past Ilwaco's {} KiB)",
                grown / 1024,
                sys::HEAP_SIZE / 1024
            );
        }
        let domains = m.domains().len();
        Ok(Supervisor {
            m,
            images,
            inst,
            frame_log,
            pool,
            pager_ep: vec![Handle::NONE; domains],
            server_eps: Vec::new(),
            bench: Bench::new(n),
            refusals: 0,
            port_failures: 0,
            denied_unknown: 0,
            pager_runs: Vec::new(),
        })
    }

    fn spec(&self, i: usize) -> &DomainSpec<'a> {
        // `i` indexes `inst`, whose `dom` came from the manifest itself.
        &self.m.domains()[self.inst[i].dom()]
    }

    /// The printable name of instance `i`.
    pub fn name(&self, i: usize) -> InstanceName<'a> {
        let inst = &self.inst[i];
        let spec = &self.m.domains()[inst.dom()];
        if inst.ordinal >= spec.count {
            // Started from the console: numbered even if the manifest's
            // domain has one instance.
            return InstanceName {
                name: spec.name,
                index: Some(inst.ordinal),
            };
        }
        spec.instance_name(inst.ordinal)
    }

    fn tag(&self, i: usize, mut f: Fail<'a>) -> Fail<'a> {
        f.name = Some(self.name(i));
        f
    }

    /// The instance with this id, if any.
    pub fn by_id(&self, id: DomainId) -> Option<usize> {
        self.inst.iter().position(|x| x.id == id)
    }

    /// Who sent a message with this badge: the live instance whose endpoint
    /// to the supervisor carries it (the kernel stamps the grantee's id), or
    /// nobody, e.g. for a generation that has since restarted.
    pub fn caller(&self, badge: u64) -> Option<(usize, Caller)> {
        let id = DomainId::from_raw(badge);
        let i = self
            .by_id(id)
            .filter(|&i| self.inst[i].life != Life::Exited)?;
        Some((
            i,
            Caller {
                id,
                operator: self.spec(i).operator,
                push: self.spec(i).push,
            },
        ))
    }

    /// Builds and starts everything: create + load in manifest order,
    /// grants, then the pagers (started and given frames first, so nobody
    /// faults into an empty pager), the other servers, the guests, and
    /// last an `until-full` domain, one instance at a time (see
    /// [`Supervisor::fill`]). Prints `BENCH domain_create <ticks>` at the end.
    pub fn boot(&mut self) -> Result<(), Fail<'a>> {
        // Clear a binding a previous incarnation might have left.
        let _ = sys::unmap(Handle::NONE, SCRATCH);
        for d in 0..self.m.domains().len() {
            let spec = self.m.domains()[d];
            if spec.until_full {
                continue;
            }
            for k in 0..spec.count {
                let t0 = time::tsc();
                let i = self.create_instance(d, k)?;
                self.bench.add(i, t0);
            }
        }
        for i in 0..self.inst.len() {
            let t0 = time::tsc();
            self.wire(i).map_err(|f| self.tag(i, f))?;
            self.bench.add(i, t0);
        }
        let pagers: Vec<usize> = (0..self.m.domains().len())
            .filter(|&d| self.m.is_pager(d))
            .collect();
        for (k, &d) in pagers.iter().enumerate() {
            // Its clients may all be `until-full` ones, not wired yet.
            self.pager_endpoint(d)?;
            self.start_domain(d, &[])?;
            self.feed_pager(self.m.domains()[d].first_instance, pagers.len() - k);
        }
        // Disk servers next, told their clients' names before any client
        // runs: a client's private extents are opened by it alone.
        let disks: Vec<usize> = (0..self.m.domains().len())
            .filter(|&d| self.is_disk_server(d) && !pagers.contains(&d))
            .collect();
        for &d in &disks {
            self.start_domain(d, &[])?;
            self.name_disk_clients(d, None);
        }
        // Then the vnics, so every port is configured before its owner
        // starts (`start`).
        let vnics: Vec<usize> = (0..self.m.domains().len())
            .filter(|&d| self.is_vnic(d) && !pagers.contains(&d) && !disks.contains(&d))
            .collect();
        for &d in &vnics {
            self.start_domain(d, &[])?;
        }
        let early: Vec<usize> = pagers.iter().chain(&disks).chain(&vnics).copied().collect();
        for class in [Class::Server, Class::Guest] {
            for d in 0..self.m.domains().len() {
                let spec = self.m.domains()[d];
                if spec.class == class && !spec.until_full {
                    self.start_domain(d, &early)?;
                }
            }
        }
        for d in 0..self.m.domains().len() {
            if self.m.domains()[d].until_full {
                self.fill(d);
            }
        }
        if self.port_failures > LOGGED_REFUSALS {
            println!(
                "supervisor: {} vnic port operation(s) failed in all",
                self.port_failures
            );
        }
        if self.refusals > LOGGED_REFUSALS {
            println!(
                "supervisor: pagers refused {} region request(s) in all",
                self.refusals
            );
        }
        let mut bench = core::mem::take(&mut self.bench);
        if let Some(t) = bench.median() {
            println!("BENCH domain_create {t}");
        }
        Ok(())
    }

    /// Creates instance `k` of domain `d` and loads its image (and its
    /// `frames=`); returns its index. A load that fails leaves the
    /// instance recorded, for the caller to reap.
    fn create_instance(&mut self, d: usize, k: u32) -> Result<usize, Fail<'a>> {
        let spec = self.m.domains()[d];
        let i = self.inst.len();
        let named = |what, e| Fail {
            what,
            err: e,
            name: Some(spec.instance_name(k)),
        };
        // The kernel names the domain's console lines with this; the
        // manifest keeps names within DOMAIN_NAME_MAX, and every instance
        // of a `count=N` domain shares it (the index differs).
        let c = retry(|| sys::create_domain(ROOT, spec.class.create_class(), spec.name))
            .map_err(|e| named("create", e))?;
        let id = match read_id(c) {
            Ok(id) => id,
            Err(e) => {
                let _ = ctl(c, DomainOp::Kill, 0, 0);
                return Err(named("read id", e));
            }
        };
        self.inst.push(Instance {
            ctl: c,
            id,
            frames_start: u32::try_from(self.frame_log.len()).unwrap_or(u32::MAX),
            frames_len: 0,
            // The manifest bounds the domains (32).
            ordinal: k,
            dom: u8::try_from(d).unwrap_or(u8::MAX),
            life: Life::Built,
            restarts: 0,
            denied: 0,
        });
        self.load(i, false).map_err(|f| self.tag(i, f))?;
        Ok(i)
    }

    /// `until-full=yes`: builds, wires and starts instances of `d` one at a
    /// time until one cannot be built or `count` is reached. The one that
    /// failed is reaped (its frames go back). Prints how many were built.
    fn fill(&mut self, d: usize) {
        let spec = self.m.domains()[d];
        let mut built = 0u32;
        let mut failed = None;
        for k in 0..spec.count {
            let t0 = time::tsc();
            let before = self.inst.len();
            let r = self.create_instance(d, k).and_then(|i| {
                self.wire(i).map_err(|f| self.tag(i, f))?;
                self.announce_regions(i);
                self.start(i).map_err(|f| self.tag(i, f))?;
                Ok(i)
            });
            match r {
                Ok(i) => {
                    self.bench.add(i, t0);
                    built += 1;
                }
                Err(f) => {
                    if self.inst.len() > before {
                        self.reap(before);
                    }
                    failed = Some(f);
                    break;
                }
            }
        }
        match failed {
            Some(f) => println!(
                "supervisor: until-full: built {built} of {} x {}; the next failed: {f}",
                spec.count, spec.name
            ),
            None => println!(
                "supervisor: until-full: built all {built} x {} (nothing ran out)",
                spec.name
            ),
        }
    }

    /// Starts every instance of domain `d` (unless `d` is in `skip`),
    /// after telling its pager where its zero-fill regions are.
    fn start_domain(&mut self, d: usize, skip: &[usize]) -> Result<(), Fail<'a>> {
        let spec = self.m.domains()[d];
        if skip.contains(&d) {
            return Ok(());
        }
        let mut pacer = Pacer {
            shown: time::now_ns().unwrap_or(0),
            // A first guess, about an httpd's; each wave corrects it.
            per_domain: 64,
            ..Pacer::default()
        };
        for (k, i) in (spec.first_instance..spec.first_instance + spec.count as usize).enumerate() {
            self.pace(i, k, spec.count as usize, &mut pacer);
            let t0 = time::tsc();
            self.announce_regions(i);
            self.start(i).map_err(|f| self.tag(i, f))?;
            self.bench.add(i, t0);
            if spec.count <= VERBOSE_MAX {
                let x = &self.inst[i];
                println!(
                    "supervisor: started {} as {}:{} ({} pages)",
                    self.name(i),
                    x.id.index,
                    x.id.gen,
                    x.frames_len
                );
            }
        }
        if spec.count > VERBOSE_MAX {
            println!("supervisor: started {} x {}", spec.count, spec.name);
        }
        Ok(())
    }

    /// Before instance `i` (the `k`-th of `n`) starts: a paged domain
    /// starts while fewer than [`START_WINDOW`] are still starting, in
    /// waves of what its pager's free frames hold (see [`Pacer`]); between
    /// waves this waits until the last one settled (every domain of it
    /// waiting, free frames no longer falling) and, while fewer than
    /// [`START_RESERVE`] plus one domain's pages are free, for the pager
    /// to swap idle ones out (up to [`START_WAIT_NS`]). Prints progress
    /// every [`PROGRESS_NS`].
    fn pace(&mut self, i: usize, k: usize, n: usize, pacer: &mut Pacer) {
        let Some(ep) = self.pager_of(i) else { return };
        self.settle(i, START_WINDOW - 1, k, n, pacer);
        self.pace_wave(ep, i, k, n, pacer);
        if pacer.busy.try_reserve(1).is_ok() {
            pacer.busy.push(i);
        }
    }

    /// [`Supervisor::pace`]'s waves, through pager endpoint `ep`.
    fn pace_wave(&mut self, ep: Handle, i: usize, k: usize, n: usize, pacer: &mut Pacer) {
        if pacer.budget > 0 {
            pacer.budget -= 1;
            return;
        }
        let free = || match rpc(&mut Endpoint(ep), &pager::Request::Stats) {
            Ok(pager::Reply::Stats(s)) => Some(s.free),
            _ => None,
        };
        let show = |pacer: &mut Pacer, f: u64| {
            let now = time::now_ns().unwrap_or(0);
            if now.saturating_sub(pacer.shown) >= PROGRESS_NS {
                pacer.shown = now;
                println!(
                    "supervisor: starting {}: {k} of {n} started, its pager has {f} frame(s) free",
                    self.spec(i).name
                );
                self.cpu_shares(pacer);
            }
        };
        // A pager that does not answer is not waited for.
        let Some(mut f) = free() else {
            pacer.budget = u64::MAX;
            return;
        };
        if pacer.wave > 0 {
            // Settled: every domain of the wave waits for an event or a
            // message, and free frames are not falling over half a second
            // (or 10 s went by: others' churn under pressure need not
            // stop).
            self.settle(i, 0, k, n, pacer);
            let t0 = time::now_ns().unwrap_or(0);
            while time::now_ns().unwrap_or(0).saturating_sub(t0) < SETTLE_MAX_NS {
                let _ = time::sleep_ns(500_000_000);
                let Some(g) = free() else { break };
                show(pacer, g);
                let falling = g < f;
                f = g;
                if !falling {
                    break;
                }
            }
            let used = pacer
                .free_at_wave
                .saturating_sub(f)
                .checked_div(pacer.wave)
                .unwrap_or(0);
            // Smoothed: a wave that met others' swap-ins looks costlier.
            pacer.per_domain = (pacer.per_domain + used).div_ceil(2).max(16);
        }
        let t0 = time::now_ns().unwrap_or(0);
        while f < START_RESERVE + pacer.per_domain {
            let now = time::now_ns().unwrap_or(0);
            if now.saturating_sub(t0) >= START_WAIT_NS {
                println!(
                    "supervisor: {}: its pager has freed no memory for 60 s; starting it anyway",
                    self.name(i)
                );
                break;
            }
            let _ = time::sleep_ns(100_000_000);
            let Some(g) = free() else { break };
            f = g;
            show(pacer, f);
        }
        pacer.wave = (f.saturating_sub(START_RESERVE) / pacer.per_domain.max(1)).clamp(1, 1024);
        pacer.budget = pacer.wave - 1;
        pacer.free_at_wave = f;
    }

    /// Before instance `i` starts: waits until at most `left` of the
    /// starting instances are still busy; one that settled (in `idle`, in
    /// `reply_recv`, or gone) leaves the window. Once none settled for
    /// [`SETTLE_STALL_NS`] all count as settled: a domain that never waits
    /// must not hold the boot.
    fn settle(&self, i: usize, left: usize, k: usize, n: usize, pacer: &mut Pacer) {
        let mut since = time::now_ns().unwrap_or(0);
        loop {
            let before = pacer.busy.len();
            pacer.busy.retain(|&j| {
                self.inst[j].life == Life::Running
                    && !matches!(
                        self.kernel_state(j),
                        None | Some(STATE_IDLE | STATE_RECEIVING | STATE_DEAD)
                    )
            });
            let now = time::now_ns().unwrap_or(0);
            if pacer.busy.len() < before {
                since = now;
            }
            if pacer.busy.len() <= left {
                return;
            }
            if now.saturating_sub(since) >= SETTLE_STALL_NS {
                println!(
                    "supervisor: starting {}: {} domain(s) busy for {} s; counted as started",
                    self.spec(i).name,
                    pacer.busy.len(),
                    SETTLE_STALL_NS / 1_000_000_000
                );
                pacer.busy.clear();
                return;
            }
            if now.saturating_sub(pacer.shown) >= PROGRESS_NS {
                pacer.shown = now;
                println!(
                    "supervisor: starting {}: {k} of {n} started, {} still starting",
                    self.spec(i).name,
                    pacer.busy.len()
                );
                self.cpu_shares(pacer);
            }
            let _ = time::sleep_ns(20_000_000);
        }
    }

    /// Prints each server's share of the CPU since the last call (a slow
    /// boot shows who holds the processor). The first call only samples.
    fn cpu_shares(&self, pacer: &mut Pacer) {
        let now = time::tsc();
        let window = now.saturating_sub(pacer.cpu_tsc);
        let first = pacer.cpu.is_empty();
        if first {
            let servers = (0..self.inst.len()).filter(|&j| {
                self.spec(j).class == Class::Server && self.inst[j].life == Life::Running
            });
            pacer.cpu = servers.map(|j| (j, 0)).collect();
        }
        let mut line = alloc::string::String::new();
        for (j, last) in pacer.cpu.iter_mut() {
            let t = self.counter(*j, DomainCounter::CpuTicks);
            let pct = t
                .saturating_sub(*last)
                .saturating_mul(100)
                .checked_div(window)
                .unwrap_or(0);
            *last = t;
            if !first {
                let _ = fmt::Write::write_fmt(&mut line, format_args!(" {} {pct}%", self.name(*j)));
            }
        }
        pacer.cpu_tsc = now;
        if !first {
            println!("supervisor: cpu since the last line:{line}");
        }
    }

    /// The supervisor's endpoint to instance `i`'s pager, if it has one.
    fn pager_of(&self, i: usize) -> Option<Handle> {
        let ep = *self.pager_ep.get(self.spec(i).pager?)?;
        (!ep.is_none()).then_some(ep)
    }

    /// Tells instance `i`'s pager its zero-fill regions (`.bss`, stack);
    /// a refusal is logged, the pager then falls back to its default window.
    fn announce_regions(&mut self, i: usize) {
        let Some(ep) = self.pager_of(i) else { return };
        let plan = &self.images[self.inst[i].dom()].plan;
        let domain = self.inst[i].id;
        for (start, end) in plan.zero_ranges() {
            let req = pager::Request::Region { domain, start, end };
            if let Err(e) = pager_call(ep, &req) {
                self.refusals = self.refusals.saturating_add(1);
                if self.refusals <= LOGGED_REFUSALS {
                    println!(
                        "supervisor: {}: pager refused a region: {e:?} (it falls back to its default window)",
                        self.name(i)
                    );
                }
                if self.refusals == LOGGED_REFUSALS {
                    println!("supervisor: further region refusals are only counted");
                }
                return;
            }
        }
    }

    /// Tells instance `i`'s pager that domain `id` is gone (its frames are
    /// free), unless the pager itself has ended.
    fn revoke(&self, i: usize, id: DomainId) {
        let Some(ep) = self.pager_of(i) else { return };
        let pager_alive = self.spec(i).pager.is_some_and(|p| {
            let pi = self.m.domains()[p].first_instance;
            self.inst.get(pi).is_some_and(|x| x.life != Life::Exited)
        });
        if !pager_alive {
            return;
        }
        if let Err(e) = pager_call(ep, &pager::Request::Revoke { domain: id }) {
            println!("supervisor: {}: pager revoke failed: {e:?}", self.name(i));
        }
    }

    /// Binds instance `i`'s image pages; `reuse` binds the frames it had
    /// before (a restart), else takes new ones from the pool.
    fn load(&mut self, i: usize, reuse: bool) -> Result<(), Fail<'a>> {
        let d = self.inst[i].dom();
        let c = self.inst[i].ctl;
        let shared = self.shared_image(d);
        if shared != 0 {
            ctl(c, DomainOp::ImageAttach, shared, 0).map_err(|e| fail("attach image", e))?;
        }
        let img = &self.images[d];
        let (plan, bytes) = (img.plan, img.bytes);
        let start = self.inst[i].frames_start as usize;
        let had = usize::from(self.inst[i].frames_len);
        let own = plan.pages().filter(|p| shared == 0 || !is_shared(p));
        for (n, page) in own.enumerate() {
            let frame = if reuse {
                let off = *self
                    .frame_log
                    .get(start + n)
                    .filter(|_| n < had)
                    .ok_or(fail("reload", SysError::BadArgument))?;
                self.pool.frame(off)
            } else {
                let f = self
                    .pool
                    .alloc()
                    .ok_or(fail("frame pool", SysError::OutOfMemory))?;
                // `alloc` only hands out the pool's frames, and `new` reserved
                // room for every image page.
                let Some(off) = self.pool.offset(f) else {
                    self.pool.free(f);
                    return Err(fail("frame pool", SysError::BadArgument));
                };
                self.frame_log.push(off);
                self.inst[i].frames_len += 1;
                f
            };
            fill(frame, plan.copies(&page), bytes)?;
            retry(|| sys::map(c, page.vaddr, frame, page.rights)).map_err(|e| fail("map", e))?;
        }
        self.give_frames(i, reuse)
    }

    /// The kernel image of domain `d`'s read-only pages, made at its first
    /// load (or that of another domain with the same image): one frame
    /// per page for every domain that runs it. 0 if it has none, or the
    /// kernel refused (then every page is private, as before).
    fn shared_image(&mut self, d: usize) -> u64 {
        if self.images[d].shared != 0 {
            return self.images[d].shared;
        }
        let bytes = self.images[d].bytes;
        if let Some(j) = (0..self.images.len())
            .find(|&j| self.images[j].shared != 0 && core::ptr::eq(self.images[j].bytes, bytes))
        {
            let (id, pages) = (self.images[j].shared, self.images[j].shared_pages.clone());
            self.images[d].shared = id;
            self.images[d].shared_pages = pages;
            return id;
        }
        let plan = self.images[d].plan;
        let mut recs: Vec<[u64; 2]> = Vec::new();
        let mut failed = None;
        for page in plan.pages().filter(is_shared) {
            let Some(f) = self.pool.alloc() else {
                failed = Some(SysError::OutOfMemory);
                break;
            };
            recs.push([page.vaddr | u64::from(page.rights.bits()), f]);
            if let Err(e) = fill(f, plan.copies(&page), bytes) {
                failed = Some(e.err);
                break;
            }
        }
        let made = match failed {
            None if !recs.is_empty() => ctl(
                Handle::NONE,
                DomainOp::ImageCreate,
                recs.len() as u64,
                recs.as_ptr() as u64,
            ),
            None => return 0,
            Some(e) => Err(e),
        };
        match made {
            Ok(id) => {
                self.images[d].shared = id;
                self.images[d].shared_pages = recs.iter().map(|r| (r[0] & !0xfff, r[1])).collect();
                id
            }
            Err(e) => {
                for r in &recs {
                    self.pool.free(r[1]);
                }
                println!(
                    "supervisor: image {}: no shared code ({e:?}); each domain gets its own copy",
                    self.m.domains()[d].image
                );
                0
            }
        }
    }

    /// Checks with the kernel (`Translate`) that every live domain of a
    /// shared image maps each read-only page of it to the image's one
    /// frame, never writable, and that no frame is in two images. Prints
    /// one line per image and the saving, or what is wrong.
    pub fn check_code(&self) {
        let mut bad = 0u32;
        let mut saved = 0u64;
        for (d, img) in self.images.iter().enumerate() {
            // One line per distinct image, at its first domain.
            if img.shared == 0 || self.images[..d].iter().any(|x| x.shared == img.shared) {
                continue;
            }
            let mut domains = 0u64;
            for (i, x) in self.inst.iter().enumerate() {
                if x.life == Life::Exited || self.images[x.dom()].shared != img.shared {
                    continue;
                }
                domains += 1;
                for &(va, frame) in &img.shared_pages {
                    let t = ctl(x.ctl, DomainOp::Translate, va, 0);
                    let ok = t.is_ok_and(|t| {
                        t >> 12 == frame
                            && t & TRANSLATE_SHARED != 0
                            && t & u64::from(PageRights::W) == 0
                    });
                    if !ok {
                        bad += 1;
                        println!(
                            "supervisor: code check failed: {} page {va:#x}: kernel says {t:?}, image frame {frame:#x}",
                            self.name(i)
                        );
                    }
                }
            }
            let pages = img.shared_pages.len() as u64;
            saved += domains.saturating_sub(1) * pages * 4096;
            println!(
                "supervisor: code image {}: {pages} shared page(s), one frame each in {domains} domain(s)",
                self.m.domains()[d].image
            );
        }
        // Images' frames are disjoint: collect and look for a repeat.
        let mut all: Vec<u64> = self
            .images
            .iter()
            .enumerate()
            .filter(|(d, x)| {
                x.shared != 0 && !self.images[..*d].iter().any(|y| y.shared == x.shared)
            })
            .flat_map(|(_, x)| x.shared_pages.iter().map(|p| p.1))
            .collect();
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            bad += 1;
            println!("supervisor: code check failed: a frame is in two images");
        }
        if bad == 0 {
            println!(
                "supervisor: code check: {} frame(s) in shared images, none in two, {saved} bytes saved by sharing",
                all.len()
            );
        }
    }

    /// `frames=`: gives instance `i` its frames, zeroed (on a restart the
    /// same ones again: the kernel handed them back when it ended), and
    /// binds the grant page that lists them read-only at `GRANT_PAGE_ADDR`.
    fn give_frames(&mut self, i: usize, reuse: bool) -> Result<(), Fail<'a>> {
        let n = usize::from(self.spec(i).frames);
        if n == 0 {
            return Ok(());
        }
        // The heap run follows the listed frames in the same run.
        let h = heap_run(&self.m, self.inst[i].dom());
        let at = self.inst[i].frames_start as usize + usize::from(self.inst[i].frames_len);
        if !reuse {
            // `load` just logged this instance's image frames, so these
            // land right after them (and `new` reserved room for them). A
            // driver domain's are one contiguous run (its DMA queues).
            let run = if spec_device(self, i) {
                let first = self
                    .pool
                    .alloc_run(n + h)
                    .ok_or(fail("contiguous frames", SysError::OutOfMemory))?;
                Some(first)
            } else {
                None
            };
            for k in 0..=n + h {
                let f = match (k, run) {
                    (k, Some(first)) if k > 0 => first + k as u64 - 1,
                    _ => self
                        .pool
                        .alloc()
                        .ok_or(fail("frame pool", SysError::OutOfMemory))?,
                };
                let Some(off) = self.pool.offset(f) else {
                    self.pool.free(f);
                    return Err(fail("frame pool", SysError::BadArgument));
                };
                self.frame_log.push(off);
            }
        }
        let log = self
            .frame_log
            .get(at..at + 1 + n + h)
            .ok_or(fail("reload", SysError::BadArgument))?;
        let mut frames = [0u64; MAX_GRANT_FRAMES];
        for (f, &off) in frames.iter_mut().zip(&log[1..=n]) {
            *f = self.pool.frame(off);
        }
        let page_frame = self.pool.frame(log[0]);
        let c = self.inst[i].ctl;
        let run = log.get(1 + n).map_or(0, |&off| self.pool.frame(off));
        let heap = (0..h as u64).map(|k| run + k);
        for f in frames[..n].iter().copied().chain(heap) {
            fill(f, core::iter::empty(), &[])?;
            ctl(c, DomainOp::GiveFrame, f, 0).map_err(|e| fail("give frame", e))?;
        }
        let grant = FrameGrant::new(page_frame, &frames[..n])
            .ok_or(fail("grant page", SysError::BadArgument))?
            .with_run(run, h as u64);
        let mut page = [0u8; GRANT_BYTES];
        let used = grant
            .write(&mut page)
            .ok_or(fail("grant page", SysError::BadArgument))?;
        let whole = PageCopy {
            page_offset: 0,
            file_offset: 0,
            len: used,
        };
        fill(page_frame, core::iter::once(whole), &page)?;
        retry(|| sys::map(c, GRANT_PAGE_ADDR, page_frame, PageRights::READ))
            .map_err(|e| fail("map grant page", e))?;
        Ok(())
    }

    /// Gives pager instance `p` its share of seven eighths of the free
    /// frames (see `keep`), `ways` pagers still to feed, but no
    /// more than it says it can take; one `GiveFrame` each, announced in
    /// contiguous runs with a `Grant` request.
    fn feed_pager(&mut self, p: usize, ways: usize) {
        let c = self.inst[p].ctl;
        let Some(&ep) = self.pager_ep.get(self.inst[p].dom()) else {
            return;
        };
        // The supervisor keeps an eighth (its heap, restarts), or half when
        // an `until-full` domain is still to be built from its pool.
        let keep = if self.m.domains().iter().any(|s| s.until_full) {
            2
        } else {
            8
        };
        let share = (self.pool.free_count() - self.pool.free_count() / keep) / ways.max(1);
        let share = pager_room(ep).map_or(share, |room| share.min(room));
        let mut given = 0usize;
        let mut run: Option<(u64, u64)> = None;
        let mut runs = 0usize;
        while given < share {
            let Some(f) = self.pool.alloc() else { break };
            match run {
                Some((first, n)) if first + n == f => {}
                Some(_) if runs + 1 >= PAGER_MAX_RUNS => {
                    self.pool.free(f);
                    break;
                }
                _ => {}
            }
            if let Err(e) = ctl(c, DomainOp::GiveFrame, f, 0) {
                self.pool.free(f);
                println!("supervisor: {}: GiveFrame failed: {e:?}", self.name(p));
                break;
            }
            given += 1;
            run = match run {
                Some((first, n)) if first + n == f => Some((first, n + 1)),
                Some((first, n)) => {
                    self.announce(p, ep, first, n);
                    runs += 1;
                    Some((f, 1))
                }
                None => Some((f, 1)),
            };
        }
        if let Some((first, n)) = run {
            self.announce(p, ep, first, n);
        }
        println!("supervisor: gave {given} frames to {}", self.name(p));
        self.tell_swap_idle(p, ep);
    }

    /// `swap-idle=yes`: tells pager `p` so (after its frames).
    fn tell_swap_idle(&self, p: usize, ep: Handle) {
        if !self.spec(p).swap_idle {
            return;
        }
        if let Err(e) = pager_call(ep, &pager::Request::SwapIdle { always: true }) {
            println!("supervisor: {}: swap-idle=yes refused: {e:?}", self.name(p));
        }
    }

    /// Gives restarted pager instance `p` the frames its last generation
    /// had (the kernel handed them to the supervisor when it died, bound
    /// ones still bound), or a first share if it had none.
    fn refeed_pager(&mut self, p: usize) {
        let runs: Vec<(u64, u64)> = self
            .pager_runs
            .iter()
            .filter(|r| r.0 == p)
            .map(|r| (r.1, r.2))
            .collect();
        if runs.is_empty() {
            return self.feed_pager(p, 1);
        }
        let Some(&ep) = self.pager_ep.get(self.inst[p].dom()) else {
            return;
        };
        let c = self.inst[p].ctl;
        let mut given = 0u64;
        for (first, count) in runs {
            let mut ok = 0;
            for f in first..first + count {
                // b = 1: a frame still bound in a client moves with its binding.
                match ctl(c, DomainOp::GiveFrame, f, 1) {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        println!(
                            "supervisor: {}: GiveFrame {f:#x} failed: {e:?}",
                            self.name(p)
                        );
                        break;
                    }
                }
            }
            if ok > 0 {
                self.announce_only(p, ep, first, ok);
            }
            given += ok;
        }
        println!("supervisor: gave {given} frames back to {}", self.name(p));
        self.tell_swap_idle(p, ep);
    }

    fn announce(&mut self, p: usize, ep: Handle, first: u64, count: u64) {
        if self.pager_runs.try_reserve(1).is_ok() {
            self.pager_runs.push((p, first, count));
        }
        self.announce_only(p, ep, first, count);
    }

    fn announce_only(&self, p: usize, ep: Handle, first: u64, count: u64) {
        if let Err(e) = pager_call(ep, &pager::Request::Grant { first, count }) {
            println!(
                "supervisor: {}: grant of {count} frames from {first:#x} refused: {e:?}",
                self.name(p)
            );
        }
    }

    /// Grants instance `i` its `endpoint=`/`notify=` handles (in manifest
    /// order, so they land in its slots 1, 2, ...) and sets its pager.
    fn wire(&mut self, i: usize) -> Result<(), Fail<'a>> {
        let spec = *self.spec(i);
        let c = self.inst[i].ctl;
        for l in spec.links() {
            let named = match l.target {
                Target::Supervisor => ROOT,
                Target::Domain(d) => self.inst[self.m.domains()[d].first_instance].ctl,
            };
            // Endpoints may be passed on in a message (TRANSFER), like a
            // capability; notifications stay with the domain they were given.
            // So does the supervisor's endpoint: its badge is the holder's
            // authority, which must not move to a domain the manifest did
            // not name.
            let (kind, rights) = match (l.kind, l.target) {
                (LinkKind::Endpoint, Target::Domain(_)) => (
                    HandleKind::Endpoint,
                    HandleRights::SEND.union(HandleRights::TRANSFER),
                ),
                (LinkKind::Endpoint, Target::Supervisor) => {
                    (HandleKind::Endpoint, HandleRights::SEND)
                }
                (LinkKind::Notify, _) => (HandleKind::Notification, HandleRights::SEND),
            };
            ctl(named, DomainOp::Grant, c.to_raw(), grant_arg(kind, rights))
                .map_err(|e| fail("grant", e))?;
        }
        if let Some(sel) = spec.device {
            self.grant_device(i, sel)?;
        }
        if let Some(p) = spec.pager {
            let ep = self.pager_endpoint(p)?;
            ctl(c, DomainOp::SetPager, ep.to_raw(), 0).map_err(|e| fail("set pager", e))?;
        }
        Ok(())
    }

    /// The first PCI function `sel` selects: its index in the kernel's
    /// list, its info, and the chipset (for INTx routing).
    fn find_function(&self, sel: DeviceSel) -> Option<(u64, PciInfo, Chipset)> {
        let mut n = 0;
        let mut ids = alloc::vec::Vec::new();
        let mut found = None;
        while let Ok(raw) = sys::domain_ctl(ROOT, DomainOp::PciFunction, n, 0) {
            let p = PciInfo::from_raw(raw);
            ids.push((p.vendor, p.device));
            if found.is_none() && sel.matches(p.bdf, p.vendor, p.device) {
                found = Some((n, p));
            }
            n += 1;
        }
        found.map(|(index, p)| (index, p, Chipset::detect(ids)))
    }

    /// Gives instance `i` the first PCI function `sel` selects (its handle
    /// lands after the link handles) and its INTx line right after.
    /// Without an IOMMU its holder can aim DMA anywhere: the manifest's
    /// `device=` is that decision.
    fn grant_device(&mut self, i: usize, sel: DeviceSel) -> Result<(), Fail<'a>> {
        let Some((_, p, _)) = self.find_function(sel) else {
            println!(
                "supervisor: {}: no PCI function matches {sel:?}",
                self.name(i)
            );
            return Err(fail("find device", SysError::BadArgument));
        };
        let c = self.inst[i].ctl;
        ctl(ROOT, DomainOp::GrantDevice, u64::from(p.bdf), c.to_raw())
            .map_err(|e| fail("grant device", e))?;
        let (bus, dev, func) = (p.bdf >> 8, (p.bdf >> 3) & 0x1f, p.bdf & 7);
        println!(
            "supervisor: {} holds PCI {bus:02x}:{dev:02x}.{func} ({:04x}:{:04x}): a driver domain, trusted with DMA (no IOMMU)",
            self.name(i),
            p.vendor,
            p.device
        );
        self.bind_intx(i, sel)
    }

    /// Binds the INTx line of the function `sel` selects to instance `i`
    /// (an `Irq` handle, its `IRQ(0)`).
    fn bind_intx(&mut self, i: usize, sel: DeviceSel) -> Result<(), Fail<'a>> {
        let Some((index, p, chipset)) = self.find_function(sel) else {
            return Err(fail("find device", SysError::BadArgument));
        };
        let c = self.inst[i].ctl;
        let (bus, dev, func) = (p.bdf >> 8, (p.bdf >> 3) & 0x1f, p.bdf & 7);
        let int = sys::domain_ctl(ROOT, DomainOp::PciFunction, index, 1).unwrap_or(0);
        let (pin, line) = (int as u8, (int >> 8) as u8);
        match intx::route(chipset, p.bdf, pin, line) {
            Some(r) => {
                ctl(ROOT, DomainOp::BindIrq, bind_irq_arg(r.gsi, r.level, r.active_low), c.to_raw())
                    .map_err(|e| fail("bind INTx", e))?;
                println!(
                    "supervisor: {}: INT{} of {bus:02x}:{dev:02x}.{func} is GSI {} ({chipset:?} routing, level-triggered), its IRQ(0)",
                    self.name(i),
                    char::from(b'A' + pin.saturating_sub(1)),
                    r.gsi
                );
            }
            None => println!(
                "supervisor: {}: no interrupt line for {bus:02x}:{dev:02x}.{func} (pin {pin}, {chipset:?} chipset): its driver gets no interrupts",
                self.name(i)
            ),
        }
        Ok(())
    }

    /// Whether domain `d` is a vnic (it holds a virtio-net device).
    fn is_vnic(&self, d: usize) -> bool {
        self.m
            .domains()
            .get(d)
            .is_some_and(|s| s.device == Some(DeviceSel::VirtioNet))
    }

    /// The supervisor's endpoint to the vnic instance `j`'s port is on,
    /// and that instance, if it runs.
    fn vnic_for(&mut self, j: usize) -> Option<(usize, Handle)> {
        let v = self.m.vnic_of(self.inst[j].dom())?;
        let vi = self.m.domains()[v].first_instance;
        if !matches!(self.inst[vi].life, Life::Running) {
            return None;
        }
        match self.server_endpoint(vi) {
            Ok(ep) => Some((vi, ep)),
            Err(f) => {
                println!("supervisor: {}: no endpoint to the vnic: {f}", self.name(j));
                None
            }
        }
    }

    /// `net=yes`: configures instance `j`'s port on its vnic (before it
    /// starts, after it or the vnic restarts): its addresses from the plan
    /// (`serac_vnic_core::assign`, by slot index, so a restart keeps
    /// them) and a notification handle naming it, granted to the vnic.
    /// The owner reads its addresses back with `net::Request::Info`.
    fn attach_port(&mut self, j: usize) {
        let Some((vi, ep)) = self.vnic_for(j) else {
            println!(
                "supervisor: {}: its vnic is not running; no port",
                self.name(j)
            );
            return;
        };
        let id = self.inst[j].id;
        let Ok(addresses) = serac_vnic_core::assign::addresses(id.index) else {
            println!(
                "supervisor: {}: no address for slot {}",
                self.name(j),
                id.index
            );
            return;
        };
        let notify = match ctl(
            self.inst[j].ctl,
            DomainOp::Grant,
            self.inst[vi].ctl.to_raw(),
            grant_arg(HandleKind::Notification, HandleRights::SEND),
        ) {
            Ok(raw) => Handle::from_raw(raw),
            Err(e) => {
                println!(
                    "supervisor: {}: notification for the vnic: {e:?}",
                    self.name(j)
                );
                Handle::NONE
            }
        };
        let config = PortConfig {
            owner: id,
            addresses,
            notify,
        };
        if let Err(e) = net_control(ep, &NetRequest::Configure(config)) {
            self.port_failures = self.port_failures.saturating_add(1);
            if self.port_failures <= LOGGED_REFUSALS {
                println!(
                    "supervisor: {}: configuring its port failed: {e:?}",
                    self.name(j)
                );
            }
        }
    }

    /// Detaches instance `j`'s port (it ended), if its vnic runs.
    fn detach_port(&mut self, j: usize) {
        let Some((_, ep)) = self.vnic_for(j) else {
            return;
        };
        let owner = self.inst[j].id;
        if let Err(e) = net_control(ep, &NetRequest::Detach { owner }) {
            self.port_failures = self.port_failures.saturating_add(1);
            if self.port_failures <= LOGGED_REFUSALS {
                println!(
                    "supervisor: {}: detaching its port failed: {e:?}",
                    self.name(j)
                );
            }
        }
    }

    /// Whether domain `d` is a disk server (it holds a virtio-blk device).
    fn is_disk_server(&self, d: usize) -> bool {
        self.m
            .domains()
            .get(d)
            .is_some_and(|s| s.device == Some(DeviceSel::VirtioBlk))
    }

    /// Tells disk server `d` who its clients are (`disk::Request::Name`):
    /// every instance with an endpoint to it, or only instance `only`.
    /// The names are the manifest's (instance `k` of a counted domain is
    /// `<name>.<k>`, the character set extents allow).
    fn name_disk_clients(&mut self, d: usize, only: Option<usize>) {
        let si = self.m.domains()[d].first_instance;
        let ep = match self.server_endpoint(si) {
            Ok(ep) => ep,
            Err(f) => {
                println!(
                    "supervisor: {}: no endpoint to name its clients: {f}",
                    self.name(si)
                );
                return;
            }
        };
        for j in 0..self.inst.len() {
            if only.is_some_and(|o| o != j) || self.inst[j].life == Life::Exited {
                continue;
            }
            let spec = *self.spec(j);
            let linked = spec
                .links()
                .iter()
                .any(|l| l.kind == LinkKind::Endpoint && l.target == Target::Domain(d));
            if !linked {
                continue;
            }
            // The ordinal, not the slot: console-started instances come last.
            let k = self.inst[j].ordinal as usize;
            let mut buf = [0u8; 24];
            let name = if spec.count == 1 {
                spec.name
            } else {
                extent_name(&mut buf, spec.name, k)
            };
            let id = self.inst[j].id;
            // The push service may also create images (its pushed bundles).
            let mut disk = DiskClient::new(Endpoint(ep));
            let named = if spec.push {
                disk.name_creator(id, name)
            } else {
                disk.name(id, name)
            };
            if let Err(e) = named {
                println!("supervisor: {}: naming {name} failed: {e:?}", self.name(si));
            }
        }
    }

    /// The supervisor's endpoint to server instance `si`, made on first use.
    fn server_endpoint(&mut self, si: usize) -> Result<Handle, Fail<'a>> {
        if let Some(&(_, ep)) = self.server_eps.iter().find(|(i, _)| *i == si) {
            return Ok(ep);
        }
        let raw = ctl(
            self.inst[si].ctl,
            DomainOp::Grant,
            ROOT.to_raw(),
            grant_arg(HandleKind::Endpoint, HandleRights::SEND),
        )
        .map_err(|e| fail("grant server endpoint", e))?;
        let ep = Handle::from_raw(raw);
        self.server_eps.push((si, ep));
        Ok(ep)
    }

    /// The supervisor's endpoint to pager domain `p`'s instance 0, made
    /// on first use.
    fn pager_endpoint(&mut self, p: usize) -> Result<Handle, Fail<'a>> {
        let ep = self.pager_ep.get(p).copied().unwrap_or(Handle::NONE);
        if !ep.is_none() {
            return Ok(ep);
        }
        let pi = self.m.domains()[p].first_instance;
        let raw = ctl(
            self.inst[pi].ctl,
            DomainOp::Grant,
            ROOT.to_raw(),
            grant_arg(HandleKind::Endpoint, HandleRights::SEND),
        )
        .map_err(|e| fail("grant pager endpoint", e))?;
        let ep = Handle::from_raw(raw);
        if let Some(slot) = self.pager_ep.get_mut(p) {
            *slot = ep;
        }
        Ok(ep)
    }

    fn start(&mut self, i: usize) -> Result<(), Fail<'a>> {
        if self.spec(i).net {
            self.attach_port(i);
        }
        let entry = self.images[self.inst[i].dom()].plan.entry;
        ctl(self.inst[i].ctl, DomainOp::Start, entry, 0).map_err(|e| fail("start", e))?;
        self.inst[i].life = Life::Running;
        Ok(())
    }

    /// Restarts instance `i`, dead (after its exit message) or alive (on
    /// request): its pager forgets the old generation, `Restart` (same
    /// slot and lineage, next generation, stopped; the supervisor's handle
    /// follows it), read the new id, bind the same frames again, grant and
    /// set the pager again, announce the regions, start. A restarted pager
    /// is given a new share of frames, and its clients' regions again.
    pub fn restart(&mut self, i: usize) -> Result<(), Fail<'a>> {
        self.revoke(i, self.inst[i].id);
        let c = self.inst[i].ctl;
        ctl(c, DomainOp::Restart, 0, 0).map_err(|e| self.tag(i, fail("restart", e)))?;
        self.inst[i].id = read_id(c).map_err(|e| self.tag(i, fail("read id", e)))?;
        self.inst[i].restarts = self.inst[i].restarts.saturating_add(1);
        self.inst[i].life = Life::Built;
        self.load(i, true).map_err(|f| self.tag(i, f))?;
        self.wire(i).map_err(|f| self.tag(i, f))?;
        self.announce_regions(i);
        self.start(i).map_err(|f| self.tag(i, f))?;
        let d = self.inst[i].dom();
        // Names follow generations: a restarted disk server learns all its
        // clients again, a restarted client's new id goes to its servers.
        if self.is_disk_server(d) {
            self.name_disk_clients(d, None);
        }
        // A restarted vnic has no ports: configure every running owner's
        // again (their own restarts configure theirs in `start`).
        if self.is_vnic(d) {
            for j in 0..self.inst.len() {
                let owner = self.inst[j].dom();
                if self.m.vnic_of(owner) == Some(d) && self.inst[j].life == Life::Running {
                    self.attach_port(j);
                }
            }
        }
        for s in 0..self.m.domains().len() {
            if s != d && self.is_disk_server(s) {
                self.name_disk_clients(s, Some(i));
            }
        }
        if self.m.is_pager(d) && self.m.domains()[d].first_instance == i {
            // Regions before frames: a restarted pager serves the faults it
            // held as soon as its Grant comes, and must know where they may
            // be filled by then.
            for j in 0..self.inst.len() {
                if self.spec(j).pager == Some(d) && self.inst[j].life == Life::Running {
                    self.announce_regions(j);
                }
            }
            self.refeed_pager(i);
        }
        Ok(())
    }

    /// Forgets instance `i` after it ended (or when a restart failed): its
    /// pager drops its state, `Kill` reaps it (for a dead domain that frees
    /// the slot; a live one is killed and its exit message, when it comes,
    /// reaps it), and its image frames go back to the pool (the kernel
    /// unbound them when it ended).
    pub fn reap(&mut self, i: usize) {
        if self.inst[i].life != Life::Exited {
            self.revoke(i, self.inst[i].id);
            if self.spec(i).net {
                self.detach_port(i);
            }
        }
        if let Err(e) = ctl(self.inst[i].ctl, DomainOp::Kill, 0, 0) {
            println!("supervisor: {}: reap failed: {e:?}", self.name(i));
        }
        if self.inst[i].life == Life::Exited {
            return;
        }
        self.inst[i].life = Life::Exited;
        let start = self.inst[i].frames_start as usize;
        // A load that failed part way logged fewer.
        let n = usize::from(self.inst[i].frames_len) + extras(&self.m, self.inst[i].dom());
        let end = (start + n).min(self.frame_log.len());
        for &off in self.frame_log.get(start..end).unwrap_or(&[]) {
            self.pool.free(self.pool.frame(off));
        }
    }

    /// Instance `i`'s memory as its pager sees it (none without a pager,
    /// or when the pager does not answer).
    pub fn memory(&self, i: usize) -> Option<pager::DomainMem> {
        let ep = self.pager_of(i)?;
        match rpc(
            &mut Endpoint(ep),
            &pager::Request::DomainMem {
                domain: self.inst[i].id,
            },
        ) {
            Ok(pager::Reply::DomainMem(m)) => Some(m),
            _ => None,
        }
    }

    /// Prints each instance's memory (image pages the supervisor bound,
    /// and the pager's view: resident, swapped, swapped out, swap-ins and
    /// swap-outs) for the paged ones, at most `MAX_MEMORY_ROWS` rows, then
    /// the totals: what the operator console will show (issue 11).
    pub fn print_memory(&self) {
        const MAX_MEMORY_ROWS: usize = 16;
        let mut rows = 0;
        let (mut res, mut swp, mut out, mut sin, mut sout) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let mut paged = 0u64;
        for i in 0..self.inst.len() {
            if self.inst[i].life == Life::Exited {
                continue;
            }
            let Some(m) = self.memory(i) else { continue };
            paged += 1;
            res += u64::from(m.resident);
            swp += u64::from(m.swapped);
            out += u64::from(m.swapped_out);
            sin += u64::from(m.swap_ins);
            sout += u64::from(m.swap_outs);
            if rows < MAX_MEMORY_ROWS {
                rows += 1;
                println!(
                    "supervisor: memory {} {}:{}: image {} resident {} swapped {}{} swap-ins {} swap-outs {}",
                    self.name(i),
                    self.inst[i].id.index,
                    self.inst[i].id.gen,
                    self.pages(i),
                    m.resident,
                    m.swapped,
                    if m.swapped_out { " (swapped out)" } else { "" },
                    m.swap_ins,
                    m.swap_outs
                );
            }
        }
        println!(
            "supervisor: memory total: resident {res} swapped {swp} pages, {out} domain(s) swapped out, {sin} swap-in(s), {sout} swap-out(s)"
        );
        if paged > 0 && out * 2 > paged {
            println!("supervisor: memory: most paged domains are swapped out ({out} of {paged})");
        }
        self.check_code();
    }

    /// Asks instance `i`'s pager to swap it out whole.
    pub fn swap_out(&self, i: usize) -> Result<(), ServiceError> {
        let ep = self.pager_of(i).ok_or(ServiceError::Unsupported)?;
        let domain = self.inst[i].id;
        match pager_call(ep, &pager::Request::SwapOut { domain }) {
            Ok(()) => Ok(()),
            Err(ClientError::Service(e)) => Err(e),
            Err(_) => Err(ServiceError::ServerRestarted),
        }
    }

    /// Console `start`: one more instance of manifest domain `d`, built,
    /// wired and started as at boot (pager regions, endpoints, disk names,
    /// vnic port). One that cannot be built is reaped (its frames go back)
    /// and the failure returned.
    pub fn spawn(&mut self, d: usize) -> Result<usize, Fail<'a>> {
        let k = self
            .inst
            .iter()
            .filter(|x| x.dom() == d)
            .map(|x| x.ordinal.saturating_add(1))
            .max()
            .unwrap_or(0);
        let before = self.inst.len();
        let r = self.create_instance(d, k).and_then(|i| {
            self.wire(i).map_err(|f| self.tag(i, f))?;
            self.announce_regions(i);
            for s in 0..self.m.domains().len() {
                if s != d && self.is_disk_server(s) {
                    self.name_disk_clients(s, Some(i));
                }
            }
            self.start(i).map_err(|f| self.tag(i, f))?;
            Ok(i)
        });
        if r.is_err() && self.inst.len() > before {
            self.reap(before);
        }
        r
    }

    /// The disk server the push service has an endpoint to, if any.
    fn push_disk(&self, t: usize) -> Option<usize> {
        self.m.domains()[t]
            .links()
            .iter()
            .find_map(|l| match (l.kind, l.target) {
                (LinkKind::Endpoint, Target::Domain(s)) if self.is_disk_server(s) => Some(s),
                _ => None,
            })
    }

    /// `elf_len` bytes at `elf_offset` of disk image `image`, read through
    /// disk server `s` into the heap (grown from the pool for them).
    fn read_elf(&mut self, s: usize, spec: &ServiceSpec) -> Result<Vec<u8>, ServiceError> {
        let si = self.m.domains()[s].first_instance;
        let ep = self
            .server_endpoint(si)
            .map_err(|_| ServiceError::ServerRestarted)?;
        let svc = |e: ClientError| match e {
            ClientError::Service(e) => e,
            _ => ServiceError::Io,
        };
        let mut disk = DiskClient::new(Endpoint(ep));
        let (h, info) = disk
            .open(serac_protocol::disk::ExtentKind::Image, spec.image.as_str())
            .map_err(svc)?;
        let (off, len) = (spec.elf_offset as usize, spec.elf_len as usize);
        let end = off.checked_add(len).ok_or(ServiceError::BadRequest)?;
        if len == 0 || end as u64 > info.blocks.saturating_mul(BLOCK as u64) {
            return Err(ServiceError::OutOfRange);
        }
        grow_for(&mut self.pool, len);
        let mut out = Vec::new();
        out.try_reserve_exact(len)
            .map_err(|_| ServiceError::NoResources)?;
        let mut buf = [0u8; BLOCK];
        let mut block = (off / BLOCK) as u64;
        let mut skip = off % BLOCK;
        while out.len() < len {
            disk.read_block(h, block, &mut buf).map_err(svc)?;
            let take = (len - out.len()).min(BLOCK - skip);
            out.extend_from_slice(buf.get(skip..skip + take).unwrap_or(&[]));
            skip = 0;
            block += 1;
        }
        Ok(out)
    }

    /// `Install`: checks pushed service `spec` against the manifest and
    /// the host's limits, and unless `check_only`, reads its ELF from the
    /// disk, plans it, and adds it as a domain with no instance yet.
    pub fn install(&mut self, spec: &ServiceSpec, check_only: bool) -> Result<(), ServiceError> {
        let t = self.m.push_service().ok_or(ServiceError::Unsupported)?;
        let disk = self.push_disk(t);
        let want_disk = if spec.disk {
            Some(disk.ok_or(ServiceError::Unsupported)?)
        } else {
            None
        };
        let refusal = |r: ServiceRefusal| {
            println!("supervisor: install {} refused: {r}", spec.name.as_str());
            match r {
                ServiceRefusal::Exists => ServiceError::Exists,
                ServiceRefusal::TooMany => ServiceError::NoResources,
                _ => ServiceError::BadRequest,
            }
        };
        let name = spec.name.as_str();
        self.m
            .check_service(name, t, spec.net, want_disk)
            .map_err(refusal)?;
        if check_only {
            return Ok(());
        }
        let s = disk.ok_or(ServiceError::Unsupported)?;
        let bytes = self.read_elf(s, spec)?;
        let eager = self.m.domains()[t].pager.is_none();
        let plan = Plan::new(&bytes, eager).map_err(|e| {
            println!("supervisor: install {name}: image cannot be loaded: {e:?}");
            ServiceError::BadRequest
        })?;
        let zero: u64 = plan
            .zero_ranges()
            .map(|(a, b)| b.saturating_sub(a).div_ceil(BLOCK as u64))
            .sum();
        let need_kib = (plan.page_count() + zero).saturating_mul(4);
        if need_kib > u64::from(spec.memory_kib) || plan.page_count() > u64::from(u16::MAX) {
            println!(
                "supervisor: install {name}: the image needs {need_kib} KiB, {} KiB allowed",
                spec.memory_kib
            );
            return Err(ServiceError::NoResources);
        }
        // Pushed services live as long as the supervisor: their names and
        // images are leaked into its heap, like the archive's are borrowed.
        let name: &'static str = Box::leak(alloc::string::String::from(name).into_boxed_str());
        let len = bytes.len();
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        self.images
            .try_reserve(1)
            .map_err(|_| ServiceError::NoResources)?;
        self.pager_ep
            .try_reserve(1)
            .map_err(|_| ServiceError::NoResources)?;
        let d = self
            .m
            .add_service(name, name, t, spec.net, want_disk)
            .map_err(refusal)?;
        self.images.push(Image {
            bytes,
            plan,
            shared: 0,
            shared_pages: Vec::new(),
        });
        self.pager_ep.push(Handle::NONE);
        println!(
            "supervisor: installed service {name} as domain #{d}: {len} bytes of ELF from disk image {}, {} page(s), {need_kib} KiB per copy",
            spec.image.as_str(),
            plan.page_count()
        );
        Ok(())
    }

    /// `StartService`: up to `count` more instances of pushed service
    /// `name`; the ids of those started (fewer when the host ran out; an
    /// error if none could be).
    pub fn start_service(&mut self, name: &str, count: u32) -> Result<Started, ServiceError> {
        let d = self
            .m
            .find(name)
            .filter(|&d| self.m.domains()[d].pushed)
            .ok_or(ServiceError::NoSuchDomain)?;
        let mut out = Started {
            slots: [DomainId::NONE; START_BATCH],
            count: 0,
        };
        for slot in out.slots.iter_mut().take(count as usize) {
            match self.spawn(d) {
                Ok(i) => {
                    let x = self.inst[i];
                    println!(
                        "supervisor: started {} as {}:{} ({} pages) for the push service",
                        self.name(i),
                        x.id.index,
                        x.id.gen,
                        x.frames_len
                    );
                    *slot = x.id;
                    out.count += 1;
                }
                Err(f) => {
                    println!("supervisor: start {name}: {f}");
                    if out.count == 0 {
                        return Err(ServiceError::NoResources);
                    }
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The kernel's `ReadCounter(State)` of instance `i` (`None`: refused).
    pub fn kernel_state(&self, i: usize) -> Option<u64> {
        ctl(
            self.inst[i].ctl,
            DomainOp::ReadCounter,
            DomainCounter::State as u64,
            0,
        )
        .ok()
    }

    /// Instance `i`'s port counters from its vnic (`None`: no port, or
    /// the vnic does not answer).
    pub fn port_stats(&mut self, i: usize) -> Option<serac_protocol::net::PortStats> {
        use serac_protocol::client::{Transport, LABEL_NET};
        if !self.spec(i).net || self.inst[i].life == Life::Exited {
            return None;
        }
        let (_, ep) = self.vnic_for(i)?;
        let req: RequestRef<'_> = NetRequest::StatsOf {
            owner: self.inst[i].id,
        };
        let mut out = [0u8; 64];
        let bytes = serac_protocol::codec::encode(&req, &mut out).ok()?;
        let mut back = [0u8; 256];
        let n = Endpoint(ep).call(LABEL_NET, bytes, &mut back).ok()?;
        match serac_protocol::codec::decode_borrowed::<ReplyRef<'_>>(back.get(..n)?) {
            Ok(NetReply::Stats(s)) => Some(s),
            _ => None,
        }
    }

    /// Asks the kernel to kill instance `i` (its exit message follows).
    pub fn kill(&mut self, i: usize) -> Result<(), SysError> {
        ctl(self.inst[i].ctl, DomainOp::Kill, 0, 0).map(|_| ())
    }

    /// Reads a counter of instance `i` (0 if the kernel refuses).
    pub fn counter(&self, i: usize, c: DomainCounter) -> u64 {
        ctl(self.inst[i].ctl, DomainOp::ReadCounter, c as u64, 0).unwrap_or(0)
    }

    /// Whether every instance of domain `d` has ended.
    pub fn all_ended(&self, d: usize) -> bool {
        self.inst
            .iter()
            .filter(|x| x.dom() == d)
            .all(|x| x.life == Life::Exited)
    }

    /// Instances started and not known to have ended.
    pub fn running(&self) -> usize {
        self.inst.iter().filter(|x| x.life == Life::Running).count()
    }

    /// Pages the supervisor bound in instance `i`.
    pub fn pages(&self, i: usize) -> usize {
        usize::from(self.inst[i].frames_len)
    }
}

/// `<name>.<k>` in `buf` (a counted instance's extent name).
fn extent_name<'b>(buf: &'b mut [u8; 24], name: &str, k: usize) -> &'b str {
    use core::fmt::Write;
    struct W<'x>(&'x mut [u8; 24], usize);
    impl Write for W<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            let dst = self.0.get_mut(self.1..end).ok_or(core::fmt::Error)?;
            dst.copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }
    let mut w = W(buf, 0);
    let n = if write!(w, "{name}.{k}").is_ok() {
        w.1
    } else {
        0
    };
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Whether instance `i` holds a device (its frames must be contiguous).
fn spec_device(sup: &Supervisor<'_>, i: usize) -> bool {
    sup.spec(i).device.is_some()
}

/// Frames an instance of domain `d` logs after its image pages: with
/// `frames=N`, its grant page, the N frames given and its heap run.
fn extras(m: &Manifest<'_>, d: usize) -> usize {
    match m.domains().get(d).map_or(0, |s| s.frames) {
        0 => 0,
        n => 1 + usize::from(n) + heap_run(m, d),
    }
}

/// Heap bytes a vnic is given per port on it, beyond its static heap: its
/// tables' cost at the moment they double (`serac_vnic_core::BYTES_PER_PORT`
/// is what a port costs them, a table just doubled holding twice that).
const VNIC_HEAP_PER_PORT: usize = 2 * serac_vnic_core::BYTES_PER_PORT;

/// Frames of the heap run domain `d`'s instances are given (in their grant
/// page, `layout::grant`): for a vnic (`device = "virtio-net"`), its port
/// tables for every port the manifest puts on it, so that they are sized
/// by the plan and not by the vnic's static heap (8 MiB: about 16,000
/// ports). Its queues, which come and go with traffic, stay in that.
fn heap_run(m: &Manifest<'_>, d: usize) -> usize {
    match m.domains().get(d) {
        Some(s) if s.device == Some(DeviceSel::VirtioNet) && s.frames > 0 => {
            usize::try_from(m.ports_on(d))
                .unwrap_or(usize::MAX)
                .saturating_mul(VNIC_HEAP_PER_PORT)
                .div_ceil(4096)
        }
        _ => 0,
    }
}

/// Fills `frame` through the scratch page: zero, then each copy's image
/// bytes (several when segments share the page).
fn fill<'a>(
    frame: u64,
    copies: impl Iterator<Item = PageCopy>,
    image: &[u8],
) -> Result<(), Fail<'a>> {
    sys::map(Handle::NONE, SCRATCH, frame, PageRights::READ_WRITE)
        .map_err(|e| fail("map scratch", e))?;
    let r = (|| {
        sys::scratch_zero(SCRATCH)?;
        for c in copies {
            let end = c
                .file_offset
                .checked_add(c.len)
                .ok_or(SysError::BadArgument)?;
            let bytes = image.get(c.file_offset..end).ok_or(SysError::BadArgument)?;
            sys::scratch_write(SCRATCH, c.page_offset, bytes)?;
        }
        Ok(())
    })()
    .map_err(|e| fail("fill", e));
    sys::unmap(Handle::NONE, SCRATCH).map_err(|e| fail("unmap scratch", e))?;
    r
}
