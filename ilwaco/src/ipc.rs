//! IPC through the IPC buffer: the [`Transport`] that typed client stubs
//! from `serac_protocol` call through.
//!
//! A message is the fixed [`MsgHeader`] followed by the payload, at the start
//! of the IPC buffer. [`put_message`]/[`get_message`] copy a payload in and
//! out with bounds checks; [`put_in_place`]/[`take_in_place`] (and
//! [`Endpoint`]'s `call_in_place`) encode and decode it where it lies, for
//! bulk data. A reply whose header is malformed or claims more than the
//! caller's buffer is an error, never a panic.

use serac_protocol::client::Transport;
use serac_protocol::header::{MsgHeader, HEADER_LEN};
use serac_protocol::layout::MAX_PAYLOAD;
use serac_protocol::{Handle, SysError};

use crate::sys;

/// Writes a message (header with `label` and `handle`, then `payload`) into
/// the IPC buffer.
pub fn put_message(label: u32, handle: Handle, payload: &[u8]) -> Result<(), SysError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SysError::MessageTooLarge);
    }
    let len = u32::try_from(payload.len()).map_err(|_| SysError::MessageTooLarge)?;
    // Straight into the IPC buffer, no staging copy: this is every RPC's path.
    sys::ipc_set_header(label, len, handle.to_raw());
    sys::ipc_write(HEADER_LEN, payload)
}

/// Reads the IPC buffer's header and copies its payload into `out`;
/// returns the header. `MessageTooLarge` if `out` is too small.
pub fn get_message(out: &mut [u8]) -> Result<(MsgHeader, usize), SysError> {
    let h = header()?;
    let len = h.len as usize;
    let dst = out.get_mut(..len).ok_or(SysError::MessageTooLarge)?;
    sys::ipc_read(HEADER_LEN, dst)?;
    Ok((h, len))
}

/// A client's endpoint handle: `call` through the IPC buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint(pub Handle);

/// The header of the message in the IPC buffer.
pub fn header() -> Result<MsgHeader, SysError> {
    let w = sys::ipc_header_words();
    let mut raw = [0u8; HEADER_LEN];
    for (chunk, word) in raw.chunks_exact_mut(8).zip(w) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    MsgHeader::decode(&raw)
}

/// Encodes a message in place: `put` writes the payload into the IPC
/// buffer and returns its length (`None`: it does not fit), then the
/// header gets `label` and `handle`. `MessageTooLarge` if `put` fails.
pub fn put_in_place(
    label: u32,
    handle: Handle,
    put: impl FnOnce(&mut [u8]) -> Option<usize>,
) -> Result<(), SysError> {
    let n =
        sys::with_ipc_payload(|p| put(p.get_mut(..MAX_PAYLOAD)?).filter(|&n| n <= MAX_PAYLOAD))?
            .ok_or(SysError::MessageTooLarge)?;
    let len = u32::try_from(n).map_err(|_| SysError::MessageTooLarge)?;
    sys::ipc_set_header(label, len, handle.to_raw());
    Ok(())
}

/// Hands the received message's header and payload to `take` in place.
pub fn take_in_place<R>(take: impl FnOnce(MsgHeader, &[u8]) -> R) -> Result<R, SysError> {
    let h = header()?;
    // `decode` bounds `len` by MAX_PAYLOAD, inside the payload area.
    sys::with_ipc_payload(|p| take(h, p.get(..h.len as usize).unwrap_or(&[])))
}

impl Transport for Endpoint {
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        put_message(label, Handle::NONE, req)?;
        sys::call(self.0)?;
        let (_, len) = get_message(reply)?;
        Ok(len)
    }

    // Encoded into the IPC buffer and decoded from it: the kernel's copy
    // is the only one between the two stubs' own.
    fn call_in_place<R>(
        &mut self,
        label: u32,
        put: impl FnOnce(&mut [u8]) -> Option<usize>,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SysError> {
        put_in_place(label, Handle::NONE, put)?;
        sys::call(self.0)?;
        take_in_place(|_, payload| take(payload))
    }
}
