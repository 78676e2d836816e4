//! TCP/IP over the vnic: smoltcp 0.14 on a [`device::VnicDevice`], a
//! socket API ([`TcpStream`], [`Listener`], [`UdpSocket`]) and a small
//! executor of async tasks, all on one thread.
//!
//! The shape (as Hermit's network task): a *step* polls the tasks that were
//! woken, polls the interface only when something happened (frames are
//! pending, a task ran, or smoltcp's own timer is due), sends what the step
//! produced in one batch and returns the nearest deadline: smoltcp's
//! `poll_at` or a task's timer. The owner then sits in `idle(deadline)`
//! ([`run`] does this on Serac), so an idle stack costs no CPU and no
//! wake-ups but its own TCP timers.
//!
//! Memory is bounded by [`Config`]: every TCP socket has fixed buffers
//! ([`Config::tcp_rx`], [`Config::tcp_tx`]) and there are at most
//! [`Config::max_tcp`] of them, listening ones included; a listener keeps
//! up to its backlog listening and refills as connections close.
//! [`bytes_per_connection`] is what one open connection costs.
//!
//! The pure parts (device, stack, sockets, executor) run on the host too:
//! the tests wire two stacks through the vnic's real switch.

pub mod device;
pub mod discover;
pub mod exec;
mod serac;
mod tcp;
#[cfg(test)]
mod tests;
mod udp;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::task::{Context, Poll, Waker};

use serac_protocol::client::{ClientError, Transport};
use serac_protocol::net::Addresses;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp as stcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

pub use device::{DeviceStats, VnicDevice};
pub use discover::{announce, DISCOVERY_PORT};
pub use exec::{Flag, YieldNow};
pub use serac::{attach, now, run};
pub use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};
pub use tcp::{Listener, TcpStream};
pub use udp::UdpSocket;

/// Errors of the socket API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The vnic refused or failed (`Info` at attach).
    Vnic(ClientError),
    /// [`Config::max_tcp`] sockets are open (or the heap is full).
    NoSockets,
    /// The port is taken, or is 0.
    AddressInUse,
    /// The peer refused the connection or it timed out.
    Refused,
    /// The connection was reset or aborted.
    Reset,
    /// The socket is closed for this operation (written after `shutdown`).
    Closed,
    /// The address cannot be reached (no route, unspecified).
    Unaddressable,
    /// A datagram longer than the socket's buffer.
    TooLarge,
    /// A deadline passed ([`Net::timeout`]).
    TimedOut,
}

/// Sizes and limits of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Receive buffer of each TCP socket (also its window).
    pub tcp_rx: usize,
    /// Send buffer of each TCP socket.
    pub tcp_tx: usize,
    /// TCP sockets at most, listening ones included.
    pub max_tcp: usize,
    /// UDP datagrams buffered per direction per socket.
    pub udp_packets: usize,
    /// UDP payload bytes buffered per direction per socket.
    pub udp_bytes: usize,
    /// How long a closed connection may take to finish before it is aborted.
    pub linger: Duration,
    /// How long a listening socket may sit half-open (`SynReceived`)
    /// before it is aborted and a fresh one listens: smoltcp has no such
    /// bound, so a SYN flood would hold the backlog for ever.
    pub syn_timeout: Duration,
    /// smoltcp's delayed-ACK timer (`None`: ACK at once, the step batches
    /// them anyway).
    pub ack_delay: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            tcp_rx: 8 * 1024,
            tcp_tx: 8 * 1024,
            max_tcp: 32,
            udp_packets: 16,
            udp_bytes: 8 * 1024,
            linger: Duration::from_secs(5),
            syn_timeout: Duration::from_secs(3),
            ack_delay: None,
        }
    }
}

/// What one open TCP connection costs a guest, by construction: its two
/// buffers, smoltcp's socket and its slot in the socket set.
pub fn bytes_per_connection(c: &Config) -> usize {
    c.tcp_rx
        + c.tcp_tx
        + core::mem::size_of::<stcp::Socket<'static>>()
        + core::mem::size_of::<Option<smoltcp::iface::SocketStorage<'static>>>()
}

