//! Building, starting and restarting the manifest's domains (docs/abi.md
//! section 10, "Building a domain").
//!
//! Every image page is a frame of the supervisor's memory grant: bound in
//! the supervisor's scratch window, zeroed and filled, unbound, then bound
//! in the child with the segment's rights. The frame stays the
//! supervisor's; the instance remembers which frames it got (in order), so
//! a restart binds the same frames again and an ended domain returns them
//! to the pool.
//!
//! Domain ids: no call returns a child's `DomainId`, yet the kernel's exit
//! messages name domains by it. The kernel allocates domain slots from 0 (the
//! supervisor, `0:1`) upwards, so the supervisor predicts that its `n`-th
//! `Create` gets `n:1`, and a `Restart` bumps the generation
//! ([`DomainId::next_gen`]). An exit for an id it did not predict is logged
//! and ignored.

use alloc::vec::Vec;
use core::fmt;

use ilwaco::ipc::Endpoint;
use ilwaco::println;
use ilwaco::rt::BootArgs;
use ilwaco::sys;
use serac_pager_policy::wire;
use serac_protocol::bootarc::{Archive, ArchiveError};
use serac_protocol::client::rpc;
use serac_protocol::exit::ExitReason;
use serac_protocol::syscall::{grant_arg, DomainCounter, DomainOp};
use serac_protocol::{DomainId, Handle, HandleKind, HandleRights, PageRights, SysError};
use serac_supervisor_core::frames::{FramePool, MAX_FRAMES};
use serac_supervisor_core::manifest::{
    Class, DomainSpec, InstanceName, LinkKind, Manifest, Target,
};
use serac_supervisor_core::plan::Plan;

/// The supervisor's `DomainCtl` handle on itself (abi.md section 10).
pub const ROOT: Handle = Handle::new(1, 1);
/// The scratch page image frames are filled through.
const SCRATCH: u64 = sys::SCRATCH_BASE;
/// Domains with a larger count get one summary line instead of one per instance.
const VERBOSE_MAX: u32 = 100;
/// Restarts of one instance before the supervisor gives up on it.
pub const MAX_RESTARTS: u32 = 8;
/// Most frames one pager takes (what the swapper's pool can track).
const PAGER_MAX_FRAMES: usize = serac_pager_policy::pool::MAX_FRAMES as usize;
/// Most separate `Grant` runs one pager records.
const PAGER_MAX_RUNS: usize = serac_pager_policy::pool::MAX_RANGES;

/// A failed step: what was attempted, on which instance, and the error.
#[derive(Debug, Clone, Copy)]
pub struct Fail<'a> {
    /// The step (`create`, `map`, `grant`...).
    pub what: &'static str,
    /// The instance, if the step concerned one.
    pub instance: Option<usize>,
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
    /// Created and loaded, not started yet.
    Built,
    /// Started (runnable, blocked or idle: the supervisor cannot tell).
    Running,
    /// Ended, with this reason; its frames are back in the pool unless it
    /// is about to restart.
    Exited(ExitReason),
}

/// One instance of a manifest domain.
#[derive(Debug, Clone, Copy)]
pub struct Instance {
    /// Index of its domain in the manifest.
    pub dom: usize,
    /// Its number within the domain.
    pub ordinal: u32,
    /// The supervisor's `DomainCtl` handle on it.
    pub ctl: Handle,
    /// Its predicted id (see the module docs).
    pub id: DomainId,
    /// Where it is in its life.
    pub life: Life,
    /// Times restarted.
    pub restarts: u32,
    /// Its frames: `frame_log[frames.0 .. frames.0 + frames.1]`, in plan order.
    frames: (usize, usize),
    /// For a pager: the supervisor's endpoint handle to it (for `SetPager`).
    pager_ep: Handle,
}

/// Per-domain data fixed at boot: its image and load plan.
#[derive(Debug, Clone, Copy)]
struct Image<'a> {
    bytes: &'a [u8],
    plan: Plan,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct Supervisor<'a> {
    /// The manifest.
    pub m: &'a Manifest<'a>,
    images: Vec<Image<'a>>,
    /// Every instance, in manifest order.
    pub inst: Vec<Instance>,
    frame_log: Vec<u64>,
    pool: alloc::boxed::Box<FramePool>,
    next_index: u32,
}

