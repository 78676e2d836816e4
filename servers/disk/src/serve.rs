//! The server loop: requests in, device requests out, replies when the
//! device answers.
//!
//! **Jobs.** Each of [`SLOTS`] jobs is one client request from the moment
//! it is received until its reply is sent: `Ready` (checked, waiting for
//! the queue), `InFlight` (the device has it; the job keeps the caller's
//! `Reply` handle), `Done` (the answer is ready). Job i uses the device's
//! slot i, so a write's data goes straight into DMA memory. Requests that
//! need no device (`Open`, `Info`, `Close`, and every refusal) are `Done`
//! at once.
//!
//! **Waiting.** One `reply_recv` with `RECV_WAKE_ON_EVENT` waits for the
//! next request and the device's interrupt together: a message waiting
//! comes first, else the interrupt ends the wait (`Woken::Events`), and the
//! loop harvests what the device completed. Clients that call while the
//! server works wait in the kernel's queue (they are blocked in `call`
//! either way) and are taken one per wait, so several clients' requests
//! are in flight together. While other answers are ready, the wait only
//! takes a message already queued (a past deadline: their callers are
//! blocked, so nothing else could end it). With every job taken, the server
//! waits for the device alone (`Irq::wait`). Without an interrupt line
//! (the fallback in `device`), the wait has a short deadline while
//! requests are in flight.
//!
//! No path spins: each wait is `reply_recv` or `idle`. A `Flush` is a
//! device request like the others (`T_FLUSH`, `hal::blk`), in flight
//! beside reads and writes and answered on its interrupt. It covers every
//! write the server acknowledged before it came: those completed on the
//! device before the flush was queued.
#![forbid(unsafe_code)]

use ilwaco::ipc::{put_in_place, take_in_place};
use ilwaco::println;
use ilwaco::protocol::client::LABEL_DISK;
use ilwaco::protocol::codec::encode;
use ilwaco::protocol::disk::{
    decode_request, DataRef, DiskHandle, ExtentInfo, ExtentKind, ImageEntry, ImagePage, Reply,
    ReplyRef, Request, RequestRef, ServiceError, IMAGE_PAGE_LEN,
};
use ilwaco::protocol::{DomainId, Handle, SysError};
use ilwaco::sys::{self, Woken};
use ilwaco::time;
use serac_disk_core::clients::{info, IMAGE_SLOT};
use serac_disk_core::{
    check_request, plan_image, AllocError, Checked, Clients, Content, Error as VolError, Extent,
    Kind, Name, Table, Volume, BLOCK,
};

use crate::device::{Irq, SyncDisk};
use crate::hal::blk::{Blk, Done, SubmitError, SLOTS};

/// Log lines of each kind before the server goes quiet about it.
const LOGGED: u32 = 16;
/// A `reply_recv` deadline that has passed: take a waiting message or
/// return at once.
const NOW: u64 = 1;

/// The slot number of the staged image's handle (its generation counts
/// stagings): below the images' slots, far above the open table's.
const STAGED_SLOT: u32 = IMAGE_SLOT - 1;
/// Clients the supervisor named as image creators, kept at once.
const MAX_CREATORS: usize = 4;

/// The image being written (`Request::CreateImage`): blocks planned on
/// the table, not in it until `CommitImage` checks them.
#[derive(Debug, Clone, Copy)]
struct Staged {
    owner: u64,
    gen: u32,
    name: Name,
    content: Content,
    /// Where it goes, as a writable extent (what writes are checked by).
    area: Extent,
}

/// The device and the table, once opened.
#[derive(Debug)]
pub struct Backend {
    /// The device.
    pub blk: Blk,
    /// How to wait for it.
    pub irq: Irq,
    /// The extent table read at start.
    pub table: Table,
    /// Images whose content failed their checksum at start.
    pub corrupt_images: alloc::vec::Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read { sector: u64, len: usize },
    Write { sector: u64, len: usize },
    Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Opened(DiskHandle, ExtentInfo),
    Info(ExtentInfo),
    /// The data is in the job's slot.
    Data(usize),
    /// A page of images with ids above this one.
    Images(u32),
    Err(ServiceError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Free,
    Ready {
        reply: Handle,
        seq: u64,
        op: Op,
    },
    InFlight {
        reply: Handle,
        seq: u64,
    },
    Done {
        reply: Handle,
        seq: u64,
        answer: Answer,
    },
}

/// `index:gen` of a badge, as the kernel's log names domains.
struct Who(u64);

impl core::fmt::Display for Who {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let d = DomainId::from_raw(self.0);
        write!(f, "{}:{}", d.index, d.gen)
    }
}

