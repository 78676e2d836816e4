//! Two (or more) stacks wired through the vnic's real switch
//! (`serac_vnic_core::Vnic`), on a simulated clock.

use super::*;
use core::cell::Cell;
use proptest::prelude::*;
use serac_protocol::client::LABEL_NET;
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::net::{Ipv4, PortConfig};
use serac_protocol::{DomainId, Handle, SysError};
use serac_vnic_core::{assign, Limits, Switch, Vnic, Wakeup};
use std::vec::Vec;

const SUPERVISOR: DomainId = DomainId::new(0, 1);

/// Calls the vnic as the kernel would, with the caller's badge; after a
/// simulated restart the first call fails with `ServerRestarted`.
struct Wire {
    vnic: Rc<RefCell<Vnic>>,
    badge: u64,
    restarted: Rc<Cell<bool>>,
    calls: Rc<Cell<u64>>,
    bounce: Box<[u8; MAX_PAYLOAD]>,
}

impl Transport for Wire {
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        assert_eq!(label, LABEL_NET);
        self.calls.set(self.calls.get() + 1);
        if self.restarted.replace(false) {
            return Err(SysError::ServerRestarted);
        }
        // Straight into the caller's buffer when it is whole, as the
        // kernel copies into the IPC buffer; a short one via a bounce.
        if reply.len() >= MAX_PAYLOAD {
            return self
                .vnic
                .borrow_mut()
                .handle(self.badge, req, reply)
                .map_err(|_| SysError::MessageTooLarge);
        }
        let n = self
            .vnic
            .borrow_mut()
            .handle(self.badge, req, &mut self.bounce[..])
            .map_err(|_| SysError::MessageTooLarge)?;
        let out = reply.get_mut(..n).ok_or(SysError::MessageTooLarge)?;
        out.copy_from_slice(&self.bounce[..n]);
        Ok(n)
    }
}

struct Node {
    id: DomainId,
    net: Net,
    /// Not stepped, as a domain swapped out: its frames wait in the vnic.
    paused: Cell<bool>,
    restarted: Rc<Cell<bool>>,
    calls: Rc<Cell<u64>>,
}

struct World {
    vnic: Rc<RefCell<Vnic>>,
    nodes: Vec<Node>,
    now: Instant,
}

fn guest(i: u32) -> DomainId {
    DomainId::new(i, 1)
}

fn addr(i: u32) -> Ipv4 {
    assign::addresses(i).unwrap().ipv4
}

fn new_vnic(n: u32) -> Vnic {
    let mut v = Vnic::new(Switch::new(Limits::new(8), false).unwrap());
    configure(&mut v, n);
    v
}

fn configure(v: &mut Vnic, n: u32) {
    for i in 1..=n {
        configure_port(v, i);
    }
}

fn configure_port(v: &mut Vnic, i: u32) {
    let mut buf = [0u8; MAX_PAYLOAD];
    {
        let c = PortConfig {
            owner: guest(i),
            addresses: assign::addresses(i).unwrap(),
            notify: Handle::new(20 + i, 1),
        };
        let mut req = [0u8; 128];
        let enc = serac_protocol::codec::encode(
            &serac_protocol::net::Request::<serac_protocol::net::Frames>::Configure(c),
            &mut req,
        )
        .unwrap();
        let len = v.handle(SUPERVISOR.to_raw(), enc, &mut buf).unwrap();
        let r: serac_protocol::net::Reply = serac_protocol::codec::decode(&buf[..len]).unwrap();
        assert_eq!(r, serac_protocol::net::Reply::Ok);
    }
}

impl World {
    fn new(n: u32, config: Config) -> World {
        let vnic = Rc::new(RefCell::new(new_vnic(n)));
        let now = Instant::from_millis(1000);
        let nodes = (1..=n)
            .map(|i| {
                let restarted = Rc::new(Cell::new(false));
                let calls = Rc::new(Cell::new(0));
                let wire = Wire {
                    vnic: vnic.clone(),
                    badge: guest(i).to_raw(),
                    restarted: restarted.clone(),
                    calls: calls.clone(),
                    bounce: Box::new([0; MAX_PAYLOAD]),
                };
                let net = Net::new(wire, config, now, u64::from(i) * 7919).unwrap();
                Node {
                    id: guest(i),
                    net,
                    paused: Cell::new(false),
                    restarted,
                    calls,
                }
            })
            .collect();
        World { vnic, nodes, now }
    }

