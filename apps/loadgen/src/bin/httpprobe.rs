//! httpprobe: the test domain that sends httpd what it should refuse.
//! Handle 1 = endpoint to the vnic (`net=yes`).
//!
//! It finds an `httpd` by discovery and checks, each on its own
//! connection: garbage gets 400 and the connection closes; binary junk
//! gets 400; a head over 4 KiB gets 413; an unknown page gets 404 on a
//! connection that stays open, and the next request on it a 200; two
//! pipelined requests get two answers in order; a head that stalls half
//! way gets 408 after httpd's timeout. Then, the point: a plain GET still
//! gets the 2 KiB page, so httpd survived all of it. The verdict is
//! `TEST http_malformed ... ok`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use ilwaco::net::{self, Config, Net, NetDuration};
use ilwaco::println;
use ilwaco::protocol::net::Ipv4;
use serac_loadgen::{read_response, Answer, ExchangeError};

ilwaco::entry!(main);

const VNIC: u32 = 1;

async fn exchange(
    net: &Net,
    ip: Ipv4,
    req: &[u8],
    answers: usize,
) -> Result<(Vec<Answer>, bool), ExchangeError> {
    let mut s = net.connect(ip, 80).await?;
    s.write_all(req).await?;
    let mut buf = alloc::vec![0u8; 4096];
    let mut len = 0;
    let mut out = Vec::new();
    for _ in 0..answers {
        out.push(read_response(&mut s, &mut buf, &mut len).await?);
    }
    // Whether the server closed after the last answer.
    let closed = matches!(
        net.timeout(net.now() + NetDuration::from_millis(300), s.read(&mut buf))
            .await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    Ok((out, closed))
}

async fn check(
    net: &Net,
    ip: Ipv4,
    what: &str,
    req: &[u8],
    want: &[u16],
    closes: bool,
) -> Result<(), &'static str> {
    let r = net
        .timeout(
            net.now() + NetDuration::from_secs(20),
            exchange(net, ip, req, want.len()),
        )
        .await;
    match r {
        Ok(Ok((answers, closed))) => {
            let got: Vec<u16> = answers.iter().map(|a| a.head.status).collect();
            println!("httpprobe: {what}: {got:?}, closed {closed}");
            if got != want {
                return Err("wrong status");
            }
            if closed != closes {
                return Err("the connection did not end as it should");
            }
            Ok(())
        }
        Ok(Err(e)) => {
            println!("httpprobe: {what}: {e:?}");
            Err("exchange failed")
        }
        Err(_) => {
            println!("httpprobe: {what}: timed out");
            Err("exchange timed out")
        }
    }
}

async fn probe(net: Net) -> Result<(), &'static str> {
    let found = net
        .discover("httpd", 1, net.now() + NetDuration::from_secs(20))
        .await
        .map_err(|_| "discovery failed")?;
    let ip = *found.first().ok_or("no httpd answered")?;
    check(&net, ip, "garbage", b"GARBAGE\r\n\r\n", &[400], true).await?;
    let mut junk = Vec::new();
    for i in 0u32..300 {
        junk.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
    }
    junk.extend_from_slice(b"\r\n\r\n");
    check(&net, ip, "junk", &junk, &[400], true).await?;
    let mut big = Vec::new();
    big.extend_from_slice(b"GET /2k.html HTTP/1.1\r\nHost: x\r\nX-Big: ");
    big.resize(big.len() + 5000, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    check(&net, ip, "oversized header", &big, &[413], true).await?;
    check(
        &net,
        ip,
        "missing, then a page on the same connection",
        b"GET /missing.html HTTP/1.1\r\nHost: x\r\n\r\nGET /2k.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        &[404, 200],
        true,
    )
    .await?;
    check(
        &net,
        ip,
        "pipelined, kept open",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2k.html HTTP/1.1\r\nHost: x\r\n\r\n",
        &[200, 200],
        false,
    )
    .await?;
    check(
        &net,
        ip,
        "stalled head",
        b"GET /2k.html HTTP/1.1\r\nHo",
        &[408],
        true,
    )
    .await?;
    // httpd is still there and serves the page whole.
    let (a, _) = net
        .timeout(
            net.now() + NetDuration::from_secs(20),
            exchange(
                &net,
                ip,
                b"GET /2k.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                1,
            ),
        )
        .await
        .map_err(|_| "the last request timed out")?
        .map_err(|_| "the last request failed")?;
    let last = a.first().ok_or("no answer")?;
    if last.head.status != 200 || last.body_len != 2048 {
        return Err("httpd did not serve the page after the probes");
    }
    println!("httpprobe: httpd alive after the probes: 200, 2048 bytes");
    Ok(())
}

fn main() -> i32 {
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("httpprobe: no network: {e:?}");
            return 1;
        }
    };
    match net::run(&net, probe(net.clone())) {
        Ok(()) => {
            println!("TEST http_malformed ... ok");
            0
        }
        Err(why) => {
            println!("TEST http_malformed ... FAILED: {why}");
            1
        }
    }
}
