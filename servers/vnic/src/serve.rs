//! The server loop: requests in, frames through the switch, owners woken.
//!
//! **One pass.** Each time round (the device part only when it is due: an
//! interrupt, or frames queued for the uplink; always without an interrupt
//! line): completed transmissions are reclaimed,
//! frames the device received enter the switch at the uplink port (not
//! source-checked; frames to guests are routed and bounded as any other),
//! the uplink port's queue goes to the device as far as it has transmit
//! buffers (the rest waits in that bounded queue, its overflow counted on
//! the uplink port, until a completion interrupts), every owner whose queue
//! went from empty to non-empty is woken with `notify(RX_NOTIFY)` (never
//! blocks, never calls a guest), the notification handles of removed ports
//! are closed, and then `reply_recv` answers the last request and waits
//! for the next.
//!
//! **Waiting.** One `reply_recv` with `RECV_WAKE_ON_EVENT` waits for the
//! next request and the device's interrupt (its INTx line, bound to the
//! vnic): a waiting request comes first, else the interrupt ends the wait.
//! The server then reads the ISR (de-asserting the level-triggered line)
//! and unmasks the line with `irq_ack` before its pass reads the rings, so
//! a frame that lands after the ISR read fires again and none is missed
//! (virtio-drivers moves `used_event` past each buffer it takes, so every
//! completion interrupts). Guest-to-guest requests do not look at the
//! device, except every [`LOOK_EVERY`] passes: a waiting request comes
//! before the interrupt, so a stream of them must not starve the uplink. Without a line (a chipset the supervisor cannot route) the wait
//! has a [`POLL_MS`] deadline and every pass looks at the rings; without a
//! device there is none. (`hal::net` fences after each buffer it takes, so
//! that with `EVENT_IDX` no completion slips between an interrupt and a
//! look.) A wait with no request to answer (after an
//! interrupt, a `send`, a timeout) has a [`TRIM_MS`] deadline, so a quiet
//! vnic gives back the storage of its empty queues; a wait that answers
//! has none, which keeps the kernel's fast path.
//!
//! **Copies.** A request is decoded where it lies in the IPC buffer: each
//! frame of a `Send` is copied once, into its receiver's queue. A `Recv`
//! reply is encoded from the queue straight into the IPC buffer. (Other
//! requests, all small, are copied out of the buffer first, as their reply
//! is written over them.)
#![forbid(unsafe_code)]

use ilwaco::ipc::{header, put_in_place, put_message};
use ilwaco::println;
use ilwaco::protocol::client::LABEL_NET;
use ilwaco::protocol::codec::{decode, encode};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::net::{
    Frames, PortStats, Reply, Request, ServiceError, BATCH_MAX, RX_NOTIFY,
};
use ilwaco::protocol::upcall::irq_bit;
use ilwaco::protocol::DomainId;
use ilwaco::protocol::Handle;
use ilwaco::sys::{self, Woken};
use ilwaco::time;
use serac_vnic_core::{Limits, PortId, Switch, Vnic, Wakeup};

use crate::hal::net::Net;

/// Guest ports: one per address the plan has. The tables grow as ports
/// attach (`BYTES_PER_PORT` each), so the heap, not this, bounds them;
/// a port's queue (up to 16 KiB) is allocated on its first frame and
/// freed when empty and the vnic is quiet, and one the heap cannot hold
/// drops the frame as `no_memory`.
pub const PORTS: usize = serac_vnic_core::assign::MAX_INDEX as usize + 1;
/// Without an interrupt line: the wait's deadline, in milliseconds.
pub const POLL_MS: u64 = 10;
/// The deadline of a wait with no request to answer: then the storage of
/// empty queues is given back.
pub const TRIM_MS: u64 = 1000;
/// The tag of `Request::Send` in its encoding (the variants' order): the
/// one request decoded in place, as its reply is small.
const SEND_TAG: u8 = 3;
/// Passes after which the device is looked at even without an interrupt.
pub const LOOK_EVERY: u32 = 32;
/// Room for the reply to a `Send` (a `Sent` count or an error).
const SENT_MAX: usize = 32;
/// Log lines of each kind before the server goes quiet about it.
const LOGGED: u32 = 64;

/// `index:gen` of a domain, as the kernel's log names it.
struct Who(DomainId);

impl core::fmt::Display for Who {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.0.index, self.0.gen)
    }
}

/// A port's counters, on one line.
struct Counters(PortStats);

impl core::fmt::Display for Counters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = &self.0;
        let d = &s.drops;
        write!(
            f,
            "tx {} frames {} bytes, rx {} frames {} bytes, queued {}, drops queue_full {} no_memory {} bad_size {} malformed {} unsupported {} spoofed_mac {} spoofed_ip {} no_destination {}",
            s.tx_frames, s.tx_bytes, s.rx_frames, s.rx_bytes, s.queued_frames,
            d.queue_full, d.no_memory, d.bad_size, d.malformed, d.unsupported,
            d.spoofed_mac, d.spoofed_ip, d.no_destination
        )
    }
}

