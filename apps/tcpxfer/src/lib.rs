//! What both ends of the transfer agree on, and the sender.
#![no_std]

use ilwaco::net::{Net, NetDuration};
use ilwaco::println;

/// Bytes sent.
pub const TOTAL: usize = 1 << 20;
/// The judge's port.
pub const PORT: u16 = 5001;
/// The discovery name of the judge.
pub const NAME: &str = "net-judge";

/// The byte at offset `i` of the stream: a hash of the offset, so a
/// lost, repeated or reordered segment shows.
pub fn pattern(i: usize) -> u8 {
    let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (i >> 12) as u8
}

/// A running FNV-1a of the stream.
pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Finds the judge, sends [`TOTAL`] bytes of the pattern in 4 KiB pieces
/// (sleeping `pace` after each, so a transfer can outlast an event), waits
/// until all are acknowledged and closes. `who` names the sender in its
/// lines. With `halfway`, it notifies that handle (bit 0) once half is
/// queued, so a test can act in the middle of the transfer.
pub async fn send(
    net: Net,
    who: &str,
    pace: Option<NetDuration>,
    halfway: Option<ilwaco::protocol::Handle>,
) -> Result<(), &'static str> {
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
        // Long enough to ride out a vnic restart (TCP retransmits meanwhile).
        net.timeout(
            net.now() + NetDuration::from_secs(60),
            s.write_all(&chunk[..len]),
        )
        .await
        .map_err(|_| "the transfer stalled")?
        .map_err(|_| "the connection failed")?;
        if off < TOTAL / 2 && off + len >= TOTAL / 2 {
            if let Some(h) = halfway {
                if ilwaco::sys::notify(h, 1).is_err() {
                    println!("{who}: cannot notify at half way");
                }
            }
        }
        off += len;
        if let Some(p) = pace {
            net.sleep(p).await;
        }
    }
    net.timeout(net.now() + NetDuration::from_secs(60), s.flush())
        .await
        .map_err(|_| "the last bytes were never acknowledged")?
        .map_err(|_| "the connection failed at the end")?;
    s.close();
    println!(
        "{who}: {TOTAL} bytes sent and acknowledged; {:?}",
        net.stats()
    );
    Ok(())
}

/// A sender's `main`: attach, send, let the FIN go out, halt.
pub fn sender_main(
    who: &str,
    pace: Option<NetDuration>,
    halfway: Option<ilwaco::protocol::Handle>,
) -> i32 {
    let net = match ilwaco::net::attach(ilwaco::rt::granted(1), ilwaco::net::Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("{who}: no network: {e:?}");
            return 1;
        }
    };
    let r = ilwaco::net::run(&net, async {
        let r = send(net.clone(), who, pace, halfway).await;
        net.sleep(NetDuration::from_millis(200)).await;
        r
    });
    match r {
        Ok(()) => 0,
        Err(why) => {
            println!("{who}: {why}");
            1
        }
    }
}
