//! The fixed IPC message header at the start of every IPC buffer.
//!
//! ```text
//! offset 0  label  u32   operation / protocol id; opaque to the kernel
//! offset 4  len    u32   payload bytes that follow the header
//! offset 8  handle u64   packed Handle to transfer (sender) / received (receiver)
//! offset 16 badge  u64   written by the kernel: the badge of the sender's endpoint handle
//! ```
//!
//! Little-endian, no padding, explicit encode/decode (no `repr(C)` casts).
//! Labels at or above [`KERNEL_LABEL_BASE`] are reserved for messages the
//! kernel itself sends; the kernel refuses them from domains, so a receiver
//! can trust that such a message came from the kernel.

use crate::ids::Handle;
use crate::layout::MAX_PAYLOAD;
use crate::SysError;

/// Encoded header size in bytes.
pub const HEADER_LEN: usize = 24;

/// First label reserved for kernel-originated messages.
pub const KERNEL_LABEL_BASE: u32 = 0xffff_0000;
/// Kernel → pager: a software-TLB miss ([`crate::pager::Fault`]).
pub const LABEL_FAULT: u32 = KERNEL_LABEL_BASE + 1;
/// Kernel → supervisor: a domain ended ([`crate::exit::DomainExit`]).
pub const LABEL_EXIT: u32 = KERNEL_LABEL_BASE + 2;

/// The decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgHeader {
    /// Operation or protocol id.
    pub label: u32,
    /// Payload length; at most [`MAX_PAYLOAD`].
    pub len: u32,
    /// Handle moved with the message, or [`Handle::NONE`].
    pub handle: Handle,
    /// Sender's badge (kernel-written; what a domain puts here is ignored).
    pub badge: u64,
}

impl MsgHeader {
    /// Whether the label is in the kernel-reserved range.
    pub const fn is_kernel_label(&self) -> bool {
        self.label >= KERNEL_LABEL_BASE
    }

    /// Writes the header into `buf[..HEADER_LEN]`.
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), SysError> {
        if self.len as usize > MAX_PAYLOAD {
            return Err(SysError::MessageTooLarge);
        }
        let b = buf.get_mut(..HEADER_LEN).ok_or(SysError::BadArgument)?;
        b[0..4].copy_from_slice(&self.label.to_le_bytes());
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..16].copy_from_slice(&self.handle.to_raw().to_le_bytes());
        b[16..24].copy_from_slice(&self.badge.to_le_bytes());
        Ok(())
    }

    /// Reads a header from `buf[..HEADER_LEN]`. Never panics: a short buffer
    /// is `BadArgument`, a length over [`MAX_PAYLOAD`] is `MessageTooLarge`.
    pub fn decode(buf: &[u8]) -> Result<MsgHeader, SysError> {
        let b = buf.get(..HEADER_LEN).ok_or(SysError::BadArgument)?;
        let mut w4 = [0u8; 4];
        let mut w8 = [0u8; 8];
        w4.copy_from_slice(&b[0..4]);
        let label = u32::from_le_bytes(w4);
        w4.copy_from_slice(&b[4..8]);
        let len = u32::from_le_bytes(w4);
        w8.copy_from_slice(&b[8..16]);
        let handle = Handle::from_raw(u64::from_le_bytes(w8));
        w8.copy_from_slice(&b[16..24]);
        let badge = u64::from_le_bytes(w8);
        if len as usize > MAX_PAYLOAD {
            return Err(SysError::MessageTooLarge);
        }
        Ok(MsgHeader {
            label,
            len,
            handle,
            badge,
        })
    }
}

/// Splits a whole message (header + payload) into the header and exactly
/// `len` payload bytes; `MessageTooLarge` if the buffer holds fewer.
pub fn split_message(buf: &[u8]) -> Result<(MsgHeader, &[u8]), SysError> {
    let h = MsgHeader::decode(buf)?;
    let payload = buf
        .get(HEADER_LEN..HEADER_LEN + h.len as usize)
        .ok_or(SysError::MessageTooLarge)?;
    Ok((h, payload))
}

/// Writes header and payload into `buf`; the header's `len` is set from the payload.
pub fn write_message(buf: &mut [u8], mut h: MsgHeader, payload: &[u8]) -> Result<usize, SysError> {
    h.len = u32::try_from(payload.len()).map_err(|_| SysError::MessageTooLarge)?;
    h.encode(buf)?;
    let end = HEADER_LEN + payload.len();
    buf.get_mut(HEADER_LEN..end)
        .ok_or(SysError::MessageTooLarge)?
        .copy_from_slice(payload);
    Ok(end)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, reason = "tests")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(label in any::<u32>(), len in 0u32..=MAX_PAYLOAD as u32, h in any::<u64>(), badge in any::<u64>()) {
            let m = MsgHeader { label, len, handle: Handle::from_raw(h), badge };
            let mut b = [0u8; HEADER_LEN];
            m.encode(&mut b).unwrap();
            prop_assert_eq!(MsgHeader::decode(&b), Ok(m));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = MsgHeader::decode(&bytes) {
                prop_assert!(h.len as usize <= MAX_PAYLOAD);
            }
            let _ = split_message(&bytes);
        }
    }

    #[test]
    fn bounds() {
        let mut b = [0u8; 4096];
        let big = MsgHeader {
            len: MAX_PAYLOAD as u32 + 1,
            ..Default::default()
        };
        assert_eq!(big.encode(&mut b), Err(SysError::MessageTooLarge));
        assert_eq!(
            MsgHeader::default().encode(&mut b[..23]),
            Err(SysError::BadArgument)
        );
        let n = write_message(
            &mut b,
            MsgHeader {
                label: 7,
                ..Default::default()
            },
            b"hi",
        )
        .unwrap();
        assert_eq!(n, HEADER_LEN + 2);
        let (h, p) = split_message(&b[..n]).unwrap();
        assert_eq!((h.label, h.len, p), (7, 2, &b"hi"[..]));
        assert_eq!(split_message(&b[..n - 1]), Err(SysError::MessageTooLarge));
        assert_eq!(
            write_message(&mut b, MsgHeader::default(), &[0u8; MAX_PAYLOAD + 1]),
            Err(SysError::MessageTooLarge)
        );
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(MsgHeader::decode(&b), Err(SysError::MessageTooLarge));
        assert!(MsgHeader {
            label: LABEL_FAULT,
            ..Default::default()
        }
        .is_kernel_label());
    }
}