/// What the server counts beside the switch.
#[derive(Debug, Default)]
struct Stats {
    /// Frames taken from the uplink queue that the device refused.
    tx_refused: u64,
    /// Messages that were not vnic requests.
    bad_messages: u64,
    recv_errors: u32,
    logged: u32,
}

/// The server's state.
#[derive(Debug)]
pub struct Server {
    vnic: Vnic,
    net: Option<Net>,
    /// The device's INTx line: its `Irq` handle and pending bit.
    irq: Option<(Handle, u64)>,
    stats: Stats,
    poll_ticks: u64,
    trim_ticks: u64,
    /// Interrupts taken.
    kicks: u64,
    /// Passes since the device was last looked at.
    unlooked: u32,
    /// The device needs a look: an interrupt, frames queued for the
    /// uplink. Always, without a line.
    due: bool,
}

impl Server {
    /// A server over `net` (the uplink, if the device came up) and its
    /// interrupt line `irq`; `None` if the switch's tables cannot be
    /// allocated.
    pub fn new(net: Option<Net>, irq: Option<Handle>) -> Option<Server> {
        let switch = Switch::new(Limits::new(PORTS), net.is_some()).ok()?;
        let hz = time::tsc_hz().unwrap_or(1_000_000_000);
        let irq = match (irq, irq_bit(0)) {
            (Some(h), Ok(bit)) if net.is_some() => Some((h, bit)),
            _ => None,
        };
        Some(Server {
            vnic: Vnic::new(switch),
            net,
            irq,
            stats: Stats::default(),
            poll_ticks: hz / 1000 * POLL_MS,
            trim_ticks: hz / 1000 * TRIM_MS,
            kicks: 0,
            unlooked: 0,
            due: true,
        })
    }

    /// Serves for ever.
    pub fn run(mut self) -> ! {
        let mut scratch = [0u8; MAX_PAYLOAD];
        let mut reply = Handle::NONE;
        println!(
            "vnic: serving up to {PORTS} ports, {} table bytes each{}",
            serac_vnic_core::BYTES_PER_PORT,
            match (&self.net, self.irq) {
                (None, _) => "",
                (Some(_), Some(_)) => ", uplink woken by its interrupt",
                (Some(_), None) => ", uplink polled every 10 ms: no interrupt line",
            }
        );
        loop {
            self.pump();
            if self.wake() {
                // A guest's frames for the uplink: out before the wait.
                self.due = true;
                self.pump();
                self.wake();
            }
            let deadline = self.deadline(reply.is_none());
            match sys::reply_recv_or_event(reply, deadline, 0) {
                Ok(Woken::Message(r)) => {
                    self.stats.recv_errors = 0;
                    reply = self.incoming(r, &mut scratch);
                }
                Ok(Woken::Events(mask)) => {
                    reply = Handle::NONE;
                    self.interrupted(mask);
                }
                Ok(Woken::Timeout) => {
                    reply = Handle::NONE;
                    self.due |= self.irq.is_none();
                    // A quiet moment: give back the storage of empty queues.
                    self.vnic.switch_mut().trim();
                }
                Err(e) => {
                    if !reply.is_none() {
                        let _ = sys::close(reply);
                    }
                    reply = Handle::NONE;
                    self.stats.recv_errors += 1;
                    if self.stats.recv_errors <= 3 {
                        println!("vnic: reply_recv failed: {e:?}");
                    } else {
                        let _ = time::sleep_ns(10_000_000);
                    }
                }
            }
        }
    }

    /// The wait's deadline: the poll without a line, the trim when there
    /// is nothing to answer (`idle`), else none.
    fn deadline(&self, idle: bool) -> u64 {
        let now = time::tsc();
        if self.net.is_some() && self.irq.is_none() {
            now.saturating_add(self.poll_ticks)
        } else if idle {
            now.saturating_add(self.trim_ticks)
        } else {
            0
        }
    }

    /// Events ended the wait: if the line fired, the ISR is read (which
    /// de-asserts it) and then the line unmasked; the pass looks after.
    fn interrupted(&mut self, mask: u64) {
        let (Some((h, bit)), Some(net)) = (self.irq, &mut self.net) else {
            return;
        };
        if mask & bit != 0 {
            net.ack_interrupt();
            let _ = sys::irq_ack(h);
            self.kicks += 1;
            self.due = true;
        }
    }

    /// Moves frames between the device and the switch's uplink port.
    fn pump(&mut self) {
        // Driven by interrupts, the rings change only when the device
        // says so; a request between guests does not look at them.
        // A waiting request comes before the interrupt, so under a stream
        // of requests the rings are looked at every [`LOOK_EVERY`] anyway.
        self.unlooked += 1;
        if !self.due && self.unlooked < LOOK_EVERY {
            return;
        }
        self.unlooked = 0;
        self.due = self.irq.is_none();
        let Some(net) = &mut self.net else { return };
        net.reclaim();
        let switch = self.vnic.switch_mut();
        net.receive(|frame| {
            // Counted by the switch either way (forwarded, or a drop on
            // the uplink port).
            let _ = switch.offer(PortId::UPLINK, frame);
        });
        loop {
            let free = net.tx_free();
            if free == 0 {
                break;
            }
            let Some(t) = switch.take_upto(PortId::UPLINK, BATCH_MAX, free) else {
                break;
            };
            if t.count == 0 {
                break;
            }
            for f in t.frames.iter() {
                if net.transmit(f).is_err() {
                    self.stats.tx_refused += 1;
                }
            }
            if !t.more {
                break;
            }
        }
        // Frames left for want of transmit buffers go when a completion
        // interrupts.
    }