    fn net(&self, i: u32) -> Net {
        self.nodes[i as usize - 1].net.clone()
    }

    /// Notifies owners the switch asked to wake, as the vnic does.
    fn deliver(&self) -> bool {
        let mut any = false;
        while let Some(w) = self.vnic.borrow_mut().switch_mut().pop_wakeup() {
            if let Wakeup::Guest { owner, .. } = w {
                if let Some(n) = self.nodes.iter().find(|n| n.id == owner) {
                    n.net.notified();
                    any = true;
                }
            }
        }
        any
    }

    /// Steps every stack until `done`, moving the clock to the nearest
    /// deadline when nobody has work. Panics after `limit` rounds or when
    /// everything waits for ever without being done.
    fn run_until(&mut self, limit: usize, mut done: impl FnMut() -> bool) -> usize {
        for round in 0..limit {
            let mut next: Option<Instant> = None;
            let mut woken = false;
            for n in self.nodes.iter().filter(|n| !n.paused.get()) {
                if let Some(d) = n.net.step(self.now, None) {
                    next = Some(next.map_or(d, |x: Instant| x.min(d)));
                }
                woken |= self.deliver();
            }
            if done() {
                return round;
            }
            if woken {
                continue;
            }
            match next {
                Some(d) if d > self.now => self.now = d,
                Some(_) => {}
                None => {
                    for n in &self.nodes {
                        std::eprintln!("{:?}: {:?} tasks {}", n.id, n.net.stats(), n.net.tasks());
                    }
                    panic!("deadlock: nothing to do and not done")
                }
            }
        }
        panic!("not done after {limit} rounds");
    }

    /// Steps every stack not paused `rounds` times, the clock still.
    fn settle(&self, rounds: usize) {
        for _ in 0..rounds {
            for n in self.nodes.iter().filter(|n| !n.paused.get()) {
                n.net.step(self.now, None);
                self.deliver();
            }
        }
    }

    fn pause(&self, i: u32, paused: bool) {
        self.nodes[i as usize - 1].paused.set(paused);
    }

    /// The vnic restarts: a fresh switch, the supervisor configures the
    /// ports again, and every client's next call fails once.
    fn restart_vnic(&mut self) {
        let n = self.nodes.len() as u32;
        *self.vnic.borrow_mut() = new_vnic(n);
        for node in &self.nodes {
            node.restarted.set(true);
        }
    }
}

/// The byte at `i` of the test stream.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

/// A receiver on node 1 port 7000 reading `total` bytes and checking them.
fn spawn_receiver(net: &Net) -> (Rc<Cell<usize>>, Rc<Cell<bool>>) {
    let got = Rc::new(Cell::new(0));
    let ok = Rc::new(Cell::new(true));
    let l = net.listen(7000, 2).unwrap();
    let (g, o) = (got.clone(), ok.clone());
    net.spawn(async move {
        let mut s = l.accept().await.unwrap();
        let mut buf = [0u8; 1500];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            for (k, b) in buf[..n].iter().enumerate() {
                if *b != pattern(g.get() + k) {
                    o.set(false);
                }
            }
            g.set(g.get() + n);
        }
    });
    (got, ok)
}

fn spawn_sender(net: &Net, to: Ipv4, total: usize) -> Rc<Cell<bool>> {
    let sent = Rc::new(Cell::new(false));
    let s2 = sent.clone();
    let n2 = net.clone();
    net.spawn(async move {
        let mut s = n2.connect(to, 7000).await.unwrap();
        let mut off = 0;
        let mut chunk = [0u8; 3000];
        while off < total {
            let len = chunk.len().min(total - off);
            for (k, b) in chunk[..len].iter_mut().enumerate() {
                *b = pattern(off + k);
            }
            s.write_all(&chunk[..len]).await.unwrap();
            off += len;
        }
        s.flush().await.unwrap();
        s.close();
        s2.set(true);
    });
    sent
}

