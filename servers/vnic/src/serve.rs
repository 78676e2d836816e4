//! The server loop: requests in, frames through the switch, owners woken.
//!
//! **One pass.** Each time round (the device part only when it is due: an
//! interrupt, the watchdog, frames queued for the uplink; always when
//! polling): completed transmissions are reclaimed,
//! frames the device received enter the switch at the uplink port (not
//! source-checked; frames to guests are routed and bounded as any other),
//! the uplink port's queue goes to the device as far as it has transmit
//! buffers (the rest waits in that bounded queue, its overflow counted on
//! the uplink port), every owner whose queue went from empty to non-empty
//! is woken with `notify(RX_NOTIFY)` (never blocks, never calls a guest),
//! the notification handles of removed ports are closed, and then
//! `reply_recv` answers the last request and waits for the next.
//!
//! **Waiting.** The kernel wakes a domain blocked in `reply_recv` only for
//! a message, and one in `idle` only for an event, so the device's
//! interrupt cannot end a wait for requests. The manifest therefore gives
//! the line to a helper domain (`vnic-irq`, `irq-of=vnic`) that waits for
//! it in `idle` and then calls the vnic with an empty message: the vnic
//! reads the ISR (de-asserting the line) and, after its pass, answers; the
//! helper then unmasks the line. From the helper's first call on, the wait
//! has only a watchdog deadline ([`WATCHDOG_MS`]). Without a helper the
//! vnic polls: the wait's deadline is [`BUSY_US`] while the uplink carried
//! a frame in the last [`WARM_MS`], [`QUIET_US`] otherwise, and the rings
//! are looked at after every wake. Guest-to-guest traffic never waits for
//! a deadline. Without a device the wait has none.
//!
//! **Copies.** A request is copied from the IPC buffer into `payload`,
//! decoded in place, and each frame of a `Send` copied once into its
//! receiver's queue; a `Recv` reply is encoded from the queue into `out`
//! and copied into the IPC buffer.
#![forbid(unsafe_code)]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::println;
use ilwaco::protocol::client::LABEL_NET;
use ilwaco::protocol::codec::{decode, encode};
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::net::{
    Frames, PortStats, Reply, Request, ServiceError, BATCH_MAX, RX_NOTIFY,
};
use ilwaco::protocol::{DomainId, Handle, SysError};
use ilwaco::{sys, time};
use serac_vnic_core::{Limits, PortId, Switch, Vnic, Wakeup};

use crate::hal::net::Net;

/// Guest ports. A port's table entry is small; its queue (up to 16 KiB)
/// is allocated on its first frame and freed when empty and the vnic is
/// quiet, and one the heap cannot hold drops the frame as `no_memory`.
pub const PORTS: usize = 256;
/// The wait's deadline while the uplink is busy, in microseconds.
pub const BUSY_US: u64 = 1000;
/// ... and while it is quiet.
pub const QUIET_US: u64 = 10_000;
/// How long after its last frame the uplink counts as busy.
pub const WARM_MS: u64 = 200;
/// The longest wait once a helper delivers the interrupts: then the rings
/// are looked at anyway (and the kernel keeps the page tables of a domain
/// that waits less than 100 ms).
pub const WATCHDOG_MS: u64 = 50;
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
    stats: Stats,
    /// TSC of the uplink's last frame.
    last_traffic: u64,
    busy_ticks: u64,
    quiet_ticks: u64,
    warm_ticks: u64,
    watchdog_ticks: u64,
    /// A helper calls when the device interrupts (`vnic-irq`).
    irq_driven: bool,
    /// Its calls after the first: interrupts.
    kicks: u64,
    /// The device needs a look: an interrupt, the watchdog, frames queued
    /// for the uplink. Always, without a helper.
    due: bool,
}

impl Server {
    /// A server over `net` (the uplink, if the device came up); `None` if
    /// the switch's tables cannot be allocated.
    pub fn new(net: Option<Net>) -> Option<Server> {
        let switch = Switch::new(Limits::new(PORTS), net.is_some()).ok()?;
        let hz = time::tsc_hz().unwrap_or(1_000_000_000);
        Some(Server {
            vnic: Vnic::new(switch),
            net,
            stats: Stats::default(),
            last_traffic: 0,
            busy_ticks: (hz / 1_000_000 * BUSY_US).max(1),
            quiet_ticks: (hz / 1_000_000 * QUIET_US).max(1),
            warm_ticks: hz / 1000 * WARM_MS,
            watchdog_ticks: hz / 1000 * WATCHDOG_MS,
            irq_driven: false,
            kicks: 0,
            due: true,
        })
    }

