//! The address plan the supervisor uses for `Configure`: deterministic
//! from the domain's slot index, so a restarted domain (same index, next
//! generation) keeps its addresses and no table of leases is needed.
//!
//! - MAC `02:00:00:ii:ii:ii`: locally administered, unicast, the low 24
//!   bits of the index.
//! - IPv4 in `10.0.0.0/12` (1,048,574 hosts: room for every domain slot
//!   the kernel sizes, 107,546 in 1 GiB), host number `256 + index`
//!   (`10.0.1.0` for index 0, `10.1.135.160` for index 100,000).
//!   `10.0.0.0/24` is left to the uplink side: QEMU's user network on
//!   `10.0.0.0/12` puts its gateway at `10.0.0.2`, its DNS at `10.0.0.3`
//!   and its DHCP pool from `10.0.0.15`.

use serac_protocol::net::{Addresses, Ipv4, Mac};

/// The network guests share.
pub const NETWORK: Ipv4 = Ipv4([10, 0, 0, 0]);
/// Its prefix length.
pub const PREFIX_LEN: u8 = 12;
/// The gateway on the uplink side.
pub const GATEWAY: Ipv4 = Ipv4([10, 0, 0, 2]);
/// Host number of index 0.
pub const FIRST_HOST: u32 = 256;
/// Host numbers in the network (the last, all ones, is the broadcast).
const HOSTS: u32 = 1 << (32 - PREFIX_LEN);
/// The largest index with an address (host number `HOSTS - 2`).
pub const MAX_INDEX: u32 = HOSTS - 2 - FIRST_HOST;
// Room for every domain slot the kernel sizes for 8 GiB (its `sizing`).
const _: () = assert!(MAX_INDEX >= 1_000_000);

/// The index is past [`MAX_INDEX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfAddresses;

/// The addresses of the domain in slot `index`.
pub fn addresses(index: u32) -> Result<Addresses, OutOfAddresses> {
    if index > MAX_INDEX {
        return Err(OutOfAddresses);
    }
    let [_, a, b, c] = index.to_be_bytes();
    let ip = u32::from_be_bytes(NETWORK.0) | (FIRST_HOST + index);
    Ok(Addresses {
        mac: Mac([0x02, 0, 0, a, b, c]),
        ipv4: Ipv4(ip.to_be_bytes()),
        prefix_len: PREFIX_LEN,
        gateway: GATEWAY,
    })
}

/// The slot whose address `ip` is, if it is one of the plan's.
pub fn index_of(ip: Ipv4) -> Option<u32> {
    let host = u32::from_be_bytes(ip.0).checked_sub(u32::from_be_bytes(NETWORK.0))?;
    let index = host.checked_sub(FIRST_HOST)?;
    (index <= MAX_INDEX).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn index_of_inverts_the_plan() {
        for i in [0, 1, 255, 256, 100_000, MAX_INDEX] {
            assert_eq!(index_of(addresses(i).unwrap().ipv4), Some(i));
        }
        assert_eq!(index_of(GATEWAY), None);
        assert_eq!(index_of(Ipv4([10, 16, 0, 0])), None);
        assert_eq!(index_of(Ipv4([9, 255, 255, 255])), None);
    }

    #[test]
    fn examples() {
        let a = addresses(0).unwrap();
        assert_eq!(a.mac, Mac([2, 0, 0, 0, 0, 0]));
        assert_eq!(a.ipv4, Ipv4([10, 0, 1, 0]));
        assert_eq!((a.prefix_len, a.gateway), (12, GATEWAY));
        let b = addresses(0x1234).unwrap();
        assert_eq!(b.mac, Mac([2, 0, 0, 0, 0x12, 0x34]));
        assert_eq!(b.ipv4, Ipv4([10, 0, 0x13, 0x34]));
        // The bound: 100,000 domains, and every slot 1 GiB gives.
        assert_eq!(addresses(100_000).unwrap().ipv4, Ipv4([10, 1, 135, 160]));
        assert_eq!(addresses(MAX_INDEX).unwrap().ipv4, Ipv4([10, 15, 255, 254]));
        assert_eq!(addresses(MAX_INDEX + 1), Err(OutOfAddresses));
        assert_eq!(addresses(u32::MAX), Err(OutOfAddresses));
    }

    proptest! {
        #[test]
        fn distinct_valid_and_in_the_network(i in 0..=MAX_INDEX, j in 0..=MAX_INDEX) {
            let (a, b) = (addresses(i).unwrap(), addresses(j).unwrap());
            prop_assert!(a.mac.is_unicast() && a.mac.0[0] & 2 != 0);
            prop_assert!(a.ipv4.is_host());
            let mask = u32::MAX << (32 - PREFIX_LEN);
            let host = u32::from_be_bytes(a.ipv4.0);
            prop_assert_eq!(host & mask, u32::from_be_bytes(NETWORK.0));
            // Never in the uplink side's /24, never the broadcast.
            prop_assert!(host & !mask >= 256 && host & !mask != !mask);
            prop_assert_eq!(i == j, a.mac == b.mac);
            prop_assert_eq!(i == j, a.ipv4 == b.ipv4);
        }
    }
}