/// The stack's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// The device's.
    pub device: DeviceStats,
    /// Steps taken.
    pub steps: u64,
    /// Interface polls (a step polls only when something happened).
    pub polls: u64,
    /// Task polls.
    pub task_polls: u64,
    /// TCP sockets open now (listening ones included).
    pub tcp_open: usize,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed and reaped (aborted ones included).
    pub reaped: u64,
    /// Closing connections aborted after [`Config::linger`].
    pub aborted: u64,
    /// Half-open listening sockets aborted after [`Config::syn_timeout`].
    pub syn_expired: u64,
    /// Times a listener could not refill (at `max_tcp` or out of heap).
    pub backlog_short: u64,
    /// Cycles in interface polls (their `Recv` calls included), with the
    /// counter given to [`Net::set_cycles`] (0 without one).
    pub poll_cycles: u64,
    /// Cycles in task polls.
    pub task_cycles: u64,
    /// Cycles in whole steps.
    pub step_cycles: u64,
}

/// A listening port: the sockets listening on it and who waits to accept.
struct ListenState {
    port: u16,
    backlog: usize,
    sockets: Vec<SocketHandle>,
    open: bool,
}

/// The stack proper, behind the [`Net`] handle.
pub(crate) struct Inner {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: VnicDevice,
    now: Instant,
    config: Config,
    timers: exec::Timers,
    listeners: Vec<ListenState>,
    /// Sockets their owner closed: (handle, give up at, aborted).
    closing: Vec<(SocketHandle, Instant, bool)>,
    /// Listening sockets seen half-open: (handle, since when).
    half_open: Vec<(SocketHandle, Instant)>,
    /// When the first of them expires.
    half_open_until: Option<Instant>,
    tcp_open: usize,
    next_port: u16,
    /// A socket changed since the last poll (a task ran).
    dirty: bool,
    stats: NetStats,
    cycles: fn() -> u64,
}

struct Shared {
    inner: RefCell<Inner>,
    tasks: RefCell<Vec<exec::Task>>,
    spawned: RefCell<Vec<exec::Task>>,
}

/// The future [`run`] drives besides the tasks: its wake flag, a poll
/// that says whether it finished, and its waker.
pub type Root<'a> = (
    &'a Flag,
    &'a mut dyn FnMut(&mut Context<'_>) -> bool,
    &'a Waker,
);

/// A handle on one stack (cheap to clone; one thread).
#[derive(Clone)]
pub struct Net {
    shared: Rc<Shared>,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net").field("stats", &self.stats()).finish()
    }
}

fn ipv4(a: serac_protocol::net::Ipv4) -> Ipv4Address {
    let [a, b, c, d] = a.0;
    Ipv4Address::new(a, b, c, d)
}

fn configure(iface: &mut Interface, a: &Addresses) {
    iface.set_hardware_addr(HardwareAddress::Ethernet(EthernetAddress(a.mac.0)));
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ipv4(a.ipv4)), a.prefix_len));
    });
    iface.routes_mut().remove_default_ipv4_route();
    if a.gateway.is_host() {
        let _ = iface.routes_mut().add_default_ipv4_route(ipv4(a.gateway));
    }
}

