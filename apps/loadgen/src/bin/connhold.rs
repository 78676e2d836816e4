//! connhold: holds idle TCP connections open to an httpd so `bench net`
//! can measure what one costs. Handle 1 = endpoint to the vnic (`net=yes`).
//!
//! It finds an `httpd` by discovery, opens [`CONNS`] connections one at a
//! time (each established before the next) and sends nothing on them; it
//! prints its heap in use after [`CONNS`]/2 and after [`CONNS`]
//! (`BENCH conn_client_heap_<n>`), so the difference over the second half
//! is the marginal cost of a connection, set-up allocations left out.
//! httpd prints its own heap at the same counts. Then it holds them a
//! moment (httpd's idle timeout is longer) and ends.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use ilwaco::net::{self, Config, Net, NetDuration};
use ilwaco::println;

ilwaco::entry!(main);

const VNIC: u32 = 1;
/// Connections held: a power of two, so httpd reports at half and all.
const CONNS: usize = 16;

async fn hold(net: Net) -> Result<(), &'static str> {
    let found = net
        .discover("httpd", 1, net.now() + NetDuration::from_secs(20))
        .await
        .map_err(|_| "discovery failed")?;
    let ip = *found.first().ok_or("no httpd answered")?;
    let mut conns = Vec::with_capacity(CONNS);
    for i in 1..=CONNS {
        let s = net
            .timeout(net.now() + NetDuration::from_secs(10), net.connect(ip, 80))
            .await
            .map_err(|_| "connect timed out")?
            .map_err(|_| "connect failed")?;
        conns.push(s);
        if i == CONNS / 2 || i == CONNS {
            println!("BENCH conn_client_heap_{i} {}", ilwaco::sys::heap_in_use());
        }
    }
    println!("BENCH conn_open {}", conns.len());
    // Let httpd's accepts and report run before the connections go.
    net.sleep(NetDuration::from_millis(500)).await;
    Ok(())
}

fn main() -> i32 {
    let cfg = Config {
        max_tcp: CONNS + 4,
        ..Config::default()
    };
    let net = match net::attach(ilwaco::rt::granted(VNIC), cfg) {
        Ok(n) => n,
        Err(e) => {
            println!("connhold: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, hold(net.clone())) {
        Ok(()) => {
            println!("connhold: {CONNS} connections held");
            0
        }
        Err(why) => {
            println!("connhold: {why}");
            1
        }
    }
}
