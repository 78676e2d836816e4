//! One vnic request in, one reply out: the server's loop minus the
//! syscalls. The caller's port is the one its badge (the kernel-written
//! `DomainId`) owns; `Configure`, `Detach` and `StatsOf` are the
//! controller's, and the controller is the first badge to ask for one of
//! them, as in the pager (`serac_pager_policy`).

use crate::switch::{AttachError, PortId, Switch, Verdict};
use serac_protocol::codec::{encode, CodecError};
use serac_protocol::net::{
    decode_request, FramesRef, Reply, ReplyRef, Request, Sent, ServiceError, BATCH_MAX,
};
use serac_protocol::DomainId;

/// The vnic's state: the switch and who controls it.
#[derive(Debug)]
pub struct Vnic {
    switch: Switch,
    controller: Option<u64>,
}

impl Vnic {
    /// A vnic around `switch`, with no controller yet.
    pub fn new(switch: Switch) -> Vnic {
        Vnic {
            switch,
            controller: None,
        }
    }

    /// The switch (the uplink's frames go through it directly).
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The switch, mutably.
    pub fn switch_mut(&mut self) -> &mut Switch {
        &mut self.switch
    }

    /// Whether `badge` may configure (the first to ask becomes the one).
    fn controller_ok(&mut self, badge: u64) -> bool {
        *self.controller.get_or_insert(badge) == badge
    }

    /// Serves one request from `badge`, writing the reply into `reply`
    /// (give it `MAX_PAYLOAD` bytes) and returning its length. Fails only
    /// if `reply` is too small for the reply; a `Recv` takes no more than
    /// fits, so frames are never taken and then lost. Never panics.
    pub fn handle(
        &mut self,
        badge: u64,
        payload: &[u8],
        reply: &mut [u8],
    ) -> Result<usize, CodecError> {
        let Ok(req) = decode_request(payload) else {
            return answer(Reply::Err(ServiceError::BadRequest), reply);
        };
        if req.is_privileged() && !self.controller_ok(badge) {
            return answer(Reply::Err(ServiceError::NotPermitted), reply);
        }
        let caller = DomainId::from_raw(badge);
        let own = self.switch.port_of(caller);
        let r: ReplyRef<'_> = match req {
            Request::Configure(config) => match self.switch.attach(&config) {
                Ok(_) => Reply::Ok,
                Err(AttachError::Invalid) => Reply::Err(ServiceError::BadRequest),
                Err(AttachError::InUse) => Reply::Err(ServiceError::AddressInUse),
                Err(AttachError::Full) => Reply::Err(ServiceError::NoResources),
            },
            Request::Detach { owner } => {
                self.switch.detach(owner);
                Reply::Ok
            }
            Request::StatsOf { owner } => stats(&self.switch, self.switch.port_of(owner)),
            Request::Stats => stats(&self.switch, own),
            Request::Info => match own.and_then(|p| self.switch.addresses(p)) {
                Some(a) => Reply::Info(a),
                None => Reply::Err(ServiceError::NoSuchPort),
            },
            Request::Send { frames } => match own {
                Some(p) => Reply::Sent(self.send(p, frames)),
                None => Reply::Err(ServiceError::NoSuchPort),
            },
            Request::Recv { max } => {
                // What fits after the reply's tag, flag and length.
                let room = reply.len().saturating_sub(4).min(BATCH_MAX);
                let max = usize::from(max).min(room);
                return match own.and_then(|p| self.switch.take(p, max)) {
                    Some(t) => answer(
                        Reply::Received {
                            more: t.more,
                            frames: t.frames,
                        },
                        reply,
                    ),
                    None => answer(Reply::Err(ServiceError::NoSuchPort), reply),
                };
            }
        };
        answer(r, reply)
    }

    fn send(&mut self, port: PortId, frames: FramesRef<'_>) -> Sent {
        let mut sent = Sent::default();
        for f in frames.iter() {
            let n = match self.switch.offer(port, f) {
                Some(Verdict::Forwarded { .. }) => &mut sent.forwarded,
                _ => &mut sent.dropped,
            };
            *n = n.saturating_add(1);
        }
        sent
    }
}

fn stats(switch: &Switch, port: Option<PortId>) -> ReplyRef<'static> {
    match port.and_then(|p| switch.stats(p)) {
        Some(s) => Reply::Stats(s),
        None => Reply::Err(ServiceError::NoSuchPort),
    }
}

