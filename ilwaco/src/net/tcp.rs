//! TCP: listeners with a backlog of listening sockets, and streams.
//!
//! smoltcp has no listen queue: a socket in `Listen` takes one SYN and
//! becomes the connection. So a [`Listener`] keeps `backlog` sockets
//! listening on its port; [`Listener::accept`] hands out one that has
//! connected and a new one takes its place (within [`super::Config::max_tcp`];
//! short of that, the listener refills as connections are reaped).

use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self as stcp, RecvError, SendError, State};
use smoltcp::wire::{IpAddress, IpEndpoint};

use super::{ipv4, ListenState, Net, NetError};
use serac_protocol::net::Ipv4;

type Socket = stcp::Socket<'static>;

/// A listening port.
#[derive(Debug)]
pub struct Listener {
    net: Net,
    index: usize,
}

/// One TCP connection. Dropping it closes it gracefully (queued data is
/// still sent; it is aborted if the peer does not finish within the
/// linger).
#[derive(Debug)]
pub struct TcpStream {
    net: Net,
    handle: SocketHandle,
}

impl Net {
    /// Listens on `port` with `backlog` sockets (at least one).
    pub fn listen(&self, port: u16, backlog: usize) -> Result<Listener, NetError> {
        if port == 0 {
            return Err(NetError::AddressInUse);
        }
        self.with(|i| {
            if i.listeners.iter().any(|l| l.open && l.port == port) {
                return Err(NetError::AddressInUse);
            }
            let first = i.new_tcp().ok_or(NetError::NoSockets)?;
            if i.sockets.get_mut::<Socket>(first).listen(port).is_err() {
                i.sockets.remove(first);
                i.tcp_open -= 1;
                return Err(NetError::AddressInUse);
            }
            i.listeners.push(ListenState {
                port,
                backlog: backlog.max(1),
                sockets: alloc::vec![first],
                open: true,
            });
            let index = i.listeners.len() - 1;
            i.refill();
            Ok(Listener {
                net: self.clone(),
                index,
            })
        })
    }

    /// Connects to `ip:port` from an ephemeral port; waits until the
    /// connection is established (bound it with [`Net::timeout`]).
    pub async fn connect(&self, ip: Ipv4, port: u16) -> Result<TcpStream, NetError> {
        let handle = self.with(|i| {
            let h = i.new_tcp().ok_or(NetError::NoSockets)?;
            let local = i.ephemeral_port();
            let remote = IpEndpoint::new(IpAddress::Ipv4(ipv4(ip)), port);
            let cx = i.iface.context();
            if i.sockets
                .get_mut::<Socket>(h)
                .connect(cx, remote, local)
                .is_err()
            {
                i.sockets.remove(h);
                i.tcp_open -= 1;
                return Err(NetError::Unaddressable);
            }
            i.dirty = true;
            Ok(h)
        })?;
        // From here the stream owns the socket: an error drops (closes) it.
        let stream = TcpStream {
            net: self.clone(),
            handle,
        };
        poll_fn(|cx| {
            stream.with(|s| match s.state() {
                State::Established | State::CloseWait => Poll::Ready(Ok(())),
                State::Closed | State::TimeWait => Poll::Ready(Err(NetError::Refused)),
                _ => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await?;
        Ok(stream)
    }
}

impl Listener {
    /// The port.
    pub fn port(&self) -> u16 {
        self.net
            .with(|i| i.listeners.get(self.index).map_or(0, |l| l.port))
    }

    /// Waits for a connection.
    pub async fn accept(&self) -> Result<TcpStream, NetError> {
        let handle = poll_fn(|cx| {
            self.net.with(|i| {
                let Some(l) = i.listeners.get(self.index) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                let mut found = None;
                for (k, &h) in l.sockets.iter().enumerate() {
                    let s = i.sockets.get_mut::<Socket>(h);
                    match s.state() {
                        State::Listen | State::SynReceived => s.register_recv_waker(cx.waker()),
                        _ => {
                            found = Some(k);
                            break;
                        }
                    }
                }
                let Some(k) = found else {
                    return Poll::Pending;
                };
                let h = match i.listeners.get_mut(self.index) {
                    Some(l) => l.sockets.swap_remove(k),
                    None => return Poll::Ready(Err(NetError::Closed)),
                };
                i.stats.accepted += 1;
                i.refill();
                Poll::Ready(Ok(h))
            })
        })
        .await?;
        Ok(TcpStream {
            net: self.net.clone(),
            handle,
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.net.with(|i| {
            let Some(l) = i.listeners.get_mut(self.index) else {
                return;
            };
            l.open = false;
            let sockets = core::mem::take(&mut l.sockets);
            for h in sockets {
                i.close_tcp(h);
            }
        });
    }
}

impl TcpStream {
    fn with<R>(&self, f: impl FnOnce(&mut Socket) -> R) -> R {
        self.net.with(|i| {
            let r = f(i.sockets.get_mut::<Socket>(self.handle));
            i.dirty = true;
            r
        })
    }

    /// The peer's address and port.
    pub fn peer(&self) -> Option<(Ipv4, u16)> {
        self.with(|s| s.remote_endpoint())
            .and_then(|e| match e.addr {
                IpAddress::Ipv4(a) => Some((Ipv4(a.octets()), e.port)),
                #[allow(unreachable_patterns)]
                _ => None,
            })
    }

    /// Reads what has arrived (waiting for some); 0 at end of stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.with(|s| match s.recv_slice(buf) {
                Ok(0) => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(RecvError::Finished) => Poll::Ready(Ok(0)),
                Err(RecvError::InvalidState) => Poll::Ready(Err(NetError::Reset)),
            })
        })
        .await
    }

    /// Queues some of `buf` (waiting for room); returns how much.
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            self.with(|s| {
                if !s.may_send() {
                    return Poll::Ready(Err(match s.state() {
                        State::Closed => NetError::Reset,
                        _ => NetError::Closed,
                    }));
                }
                match s.send_slice(buf) {
                    Ok(0) => {
                        s.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Ok(n) => Poll::Ready(Ok(n)),
                    Err(SendError::InvalidState) => Poll::Ready(Err(NetError::Closed)),
                }
            })
        })
        .await
    }

    /// Queues all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = buf.get(n..).unwrap_or(&[]);
        }
        Ok(())
    }

    /// Waits until everything written has been acknowledged.
    pub async fn flush(&mut self) -> Result<(), NetError> {
        poll_fn(|cx| {
            self.with(|s| {
                if s.send_queue() == 0 {
                    Poll::Ready(Ok(()))
                } else if !s.is_open() {
                    Poll::Ready(Err(NetError::Reset))
                } else {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
            })
        })
        .await
    }

    /// Ends our half (a FIN after what is queued); reading goes on.
    pub fn shutdown(&mut self) {
        self.with(|s| s.close());
    }

    /// Closes the connection (as dropping it does).
    pub fn close(self) {}

    /// Resets the connection now.
    pub fn abort(self) {
        self.with(|s| s.abort());
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.net.with(|i| i.close_tcp(self.handle));
    }
}