#[test]
fn one_mib_over_tcp_through_the_switch_byte_exact() {
    const TOTAL: usize = 1 << 20;
    let mut w = World::new(2, Config::default());
    let (got, ok) = spawn_receiver(&w.net(1));
    let sent = spawn_sender(&w.net(2), addr(1), TOTAL);
    w.run_until(200_000, || got.get() == TOTAL && sent.get());
    assert!(ok.get(), "bytes differ");
    assert_eq!(got.get(), TOTAL);
    let (a, b) = (w.net(1).stats(), w.net(2).stats());
    // No frame was refused by the switch or lost on the way.
    for s in [a, b] {
        assert_eq!(
            (s.device.tx_refused, s.device.tx_lost, s.device.rx_errors),
            (0, 0, 0),
            "{s:?}"
        );
    }
    // Batching: the sender's frames went in fewer Sends than frames, and
    // the receiver took its frames in fewer Recvs than frames.
    assert!(b.device.tx_frames > b.device.sends, "{b:?}");
    assert!(a.device.rx_frames > a.device.recvs, "{a:?}");
    // Sanity on the amount: at least 1 MiB of 1460-byte segments.
    assert!(b.device.tx_frames as usize >= TOTAL / 1460);
    // The receiver's task dropped its listener and stream: once the closes
    // finish, every socket on both sides is reaped.
    let (n1, n2) = (w.net(1), w.net(2));
    w.run_until(10_000, || {
        n1.stats().tcp_open == 0 && n2.stats().tcp_open == 0
    });
    assert_eq!(n1.stats().aborted + n2.stats().aborted, 0);
}

#[test]
fn udp_round_trips() {
    let mut w = World::new(2, Config::default());
    let (a, b) = (w.net(1), w.net(2));
    let server = a.udp_bind(9000).unwrap();
    a.spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let (n, ip, port) = server.recv_from(&mut buf).await.unwrap();
            buf[..n].reverse();
            server.send_to(&buf[..n], ip, port).await.unwrap();
        }
    });
    let replies = Rc::new(RefCell::new(Vec::new()));
    let r2 = replies.clone();
    let b2 = b.clone();
    b.spawn(async move {
        let c = b2.udp_bind(0).unwrap();
        for i in 0..10u8 {
            c.send_to(&[i, 1, 2, 3], addr(1), 9000).await.unwrap();
            let mut buf = [0u8; 64];
            let (n, ip, port) = c.recv_from(&mut buf).await.unwrap();
            assert_eq!((ip, port), (addr(1), 9000));
            r2.borrow_mut().push(buf[..n].to_vec());
        }
    });
    w.run_until(10_000, || replies.borrow().len() == 10);
    for (i, r) in replies.borrow().iter().enumerate() {
        assert_eq!(r, &[3, 2, 1, i as u8]);
    }
    // After the first (ARP), one exchange is two frames: each side one
    // Send and one Recv per datagram, nothing more.
    let s = w.net(2).stats().device;
    assert!(s.sends <= 10 + 2 && s.recvs <= 10 + 3, "{s:?}");
}

#[test]
fn a_listener_keeps_a_backlog() {
    let mut w = World::new(5, Config::default());
    let server = w.net(1);
    let l = server.listen(80, 4).unwrap();
    // Four sockets listen, so four clients connect before any accept.
    assert_eq!(server.stats().tcp_open, 4);
    let connected = Rc::new(Cell::new(0));
    for i in 2..=5 {
        let n = w.net(i);
        let c = connected.clone();
        let n2 = n.clone();
        n.spawn(async move {
            let mut s = n2.connect(addr(1), 80).await.unwrap();
            c.set(c.get() + 1);
            let mut b = [0u8; 8];
            assert_eq!(s.read(&mut b).await.unwrap(), 2);
            assert_eq!(&b[..2], b"hi");
        });
    }
    w.run_until(10_000, || connected.get() == 4);
    // Now accept all four; each gets its greeting.
    let accepted = Rc::new(Cell::new(0));
    let a2 = accepted.clone();
    server.spawn(async move {
        for _ in 0..4 {
            let mut s = l.accept().await.unwrap();
            s.write_all(b"hi").await.unwrap();
            a2.set(a2.get() + 1);
        }
    });
    let clients: Vec<Net> = (2..=5).map(|i| w.net(i)).collect();
    w.run_until(10_000, || {
        accepted.get() == 4 && clients.iter().all(|c| c.tasks() == 0)
    });
    assert_eq!(server.stats().accepted, 4);
}

