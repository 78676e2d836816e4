//! UDP sockets.

use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self as sudp, RecvError, SendError};
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::{ipv4, try_zeroed, Net, NetError};
use serac_protocol::net::Ipv4;

type Socket = sudp::Socket<'static>;

/// A bound UDP socket; dropping it unbinds it.
#[derive(Debug)]
pub struct UdpSocket {
    net: Net,
    handle: SocketHandle,
}

impl Net {
    /// Binds `port` (0: an ephemeral one).
    pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, NetError> {
        self.with(|i| {
            let c = i.config;
            let meta = || {
                let mut v = alloc::vec::Vec::new();
                v.try_reserve_exact(c.udp_packets).ok()?;
                v.resize(c.udp_packets, sudp::PacketMetadata::EMPTY);
                Some(v)
            };
            let (Some(rm), Some(rb), Some(tm), Some(tb)) = (
                meta(),
                try_zeroed(c.udp_bytes),
                meta(),
                try_zeroed(c.udp_bytes),
            ) else {
                return Err(NetError::NoSockets);
            };
            let port = if port == 0 { i.ephemeral_port() } else { port };
            let mut s = Socket::new(
                sudp::PacketBuffer::new(rm, rb),
                sudp::PacketBuffer::new(tm, tb),
            );
            let taken = i.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
                #[allow(unreachable_patterns)]
                _ => false,
            });
            if taken || s.bind(port).is_err() {
                return Err(NetError::AddressInUse);
            }
            let handle = i.sockets.add(s);
            Ok(UdpSocket {
                net: self.clone(),
                handle,
            })
        })
    }
}

impl UdpSocket {
    fn with<R>(&self, f: impl FnOnce(&mut Socket) -> R) -> R {
        self.net.with(|i| {
            let r = f(i.sockets.get_mut::<Socket>(self.handle));
            i.dirty = true;
            r
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.with(|s| s.endpoint().port)
    }

    /// Sends one datagram (waiting for buffer room).
    pub async fn send_to(&self, data: &[u8], ip: Ipv4, port: u16) -> Result<(), NetError> {
        let to = IpEndpoint::new(IpAddress::Ipv4(ipv4(ip)), port);
        poll_fn(|cx| {
            self.with(|s| match s.send_slice(data, to) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(SendError::BufferFull) => {
                    if data.len() > s.payload_send_capacity() {
                        return Poll::Ready(Err(NetError::TooLarge));
                    }
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(SendError::Unaddressable) => Poll::Ready(Err(NetError::Unaddressable)),
            })
        })
        .await
    }

    /// Waits for a datagram; returns its length and sender. A datagram
    /// longer than `buf` is dropped and reported `TooLarge`.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, Ipv4, u16), NetError> {
        poll_fn(|cx| {
            self.with(|s| match s.recv_slice(buf) {
                Ok((n, meta)) => match meta.endpoint.addr {
                    IpAddress::Ipv4(a) => {
                        Poll::Ready(Ok((n, Ipv4(a.octets()), meta.endpoint.port)))
                    }
                    #[allow(unreachable_patterns)]
                    _ => Poll::Ready(Err(NetError::Unaddressable)),
                },
                Err(RecvError::Truncated) => Poll::Ready(Err(NetError::TooLarge)),
                Err(RecvError::Exhausted) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.net.with(|i| {
            i.sockets.remove(self.handle);
        });
    }
}
