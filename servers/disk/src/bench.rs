//! The `bench-disk` binary's measurements (`cargo xtask bench disk`,
//! docs/performance.md), as the server's [`Hooks`].
//!
//! - **Direct batches.** The batches the bench client runs through the
//!   server (`serac_disk_core::bench`), run by the server itself on its own
//!   extent [`DIRECT_EXTENT`] through the same device path it serves
//!   clients with: `check_piece`, a request slot, `submit_*`, the interrupt
//!   wait, `take`, `copy_out`, one 2 KiB piece at a time as a client's
//!   requests come. What they lack is the client's path: IPC, the codec,
//!   the jobs. The first runs when the client first opens something (the
//!   parameters), each next one when the client closes its disk
//!   after a batch, both before that request is answered: the client
//!   waits in its call and the supervisor is done starting domains, so
//!   nothing else runs meanwhile. (Run at start instead, beside the
//!   supervisor building the client, its path length per request
//!   depended on the batch's size.)
//!   Direct and client batches alternate, and host load that drifts over
//!   the run hits both alike.
//! - **Server ticks.** In each client batch (from its first piece, a
//!   `Read` or `Write` request, to the `Close` after its last), the CPU the
//!   kernel charged this domain and the pieces it served: one full cycle
//!   of the loop per piece, each ending as the next request is taken.
//!
//! It prints `BENCH` lines; the domain is named `bench-disk`, and the
//! bench parser trusts `bench-*` domains.
#![forbid(unsafe_code)]

use ilwaco::println;
use ilwaco::protocol::disk::{ExtentKind, Request, RequestRef, MAX_IO, PIECES_PER_BLOCK};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::Handle;
use ilwaco::{sys, time};
use serac_disk_core::bench::{
    last_write, run_batch, schedule, stamped, ticks_to_ns, Params, Workload, CLIENT, DIRECT_EXTENT,
    PARAMS_IMAGE,
};
use serac_disk_core::{check_piece, Block, BlockDevice, Extent, IoError, Kind, Name, BLOCK};

use crate::device::{Irq, SyncDisk};
use crate::hal::blk::{Blk, Done, IoFailed, SubmitError};
use crate::serve::{Backend, Hooks};

/// The CPU the kernel has charged this domain, in TSC ticks.
pub fn cpu_ticks() -> u64 {
    sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::CpuTicks as u64,
        0,
    )
    .unwrap_or(0)
}

/// One client batch being served: from its `Open`; CPU counted from its
/// first piece (not the `Open` and its log line).
#[derive(Debug, Clone, Copy)]
struct Window {
    badge: u64,
    cpu: Option<u64>,
    pieces: u64,
}

#[derive(Debug)]
struct State {
    params: Params,
    direct: Extent,
    hz: u64,
    /// Direct batches run, and client batches closed: batch k of the
    /// schedule runs directly once k client batches are done.
    direct_done: usize,
    client_done: usize,
    window: Option<Window>,
    /// A client opened something: the domains are all started (the
    /// supervisor's `Name` requests come before its clients run).
    called: bool,
    /// Per workload: the direct batches' CPU and requests, and the
    /// server's CPU and pieces in the client's batches.
    direct_cpu: [u64; 3],
    direct_ops: [u64; 3],
    server_cpu: [u64; 3],
    server_pieces: [u64; 3],
    buf: Block,
}

/// The hooks; `None` inside when the disk has no bench extents (then the
/// binary is just the server).
#[derive(Debug)]
pub struct Bench(Option<State>);

impl Bench {
    /// Reads the parameters and finds the direct extent on the opened disk.
    pub fn new(backend: &mut Result<Backend, ilwaco::protocol::disk::ServiceError>) -> Bench {
        let Ok(b) = backend else {
            println!("bench-disk: the disk did not open; no measurements");
            return Bench(None);
        };
        let find = |kind, name| Some(*b.table.find(kind, &Name::new(name).ok()?)?);
        let (Some(direct), Some(params)) = (
            find(Kind::Disk, DIRECT_EXTENT),
            find(Kind::Image, PARAMS_IMAGE),
        ) else {
            println!("bench-disk: no extents {DIRECT_EXTENT} and {PARAMS_IMAGE}; no measurements");
            return Bench(None);
        };
        let mut buf = [0u8; BLOCK];
        let len = params
            .content
            .map_or(0, |c| usize::try_from(c.len).unwrap_or(BLOCK).min(BLOCK));
        let mut sync = SyncDisk {
            blk: &mut b.blk,
            irq: b.irq,
        };
        let parsed = sync
            .read_block(params.start, &mut buf)
            .ok()
            .and_then(|()| Params::parse(buf.get(..len)?));
        let Some(params) = parsed else {
            println!("bench-disk: {PARAMS_IMAGE} does not read as parameters; no measurements");
            return Bench(None);
        };
        println!(
            "bench-disk: {params}, direct on {DIRECT_EXTENT} ({} blocks)",
            direct.blocks
        );
        Bench(Some(State {
            params,
            direct,
            hz: time::tsc_hz().unwrap_or(0),
            direct_done: 0,
            client_done: 0,
            window: None,
            called: false,
            direct_cpu: [0; 3],
            direct_ops: [0; 3],
            server_cpu: [0; 3],
            server_pieces: [0; 3],
            buf,
        }))
    }
}

impl State {
    fn batches(&self) -> usize {
        self.params.batches()
    }

