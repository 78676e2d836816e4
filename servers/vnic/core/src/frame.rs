//! What the switch reads of a frame, through smoltcp's length-checked wire
//! views: the Ethernet addresses and, for IPv4 and ARP, the source the
//! switch enforces. Untrusted bytes go raw → checked (`new_checked`) →
//! these few fields; nothing here indexes unchecked, so no input panics.

use serac_protocol::net::{Ipv4, Mac, MAX_FRAME, MIN_FRAME};
use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, EthernetFrame, EthernetProtocol, Ipv4Packet,
};

/// Why the switch dropped a frame; one counter of `net::Drops` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// The destination queue was full.
    QueueFull,
    /// No memory for the destination queue.
    NoMemory,
    /// Shorter than `MIN_FRAME` or longer than `MAX_FRAME`.
    BadSize,
    /// An IPv4 or ARP header that does not parse.
    Malformed,
    /// Neither IPv4 nor ARP.
    Unsupported,
    /// A source or ARP sender MAC that is not the port's.
    SpoofedMac,
    /// An IPv4 source or ARP sender IP that is not the port's.
    SpoofedIp,
    /// Nowhere to deliver it.
    NoDestination,
}

/// The network-layer source a frame claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// IPv4 with this source address.
    Ipv4(Ipv4),
    /// ARP (request or reply) from this sender.
    Arp {
        /// Sender hardware address.
        mac: Mac,
        /// Sender protocol address.
        ip: Ipv4,
    },
}

/// A frame that parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Ethernet destination.
    pub dst: Mac,
    /// Ethernet source.
    pub src: Mac,
    /// What it claims at the network layer.
    pub source: Source,
    /// For an ARP request, the address asked about.
    pub arp_target: Option<Ipv4>,
}

/// Parses `frame`. IPv4 needs a valid header (version 4, lengths that fit
/// the frame); ARP must be Ethernet/IPv4 request or reply. Never panics.
pub fn parse(frame: &[u8]) -> Result<Parsed, DropCause> {
    if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
        return Err(DropCause::BadSize);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropCause::BadSize)?;
    let dst = Mac(eth.dst_addr().0);
    let src = Mac(eth.src_addr().0);
    let mut arp_target = None;
    let source = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| DropCause::Malformed)?;
            if ip.version() != 4 {
                return Err(DropCause::Malformed);
            }
            Source::Ipv4(Ipv4(ip.src_addr().octets()))
        }
        EthernetProtocol::Arp => {
            let arp = ArpPacket::new_checked(eth.payload()).map_err(|_| DropCause::Malformed)?;
            let shape = arp.hardware_type() == ArpHardware::Ethernet
                && arp.protocol_type() == EthernetProtocol::Ipv4
                && arp.hardware_len() == 6
                && arp.protocol_len() == 4
                && matches!(arp.operation(), ArpOperation::Request | ArpOperation::Reply);
            if !shape {
                return Err(DropCause::Malformed);
            }
            // With the lengths checked above these conversions cannot fail.
            let mac = arp
                .source_hardware_addr()
                .try_into()
                .map_err(|_| DropCause::Malformed)?;
            let ip = arp
                .source_protocol_addr()
                .try_into()
                .map_err(|_| DropCause::Malformed)?;
            if arp.operation() == ArpOperation::Request {
                arp_target = arp.target_protocol_addr().try_into().ok().map(Ipv4);
            }
            Source::Arp {
                mac: Mac(mac),
                ip: Ipv4(ip),
            }
        }
        _ => return Err(DropCause::Unsupported),
    };
    Ok(Parsed {
        dst,
        src,
        source,
        arp_target,
    })
}

/// Whether a parsed frame claims only the port's own addresses.
pub fn check_source(p: &Parsed, mac: Mac, ip: Ipv4) -> Result<(), DropCause> {
    let (claimed_mac, claimed_ip) = match p.source {
        Source::Ipv4(ip) => (None, ip),
        Source::Arp { mac, ip } => (Some(mac), ip),
    };
    if p.src != mac || claimed_mac.is_some_and(|m| m != mac) {
        return Err(DropCause::SpoofedMac);
    }
    if claimed_ip != ip {
        return Err(DropCause::SpoofedIp);
    }
    Ok(())
}

/// Test frames, built with smoltcp's emitters.
#[cfg(test)]
pub(crate) mod build {
    use super::*;
    use smoltcp::wire::{ArpRepr, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Address};
    use std::vec::Vec;