impl Net {
    /// A stack on the vnic behind `transport`: reads the port's addresses
    /// (`Info`) and configures the interface from them. `seed` seeds
    /// smoltcp's initial sequence numbers and ports (the TSC, say).
    pub fn new(
        transport: impl Transport + 'static,
        config: Config,
        now: Instant,
        seed: u64,
    ) -> Result<Net, NetError> {
        let mut dev = VnicDevice::attach(Box::new(transport))
            .map_err(|device::AttachError::Info(e)| NetError::Vnic(e))?;
        let a = dev.addresses();
        let mut ic = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(a.mac.0)));
        ic.random_seed = seed;
        let mut iface = Interface::new(ic, &mut dev, now);
        configure(&mut iface, &a);
        let inner = Inner {
            iface,
            sockets: SocketSet::new(vec![]),
            dev,
            now,
            config,
            timers: exec::Timers::default(),
            listeners: Vec::new(),
            closing: Vec::new(),
            half_open: Vec::new(),
            half_open_until: None,
            tcp_open: 0,
            next_port: 49152 + (seed % 16384) as u16,
            dirty: true,
            stats: NetStats::default(),
            cycles: || 0,
        };
        Ok(Net {
            shared: Rc::new(Shared {
                inner: RefCell::new(inner),
                tasks: RefCell::new(Vec::new()),
                spawned: RefCell::new(Vec::new()),
            }),
        })
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.shared.inner.borrow_mut())
    }

    /// The port's addresses.
    pub fn addresses(&self) -> Addresses {
        self.with(|i| i.dev.addresses())
    }

    /// Makes `(mac, ip)` a neighbour without asking the network (see
    /// [`device::VnicDevice::learn`]); it holds until smoltcp's cache
    /// evicts it, so call it before each connection to a known server.
    pub fn learn_neighbor(&self, mac: [u8; 6], ip: [u8; 4]) {
        self.with(|i| {
            i.dev.learn(mac, ip);
            i.dirty = true;
        });
    }

    /// Takes neighbours' MACs from `resolver` (the address plan) again
    /// whenever one's segment opens, closes or carries data (see
    /// [`device::VnicDevice::set_static_neighbors`]): for a client of more
    /// servers than smoltcp's cache holds.
    pub fn set_static_neighbors(&self, resolver: device::Resolver) {
        self.with(|i| i.dev.set_static_neighbors(resolver));
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.with(|i| {
            let mut s = i.stats;
            s.device = i.dev.stats();
            s.tcp_open = i.tcp_open;
            s
        })
    }

    /// The stack's clock, as of the current step.
    pub fn now(&self) -> Instant {
        self.with(|i| i.now)
    }

    /// Counts cycles with `f` (the TSC, say) in the stats' `*_cycles`.
    pub fn set_cycles(&self, f: fn() -> u64) {
        self.with(|i| {
            i.cycles = f;
            i.dev.set_cycles(f);
        });
    }

    /// The vnic's `RX_NOTIFY` arrived: the next step receives.
    pub fn notified(&self) {
        self.with(|i| i.dev.notified());
    }

    /// Runs `fut` as a task of this stack.
    pub fn spawn(&self, fut: impl Future<Output = ()> + 'static) {
        let t = exec::Task::new(Box::pin(fut));
        self.shared.spawned.borrow_mut().push(t);
    }

    /// Tasks alive (spawned and not finished).
    pub fn tasks(&self) -> usize {
        self.shared.tasks.borrow().len() + self.shared.spawned.borrow().len()
    }

    /// One step at `now`: fire timers, poll the interface if anything
    /// happened, run woken tasks (and `root`, when its flag is set) until
    /// nothing more happens, send the batch. Returns the deadline for the
    /// next step (`None`: only an event). `root` returns whether it finished.
    pub fn step(&self, now: Instant, mut root: Option<Root<'_>>) -> Option<Instant> {
        let t0 = self.with(|i| {
            i.now = now;
            i.stats.steps += 1;
            i.timers.fire(now);
            (i.cycles)()
        });
        // Bounded: a task that wakes itself for ever still lets the step end.
        for _ in 0..64 {
            self.with(|i| i.poll_if_needed());
            let mut ran = self.run_tasks();
            if let Some((flag, poll, waker)) = root.as_mut() {
                if flag.take() {
                    ran = true;
                    let mut cx = Context::from_waker(waker);
                    if poll(&mut cx) {
                        root = None;
                        // Finished: send what it left and stop.
                        self.with(|i| {
                            i.dirty = true;
                            i.poll_if_needed();
                        });
                        break;
                    }
                }
            }
            if ran {
                self.with(|i| i.dirty = true);
            } else if !self.with(|i| i.needs_poll()) {
                break;
            }
        }
        let root_woken = root.as_ref().is_some_and(|(f, _, _)| f.is_set());
        let woken = root_woken || self.any_woken();
        let next = self.with(|i| {
            i.dev.flush();
            let at = i.iface.poll_at(i.now, &i.sockets);
            [i.timers.next(), i.half_open_until]
                .into_iter()
                .flatten()
                .fold(at, |m, t| Some(m.map_or(t, |m| m.min(t))))
        });
        self.with(|i| i.stats.step_cycles += (i.cycles)().wrapping_sub(t0));
        if woken {
            Some(now)
        } else {
            next
        }
    }

    /// Whether some task is woken (the step ran out of rounds).
    fn any_woken(&self) -> bool {
        self.shared.tasks.borrow().iter().any(|t| t.woken())
            || !self.shared.spawned.borrow().is_empty()
    }

    /// Polls every woken task once; whether any ran.
    fn run_tasks(&self) -> bool {
        let t0 = self.with(|i| (i.cycles)());
        let mut tasks = core::mem::take(&mut *self.shared.tasks.borrow_mut());
        let mut ran = false;
        {
            let mut new = self.shared.spawned.borrow_mut();
            tasks.append(&mut new);
        }
        let mut polls = 0;
        tasks.retain_mut(|t| match t.run() {
            Some(done) => {
                ran = true;
                polls += 1;
                !done
            }
            None => true,
        });
        // Tasks spawned meanwhile went to `spawned`; keep both.
        let mut slot = self.shared.tasks.borrow_mut();
        tasks.append(&mut slot);
        *slot = tasks;
        drop(slot);
        self.with(|i| {
            i.stats.task_polls += polls;
            i.stats.task_cycles += (i.cycles)().wrapping_sub(t0);
        });
        ran
    }

    /// Runs `fut` until `at`: its output, or `TimedOut`.
    pub async fn timeout<F: Future>(&self, at: Instant, fut: F) -> Result<F::Output, NetError> {
        let mut fut = core::pin::pin!(fut);
        let mut timer = 0u64;
        let r = core::future::poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            self.with(|i| {
                if i.now >= at {
                    Poll::Ready(Err(NetError::TimedOut))
                } else {
                    timer = i.timers.set(timer, at, cx.waker());
                    Poll::Pending
                }
            })
        })
        .await;
        self.with(|i| i.timers.cancel(timer));
        r
    }

    /// Sleeps until the stack's clock reaches `at`.
    pub async fn sleep_until(&self, at: Instant) {
        let _ = self.timeout(at, core::future::pending::<()>()).await;
    }

    /// Sleeps for `d`.
    pub async fn sleep(&self, d: Duration) {
        let at = self.now() + d;
        self.sleep_until(at).await;
    }

    /// Timers set now (for tests: sleeping tasks hold one each).
    pub fn timers(&self) -> usize {
        self.with(|i| i.timers.len())
    }
}