    /// Wakes the owners whose queues filled, closes handles of removed
    /// ports; returns whether the uplink's queue filled.
    fn wake(&mut self) -> bool {
        let mut uplink = false;
        let switch = self.vnic.switch_mut();
        while let Some(w) = switch.pop_wakeup() {
            match w {
                // Transmitted before the wait (`run`).
                Wakeup::Uplink => uplink = true,
                Wakeup::Guest { notify, .. } => {
                    if !notify.is_none() {
                        let _ = sys::notify(notify, RX_NOTIFY);
                    }
                }
            }
        }
        while let Some(h) = switch.pop_released() {
            let _ = sys::close(h);
        }
        uplink
    }

    /// Serves the message in the IPC buffer, writing the answer there;
    /// returns the handle to answer.
    fn incoming(&mut self, reply: Handle, scratch: &mut [u8; MAX_PAYLOAD]) -> Handle {
        if reply.is_none() {
            // A `send`: nobody waits for an answer.
            return Handle::NONE;
        }
        let h = match header() {
            Ok(h) if h.label == LABEL_NET => h,
            _ => {
                self.stats.bad_messages += 1;
                let mut out = [0u8; SENT_MAX];
                let n = encode(&Reply::<Frames>::Err(ServiceError::BadRequest), &mut out)
                    .map_or(0, |b| b.len());
                if put_message(LABEL_NET, Handle::NONE, &out[..n]).is_err() {
                    let _ = put_message(LABEL_NET, Handle::NONE, &[]);
                }
                return reply;
            }
        };
        let len = (h.len as usize).min(MAX_PAYLOAD);
        // In the IPC buffer: the request, then the reply written over it.
        let served = put_in_place(LABEL_NET, Handle::NONE, |p| {
            let req = p.get(..len)?;
            if req.first() == Some(&SEND_TAG) {
                // Frames go from here into their queues; the small reply
                // waits aside until the request is done with.
                let mut out = [0u8; SENT_MAX];
                let n = self.vnic.handle(h.badge, req, &mut out).ok()?;
                let body = out.get(..n)?;
                p.get_mut(..n)?.copy_from_slice(body);
                return Some(n);
            }
            let req = scratch.get_mut(..len)?;
            req.copy_from_slice(p.get(..len)?);
            // Configure (0) and Detach (1) are logged.
            if matches!(req.first(), Some(0 | 1)) {
                self.log_control(h.badge, req);
            }
            let n = self.vnic.handle(h.badge, req, p);
            if matches!(req.first(), Some(0)) {
                self.log_configured(req, p, n);
            }
            n.ok()
        });
        if served.is_err() {
            let _ = put_message(LABEL_NET, Handle::NONE, &[]);
        }
        reply
    }

    /// Before a `Detach` by the controller: the port's final counters.
    fn log_control(&mut self, _badge: u64, req: &[u8]) {
        let Ok(Request::Detach { owner }) = decode::<Request>(req) else {
            return;
        };
        let switch = self.vnic.switch();
        if let Some(s) = switch.port_of(owner).and_then(|p| switch.stats(p)) {
            if self.stats.logged < LOGGED {
                self.stats.logged += 1;
                println!("vnic: port {} detached: {}", Who(owner), Counters(s));
                // The uplink's side too (its "tx" came in from outside, its
                // "rx" went out), and the device's.
                if let (Some(u), Some(net)) = (switch.stats(PortId::UPLINK), &self.net) {
                    let d = net.stats;
                    println!(
                        "vnic: uplink: {}; device received {} sent {} (rx errors {}, repost failures {}, tx errors {}, refused {}), {} interrupt(s)",
                        Counters(u),
                        d.rx_frames,
                        d.tx_frames,
                        d.rx_errors,
                        d.repost_failures,
                        d.tx_errors,
                        self.stats.tx_refused,
                        self.kicks
                    );
                }
            }
        }
    }

    /// After a `Configure`: the port and its addresses, if it was accepted.
    fn log_configured(
        &mut self,
        req: &[u8],
        out: &[u8],
        n: Result<usize, ilwaco::protocol::codec::CodecError>,
    ) {
        let Ok(Request::Configure(c)) = decode::<Request>(req) else {
            return;
        };
        let ok = n.ok().and_then(|n| out.get(..n)) == Some(&[0u8][..]);
        if self.stats.logged >= LOGGED {
            return;
        }
        self.stats.logged += 1;
        let a = c.addresses;
        let m = a.mac.0;
        let ip = a.ipv4.0;
        if ok {
            println!(
                "vnic: port {} is {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} {}.{}.{}.{}/{}",
                Who(c.owner),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                a.prefix_len
            );
        } else {
            println!("vnic: refused a configuration of port {}", Who(c.owner));
        }
    }
}