#[test]
fn connecting_to_a_closed_port_is_refused_and_max_tcp_holds() {
    let cfg = Config {
        max_tcp: 2,
        ..Config::default()
    };
    let mut w = World::new(2, cfg);
    let c = w.net(2);
    let r = Rc::new(RefCell::new(None));
    let (r2, c2) = (r.clone(), c.clone());
    c.spawn(async move {
        *r2.borrow_mut() = Some(c2.connect(addr(1), 81).await.map(|_| ()));
    });
    w.run_until(10_000, || r.borrow().is_some());
    assert_eq!(*r.borrow(), Some(Err(NetError::Refused)));
    let s = w.net(1);
    let _a = s.listen(1, 1).unwrap();
    let _b = s.listen(2, 1).unwrap();
    assert_eq!(s.listen(3, 1).err(), Some(NetError::NoSockets));
    assert_eq!(s.listen(2, 1).err(), Some(NetError::AddressInUse));
}

#[test]
fn tcp_recovers_across_a_vnic_restart() {
    const TOTAL: usize = 256 * 1024;
    let mut w = World::new(2, Config::default());
    let (got, ok) = spawn_receiver(&w.net(1));
    let sent = spawn_sender(&w.net(2), addr(1), TOTAL);
    w.run_until(100_000, || got.get() > TOTAL / 4);
    // Frames queued in the old vnic are lost with it.
    w.restart_vnic();
    w.run_until(400_000, || got.get() == TOTAL && sent.get());
    assert!(ok.get());
    let (a, b) = (w.net(1).stats().device, w.net(2).stats().device);
    assert_eq!((a.reattached, b.reattached), (1, 1), "{a:?} {b:?}");
    assert_eq!((a.readdressed, b.readdressed), (0, 0));
}

#[test]
fn an_idle_server_wants_no_wakeups() {
    let mut w = World::new(2, Config::default());
    let s = w.net(1);
    let l = s.listen(80, 4).unwrap();
    s.spawn(async move {
        let _ = l.accept().await;
    });
    w.run_until(10, || true);
    // Nothing to do: no deadline at all, and no call to the vnic.
    let calls = w.nodes[0].calls.get();
    assert_eq!(s.step(w.now, None), None);
    assert_eq!(s.step(w.now + Duration::from_secs(60), None), None);
    assert_eq!(w.nodes[0].calls.get(), calls);
    let polls = s.stats().polls;
    s.step(w.now + Duration::from_secs(120), None);
    assert_eq!(s.stats().polls, polls, "an idle step polls nothing");
}

#[test]
fn timeouts_and_sleep_follow_the_clock() {
    let mut w = World::new(1, Config::default());
    let n = w.net(1);
    let t0 = w.now;
    let woke = Rc::new(Cell::new(None));
    let timed = Rc::new(Cell::new(None));
    let (wk, tm, n2) = (woke.clone(), timed.clone(), n.clone());
    n.spawn(async move {
        n2.sleep(Duration::from_millis(250)).await;
        wk.set(Some(n2.now()));
        let l = n2.listen(5, 1).unwrap();
        let r = n2
            .timeout(n2.now() + Duration::from_millis(100), l.accept())
            .await;
        tm.set(Some((r.map(|_| ()), n2.now())));
    });
    w.run_until(100, || timed.get().is_some());
    assert_eq!(woke.get(), Some(t0 + Duration::from_millis(250)));
    let (r, at) = timed.get().unwrap();
    assert_eq!(r, Err(NetError::TimedOut));
    assert_eq!(at, t0 + Duration::from_millis(350));
    assert_eq!(n.timers(), 0, "timers are dropped with their futures");
}