    fn ethernet(dst: Mac, src: Mac, ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: EthernetAddress(src.0),
            dst_addr: EthernetAddress(dst.0),
            ethertype,
        };
        let mut v = std::vec![0u8; repr.buffer_len() + payload.len()];
        let mut f = EthernetFrame::new_unchecked(&mut v[..]);
        repr.emit(&mut f);
        f.payload_mut().copy_from_slice(payload);
        v
    }

    /// An IPv4/UDP-shaped frame from `src_ip` carrying `body`.
    pub(crate) fn ipv4(dst: Mac, src: Mac, src_ip: Ipv4, dst_ip: Ipv4, body: &[u8]) -> Vec<u8> {
        let repr = smoltcp::wire::Ipv4Repr {
            src_addr: Ipv4Address::from(src_ip.0),
            dst_addr: Ipv4Address::from(dst_ip.0),
            next_header: IpProtocol::Udp,
            payload_len: body.len(),
            hop_limit: 64,
        };
        let mut ip = std::vec![0u8; repr.buffer_len() + body.len()];
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        repr.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
        p.payload_mut().copy_from_slice(body);
        ethernet(dst, src, EthernetProtocol::Ipv4, &ip)
    }

    /// An ARP request from (`mac`, `ip`) for `target`, broadcast.
    pub(crate) fn arp_request(src: Mac, mac: Mac, ip: Ipv4, target: Ipv4) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(mac.0),
            source_protocol_addr: Ipv4Address::from(ip.0),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::from(target.0),
        };
        let mut a = std::vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut a[..]));
        ethernet(Mac::BROADCAST, src, EthernetProtocol::Arp, &a)
    }

    /// A frame of another EtherType (IPv6).
    pub(crate) fn ipv6(dst: Mac, src: Mac) -> Vec<u8> {
        ethernet(dst, src, EthernetProtocol::Ipv6, &[0x60; 40])
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use proptest::prelude::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const IP_A: Ipv4 = Ipv4([10, 0, 1, 1]);
    const IP_B: Ipv4 = Ipv4([10, 0, 1, 2]);

    #[test]
    fn reads_ipv4_and_arp() {
        let f = ipv4(B, A, IP_A, IP_B, b"hello");
        let p = parse(&f).unwrap();
        assert_eq!((p.dst, p.src, p.source), (B, A, Source::Ipv4(IP_A)));
        assert_eq!(check_source(&p, A, IP_A), Ok(()));
        assert_eq!(check_source(&p, B, IP_A), Err(DropCause::SpoofedMac));
        assert_eq!(check_source(&p, A, IP_B), Err(DropCause::SpoofedIp));

        let f = arp_request(A, A, IP_A, IP_B);
        let p = parse(&f).unwrap();
        assert_eq!(p.dst, Mac::BROADCAST);
        assert_eq!(check_source(&p, A, IP_A), Ok(()));
        // The Ethernet source is right but the ARP sender lies.
        let p = parse(&arp_request(A, B, IP_A, IP_B)).unwrap();
        assert_eq!(check_source(&p, A, IP_A), Err(DropCause::SpoofedMac));
        let p = parse(&arp_request(A, A, IP_B, IP_A)).unwrap();
        assert_eq!(check_source(&p, A, IP_A), Err(DropCause::SpoofedIp));
    }

    #[test]
    fn refuses_what_it_cannot_check() {
        assert_eq!(parse(&[0; MIN_FRAME - 1]), Err(DropCause::BadSize));
        assert_eq!(parse(&[0; MAX_FRAME + 1]), Err(DropCause::BadSize));
        assert_eq!(parse(&ipv6(B, A)), Err(DropCause::Unsupported));
        // An IPv4 header cut short, a wrong version, a bad ARP shape.
        let f = ipv4(B, A, IP_A, IP_B, b"x");
        assert_eq!(parse(&f[..30]), Err(DropCause::Malformed));
        let mut v6 = f.clone();
        v6[14] = 0x65;
        assert_eq!(parse(&v6), Err(DropCause::Malformed));
        let mut arp = arp_request(A, A, IP_A, IP_B);
        arp[14 + 5] = 5; // protocol length
        assert_eq!(parse(&arp), Err(DropCause::Malformed));
        let mut arp = arp_request(A, A, IP_A, IP_B);
        arp[14 + 7] = 9; // operation
        assert_eq!(parse(&arp), Err(DropCause::Malformed));
        // Ethernet padding after an IPv4 packet is fine.
        let mut padded = ipv4(B, A, IP_A, IP_B, b"");
        padded.resize(60, 0);
        assert!(parse(&padded).is_ok());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..200), ty in prop_oneof![Just(0x0800u16), Just(0x0806), any::<u16>()]) {
            let _ = parse(&v);
            let mut v = v;
            if v.len() >= 14 {
                v[12..14].copy_from_slice(&ty.to_be_bytes());
            }
            if let Ok(p) = parse(&v) {
                let _ = check_source(&p, A, IP_A);
            }
        }
    }
}
