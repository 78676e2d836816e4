//! The disk benchmark's client (`cargo xtask bench disk`): runs the
//! batches of `serac_disk_core::bench` on its private disk through the
//! disk server `bench-disk` (handle 1), with Ilwaco's block device.
//!
//! It reads the parameters from the image `bench-params`, then for each
//! batch opens its disk, runs the batch, and closes it: the server counts
//! its own CPU from that `Open` to that `Close`, and runs its next direct
//! batch before answering the `Close`. Per batch it prints the wall time
//! (`BENCH disk_client_<workload>_ns_<round>`); at the end, per workload,
//! the CPU the kernel charged it inside the batches and the requests
//! made, then checks that its last write reads back.
#![no_std]
#![no_main]

use ilwaco::block::{Block, BlockDevice, BlockError};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};
use serac_disk_core::bench::{
    last_write, run_batch, schedule, stamped, ticks_to_ns, Params, Workload, CLIENT, PARAMS_IMAGE,
};

ilwaco::entry!(main);

const SERVER: Handle = Handle::new(1, 1);

fn cpu_ticks() -> u64 {
    sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::CpuTicks as u64,
        0,
    )
    .unwrap_or(0)
}

/// Ilwaco's block device as the batches' device.
struct Disk(BlockDevice);

impl serac_disk_core::BlockDevice for Disk {
    type Error = BlockError;

    fn block_count(&self) -> u64 {
        self.0.len_blocks()
    }

    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), BlockError> {
        self.0.read_block(block, buf)
    }

    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), BlockError> {
        self.0.write_block(block, buf)
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        self.0.flush()
    }
}

fn params() -> Result<Params, &'static str> {
    let mut img =
        BlockDevice::image(SERVER, PARAMS_IMAGE).map_err(|_| "cannot open the parameters")?;
    let mut buf = [0u8; 4096];
    img.read_block(0, &mut buf)
        .map_err(|_| "cannot read the parameters")?;
    img.close().map_err(|_| "cannot close the parameters")?;
    Params::parse(&buf).ok_or("the parameters do not parse")
}

fn run() -> Result<(), &'static str> {
    let p = params()?;
    let hz = time::tsc_hz().ok_or("no TSC frequency")?;
    println!("bench-diskclient: {p}");
    // The unit of the `_cpu` figures (wall-clock runs turn them into time).
    println!("BENCH disk_tsc_hz {hz}");
    let mut buf = [0u8; 4096];
    let (mut cpu, mut ops) = ([0u64; 3], [0u64; 3]);
    let mut blocks = 0;
    for k in 0..p.batches() {
        let (round, w) = schedule(&p, k).ok_or("no such batch")?;
        let mut disk = Disk(BlockDevice::disk(SERVER, CLIENT).map_err(|_| "cannot open the disk")?);
        blocks = disk.0.len_blocks();
        let (c0, t0) = (cpu_ticks(), time::tsc());
        let n = run_batch(&mut disk, round, w, &p, &mut buf).map_err(|e| {
            println!("bench-diskclient: {} round {round}: {e:?}", w.name());
            "a batch failed"
        })?;
        let (t1, c1) = (time::tsc(), cpu_ticks());
        disk.0.close().map_err(|_| "cannot close the disk")?;
        cpu[w.index()] += c1.saturating_sub(c0);
        ops[w.index()] += u64::from(n);
        println!(
            "BENCH disk_client_{}_ns_{round} {}",
            w.name(),
            ticks_to_ns(t1.saturating_sub(t0), hz)
        );
    }
    for w in Workload::ALL {
        println!("BENCH disk_client_{}_cpu {}", w.name(), cpu[w.index()]);
        println!("BENCH disk_client_{}_ops {}", w.name(), ops[w.index()]);
    }
    // Outside every batch: the last write is on the disk.
    let (block, round) = last_write(&p, blocks).ok_or("no write was made")?;
    let mut disk = BlockDevice::disk(SERVER, CLIENT).map_err(|_| "cannot open the disk")?;
    disk.read_block(block, &mut buf)
        .map_err(|_| "cannot read the last write back")?;
    let _ = disk.close();
    if !stamped(&buf, block, round) {
        return Err("the last write did not read back");
    }
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("TEST disk_bench_client_data ... ok");
            0
        }
        Err(why) => {
            println!("TEST disk_bench_client_data ... FAILED: {why}");
            1
        }
    }
}