/// One's-complement sum of `b`, folded.
fn fold(mut acc: u32, b: &[u8]) -> u32 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// A SYN to port 80 of guest 1 from guest `from`'s own addresses.
fn syn_frame(from: u32, sport: u16) -> Vec<u8> {
    let (me, to) = (
        assign::addresses(from).unwrap(),
        assign::addresses(1).unwrap(),
    );
    let mut f = Vec::from(to.mac.0);
    f.extend_from_slice(&me.mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&me.ipv4.0);
    ip.extend_from_slice(&to.ipv4.0);
    let c = !(fold(0, &ip) as u16);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = Vec::from(sport.to_be_bytes());
    tcp.extend_from_slice(&80u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0]);
    let mut pseudo = Vec::from(me.ipv4.0);
    pseudo.extend_from_slice(&to.ipv4.0);
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let c = !(fold(fold(0, &pseudo), &tcp) as u16);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend(ip);
    f.extend(tcp);
    f
}

#[test]
fn half_open_listeners_are_freed_after_the_syn_timeout() {
    // Guests 1 (server) and 2 (client) have stacks; port 3 is a raw
    // attacker that never answers the SYN-ACKs nor sends RST.
    let mut w = World::new(2, Config::default());
    configure_port(&mut w.vnic.borrow_mut(), 3);
    let server = w.net(1);
    let l = server.listen(80, 2).unwrap();
    let mut frames = serac_protocol::net::Frames::new();
    for sport in [1000, 1001, 1002] {
        frames.push(&syn_frame(3, sport)).unwrap();
    }
    let req = serac_protocol::net::Request::Send { frames };
    let mut buf = [0u8; MAX_PAYLOAD];
    let enc = serac_protocol::codec::encode(&req, &mut buf)
        .unwrap()
        .to_vec();
    let mut back = [0u8; MAX_PAYLOAD];
    w.vnic
        .borrow_mut()
        .handle(guest(3).to_raw(), &enc, &mut back)
        .unwrap();
    let flood = w.now;
    // The client retries until it gets through; the server accepts.
    let (accepted, attempts) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(0)));
    let (a2, s2) = (accepted.clone(), server.clone());
    server.spawn(async move {
        let _s = l.accept().await.unwrap();
        a2.set(Some(s2.now()));
    });
    let (c, at) = (w.net(2), attempts.clone());
    let c2 = c.clone();
    c.spawn(async move {
        loop {
            at.set(at.get() + 1);
            let until = c2.now() + Duration::from_millis(500);
            if let Ok(Ok(_s)) = c2.timeout(until, c2.connect(addr(1), 80)).await {
                return;
            }
            c2.sleep(Duration::from_millis(200)).await;
        }
    });
    w.run_until(100_000, || accepted.get().is_some() && c.tasks() == 0);
    let took = accepted.get().unwrap() - flood;
    // Both listening sockets were held until the timeout, then re-armed.
    assert_eq!(server.stats().syn_expired, 2);
    assert!(attempts.get() > 1, "the flood held the backlog at first");
    let limit = Config::default().syn_timeout;
    assert!(
        took >= limit && took < limit + Duration::from_secs(1),
        "{took}"
    );
}

#[test]
fn bytes_per_connection_by_construction() {
    let c = Config::default();
    let b = bytes_per_connection(&c);
    assert!(
        b > c.tcp_rx + c.tcp_tx && b < c.tcp_rx + c.tcp_tx + 2048,
        "{b}"
    );
    std::println!(
        "bytes_per_connection {b} (buffers {} + socket {})",
        c.tcp_rx + c.tcp_tx,
        b - c.tcp_rx - c.tcp_tx
    );
}

/// A vnic that answers every `Recv` with the frames it is given.
struct Garbage {
    frames: Vec<Vec<u8>>,
}

impl Transport for Garbage {
    fn call(&mut self, _: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        use serac_protocol::net::{Frames, Reply, Request};
        let r: Reply = match serac_protocol::codec::decode::<Request>(req) {
            Ok(Request::Info) => Reply::Info(assign::addresses(1).unwrap()),
            Ok(Request::Recv { .. }) => {
                let mut f = Frames::new();
                while let Some(fr) = self.frames.pop() {
                    if f.push(&fr).is_err() {
                        break;
                    }
                }
                Reply::Received {
                    more: !self.frames.is_empty(),
                    frames: f,
                }
            }
            Ok(Request::Send { frames }) => Reply::Sent(serac_protocol::net::Sent {
                forwarded: frames.iter().count() as u16,
                dropped: 0,
            }),
            _ => Reply::Err(serac_protocol::net::ServiceError::BadRequest),
        };
        Ok(serac_protocol::codec::encode(&r, reply).unwrap().len())
    }
}

