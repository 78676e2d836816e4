//! Finding peers by name on the switch, with no table of addresses.
//!
//! A service [`announce`]s itself on a UDP port; a client broadcasts
//! `serac?<name>` to the subnet ([`Net::discover`]) and each service of
//! that name answers `serac!<name>` from its address. The probe repeats
//! every [`PROBE_EVERY`] until enough have answered, so services that
//! start later are found too.

use alloc::vec::Vec;

use serac_protocol::net::Ipv4;
use smoltcp::time::{Duration, Instant};

use super::{Net, NetError};

/// The UDP port services answer on.
pub const DISCOVERY_PORT: u16 = 7;
/// How often a client repeats its probe.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
const ASK: &[u8] = b"serac?";
const ANSWER: &[u8] = b"serac!";

fn message(prefix: &[u8], name: &str, out: &mut [u8; 64]) -> usize {
    let n = name.as_bytes();
    let n = n.get(..out.len() - prefix.len()).unwrap_or(n);
    out[..prefix.len()].copy_from_slice(prefix);
    out[prefix.len()..prefix.len() + n.len()].copy_from_slice(n);
    prefix.len() + n.len()
}

/// The subnet's broadcast address.
pub fn broadcast(a: &serac_protocol::net::Addresses) -> Ipv4 {
    let ip = u32::from_be_bytes(a.ipv4.0);
    let host_bits = 32u32.saturating_sub(u32::from(a.prefix_len.min(32)));
    let mask = if host_bits >= 32 {
        u32::MAX
    } else {
        (1u32 << host_bits) - 1
    };
    Ipv4((ip | mask).to_be_bytes())
}

/// Binds [`DISCOVERY_PORT`] and returns the task that answers probes
/// for `name` (spawn it). A reply that cannot be sent is dropped: the
/// client probes again.
pub fn announce(net: &Net, name: &str) -> Result<impl core::future::Future<Output = ()>, NetError> {
    let sock = net.udp_bind(DISCOVERY_PORT)?;
    let mut ask = [0u8; 64];
    let asklen = message(ASK, name, &mut ask);
    let mut answer = [0u8; 64];
    let alen = message(ANSWER, name, &mut answer);
    Ok(async move {
        let mut buf = [0u8; 64];
        loop {
            if let Ok((n, ip, port)) = sock.recv_from(&mut buf).await {
                if buf.get(..n) == ask.get(..asklen) {
                    let _ = sock.send_to(&answer[..alen], ip, port).await;
                }
            }
        }
    })
}

impl Net {
    /// Broadcasts probes for `name` until `want` services answered or the
    /// clock reaches `until`; returns their addresses, in answer order.
    pub async fn discover(
        &self,
        name: &str,
        want: usize,
        until: Instant,
    ) -> Result<Vec<Ipv4>, NetError> {
        let sock = self.udp_bind(0)?;
        let to = broadcast(&self.addresses());
        let mut ask = [0u8; 64];
        let alen = message(ASK, name, &mut ask);
        let mut answer = [0u8; 64];
        let anslen = message(ANSWER, name, &mut answer);
        let answer = &answer[..anslen];
        let mut found: Vec<Ipv4> = Vec::new();
        let mut buf = [0u8; 64];
        while found.len() < want && self.now() < until {
            sock.send_to(&ask[..alen], to, DISCOVERY_PORT).await?;
            let round = (self.now() + PROBE_EVERY).min(until);
            while found.len() < want {
                match self.timeout(round, sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, ip, _))) if buf.get(..n) == Some(answer) => {
                        if !found.contains(&ip) {
                            found.try_reserve(1).map_err(|_| NetError::NoSockets)?;
                            found.push(ip);
                        }
                    }
                    Ok(Ok(_)) | Ok(Err(NetError::TooLarge)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => break,
                }
            }
        }
        Ok(found)
    }
}
