//! The address plan the supervisor uses for `Configure`: deterministic
//! from the domain's slot index, so a restarted domain (same index, next
//! generation) keeps its addresses and no table of leases is needed.
//!
//! - MAC `02:00:00:ii:ii:ii`: locally administered, unicast, the low 24
//!   bits of the index.
//! - IPv4 in `10.0.0.0/16`, host number `256 + index` (`10.0.1.0` for
//!   index 0). `10.0.0.0/24` is left to the uplink side: QEMU's user
//!   network on `10.0.0.0/16` puts its gateway at `10.0.0.2`, its DNS at
//!   `10.0.0.3` and its DHCP pool from `10.0.0.15`.

use serac_protocol::net::{Addresses, Ipv4, Mac};

/// The network guests share.
pub const NETWORK: Ipv4 = Ipv4([10, 0, 0, 0]);
/// Its prefix length.
pub const PREFIX_LEN: u8 = 16;
/// The gateway on the uplink side.
pub const GATEWAY: Ipv4 = Ipv4([10, 0, 0, 2]);
/// Host number of index 0.
pub const FIRST_HOST: u32 = 256;
/// The largest index with an address (the last host number is
/// `0xfffe`; `0xffff` is the broadcast).
pub const MAX_INDEX: u32 = 0xfffe - FIRST_HOST;

/// The index is past [`MAX_INDEX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfAddresses;

/// The addresses of the domain in slot `index`.
pub fn addresses(index: u32) -> Result<Addresses, OutOfAddresses> {
    if index > MAX_INDEX {
        return Err(OutOfAddresses);
    }
    let [_, a, b, c] = index.to_be_bytes();
    let [_, _, hi, lo] = (FIRST_HOST + index).to_be_bytes();
    let [n0, n1, ..] = NETWORK.0;
    Ok(Addresses {
        mac: Mac([0x02, 0, 0, a, b, c]),
        ipv4: Ipv4([n0, n1, hi, lo]),
        prefix_len: PREFIX_LEN,
        gateway: GATEWAY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let a = addresses(0).unwrap();
        assert_eq!(a.mac, Mac([2, 0, 0, 0, 0, 0]));
        assert_eq!(a.ipv4, Ipv4([10, 0, 1, 0]));
        assert_eq!((a.prefix_len, a.gateway), (16, GATEWAY));
        let b = addresses(0x1234).unwrap();
        assert_eq!(b.mac, Mac([2, 0, 0, 0, 0x12, 0x34]));
        assert_eq!(b.ipv4, Ipv4([10, 0, 0x13, 0x34]));
        assert_eq!(addresses(MAX_INDEX).unwrap().ipv4, Ipv4([10, 0, 255, 254]));
        assert_eq!(addresses(MAX_INDEX + 1), Err(OutOfAddresses));
        assert_eq!(addresses(u32::MAX), Err(OutOfAddresses));
    }

    proptest! {
        #[test]
        fn distinct_valid_and_in_the_network(i in 0..=MAX_INDEX, j in 0..=MAX_INDEX) {
            let (a, b) = (addresses(i).unwrap(), addresses(j).unwrap());
            prop_assert!(a.mac.is_unicast() && a.mac.0[0] & 2 != 0);
            prop_assert!(a.ipv4.is_host());
            prop_assert_eq!(&a.ipv4.0[..2], &NETWORK.0[..2]);
            // Never in the uplink side's /24, never the broadcast.
            prop_assert!(a.ipv4.0[2] != 0 && a.ipv4 != Ipv4([10, 0, 255, 255]));
            prop_assert_eq!(i == j, a.mac == b.mac);
            prop_assert_eq!(i == j, a.ipv4 == b.ipv4);
        }
    }
}