fn frame_to_us(body: Vec<u8>, ethertype: u16) -> Vec<u8> {
    let me = assign::addresses(1).unwrap().mac.0;
    let mut f = Vec::from(me);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 9]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend(body);
    f
}

proptest! {
    // Arbitrary frames (raw, or after an Ethernet header for us with IPv4
    // or ARP) never panic the stack, and it keeps serving its sockets.
    #[test]
    fn garbage_frames_never_panic(
        frames in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(any::<u8>(), 0..200)), 1..30),
    ) {
        let frames: Vec<Vec<u8>> = frames
            .into_iter()
            .map(|(k, body)| match k {
                0 => body,
                1 => frame_to_us(body, 0x0800),
                _ => frame_to_us(body, 0x0806),
            })
            .filter(|f| f.len() <= serac_protocol::net::MAX_FRAME)
            .collect();
        let net = Net::new(Garbage { frames }, Config::default(), Instant::from_millis(1), 1).unwrap();
        let _l = net.listen(80, 2).unwrap();
        let _u = net.udp_bind(53).unwrap();
        net.notified();
        for t in 0..5 {
            net.step(Instant::from_millis(1 + t), None);
        }
        prop_assert!(net.stats().device.rx_errors == 0);
    }
}

#[test]
fn services_are_found_by_broadcast() {
    let mut w = World::new(4, Config::default());
    for i in [2, 4] {
        let n = w.net(i);
        n.spawn(discover::announce(&n, "web").unwrap());
    }
    let n3 = w.net(3);
    n3.spawn(discover::announce(&n3, "other").unwrap());
    let c = w.net(1);
    let found = Rc::new(RefCell::new(None));
    let (f2, c2) = (found.clone(), c.clone());
    let until = w.now + Duration::from_secs(2);
    c.spawn(async move {
        *f2.borrow_mut() = Some(c2.discover("web", 2, until).await);
    });
    w.run_until(10_000, || found.borrow().is_some());
    let mut got = found.borrow().clone().unwrap().unwrap();
    got.sort();
    assert_eq!(got, [addr(2), addr(4)]);
    // Asking for more than exist ends at the deadline with those found.
    let f3 = Rc::new(RefCell::new(None));
    let (f4, c3) = (f3.clone(), c.clone());
    let until = w.now + Duration::from_millis(500);
    c.spawn(async move {
        *f4.borrow_mut() = Some(c3.discover("web", 3, until).await);
    });
    w.run_until(10_000, || f3.borrow().is_some());
    assert_eq!(f3.borrow().clone().unwrap().unwrap().len(), 2);
    assert!(w.now >= until);
}

#[test]
fn broadcast_addresses() {
    let a = assign::addresses(5).unwrap();
    assert_eq!(discover::broadcast(&a), Ipv4([10, 15, 255, 255]));
}

/// Many 16-byte UDP round trips, for a profiler (valgrind --tool=callgrind
/// counts instructions, as `-icount` does): `cargo test -p ilwaco --lib
/// --release -- --ignored udp_round_trips_profile`.
#[test]
#[ignore = "a profiling workload, not a check"]
fn udp_round_trips_profile() {
    const N: usize = 2000;
    let mut w = World::new(2, Config::default());
    let (a, b) = (w.net(1), w.net(2));
    let server = a.udp_bind(9000).unwrap();
    a.spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let (n, ip, port) = server.recv_from(&mut buf).await.unwrap();
            server.send_to(&buf[..n], ip, port).await.unwrap();
        }
    });
    let done = Rc::new(Cell::new(0));
    let (d2, b2) = (done.clone(), b.clone());
    b.spawn(async move {
        let c = b2.udp_bind(0).unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..N {
            c.send_to(&[7; 16], addr(1), 9000).await.unwrap();
            let at = b2.now() + Duration::from_millis(200);
            b2.timeout(at, c.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            d2.set(d2.get() + 1);
        }
    });
    w.run_until(100 * N, || done.get() == N);
}

/// One datagram from node `n` to each of nodes `1..n`, echoed; returns
/// the simulated time it took. With `learn`, the client first makes each
/// server a static neighbour from the address plan.
fn sweep_udp(n: u32, learn: bool) -> u64 {
    sweep_udp_learning(n, u32::from(learn)).0
}