    fn run_direct(&mut self, b: &mut Backend, slot: usize) {
        let Some((round, w)) = schedule(&self.params, self.direct_done) else {
            return;
        };
        let mut dev = Direct {
            blk: &mut b.blk,
            irq: b.irq,
            extent: self.direct,
            slot,
        };
        self.direct_done += 1;
        let (c0, t0) = (cpu_ticks(), time::tsc());
        let r = run_batch(&mut dev, round, w, &self.params, &mut self.buf);
        let (t1, c1) = (time::tsc(), cpu_ticks());
        match r {
            Ok(ops) => {
                let i = w.index();
                self.direct_cpu[i] += c1.saturating_sub(c0);
                self.direct_ops[i] += u64::from(ops);
                println!(
                    "BENCH disk_direct_{}_ns_{round} {}",
                    w.name(),
                    ticks_to_ns(t1.saturating_sub(t0), self.hz)
                );
            }
            Err(e) => println!(
                "bench-disk: direct {} round {round} failed: {e:?}",
                w.name()
            ),
        }
        if w == Workload::Write4k && round + 1 == self.params.rounds {
            let ok = last_write(&self.params, self.direct.blocks).is_some_and(|(blk, r)| {
                dev.read_block(blk, &mut self.buf).is_ok() && stamped(&self.buf, blk, r)
            });
            if ok {
                println!("TEST disk_bench_direct_data ... ok");
            } else {
                println!("TEST disk_bench_direct_data ... FAILED: the last direct write did not read back");
            }
        }
    }

    fn report(&self) {
        for w in Workload::ALL {
            let (n, i) = (w.name(), w.index());
            println!("BENCH disk_direct_{n}_cpu {}", self.direct_cpu[i]);
            println!("BENCH disk_direct_{n}_ops {}", self.direct_ops[i]);
            println!("BENCH disk_server_{n}_cpu {}", self.server_cpu[i]);
            println!("BENCH disk_server_{n}_pieces {}", self.server_pieces[i]);
        }
    }
}

impl Hooks for Bench {
    const QUIET: bool = true;

    fn request(&mut self, badge: u64, req: &RequestRef<'_>) {
        let Some(s) = &mut self.0 else { return };
        s.called |= matches!(req, Request::Open { .. });
        match req {
            Request::Open {
                kind: ExtentKind::Disk,
                name,
            } if name.as_str() == CLIENT && s.window.is_none() && s.client_done < s.batches() => {
                s.window = Some(Window {
                    badge,
                    cpu: None,
                    pieces: 0,
                });
            }
            Request::Read { .. } | Request::Write { .. } => {
                if let Some(w) = s.window.as_mut().filter(|w| w.badge == badge) {
                    w.cpu.get_or_insert_with(cpu_ticks);
                    w.pieces += 1;
                }
            }
            Request::Close { .. } => {
                let Some(w) = s.window.take_if(|w| w.badge == badge) else {
                    return;
                };
                let cpu = w.cpu.map_or(0, |c| cpu_ticks().saturating_sub(c));
                if let Some((_, wl)) = schedule(&s.params, s.client_done) {
                    s.server_cpu[wl.index()] += cpu;
                    s.server_pieces[wl.index()] += w.pieces;
                }
                s.client_done += 1;
                if s.client_done == s.batches() {
                    s.report();
                }
            }
            _ => {}
        }
    }

    fn quiet(&mut self, b: &mut Backend, slot: usize) {
        let Some(s) = &mut self.0 else { return };
        if s.called && s.direct_done == s.client_done && s.direct_done < s.batches() {
            s.run_direct(b, slot);
        }
    }
}

/// Why a direct request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectError {
    /// The piece is not inside the extent (a defect here).
    Check(IoError),
    /// The device did not take it.
    Submit(SubmitError),
    /// The device failed it.
    Io(IoFailed),
    /// Another slot completed: something else was in flight.
    Foreign,
}

/// The direct extent as a block device: each block as the pieces a client
/// would send, each submitted and awaited as the server does.
struct Direct<'a> {
    blk: &'a mut Blk,
    irq: Irq,
    extent: Extent,
    slot: usize,
}

impl Direct<'_> {
    fn piece(&mut self, block: u64, i: usize, write: bool) -> Result<(), DirectError> {
        let offset = u16::try_from(i * MAX_IO).unwrap_or(u16::MAX);
        let p =
            check_piece(&self.extent, write, block, offset, MAX_IO).map_err(DirectError::Check)?;
        let submitted = if write {
            self.blk.submit_write(self.slot, p.sector(), p.len)
        } else {
            self.blk.submit_read(self.slot, p.sector(), p.len)
        };
        submitted.map_err(DirectError::Submit)?;
        loop {
            match self.blk.take() {
                Some((Done::Read { slot, .. } | Done::Write { slot }, r)) if slot == self.slot => {
                    return r.map_err(DirectError::Io)
                }
                Some(_) => return Err(DirectError::Foreign),
                None => self.irq.wait(self.blk),
            }
        }
    }
}

impl BlockDevice for Direct<'_> {
    type Error = DirectError;

    fn block_count(&self) -> u64 {
        self.extent.blocks
    }

    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), DirectError> {
        for (i, out) in buf.chunks_mut(MAX_IO).enumerate().take(PIECES_PER_BLOCK) {
            self.piece(block, i, false)?;
            self.blk
                .copy_out(self.slot, out)
                .map_err(DirectError::Submit)?;
        }
        Ok(())
    }

    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), DirectError> {
        for (i, data) in buf.chunks(MAX_IO).enumerate().take(PIECES_PER_BLOCK) {
            self.blk
                .fill(self.slot, data)
                .map_err(DirectError::Submit)?;
            self.piece(block, i, true)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DirectError> {
        // The batches never flush (neither does the client).
        Ok(())
    }
}