impl Inner {
    fn needs_poll(&mut self) -> bool {
        self.dirty
            || self.dev.rx_pending()
            || self
                .iface
                .poll_at(self.now, &self.sockets)
                .is_some_and(|t| t <= self.now)
            || self.half_open_until.is_some_and(|t| t <= self.now)
    }

    fn poll_if_needed(&mut self) {
        if !self.needs_poll() {
            return;
        }
        let t0 = (self.cycles)();
        self.stats.polls += 1;
        if self.dirty && !self.dev.rx_pending() && self.closing.is_empty() {
            // Only the sockets changed (a task wrote): send, skip receiving.
            // As `poll` does: until no socket has more to send.
            while self
                .iface
                .poll_egress(self.now, &mut self.dev, &mut self.sockets)
                != smoltcp::iface::PollResult::None
            {}
            self.dirty = false;
            if self
                .iface
                .poll_at(self.now, &self.sockets)
                .is_some_and(|t| t <= self.now)
            {
                self.iface.poll(self.now, &mut self.dev, &mut self.sockets);
            }
        } else {
            self.dirty = false;
            self.iface.poll(self.now, &mut self.dev, &mut self.sockets);
            self.reap();
        }
        self.stats.poll_cycles += (self.cycles)().wrapping_sub(t0);
    }

