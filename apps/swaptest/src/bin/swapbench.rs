//! `cargo xtask bench swap`'s probe: the time to first byte of an HTTP
//! request to an `httpd` that was just swapped out whole, against a raw
//! read of as many pages from the same disk, in the same run.
//!
//! Each round: a GET to the resident httpd (its time to first byte, and
//! it warms the path); the supervisor's `SwapOut` of httpd, then its `Stat`
//! until it reads `SwappedOut` (the pages it holds in swap are the count
//! to match); the GET again, timed to the first byte of the answer; then
//! that many 4 KiB blocks read in order from this domain's own disk
//! through the disk server. It prints one `BENCH swap_round` line per
//! round; xtask takes the medians.
//!
//! Handles: 1 = vnic, 2 = supervisor (operator), 3 = disk server.
#![no_std]
#![no_main]

use ilwaco::block::{Block, BlockDevice};
use ilwaco::ipc::Endpoint;
use ilwaco::net::{self, Config, Net, NetDuration};
use ilwaco::protocol::net::Ipv4;
use ilwaco::protocol::supervisor::{Client, DomainState};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, time};

ilwaco::entry!(main);

const VNIC: u32 = 1;
const SUPERVISOR: Handle = Handle::new(2, 1);
const DISK: Handle = Handle::new(3, 1);
const ROUNDS: u32 = 5;

/// The slot index the vnic's address plan gave `ip` (host number 256 + index).
fn index_of(ip: Ipv4) -> u32 {
    (u32::from(ip.0[2]) << 8 | u32::from(ip.0[3])).saturating_sub(256)
}

fn us(ticks: u64) -> u64 {
    ticks * 1_000_000 / time::tsc_hz().unwrap_or(1).max(1)
}

/// TSC ticks from connect to the first byte of the answer.
async fn ttfb(net: &Net, ip: Ipv4) -> Result<u64, &'static str> {
    let t0 = time::tsc();
    let mut s = net.connect(ip, 80).await.map_err(|_| "connect")?;
    s.write_all(b"GET /2k.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|_| "write")?;
    let mut b = [0u8; 512];
    let n = s.read(&mut b).await.map_err(|_| "read")?;
    let t1 = time::tsc();
    if n == 0 {
        return Err("closed before answering");
    }
    // Drain the rest so the connection ends cleanly.
    while let Ok(n) = s.read(&mut b).await {
        if n == 0 {
            break;
        }
    }
    Ok(t1 - t0)
}

async fn bench(net: Net) -> Result<(), &'static str> {
    let found = net
        .discover("httpd", 1, net.now() + NetDuration::from_secs(20))
        .await
        .map_err(|_| "discovery failed")?;
    let ip = *found.first().ok_or("no httpd answered")?;
    let mut sup = Client::new(Endpoint(SUPERVISOR));
    let index = index_of(ip);
    let page = sup.list(index).map_err(|_| "List")?;
    let httpd: DomainId = *page
        .ids()
        .iter()
        .find(|d| d.index == index)
        .ok_or("httpd's slot is not listed")?;
    let mut disk = BlockDevice::disk(DISK, "swapbench").map_err(|_| "no disk `swapbench`")?;
    let blocks = disk.len_blocks();
    let mut block: Block = [0; 4096];
    for round in 1..=ROUNDS {
        let warm = net
            .timeout(net.now() + NetDuration::from_secs(20), ttfb(&net, ip))
            .await
            .map_err(|_| "resident request timed out")??;
        sup.swap_out(httpd).map_err(|_| "SwapOut refused")?;
        let mut pages = 0;
        let mut out = false;
        for _ in 0..100 {
            let st = sup.stat(httpd).map_err(|_| "Stat")?;
            if st.state == DomainState::SwappedOut {
                pages = st.pages_swapped;
                out = true;
                break;
            }
            let _ = time::sleep_ns(20_000_000);
        }
        if !out {
            return Err("httpd never read SwappedOut");
        }
        let cold = net
            .timeout(net.now() + NetDuration::from_secs(20), ttfb(&net, ip))
            .await
            .map_err(|_| "swapped-out request timed out")??;
        let start = (u64::from(round) * u64::from(pages)) % blocks.max(1);
        let t0 = time::tsc();
        for b in 0..u64::from(pages) {
            disk.read_block((start + b) % blocks.max(1), &mut block)
                .map_err(|_| "raw read failed")?;
        }
        let raw = time::tsc() - t0;
        println!(
            "BENCH swap_round {round} ttfb_us {} resident_ttfb_us {} raw_us {} pages {pages}",
            us(cold),
            us(warm),
            us(raw)
        );
    }
    Ok(())
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("swapbench: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, bench(net.clone())) {
        Ok(()) => 0,
        Err(why) => {
            println!("swapbench: {why}");
            1
        }
    }
}
