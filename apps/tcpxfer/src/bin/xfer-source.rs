//! xfer-source: the sending end of the guest-to-guest TCP test. Handle 1
//! = endpoint to the vnic (`net=yes`).
//!
//! It finds `net-judge` by discovery, connects, sends [`TOTAL`] bytes of
//! the pattern, waits until all are acknowledged and closes. It gives no
//! verdict (the judge does); it says what it did and its counters.
#![no_std]
#![no_main]

use ilwaco::net::{self, Config, Net, NetDuration};
use ilwaco::println;
use serac_tcpxfer::{pattern, NAME, PORT, TOTAL};

ilwaco::entry!(main);

const VNIC: u32 = 1;

async fn send(net: Net) -> Result<(), &'static str> {
    let found = net
        .discover(NAME, 1, net.now() + NetDuration::from_secs(30))
        .await
        .map_err(|_| "discovery failed")?;
    let ip = *found.first().ok_or("no net-judge answered")?;
    let mut s = net
        .timeout(
            net.now() + NetDuration::from_secs(30),
            net.connect(ip, PORT),
        )
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|_| "connect failed")?;
    let mut off = 0;
    let mut chunk = [0u8; 4096];
    while off < TOTAL {
        let len = chunk.len().min(TOTAL - off);
        for (k, b) in chunk[..len].iter_mut().enumerate() {
            *b = pattern(off + k);
        }
        net.timeout(
            net.now() + NetDuration::from_secs(60),
            s.write_all(&chunk[..len]),
        )
        .await
        .map_err(|_| "the transfer stalled")?
        .map_err(|_| "the connection failed")?;
        off += len;
    }
    net.timeout(net.now() + NetDuration::from_secs(60), s.flush())
        .await
        .map_err(|_| "the last bytes were never acknowledged")?
        .map_err(|_| "the connection failed at the end")?;
    s.close();
    println!(
        "xfer-source: {TOTAL} bytes sent and acknowledged; {:?}",
        net.stats()
    );
    Ok(())
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("xfer-source: no network: {e:?}");
            return 1;
        }
    };
    // Let the FIN go out before halting.
    let r = net::run(&net, async {
        let r = send(net.clone()).await;
        net.sleep(NetDuration::from_millis(200)).await;
        r
    });
    match r {
        Ok(()) => 0,
        Err(why) => {
            println!("xfer-source: {why}");
            1
        }
    }
}