/// Counters, and how many lines of each kind were printed.
#[derive(Debug, Default)]
struct Stats {
    opens: u32,
    refusals: u32,
    io_errors: u32,
    recv_errors: u32,
    max_depth: usize,
    /// Flushes on the device now.
    flushing: u32,
    /// Reads that completed while a flush was in flight.
    reads_beside_flush: u64,
    /// Flushes queued on the device beside other requests.
    flushes_beside_others: u64,
}

/// What a variant of the server does beside serving: the `bench-disk`
/// binary measures (`crate::bench`); `()`, the server's, does nothing.
pub trait Hooks {
    /// Whether [`Hooks::quiet`] is ever wanted (checking costs the loop).
    const QUIET: bool = false;

    /// A request from `badge`, decoded, before it is served.
    fn request(&mut self, _badge: u64, _req: &RequestRef<'_>) {}

    /// Nothing is in flight on the device and device slot `slot` holds no
    /// job: the hook may use the device (the pending replies wait).
    fn quiet(&mut self, _backend: &mut Backend, _slot: usize) {}
}

impl Hooks for () {}

/// The server's state.
#[derive(Debug)]
pub struct Server<H: Hooks = ()> {
    backend: Result<Backend, ServiceError>,
    clients: Clients,
    jobs: [Job; SLOTS],
    seq: u64,
    stats: Stats,
    hooks: H,
    staged: Option<Staged>,
    staged_gen: u32,
    /// Badges the supervisor named with `NameCreator` (newest last).
    creators: alloc::vec::Vec<u64>,
}

impl<H: Hooks> Server<H> {
    /// A server of incarnation `epoch` over `backend` (or answering every
    /// request with its error, if the device or the table did not open).
    pub fn new(epoch: u32, backend: Result<Backend, ServiceError>, hooks: H) -> Server<H> {
        Server {
            backend,
            clients: Clients::new(epoch),
            jobs: [Job::Free; SLOTS],
            seq: 0,
            stats: Stats::default(),
            hooks,
            staged: None,
            staged_gen: 0,
            creators: alloc::vec::Vec::new(),
        }
    }

    /// Serves for ever.
    pub fn run(mut self) -> ! {
        loop {
            self.harvest();
            self.start_ready();
            if H::QUIET {
                self.quiet();
            }
            let done = self.oldest(|j| matches!(j, Job::Done { .. }));
            let free = self.jobs.contains(&Job::Free);
            if done.is_none() && !free {
                self.wait_device();
                continue;
            }
            let reply = done.map_or(Handle::NONE, |i| self.send(i));
            // More answers ready: their callers wait for them, so nothing
            // may come to end the wait; only take a message already there.
            let more = self.jobs.iter().any(|j| matches!(j, Job::Done { .. }));
            let busy = self.in_flight() > 0;
            let deadline = match &self.backend {
                _ if more => NOW,
                Ok(b) => b.irq.deadline(busy),
                Err(_) => 0,
            };
            match sys::reply_recv_or_event(reply, deadline, 0) {
                Ok(Woken::Message(raw)) => {
                    self.stats.recv_errors = 0;
                    self.incoming(raw);
                }
                Ok(Woken::Events(mask)) => {
                    if let Ok(b) = &mut self.backend {
                        b.irq.acknowledge(&mut b.blk, mask);
                    }
                }
                // The fallback's poll, or the past deadline with answers
                // ready: the next pass looks at the used ring.
                Ok(Woken::Timeout) => {}
                Err(e) => self.recv_failed(e, reply),
            }
        }
    }