    /// Serves for ever.
    pub fn run(mut self) -> ! {
        let mut payload = [0u8; MAX_PAYLOAD];
        let mut out = [0u8; MAX_PAYLOAD];
        let mut reply = Handle::NONE;
        println!(
            "vnic: serving {PORTS} ports{}",
            if self.net.is_some() {
                ", uplink polled (busy 1 ms, quiet 10 ms) until an interrupt helper calls"
            } else {
                ""
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
            let deadline = self.deadline();
            match sys::reply_recv_until(reply, deadline) {
                Ok(raw) => {
                    self.stats.recv_errors = 0;
                    reply = self.incoming(Handle::from_raw(raw), &mut payload, &mut out);
                }
                Err(SysError::WouldBlock) => {
                    reply = Handle::NONE;
                    self.due = true;
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

    /// 0 (no deadline) without a device, else the next look at its rings.
    fn deadline(&self) -> u64 {
        if self.net.is_none() {
            return 0;
        }
        let now = time::tsc();
        if self.irq_driven {
            let wait = if self.due {
                self.busy_ticks
            } else {
                self.watchdog_ticks
            };
            return now.saturating_add(wait);
        }
        let warm = now.saturating_sub(self.last_traffic) < self.warm_ticks;
        now.saturating_add(if warm {
            self.busy_ticks
        } else {
            self.quiet_ticks
        })
    }

    /// Moves frames between the device and the switch's uplink port.
    fn pump(&mut self) {
        // Driven by interrupts, the rings change only when the device
        // says so; a request between guests does not look at them.
        if self.irq_driven && !self.due {
            return;
        }
        self.due = !self.irq_driven;
        let Some(net) = &mut self.net else { return };
        net.reclaim();
        let switch = self.vnic.switch_mut();
        let got = net.receive(|frame| {
            // Counted by the switch either way (forwarded, or a drop on
            // the uplink port).
            let _ = switch.offer(PortId::UPLINK, frame);
        });
        let mut sent = 0;
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
                match net.transmit(f) {
                    Ok(()) => sent += 1,
                    Err(_) => self.stats.tx_refused += 1,
                }
            }
            if !t.more {
                break;
            }
        }
        if got + sent > 0 {
            self.last_traffic = time::tsc();
        }
        // Frames left for want of transmit buffers: look again soon (a
        // completion need not interrupt).
        if switch
            .stats(PortId::UPLINK)
            .is_some_and(|u| u.queued_frames > 0)
        {
            self.due = true;
        }
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

    /// Serves the message in the IPC buffer; returns the handle to answer.
    fn incoming(
        &mut self,
        reply: Handle,
        payload: &mut [u8; MAX_PAYLOAD],
        out: &mut [u8; MAX_PAYLOAD],
    ) -> Handle {
        let msg = get_message(payload);
        if reply.is_none() {
            // A `send`: nobody waits for an answer.
            return Handle::NONE;
        }
        let n = match msg {
            // The interrupt helper: the device interrupted. Reading the
            // ISR de-asserts the line; the pass before the answer takes
            // what the device did; the helper unmasks the line after.
            Ok((h, 0)) if h.label == LABEL_NET => {
                if let Some(net) = &mut self.net {
                    net.ack_interrupt();
                }
                self.due = true;
                // The first call says the helper is there; the others are
                // interrupts.
                if self.irq_driven {
                    self.kicks += 1;
                } else {
                    self.irq_driven = true;
                    println!(
                        "vnic: interrupts through {}: polling off",
                        Who(DomainId::from_raw(h.badge))
                    );
                }
                Ok(0)
            }
            Ok((h, len)) if h.label == LABEL_NET => {
                let req = payload.get(..len).unwrap_or(&[]);
                // Configure (0) and Detach (1) are logged; everything
                // else goes straight to the switch.
                if matches!(req.first(), Some(0 | 1)) {
                    self.log_control(h.badge, req);
                }
                let n = self.vnic.handle(h.badge, req, out);
                if matches!(req.first(), Some(0)) {
                    self.log_configured(req, out, n);
                }
                n
            }
            _ => {
                self.stats.bad_messages += 1;
                encode(&Reply::<Frames>::Err(ServiceError::BadRequest), out).map(|b| b.len())
            }
        };
        let body = match n {
            Ok(n) => out.get(..n).unwrap_or(&[]),
            Err(_) => &[],
        };
        if put_message(LABEL_NET, Handle::NONE, body).is_err() {
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
