//! net-judge: the receiving end of the guest-to-guest TCP test, and its
//! verdict. Handle 1 = endpoint to the vnic (`net=yes`).
//!
//! It announces itself as `net-judge`, accepts one connection on
//! [`PORT`], reads until the sender closes and checks every byte against
//! the pattern. `TEST tcp_1mib ... ok` only if exactly [`TOTAL`] bytes
//! came and all match; it also prints the elapsed time and the stack's
//! counters (sends, receives, re-attaches after a vnic restart).
#![no_std]
#![no_main]

use ilwaco::net::{self, Config, Net, NetDuration};
use ilwaco::{println, time};
use serac_tcpxfer::{pattern, PORT, TOTAL};

ilwaco::entry!(main);

const VNIC: u32 = 1;

async fn judge(net: Net) -> Result<usize, &'static str> {
    let listener = net.listen(PORT, 1).map_err(|_| "listen failed")?;
    match net::announce(&net, serac_tcpxfer::NAME) {
        Ok(t) => net.spawn(t),
        Err(_) => return Err("no discovery"),
    }
    println!("net-judge: waiting on port {PORT}");
    let mut s = net
        .timeout(net.now() + NetDuration::from_secs(60), listener.accept())
        .await
        .map_err(|_| "nobody connected")?
        .map_err(|_| "accept failed")?;
    let t0 = time::now_ns().unwrap_or(0);
    let mut got = 0usize;
    let mut buf = [0u8; 2048];
    let mut last_report = 0;
    loop {
        let n = net
            .timeout(net.now() + NetDuration::from_secs(30), s.read(&mut buf))
            .await
            .map_err(|_| "the transfer stalled")?
            .map_err(|_| "the connection was reset")?;
        if n == 0 {
            break;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            if b != pattern(got + k) {
                println!(
                    "net-judge: byte {} is {b:#x}, not {:#x}",
                    got + k,
                    pattern(got + k)
                );
                return Err("a byte differs");
            }
        }
        got += n;
        if got > TOTAL {
            return Err("more bytes than sent");
        }
        if got - last_report >= TOTAL / 4 {
            last_report = got;
            println!("net-judge: {got} bytes checked");
        }
    }
    let ms = (time::now_ns().unwrap_or(0).saturating_sub(t0)) / 1_000_000;
    println!("net-judge: {got} bytes in {ms} ms; {:?}", net.stats());
    if got != TOTAL {
        return Err("the stream ended early");
    }
    Ok(got)
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("net-judge: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, judge(net.clone())) {
        Ok(n) => {
            println!("TEST tcp_1mib ... ok ({n} bytes byte-exact)");
            0
        }
        Err(why) => {
            println!("TEST tcp_1mib ... FAILED: {why}");
            1
        }
    }
}
