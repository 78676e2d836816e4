//! The vnic's core: the virtual Ethernet switch with no I/O, so the host
//! can test it.
//!
//! - [`switch`]: ports (MAC, IPv4, owner, a bounded queue, counters),
//!   forwarding by destination MAC, flooding of group frames, the uplink,
//!   source enforcement, and the owners to wake.
//! - [`queue`]: one port's bounded queue, holding frames as `protocol::net`
//!   batch records so a `Recv` reply is written straight from it.
//! - [`frame`]: what the switch reads of a frame, with smoltcp's
//!   length-checked `wire` views.
//! - [`serve`]: one request to one reply (badge → port, the controller).
//! - [`assign`]: the supervisor's address plan (MAC and IPv4 per domain).
//!
//! The protocol is `protocol::net`; the packet path is in
//! docs/architecture.md ("The network switch").
//!
//! Invariants (proptested): a frame reaches only its destination port, or
//! for a group address every port but the sender's; a frame from a guest
//! port with another source MAC or IPv4 address is never delivered; no
//! queue passes its frame or byte bound; every frame offered is forwarded
//! or counted as one drop on its sender, and every copy forwarded is
//! queued or counted as a drop on its receiver; a port's traffic does not
//! depend on whether another port reads. No input panics.
//!
//! Memory: the port tables are allocated once, in `Switch::new`
//! (`try_reserve`); a queue's storage on its first frame, freed by
//! `Switch::trim` when empty. Nothing grows with traffic.
#![no_std]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a defect.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod assign;
pub mod frame;
pub mod queue;
pub mod serve;
pub mod switch;

pub use frame::DropCause;
pub use queue::{Queue, QueueError};
pub use serve::Vnic;
pub use switch::{
    AttachError, Limits, NoMemory, PortId, Switch, Taken, Verdict, Wakeup, BYTES_PER_PORT,
};