/// [`sweep_udp`] with each server learned `times` times before any poll;
/// also returns the learns the device did not queue.
fn sweep_udp_learning(n: u32, times: u32) -> (u64, u64) {
    let mut w = World::new(n, Config::default());
    for i in 1..n {
        let s = w.net(i).udp_bind(9000).unwrap();
        w.net(i).spawn(async move {
            let mut buf = [0u8; 16];
            loop {
                let (k, ip, port) = s.recv_from(&mut buf).await.unwrap();
                s.send_to(&buf[..k], ip, port).await.unwrap();
            }
        });
    }
    let c = w.net(n);
    for _ in 0..times {
        for i in 1..n {
            let a = assign::addresses(i).unwrap();
            c.learn_neighbor(a.mac.0, a.ipv4.0);
        }
    }
    let done = Rc::new(Cell::new(0u32));
    let d2 = done.clone();
    let c2 = c.clone();
    c.spawn(async move {
        let s = c2.udp_bind(0).unwrap();
        for i in 1..n {
            s.send_to(&[i as u8], addr(i), 9000).await.unwrap();
            let mut buf = [0u8; 16];
            let (k, ip, _) = s.recv_from(&mut buf).await.unwrap();
            assert_eq!((k, buf[0], ip), (1, i as u8, addr(i)));
            d2.set(d2.get() + 1);
        }
    });
    let start = w.now;
    w.run_until(200_000, || done.get() == n - 1);
    let skipped = c.stats().device.learn_skipped;
    ((w.now - start).total_millis(), skipped)
}

#[test]
fn learning_without_a_poll_is_bounded_and_still_learns() {
    // A client whose connect failed at once and learned again in a loop
    // (loadgen at its socket limit) grew the queue until its heap ran
    // out. Now the queue stops at LEARN_QUEUE and the rest are counted;
    // the neighbours learned first still spare the ARP wait.
    let (ms, skipped) = sweep_udp_learning(6, 10_000);
    assert!(ms < 1_000, "{ms} ms");
    assert_eq!(skipped, 5 * 10_000 - super::device::LEARN_QUEUE as u64);
}

#[test]
fn static_neighbours_spare_a_client_smoltcps_one_arp_a_second() {
    // Asking: after the first, each new server waits out smoltcp's 1 s
    // silence. Learned from the address plan: no ARP, no wait. (The cache
    // holds 64: a client of more servers learns each before using it.)
    let asked = sweep_udp(6, false);
    assert!(asked >= 4_000, "{asked} ms");
    let learned = sweep_udp(6, true);
    assert!(learned < 1_000, "{learned} ms");
}

/// The address plan's MAC for `ip`, as loadgen resolves it.
fn plan_mac(ip: [u8; 4]) -> Option<[u8; 6]> {
    let i = assign::index_of(Ipv4(ip))?;
    assign::addresses(i).ok().map(|a| a.mac.0)
}