    /// Lets the hooks use the device if nothing is in flight, on a slot
    /// no job holds (a `Done` job's data may be in its own slot).
    fn quiet(&mut self) {
        let free = self.jobs.iter().position(|j| *j == Job::Free);
        let busy = self
            .jobs
            .iter()
            .any(|j| matches!(j, Job::InFlight { .. } | Job::Ready { .. }));
        if let (Ok(b), Some(slot), false) = (&mut self.backend, free, busy) {
            if b.blk.in_flight() == 0 {
                self.hooks.quiet(b, slot);
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.backend.as_ref().map_or(0, |b| b.blk.in_flight())
    }

    fn wait_device(&mut self) {
        if let Ok(b) = &mut self.backend {
            b.irq.wait(&mut b.blk);
        }
    }

    /// The job matching `f` that arrived first.
    fn oldest(&self, f: impl Fn(&Job) -> bool) -> Option<usize> {
        let seq = |j: &Job| match j {
            Job::Ready { seq, .. } | Job::InFlight { seq, .. } | Job::Done { seq, .. } => *seq,
            Job::Free => u64::MAX,
        };
        (0..SLOTS)
            .filter(|&i| f(&self.jobs[i]))
            .min_by_key(|&i| seq(&self.jobs[i]))
    }

    /// Moves the device's completions to `Done`.
    fn harvest(&mut self) {
        let Ok(b) = &mut self.backend else { return };
        while let Some((done, r)) = b.blk.take() {
            match done {
                Done::Flush { .. } => self.stats.flushing = self.stats.flushing.saturating_sub(1),
                Done::Read { .. } if self.stats.flushing > 0 => {
                    self.stats.reads_beside_flush += 1;
                    if self.stats.reads_beside_flush == 1 {
                        println!("disk: a read completed while a flush was in flight");
                    }
                }
                _ => {}
            }
            let (slot, answer) = match (done, r) {
                (Done::Read { slot, len }, Ok(())) => (slot, Answer::Data(len)),
                (Done::Write { slot } | Done::Flush { slot }, Ok(())) => (slot, Answer::Ok),
                (Done::Read { slot, .. } | Done::Write { slot } | Done::Flush { slot }, Err(e)) => {
                    self.stats.io_errors += 1;
                    if self.stats.io_errors <= LOGGED {
                        println!("disk: device error: {:?}", e.0);
                    }
                    (slot, Answer::Err(ServiceError::Io))
                }
            };
            if let Some(Job::InFlight { reply, seq }) = self.jobs.get(slot).copied() {
                self.jobs[slot] = Job::Done { reply, seq, answer };
            }
        }
    }

    /// Hands `Ready` jobs to the device in arrival order, until the queue
    /// is full.
    fn start_ready(&mut self) {
        while let Some(i) = self.oldest(|j| matches!(j, Job::Ready { .. })) {
            let Job::Ready { reply, seq, op } = self.jobs[i] else {
                return;
            };
            let Ok(b) = &mut self.backend else { return };
            let started = match op {
                Op::Flush => match (b.blk.in_flight(), b.blk.submit_flush(i)) {
                    (others, Ok(true)) => {
                        self.stats.flushing += 1;
                        if others > 0 {
                            self.stats.flushes_beside_others += 1;
                            if self.stats.flushes_beside_others == 1 {
                                println!("disk: a flush went to the device with {others} other request(s) in flight");
                            }
                        }
                        Ok(())
                    }
                    // No write cache: acknowledged writes are stable.
                    (_, Ok(false)) => Err(Some(Answer::Ok)),
                    (_, Err(e)) => Err(Self::refused(e)),
                },
                Op::Read { sector, len } => {
                    b.blk.submit_read(i, sector, len).map_err(Self::refused)
                }
                Op::Write { sector, len } => {
                    b.blk.submit_write(i, sector, len).map_err(Self::refused)
                }
            };
            self.jobs[i] = match started {
                Ok(()) => Job::InFlight { reply, seq },
                Err(None) => return,
                Err(Some(answer)) => Job::Done { reply, seq, answer },
            };
            let depth = b.blk.in_flight();
            if depth > self.stats.max_depth {
                self.stats.max_depth = depth;
                if depth > 1 {
                    println!("disk: {depth} requests in flight at once");
                }
            }
        }
    }

    /// `None`: the queue is full, try later; else the job's answer.
    fn refused(e: SubmitError) -> Option<Answer> {
        match e {
            SubmitError::Full => None,
            SubmitError::Bad | SubmitError::Device(_) => Some(Answer::Err(ServiceError::Io)),
        }
    }

    /// Puts job `i`'s reply in the IPC buffer, frees the job and returns
    /// the handle to answer.
    fn send(&mut self, i: usize) -> Handle {
        let Job::Done { reply, answer, .. } = self.jobs[i] else {
            return Handle::NONE;
        };
        self.jobs[i] = Job::Free;
        let r: ReplyRef<'_> = match answer {
            Answer::Ok => Reply::Ok,
            Answer::Opened(handle, info) => Reply::Opened { handle, info },
            Answer::Info(x) => Reply::Info(x),
            Answer::Err(e) => Reply::Err(e),
            Answer::Images(after) => Reply::Images(self.images_after(after)),
            Answer::Data(len) => {
                // From the DMA slot straight into the outgoing message.
                let sent = match &self.backend {
                    Ok(b) => b
                        .blk
                        .with_data(i, len, |d| {
                            let r = Reply::Data(DataRef::new(d)?);
                            put_in_place(LABEL_DISK, Handle::NONE, |p| {
                                encode(&r, p).ok().map(|b| b.len())
                            })
                            .ok()
                        })
                        .ok()
                        .flatten(),
                    Err(_) => None,
                };
                if sent.is_some() {
                    return reply;
                }
                Reply::Err(ServiceError::Io)
            }
        };
        let put = |p: &mut [u8]| encode(&r, p).ok().map(|b| b.len());
        if put_in_place(LABEL_DISK, Handle::NONE, put).is_err() {
            let _ = put_in_place(LABEL_DISK, Handle::NONE, |_| Some(0));
        }
        reply
    }

    fn recv_failed(&mut self, e: SysError, reply: Handle) {
        // The reply may not have gone (a bad handle): drop it so the table
        // does not fill; closing an answered one fails harmlessly.
        if !reply.is_none() {
            let _ = sys::close(reply);
        }
        self.stats.recv_errors += 1;
        if self.stats.recv_errors <= 3 {
            println!("disk: reply_recv failed: {e:?}");
        } else {
            // Something is persistently wrong: do not spin on it.
            let _ = time::sleep_ns(10_000_000);
        }
    }

    /// A new message with reply handle `reply`, decoded where it lies in
    /// the IPC buffer (a write's data goes from there into the DMA slot).
    fn incoming(&mut self, reply: Handle) {
        if reply.is_none() {
            // A `send`: nobody waits for an answer.
            return;
        }
        let Some(i) = self.jobs.iter().position(|j| *j == Job::Free) else {
            // Never: the loop receives only with a job free.
            let _ = sys::close(reply);
            return;
        };
        self.seq += 1;
        let seq = self.seq;
        let bad = Err(Answer::Err(ServiceError::BadRequest));
        let job = take_in_place(|h, payload| {
            if h.label != LABEL_DISK {
                return bad;
            }
            match decode_request(payload) {
                Ok(req) => {
                    self.hooks.request(h.badge, &req);
                    self.request(i, h.badge, &req)
                }
                Err(_) => bad,
            }
        })
        .unwrap_or(bad);
        self.jobs[i] = match job {
            Ok(op) => Job::Ready { reply, seq, op },
            Err(answer) => Job::Done { reply, seq, answer },
        };
    }

    /// Checks `req` from `badge` for job `i`: the device request to make,
    /// or the answer now.
    fn request(&mut self, i: usize, badge: u64, req: &RequestRef<'_>) -> Result<Op, Answer> {
        let b = match &mut self.backend {
            Ok(b) => b,
            Err(e) => return Err(Answer::Err(*e)),
        };
        let handle = match *req {
            Request::Open { kind, name } => {
                return match self.clients.open(badge, &b.table, kind, name.as_str()) {
                    Ok((h, e)) if b.corrupt_images.contains(&e.id) => {
                        let _ = self.clients.close(badge, h);
                        Err(Answer::Err(ServiceError::Corrupt))
                    }
                    Ok((h, e)) => {
                        self.stats.opens += 1;
                        if self.stats.opens <= LOGGED {
                            println!(
                                "disk: {} opened {:?} {} ({} blocks)",
                                Who(badge),
                                kind,
                                e.name,
                                e.blocks
                            );
                        }
                        Err(Answer::Opened(h, info(&e)))
                    }
                    Err(err) => {
                        self.stats.refusals += 1;
                        if self.stats.refusals <= LOGGED {
                            println!(
                                "disk: refused {} to open {:?} {}: {err:?}",
                                Who(badge),
                                kind,
                                name.as_str()
                            );
                        }
                        Err(Answer::Err(err))
                    }
                };
            }
            Request::Close { handle } if handle.slot == STAGED_SLOT => {
                if self.staged_for(badge, handle).is_ok() {
                    println!("disk: {} abandoned staged image", Who(badge));
                    self.staged = None;
                }
                return Err(Answer::Ok);
            }
            Request::Close { handle } => {
                return Err(self
                    .clients
                    .close(badge, handle)
                    .map_or_else(Answer::Err, |()| Answer::Ok))
            }
            Request::Name { client, name } | Request::NameCreator { client, name } => {
                // Only the first domain (slot 0) is the supervisor.
                if DomainId::from_raw(badge).index != 0 {
                    self.stats.refusals += 1;
                    if self.stats.refusals <= LOGGED {
                        println!("disk: refused Name from {}: not the supervisor", Who(badge));
                    }
                    return Err(Answer::Err(ServiceError::NotPermitted));
                }
                let r = self.clients.name(client.to_raw(), name.as_str(), &b.table);
                let c = client.to_raw();
                let creator = matches!(req, Request::NameCreator { .. });
                // A name moves to its new badge: the old one creates no more.
                self.creators.retain(|&x| {
                    x != c && DomainId::from_raw(x).index != DomainId::from_raw(c).index
                });
                if creator && r.is_ok() {
                    if self.creators.len() >= MAX_CREATORS {
                        self.creators.remove(0);
                    }
                    self.creators.push(c);
                }
                return Err(r.map_or_else(Answer::Err, |()| Answer::Ok));
            }
            Request::CreateImage { name, len, crc } => {
                return Err(self.create_image(badge, name.as_str(), len, crc));
            }
            Request::CommitImage { handle } => return Err(self.commit_image(badge, handle)),
            Request::ListImages { after } => return Err(Answer::Images(after)),
            Request::Info { handle }
            | Request::Read { handle, .. }
            | Request::Write { handle, .. }
            | Request::Flush { handle } => handle,
        };
        let e = if handle.slot == STAGED_SLOT {
            staged_in(self.staged.as_ref(), self.clients.epoch(), badge, handle)
                .map_err(Answer::Err)?
                .area
        } else {
            self.clients
                .get(&b.table, badge, handle)
                .map_err(Answer::Err)?
        };
        let checked = check_request(&e, req).map_err(|x| Answer::Err(x.into()))?;
        match (checked, req) {
            (Checked::Read(p), _) => Ok(Op::Read {
                sector: p.sector(),
                len: p.len,
            }),
            (Checked::Write(p), Request::Write { data, .. }) => {
                b.blk
                    .fill(i, data.as_slice())
                    .map_err(|_| Answer::Err(ServiceError::Io))?;
                Ok(Op::Write {
                    sector: p.sector(),
                    len: p.len,
                })
            }
            (Checked::Flush, _) => Ok(Op::Flush),
            (Checked::Other, _) => Err(Answer::Info(info(&e))),
            (Checked::Write(_), _) => Err(Answer::Err(ServiceError::BadRequest)),
        }
    }
    /// The staged image, if `handle` is its handle and `badge` its owner.
    fn staged_for(&self, badge: u64, handle: DiskHandle) -> Result<Staged, ServiceError> {
        staged_in(self.staged.as_ref(), self.clients.epoch(), badge, handle)
    }

    /// `CreateImage`: plans the image's blocks and hands out the handle
    /// that writes them. Staging again abandons the earlier one.
    fn create_image(&mut self, badge: u64, name: &str, len: u64, crc: u32) -> Answer {
        let refuse = |s: &mut Self, why: &str, e: ServiceError| {
            s.stats.refusals += 1;
            if s.stats.refusals <= LOGGED {
                println!("disk: refused {} to create image {name}: {why}", Who(badge));
            }
            Answer::Err(e)
        };
        if !self.creators.contains(&badge) {
            return refuse(self, "not named a creator", ServiceError::NotPermitted);
        }
        let Ok(b) = &self.backend else {
            return Answer::Err(ServiceError::Io);
        };
        let Ok(n) = Name::new(name) else {
            return refuse(self, "not an extent name", ServiceError::BadRequest);
        };
        let blocks = len.div_ceil(BLOCK as u64).max(1);
        let content = Content { len, crc };
        let area = match plan_image(&b.table, n, blocks, content) {
            Ok(e) => e,
            Err(AllocError::Exists) => return refuse(self, "exists", ServiceError::Exists),
            Err(AllocError::NoSpace) => return refuse(self, "no space", ServiceError::NoResources),
            Err(e) => return refuse(self, &alloc::format!("{e:?}"), ServiceError::BadRequest),
        };
        if let Some(old) = self.staged.take() {
            println!("disk: staged image {} abandoned for {name}", old.name);
        }
        self.staged_gen = self.staged_gen.wrapping_add(1).max(1);
        let gen = self.staged_gen;
        self.staged = Some(Staged {
            owner: badge,
            gen,
            name: n,
            content,
            area: Extent {
                kind: Kind::Disk,
                content: None,
                ..area
            },
        });
        println!(
            "disk: {} staging image {name}: {len} bytes in {blocks} blocks at {}",
            Who(badge),
            area.start
        );
        Answer::Opened(
            DiskHandle {
                epoch: self.clients.epoch(),
                slot: STAGED_SLOT,
                gen,
            },
            ExtentInfo {
                kind: ExtentKind::Image,
                blocks,
                read_only: false,
            },
        )
    }

    /// `CommitImage`: with the device quiet, flushes, checks the staged
    /// blocks against their CRC and records the image in the table (both
    /// on the disk and here). `Busy` while other requests are on the
    /// device (the caller retries); any failure drops the staged image.
    fn commit_image(&mut self, badge: u64, handle: DiskHandle) -> Answer {
        let st = match self.staged_for(badge, handle) {
            Ok(st) => st,
            Err(e) => return Answer::Err(e),
        };
        let busy = self
            .jobs
            .iter()
            .any(|j| matches!(j, Job::InFlight { .. } | Job::Ready { .. }));
        let Ok(b) = &mut self.backend else {
            return Answer::Err(ServiceError::Io);
        };
        if busy || b.blk.in_flight() > 0 {
            return Answer::Err(ServiceError::Busy);
        }
        self.staged = None;
        let irq = b.irq;
        let r = Volume::open(SyncDisk {
            blk: &mut b.blk,
            irq,
        })
        .and_then(|mut v| {
            let r = v.commit_written_image(st.name, st.area.blocks, st.content, st.area.start)?;
            Ok((r, v.table().clone()))
        });
        match r {
            Ok((Some(e), table)) => {
                b.table = table;
                println!(
                    "disk: image {} committed for {}: {} bytes, {} blocks at {}, id {}",
                    e.name,
                    Who(badge),
                    st.content.len,
                    e.blocks,
                    e.start,
                    e.id
                );
                Answer::Ok
            }
            Ok((None, _)) => {
                println!(
                    "disk: staged image {} does not match its checksum: dropped (Corrupt)",
                    st.name
                );
                Answer::Err(ServiceError::Corrupt)
            }
            Err(e) => {
                println!("disk: committing image {} failed: {e:?}", st.name);
                Answer::Err(match e {
                    VolError::Alloc(AllocError::Exists) => ServiceError::Exists,
                    VolError::Alloc(AllocError::NoSpace) => ServiceError::NoResources,
                    _ => ServiceError::Io,
                })
            }
        }
    }

    /// The images with extent ids above `after`, by id, one page.
    fn images_after(&self, after: u32) -> ImagePage {
        let mut page = ImagePage {
            entries: [ImageEntry::default(); IMAGE_PAGE_LEN],
            count: 0,
        };
        let Ok(b) = &self.backend else { return page };
        let mut v: alloc::vec::Vec<&Extent> = b
            .table
            .extents()
            .iter()
            .filter(|e| e.kind == Kind::Image && e.id > after)
            .collect();
        v.sort_by_key(|e| e.id);
        let mut n = 0;
        for e in v {
            let (Some(slot), Some(name)) = (
                page.entries.get_mut(n),
                ilwaco::protocol::disk::ExtentName::new(e.name.as_str()),
            ) else {
                continue;
            };
            *slot = ImageEntry {
                id: e.id,
                name,
                len: e.content.map_or(0, |c| c.len),
            };
            n += 1;
        }
        page.count = u8::try_from(n).unwrap_or(0);
        page
    }
}

/// `staged`, if `handle` (of incarnation `epoch`) is its handle and
/// `badge` its owner.
fn staged_in(
    staged: Option<&Staged>,
    epoch: u32,
    badge: u64,
    handle: DiskHandle,
) -> Result<Staged, ServiceError> {
    if handle.epoch != epoch {
        return Err(ServiceError::ServerRestarted);
    }
    match staged {
        Some(st) if st.owner == badge && st.gen == handle.gen => Ok(*st),
        _ => Err(ServiceError::BadHandle),
    }
}