fn answer(r: ReplyRef<'_>, reply: &mut [u8]) -> Result<usize, CodecError> {
    encode(&r, reply).map(|b| b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assign;
    use crate::frame::build;
    use crate::switch::{Limits, Wakeup};
    use proptest::prelude::*;
    use serac_protocol::client::{ClientError, Transport, LABEL_NET};
    use serac_protocol::layout::MAX_PAYLOAD;
    use serac_protocol::net::{Addresses, Frames, NetClient, PortConfig, Request};
    use serac_protocol::{Handle, SysError};

    const SUPERVISOR: DomainId = DomainId::new(0, 1);

    /// Calls the vnic as the kernel would: the badge is the caller's id.
    struct Wire<'v> {
        vnic: &'v mut Vnic,
        badge: u64,
    }

    impl Transport for Wire<'_> {
        fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
            assert_eq!(label, LABEL_NET);
            assert_eq!(reply.len(), MAX_PAYLOAD);
            self.vnic
                .handle(self.badge, req, reply)
                .map_err(|_| SysError::MessageTooLarge)
        }
    }

    fn client(vnic: &mut Vnic, who: DomainId) -> NetClient<Wire<'_>> {
        NetClient::new(Wire {
            vnic,
            badge: who.to_raw(),
        })
    }

    fn guest(i: u32) -> DomainId {
        DomainId::new(i, 1)
    }

    fn addrs(i: u32) -> Addresses {
        assign::addresses(i).unwrap()
    }

    fn config(i: u32) -> PortConfig {
        PortConfig {
            owner: guest(i),
            addresses: addrs(i),
            notify: Handle::new(20 + i, 1),
        }
    }

    fn vnic(ports: usize) -> Vnic {
        Vnic::new(Switch::new(Limits::new(ports), true).unwrap())
    }

    /// A vnic with guests 1 and 2 configured by the supervisor.
    fn two_guests() -> Vnic {
        let mut v = vnic(4);
        let mut sup = client(&mut v, SUPERVISOR);
        sup.configure(config(1)).unwrap();
        sup.configure(config(2)).unwrap();
        v
    }

    fn udp(from: u32, to: u32, body: &[u8]) -> std::vec::Vec<u8> {
        let (a, b) = (addrs(from), addrs(to));
        build::ipv4(b.mac, a.mac, a.ipv4, b.ipv4, body)
    }

    #[test]
    fn a_burst_costs_one_wakeup_and_one_recv() {
        let mut v = two_guests();
        let mut batch = Frames::new();
        for i in 0..30u8 {
            batch.push(&udp(1, 2, &[i; 64])).unwrap();
        }
        let sent = client(&mut v, guest(1)).send_batch(&batch).unwrap();
        assert_eq!((sent.forwarded, sent.dropped), (30, 0));
        assert_eq!(
            v.switch_mut().pop_wakeup(),
            Some(Wakeup::Guest {
                owner: guest(2),
                notify: config(2).notify
            })
        );
        assert_eq!(v.switch_mut().pop_wakeup(), None);
        let got = client(&mut v, guest(2)).recv(usize::MAX).unwrap();
        assert!(!got.more);
        assert!(got.frames.iter().eq(batch.iter()));
        let st = client(&mut v, guest(2)).stats().unwrap();
        assert_eq!((st.rx_frames, st.queued_frames), (30, 0));
        let sup = client(&mut v, SUPERVISOR).stats_of(guest(1)).unwrap();
        assert_eq!(sup.tx_frames, 30);
        assert_eq!(client(&mut v, guest(1)).info().unwrap(), addrs(1));
    }

    #[test]
    fn only_the_controller_configures() {
        let mut v = two_guests();
        let refused = Err(ClientError::Service(ServiceError::NotPermitted));
        let mut g = client(&mut v, guest(1));
        assert_eq!(g.configure(config(3)), refused);
        assert_eq!(g.detach(guest(2)), refused);
        assert_eq!(g.stats_of(guest(2)).map(|_| ()), refused);
        // A guest's port is its badge's: it cannot send as another.
        let spoof = udp(2, 1, b"from 2?");
        let s = client(&mut v, guest(1)).send(&spoof).unwrap();
        assert_eq!((s.forwarded, s.dropped), (0, 1));
        assert_eq!(
            client(&mut v, guest(1)).stats().unwrap().drops.spoofed_mac,
            1
        );
        // The first to configure became the controller; the guest did not.
        let mut sup = client(&mut v, SUPERVISOR);
        sup.configure(config(3)).unwrap();
        sup.detach(guest(3)).unwrap();
        sup.detach(guest(3)).unwrap();
    }

    #[test]
    fn ports_follow_the_badge() {
        let mut v = two_guests();
        let none = Err(ClientError::Service(ServiceError::NoSuchPort));
        // No port, a stale generation, or a detached port: NoSuchPort.
        for who in [guest(3), guest(1).next_gen(), DomainId::NONE] {
            let mut c = client(&mut v, who);
            assert_eq!(c.info().map(|_| ()), none);
            assert_eq!(c.send(&udp(1, 2, b"")).map(|_| ()), none);
            assert_eq!(c.recv(100).map(|_| ()), none);
            assert_eq!(c.stats().map(|_| ()), none);
        }
        client(&mut v, SUPERVISOR).detach(guest(2)).unwrap();
        assert_eq!(client(&mut v, guest(2)).recv(100).map(|_| ()), none);
        assert_eq!(
            client(&mut v, SUPERVISOR).stats_of(guest(2)).map(|_| ()),
            none
        );
    }

    #[test]
    fn configure_errors() {
        let mut v = vnic(2);
        let mut sup = client(&mut v, SUPERVISOR);
        sup.configure(config(1)).unwrap();
        let mut clash = config(2);
        clash.addresses.ipv4 = addrs(1).ipv4;
        assert_eq!(
            sup.configure(clash),
            Err(ClientError::Service(ServiceError::AddressInUse))
        );
        let mut bad = config(2);
        bad.addresses.mac = serac_protocol::net::Mac([0; 6]);
        assert_eq!(
            sup.configure(bad),
            Err(ClientError::Service(ServiceError::BadRequest))
        );
        sup.configure(config(2)).unwrap();
        assert_eq!(
            sup.configure(config(3)),
            Err(ClientError::Service(ServiceError::NoResources))
        );
    }

    #[test]
    fn a_small_reply_buffer_takes_only_what_it_holds() {
        let mut v = two_guests();
        for i in 0..3u8 {
            client(&mut v, guest(1))
                .send(&udp(1, 2, &[i; 1000]))
                .unwrap();
        }
        let mut buf = [0u8; MAX_PAYLOAD];
        let mut req = [0u8; 16];
        let recv = encode(&Request::<Frames>::Recv { max: u16::MAX }, &mut req).unwrap();
        // Room for one 1034-byte frame and its record header only.
        let n = v.handle(guest(2).to_raw(), recv, &mut buf[..1050]).unwrap();
        let r: ReplyRef<'_> = serac_protocol::codec::decode_borrowed(&buf[..n]).unwrap();
        let Reply::Received { more, frames } = r else {
            panic!("{r:?}");
        };
        assert!(more);
        assert_eq!(frames.iter().count(), 1);
        // Nothing was lost: the other two come next.
        let rest = client(&mut v, guest(2)).recv(usize::MAX).unwrap();
        assert_eq!(rest.frames.iter().count(), 2);
        assert!(!rest.more);
        // A reply buffer too small for any reply fails instead of panicking.
        assert!(v.handle(guest(2).to_raw(), recv, &mut buf[..1]).is_err());
    }

    proptest! {
        // Garbage from anyone, before or after a controller exists, gets a
        // reply and leaves the switch consistent.
        #[test]
        fn garbage_never_panics(
            msgs in proptest::collection::vec((0u32..4, proptest::collection::vec(any::<u8>(), 0..200)), 1..20),
        ) {
            let mut v = two_guests();
            let mut buf = [0u8; MAX_PAYLOAD];
            for (who, payload) in msgs {
                let n = v.handle(guest(who).to_raw(), &payload, &mut buf).unwrap();
                let r: Result<ReplyRef<'_>, _> = serac_protocol::codec::decode_borrowed(&buf[..n]);
                prop_assert!(r.is_ok());
                prop_assert!(v.switch().check());
            }
        }
    }
}
