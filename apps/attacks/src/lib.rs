//! Shared pieces of the hostile test guests in `src/bin/`: each binary is
//! one attack on the core (see its header and the QEMU test that runs it in
//! `tests/src/spec.rs`). The attackers print what happened for the log, but
//! never a verdict: the kernel's lines, the supervisor's and an innocent
//! neighbour's progress after the attack decide.
#![no_std]

use ilwaco::ipc::{get_message, put_message};
use ilwaco::protocol::codec::decode;
use ilwaco::protocol::header::LABEL_FAULT;
use ilwaco::protocol::layout::MAX_PAYLOAD;
use ilwaco::protocol::pager::{Fault, Request};
use ilwaco::protocol::Handle;
use ilwaco::sys;

/// What a pager-shaped attacker received.
#[derive(Debug, Clone, Copy)]
pub enum PagerMsg {
    /// The supervisor gave it frames `first .. first + count`.
    Grant {
        /// First frame number.
        first: u64,
        /// How many.
        count: u64,
    },
    /// A client missed: answer through `reply`.
    Fault {
        /// The miss.
        fault: Fault,
        /// Its reply handle (authority to map into the faulting domain).
        reply: Handle,
    },
    /// Anything else, by label (the supervisor's requests are `LABEL_PAGER`).
    Other {
        /// The message's label.
        label: u32,
    },
}

/// Answers `reply` with what the IPC buffer holds, then receives one
/// message as a pager would.
pub fn pager_recv(reply: Handle) -> Result<(PagerMsg, Handle), ilwaco::SysError> {
    let raw = sys::reply_recv(reply)?;
    let reply = Handle::from_raw(raw);
    let mut buf = [0u8; MAX_PAYLOAD];
    let (h, len) = get_message(&mut buf)?;
    let payload = buf.get(..len).unwrap_or(&[]);
    if h.label == LABEL_FAULT {
        if let Ok(fault) = decode::<Fault>(payload) {
            return Ok((PagerMsg::Fault { fault, reply }, reply));
        }
    } else if let Ok(Request::Grant { first, count }) = decode::<Request>(payload) {
        return Ok((PagerMsg::Grant { first, count }, reply));
    }
    Ok((PagerMsg::Other { label: h.label }, reply))
}

/// Puts the pager protocol's `Reply::Ok` in the IPC buffer.
pub fn put_pager_ok() {
    let mut out = [0u8; 16];
    if let Ok(bytes) =
        ilwaco::protocol::codec::encode(&ilwaco::protocol::pager::Reply::Ok, &mut out)
    {
        let _ = put_message(ilwaco::protocol::client::LABEL_PAGER, Handle::NONE, bytes);
    }
}