/// `n` servers, swapped out (paused) while the client connects to each,
/// answer only after the client learned 64 other neighbours, which evict
/// them from its cache. Returns the exchanges that failed, the ms from
/// their resuming to the last exchange's end, and the client's counters.
fn late_servers(n: u32, resolve: bool) -> (u32, u64, NetStats) {
    let mut w = World::new(n + 1, Config::default());
    let c = w.net(n + 1);
    let me = c.addresses();
    for i in 1..=n {
        let s = w.net(i);
        // They served this client before: it is in their caches.
        s.learn_neighbor(me.mac.0, me.ipv4.0);
        let l = s.listen(80, 2).unwrap();
        s.spawn(async move {
            loop {
                let mut t = l.accept().await.unwrap();
                let mut b = [0u8; 4];
                if let Ok(k) = t.read(&mut b).await {
                    let _ = t.write_all(&b[..k]).await;
                }
                t.close();
            }
        });
    }
    w.settle(4);
    if resolve {
        c.set_static_neighbors(plan_mac);
    }
    let (ok, failed) = (Rc::new(Cell::new(0u32)), Rc::new(Cell::new(0u32)));
    for i in 1..=n {
        w.pause(i, true);
        let a = assign::addresses(i).unwrap();
        c.learn_neighbor(a.mac.0, a.ipv4.0);
        let (c2, ok, failed) = (c.clone(), ok.clone(), failed.clone());
        c.spawn(async move {
            let r: Result<bool, NetError> = async {
                let mut t = c2.connect(addr(i), 80).await?;
                t.write_all(&[i as u8]).await?;
                let mut b = [0u8; 4];
                let k = t.read(&mut b).await?;
                let eof = t.read(&mut b).await?;
                Ok(k == 1 && b[0] == i as u8 && eof == 0)
            }
            .await;
            match r {
                Ok(true) => ok.set(ok.get() + 1),
                _ => failed.set(failed.get() + 1),
            }
        });
    }
    // The SYNs wait in the vnic; the client learns others meanwhile.
    w.settle(4);
    for k in 0..64 {
        w.now += Duration::from_millis(1);
        let a = assign::addresses(1000 + k).unwrap();
        c.learn_neighbor(a.mac.0, a.ipv4.0);
        w.settle(1);
    }
    for i in 1..=n {
        w.pause(i, false);
    }
    let start = w.now;
    w.run_until(100_000, || ok.get() + failed.get() == n);
    (failed.get(), (w.now - start).total_millis(), c.stats())
}

#[test]
fn late_servers_evicted_from_the_cache_are_learned_again() {
    // smoltcp alone: one ARP a second, so the last SYN-ACKs wait past
    // the servers' 3 s SYN timeout and are reset (loadgen's Net(Reset)).
    let (failed, ms, _) = late_servers(6, false);
    assert!(failed > 0 && ms >= 3_000, "{failed} failed in {ms} ms");
    // With the address plan as resolver, each segment's source is
    // learned again before smoltcp reads it.
    let (failed, ms, s) = late_servers(6, true);
    assert_eq!(failed, 0);
    assert!(ms < 1_000, "{ms} ms");
    assert!(s.device.relearned >= 6, "{s:?}");
    assert_eq!(s.device.learn_skipped, 0);
}

#[test]
fn only_opening_closing_or_data_segments_from_plan_addresses_are_relearned() {
    use super::device::tcp_peer;
    let a = assign::addresses(3).unwrap();
    let syn = syn_frame(3, 4000);
    assert_eq!(tcp_peer(&syn, plan_mac), Some((a.mac.0, a.ipv4.0)));
    // The flags are byte 13 of the TCP header, after 14 + 20 bytes.
    let with_flags = |flags: u8| {
        let mut f = syn.clone();
        f[14 + 20 + 13] = flags;
        f
    };
    assert_eq!(
        tcp_peer(&with_flags(0x11), plan_mac),
        Some((a.mac.0, a.ipv4.0))
    );
    let ack = with_flags(0x10);
    assert_eq!(tcp_peer(&ack, plan_mac), None, "a bare ACK");
    let mut data = ack.clone();
    data.extend_from_slice(b"hello");
    data[16..18].copy_from_slice(&45u16.to_be_bytes());
    assert_eq!(tcp_peer(&data, plan_mac), Some((a.mac.0, a.ipv4.0)));
    let mut forged = syn.clone();
    forged[11] ^= 1;
    assert_eq!(tcp_peer(&forged, plan_mac), None, "not the plan's MAC");
    let mut udp = data.clone();
    udp[14 + 9] = 17;
    assert_eq!(tcp_peer(&udp, plan_mac), None, "not TCP");
    assert_eq!(tcp_peer(&syn, |_| None), None, "not in the plan");
}

proptest! {
    // Any frame: no panic, and what is learned is the plan's MAC, which
    // is also the frame's source.
    #[test]
    fn relearning_takes_only_the_plan(
        body in proptest::collection::vec(any::<u8>(), 0..80),
        from in 1u32..50,
    ) {
        let mut f = syn_frame(from, 4000)[..14].to_vec();
        f.extend(body);
        if let Some((mac, ip)) = super::device::tcp_peer(&f, plan_mac) {
            prop_assert_eq!(Some(mac), plan_mac(ip));
            prop_assert_eq!(&f[6..12], &mac[..]);
        }
        let _ = super::device::tcp_peer(&f[..f.len().min(20)], plan_mac);
    }
}