    /// Drops closed sockets, aborts those past their linger, refills
    /// listeners.
    fn reap(&mut self) {
        let now = self.now;
        let mut i = 0;
        while let Some(&(h, until, aborted)) = self.closing.get(i) {
            let s = self.sockets.get_mut::<stcp::Socket<'static>>(h);
            if !s.is_open() {
                self.sockets.remove(h);
                self.closing.swap_remove(i);
                self.tcp_open = self.tcp_open.saturating_sub(1);
                self.stats.reaped += 1;
                continue;
            }
            if now >= until && !aborted {
                s.abort();
                self.stats.aborted += 1;
                self.dirty = true;
                if let Some(e) = self.closing.get_mut(i) {
                    e.2 = true;
                }
            }
            i += 1;
        }
        self.expire_half_open();
        self.refill();
    }

    /// Aborts listening sockets half-open for [`Config::syn_timeout`]
    /// (they go to `closing`, so their RST is sent before they are
    /// reaped; `refill` puts fresh ones in their place), and notes when
    /// the next one expires.
    fn expire_half_open(&mut self) {
        let (now, limit) = (self.now, self.config.syn_timeout);
        let old = core::mem::take(&mut self.half_open);
        let mut until: Option<Instant> = None;
        for l in self.listeners.iter_mut() {
            let mut k = 0;
            while let Some(&h) = l.sockets.get(k) {
                let s = self.sockets.get_mut::<stcp::Socket<'static>>(h);
                if s.state() != stcp::State::SynReceived {
                    k += 1;
                    continue;
                }
                let since = old.iter().find(|&&(o, _)| o == h).map_or(now, |&(_, t)| t);
                if now >= since + limit {
                    s.abort();
                    l.sockets.swap_remove(k);
                    self.closing.push((h, now, true));
                    self.stats.syn_expired += 1;
                    self.dirty = true;
                    continue;
                }
                self.half_open.push((h, since));
                let t = since + limit;
                until = Some(until.map_or(t, |u| u.min(t)));
                k += 1;
            }
        }
        self.half_open_until = until;
    }

    fn refill(&mut self) {
        for l in 0..self.listeners.len() {
            while let Some(ls) = self.listeners.get(l) {
                if !ls.open || ls.sockets.len() >= ls.backlog {
                    break;
                }
                let port = ls.port;
                match self.new_tcp() {
                    Some(h) => {
                        let s = self.sockets.get_mut::<stcp::Socket<'static>>(h);
                        if s.listen(port).is_err() {
                            self.sockets.remove(h);
                            self.tcp_open -= 1;
                            break;
                        }
                        if let Some(ls) = self.listeners.get_mut(l) {
                            ls.sockets.push(h);
                        }
                    }
                    None => {
                        self.stats.backlog_short += 1;
                        break;
                    }
                }
            }
        }
    }

    /// A fresh TCP socket with the configured buffers, if under the limit.
    fn new_tcp(&mut self) -> Option<SocketHandle> {
        if self.tcp_open >= self.config.max_tcp {
            return None;
        }
        let rx = try_zeroed(self.config.tcp_rx)?;
        let tx = try_zeroed(self.config.tcp_tx)?;
        let mut s = stcp::Socket::new(stcp::SocketBuffer::new(rx), stcp::SocketBuffer::new(tx));
        s.set_nagle_enabled(false);
        s.set_ack_delay(self.config.ack_delay);
        self.tcp_open += 1;
        Some(self.sockets.add(s))
    }

    /// Closes `h` gracefully; it is reaped when done or after the linger.
    fn close_tcp(&mut self, h: SocketHandle) {
        self.sockets.get_mut::<stcp::Socket<'static>>(h).close();
        let until = self.now + self.config.linger;
        self.closing.push((h, until, false));
        self.dirty = true;
    }

    /// An ephemeral port no socket uses.
    fn ephemeral_port(&mut self) -> u16 {
        loop {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { 49152 } else { p + 1 };
            let used = self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => t.local_endpoint().is_some_and(|e| e.port == p),
                smoltcp::socket::Socket::Udp(u) => u.endpoint().port == p,
                #[allow(unreachable_patterns)]
                _ => false,
            });
            if !used {
                return p;
            }
        }
    }
}

/// `n` zero bytes, or `None` when the heap is full.
fn try_zeroed(n: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v)
}

/// A waker for a task that owns `flag`.
pub fn waker(flag: &Arc<Flag>) -> Waker {
    Waker::from(flag.clone())
}