fn fail<'a>(what: &'static str, err: SysError) -> Fail<'a> {
    Fail {
        what,
        instance: None,
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

fn ctl(h: Handle, op: DomainOp, a: u64, b: u64) -> Result<u64, SysError> {
    retry(|| sys::domain_ctl(h, op, a, b))
}

impl<'a> Supervisor<'a> {
    /// Checks every image against the archive and plans its pages; on a
    /// problem prints `supervisor: manifest line N: ...` and returns the halt code.
    pub fn new(m: &'a Manifest<'a>, archive: &Archive<'a>, args: BootArgs) -> Result<Self, u64> {
        let mut images = Vec::with_capacity(m.domains().len());
        let mut pages = 0u64;
        for d in m.domains() {
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
                Ok(p) => p,
                Err(e) => {
                    println!(
                        "supervisor: manifest line {}: image `{}` cannot be loaded: {e:?}",
                        d.line, d.image
                    );
                    return Err(crate::EXIT_MANIFEST);
                }
            };
            pages = pages.saturating_add(plan.page_count().saturating_mul(u64::from(d.count)));
            images.push(Image { bytes, plan });
        }
        let pool = alloc::boxed::Box::new(FramePool::new(args.a2, args.a3));
        println!(
            "supervisor: memory grant: {} frames from frame {:#x}{}",
            args.a3,
            args.a2,
            if args.a3 > MAX_FRAMES as u64 {
                " (only the first 65536 used)"
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
        Ok(Supervisor {
            m,
            images,
            inst: Vec::with_capacity(m.instance_count()),
            frame_log: Vec::with_capacity(usize::try_from(pages).unwrap_or(0)),
            pool,
            next_index: 1,
        })
    }

    fn spec(&self, i: usize) -> &DomainSpec<'a> {
        // `i` indexes `inst`, whose `dom` came from the manifest itself.
        &self.m.domains()[self.inst[i].dom]
    }

    /// The printable name of instance `i`.
    pub fn name(&self, i: usize) -> InstanceName<'a> {
        let inst = &self.inst[i];
        self.m.domains()[inst.dom].instance_name(inst.ordinal)
    }

    fn tag(&self, i: usize, mut f: Fail<'a>) -> Fail<'a> {
        f.instance = Some(i);
        f.name = Some(self.name(i));
        f
    }

    /// The instance with this id, if any.
    pub fn by_id(&self, id: DomainId) -> Option<usize> {
        self.inst.iter().position(|x| x.id == id)
    }

    /// Builds and starts everything: create + load in manifest order,
    /// grants, then the pagers (started and given frames first, so nobody
    /// faults into an empty pager), the other servers, the guests.
    pub fn boot(&mut self) -> Result<(), Fail<'a>> {
        // Clear a binding a previous incarnation might have left.
        let _ = sys::unmap(Handle::NONE, SCRATCH);
        for (d, spec) in self.m.domains().iter().enumerate() {
            for k in 0..spec.count {
                let c = ctl(ROOT, DomainOp::Create, spec.class.create_arg(), 0)
                    .map_err(|e| fail("create", e))?;
                let i = self.inst.len();
                self.inst.push(Instance {
                    dom: d,
                    ordinal: k,
                    ctl: Handle::from_raw(c),
                    id: DomainId::new(self.next_index, 1),
                    life: Life::Built,
                    restarts: 0,
                    frames: (self.frame_log.len(), 0),
                    pager_ep: Handle::NONE,
                });
                self.next_index += 1;
                self.load(i, false).map_err(|f| self.tag(i, f))?;
            }
        }
        for i in 0..self.inst.len() {
            self.wire(i).map_err(|f| self.tag(i, f))?;
        }
        let pagers: Vec<usize> = (0..self.m.domains().len())
            .filter(|&d| self.m.is_pager(d))
            .collect();
        for (k, &d) in pagers.iter().enumerate() {
            self.start_domain(d, &[])?;
            self.feed_pager(self.m.domains()[d].first_instance, pagers.len() - k);
        }
        for class in [Class::Server, Class::Guest] {
            for d in 0..self.m.domains().len() {
                if self.m.domains()[d].class == class {
                    self.start_domain(d, &pagers)?;
                }
            }
        }
        Ok(())
    }

    /// Starts every instance of domain `d` (unless `d` is in `skip`),
    /// after telling its pager where its zero-fill regions are.
    fn start_domain(&mut self, d: usize, skip: &[usize]) -> Result<(), Fail<'a>> {
        let spec = self.m.domains()[d];
        if skip.contains(&d) {
            return Ok(());
        }
        for i in spec.first_instance..spec.first_instance + spec.count as usize {
            self.announce_regions(i);
            self.start(i).map_err(|f| self.tag(i, f))?;
            if spec.count <= VERBOSE_MAX {
                let x = &self.inst[i];
                println!(
                    "supervisor: started {} as {}:{} ({} pages)",
                    self.name(i),
                    x.id.index,
                    x.id.gen,
                    x.frames.1
                );
            }
        }
        if spec.count > VERBOSE_MAX {
            println!("supervisor: started {} x {}", spec.count, spec.name);
        }
        Ok(())
    }

    /// The supervisor's endpoint to instance `i`'s pager, if it has one.
    fn pager_of(&self, i: usize) -> Option<Handle> {
        let p = self.spec(i).pager?;
        let ep = self.inst[self.m.domains()[p].first_instance].pager_ep;
        (!ep.is_none()).then_some(ep)
    }

    /// Tells instance `i`'s pager its zero-fill regions (`.bss`, stack);
    /// a refusal is logged, the pager then falls back to its default window.
    fn announce_regions(&mut self, i: usize) {
        let Some(ep) = self.pager_of(i) else { return };
        let plan = self.images[self.inst[i].dom].plan;
        let id = self.inst[i].id;
        for (start, end) in plan.zero_ranges() {
            if let Err(e) = wire::region(&mut Endpoint(ep), id, start, end) {
                println!(
                    "supervisor: {}: pager refused a region: {e:?}",
                    self.name(i)
                );
                return;
            }
        }
    }

    /// Tells instance `i`'s pager that the domain is gone (its frames are free).
    pub fn revoke(&mut self, i: usize, id: DomainId) {
        let Some(ep) = self.pager_of(i) else { return };
        let pager_alive = self.spec(i).pager.is_some_and(|p| {
            let pi = self.m.domains()[p].first_instance;
            !matches!(self.inst[pi].life, Life::Exited(_))
        });
        if !pager_alive {
            return;
        }
        let r = rpc(&mut Endpoint(ep), &wire::Request::Revoke { domain: id });
        if let Err(e) = r {
            println!("supervisor: {}: pager revoke failed: {e:?}", self.name(i));
        }
    }

    /// Binds instance `i`'s image pages; `reuse` binds the frames it had
    /// before (a restart), else takes new ones from the pool.
    fn load(&mut self, i: usize, reuse: bool) -> Result<(), Fail<'a>> {
        let img = self.images[self.inst[i].dom];
        let c = self.inst[i].ctl;
        let (start, had) = self.inst[i].frames;
        for (n, page) in img.plan.pages().enumerate() {
            let frame = if reuse {
                *self
                    .frame_log
                    .get(start + n)
                    .filter(|_| n < had)
                    .ok_or(fail("reload", SysError::BadArgument))?
            } else {
                let f = self
                    .pool
                    .alloc()
                    .ok_or(fail("frame pool", SysError::OutOfMemory))?;
                self.frame_log.push(f);
                self.inst[i].frames.1 += 1;
                f
            };
            fill(
                frame,
                page.copy.map(|cp| (cp.page_offset, cp.file_offset, cp.len)),
                img.bytes,
            )?;
            retry(|| sys::map(c, page.vaddr, frame, page.rights)).map_err(|e| fail("map", e))?;
        }
        Ok(())
    }

    /// Gives pager instance `p` its share of half the free frames (the
    /// other half stays for restarts), `ways` pagers still to feed, one
    /// `GiveFrame` each, announced in contiguous runs with a `Grant` request.
    fn feed_pager(&mut self, p: usize, ways: usize) {
        let share = (self.pool.free_count() / 2 / ways.max(1)).min(PAGER_MAX_FRAMES);
        let (c, ep) = (self.inst[p].ctl, self.inst[p].pager_ep);
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
    }

    fn announce(&self, p: usize, ep: Handle, first: u64, count: u64) {
        if let Err(e) = wire::grant(&mut Endpoint(ep), first, count) {
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
            let kind = match l.kind {
                LinkKind::Endpoint => HandleKind::Endpoint,
                LinkKind::Notify => HandleKind::Notification,
            };
            ctl(
                named,
                DomainOp::Grant,
                c.to_raw(),
                grant_arg(kind, HandleRights::SEND),
            )
            .map_err(|e| fail("grant", e))?;
        }
        if let Some(p) = spec.pager {
            let pi = self.m.domains()[p].first_instance;
            if self.inst[pi].pager_ep.is_none() {
                let ep = ctl(
                    self.inst[pi].ctl,
                    DomainOp::Grant,
                    ROOT.to_raw(),
                    grant_arg(HandleKind::Endpoint, HandleRights::SEND),
                )
                .map_err(|e| fail("grant pager endpoint", e))?;
                self.inst[pi].pager_ep = Handle::from_raw(ep);
            }
            ctl(c, DomainOp::SetPager, self.inst[pi].pager_ep.to_raw(), 0)
                .map_err(|e| fail("set pager", e))?;
        }
        Ok(())
    }

    fn start(&mut self, i: usize) -> Result<(), Fail<'a>> {
        let entry = self.images[self.inst[i].dom].plan.entry;
        ctl(self.inst[i].ctl, DomainOp::Start, entry, 0).map_err(|e| fail("start", e))?;
        self.inst[i].life = Life::Running;
        Ok(())
    }

    /// Restarts instance `i`: `Restart` (same slot, next generation; the
    /// handles others hold follow it), bind the same frames again, grant
    /// again, start. The kernel refuses `Restart` of a domain that has
    /// already ended (its slot is released when its exit is delivered);
    /// then a new domain is created instead, which lands in the freed slot
    /// with the next generation too, but handles naming the old incarnation
    /// stay dead.
    pub fn restart(&mut self, i: usize) -> Result<(), Fail<'a>> {
        let old = self.inst[i].id;
        let live = !matches!(self.inst[i].life, Life::Exited(_));
        if live {
            self.revoke(i, old);
        }
        match ctl(self.inst[i].ctl, DomainOp::Restart, 0, 0) {
            Ok(_) => {}
            Err(SysError::StaleHandle | SysError::BadHandle) if !live => {
                let class = self.spec(i).class.create_arg();
                let c = ctl(ROOT, DomainOp::Create, class, 0)
                    .map_err(|e| self.tag(i, fail("re-create", e)))?;
                self.inst[i].ctl = Handle::from_raw(c);
                println!(
                    "supervisor: {}: the kernel released its slot; made a new domain (old handles to it stay dead)",
                    self.name(i)
                );
            }
            Err(e) => return Err(self.tag(i, fail("restart", e))),
        }
        self.inst[i].id = old.next_gen();
        self.inst[i].restarts += 1;
        self.inst[i].life = Life::Built;
        self.load(i, true).map_err(|f| self.tag(i, f))?;
        self.wire(i).map_err(|f| self.tag(i, f))?;
        self.announce_regions(i);
        self.start(i).map_err(|f| self.tag(i, f))
    }

    /// Records that instance `i` ended and tells its pager; unless
    /// `keep_frames`, its frames go back to the pool (the kernel unbound
    /// them when it ended).
    pub fn ended(&mut self, i: usize, reason: ExitReason, keep_frames: bool) {
        if !matches!(self.inst[i].life, Life::Exited(_)) {
            self.revoke(i, self.inst[i].id);
        }
        self.inst[i].life = Life::Exited(reason);
        if !keep_frames {
            let (start, n) = self.inst[i].frames;
            for &f in self.frame_log.get(start..start + n).unwrap_or(&[]) {
                self.pool.free(f);
            }
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
            .filter(|x| x.dom == d)
            .all(|x| matches!(x.life, Life::Exited(_)))
    }

    /// Instances not known to have ended.
    pub fn running(&self) -> usize {
        self.inst
            .iter()
            .filter(|x| !matches!(x.life, Life::Exited(_)))
            .count()
    }

    /// Pages the supervisor bound in instance `i`.
    pub fn pages(&self, i: usize) -> usize {
        self.inst[i].frames.1
    }
}

/// Fills `frame` through the scratch page: zero, then `len` image bytes
/// from `file_offset` at `page_offset`.
fn fill<'a>(frame: u64, copy: Option<(usize, usize, usize)>, image: &[u8]) -> Result<(), Fail<'a>> {
    sys::map(Handle::NONE, SCRATCH, frame, PageRights::READ_WRITE)
        .map_err(|e| fail("map scratch", e))?;
    let r = (|| {
        sys::scratch_zero(SCRATCH)?;
        if let Some((page_offset, file_offset, len)) = copy {
            let bytes = image
                .get(file_offset..file_offset + len)
                .ok_or(SysError::BadArgument)?;
            sys::scratch_write(SCRATCH, page_offset, bytes)?;
        }
        Ok(())
    })()
    .map_err(|e| fail("fill", e));
    sys::unmap(Handle::NONE, SCRATCH).map_err(|e| fail("unmap scratch", e))?;
    r
}
