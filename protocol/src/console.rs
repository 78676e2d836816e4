//! The console server's protocol: a byte stream on the serial line.
//!
//! Writes and reads move at most [`CHUNK`] bytes per message, so both enums
//! have a small fixed bound. Neither request is idempotent: a repeated write
//! prints twice, a repeated read consumes more input.

use crate::client::{rpc, ClientError, Transport, LABEL_CONSOLE};
use crate::codec::BoundedBytes;
use postcard::experimental::max_size::MaxSize;
use serde::{Deserialize, Serialize};

pub use crate::client::ServiceError;

/// Bytes per console message.
pub const CHUNK: usize = 1024;
/// A chunk of console bytes.
pub type Chunk = BoundedBytes<CHUNK>;

/// Requests to the console.
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request {
    /// Print the bytes.
    Write {
        /// What to print.
        bytes: Chunk,
    },
    /// Return up to `max` bytes of pending input (possibly none).
    Read {
        /// Upper bound on the bytes returned (clamped to [`CHUNK`]).
        max: u16,
    },
}

impl Request {
    /// Neither request may be repeated blindly (see the module docs).
    pub fn is_idempotent(&self) -> bool {
        false
    }
}

/// Replies from the console.
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Reply {
    /// `Write`: bytes accepted.
    Written(u16),
    /// `Read`: the input.
    Data(Chunk),
    /// The request failed.
    Err(ServiceError),
}

crate::impl_messages!(LABEL_CONSOLE, Request, Reply);

/// Typed client of the console.
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// A client calling through `transport`.
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    /// Prints all of `bytes`, in chunks; returns how many were accepted.
    pub fn write(&mut self, bytes: &[u8]) -> Result<usize, ClientError> {
        let mut done = 0;
        for piece in bytes.chunks(CHUNK) {
            let bytes = Chunk::from_slice(piece).ok_or(ClientError::UnexpectedReply)?;
            match rpc(&mut self.transport, &Request::Write { bytes })? {
                Reply::Written(n) if usize::from(n) <= piece.len() => {
                    done += usize::from(n);
                    if usize::from(n) < piece.len() {
                        break;
                    }
                }
                _ => return Err(ClientError::UnexpectedReply),
            }
        }
        Ok(done)
    }

    /// Reads pending input into `buf`; returns the byte count (0 if none).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, ClientError> {
        let max = u16::try_from(buf.len().min(CHUNK)).unwrap_or(0);
        match rpc(&mut self.transport, &Request::Read { max })? {
            Reply::Data(d) if d.len() <= buf.len() => {
                buf[..d.len()].copy_from_slice(d.as_slice());
                Ok(d.len())
            }
            _ => Err(ClientError::UnexpectedReply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::fake::FakeServer;
    use crate::codec::{decode, encode};
    use crate::supervisor::tests::service_error;
    use crate::testutil::round_trip;
    use crate::SysError;
    use proptest::prelude::*;

    fn chunk() -> impl Strategy<Value = Chunk> {
        proptest::collection::vec(any::<u8>(), 0..=CHUNK)
            .prop_map(|v| Chunk::from_slice(&v).unwrap())
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in prop_oneof![chunk().prop_map(|bytes| Request::Write { bytes }), any::<u16>().prop_map(|max| Request::Read { max })]) {
            prop_assert!(!r.is_idempotent());
            round_trip(&r);
        }

        #[test]
        fn replies_round_trip(r in prop_oneof![any::<u16>().prop_map(Reply::Written), chunk().prop_map(Reply::Data), service_error().prop_map(Reply::Err)]) {
            round_trip(&r);
        }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Request>(&v);
            let _ = decode::<Reply>(&v);
        }
    }

    #[test]
    fn full_chunk_fits() {
        round_trip(&Request::Write {
            bytes: Chunk::from_slice(&[0xaa; CHUNK]).unwrap(),
        });
    }

    #[test]
    fn stub_writes_in_chunks_and_reads() {
        let mut printed = 0usize;
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, req: &[u8], reply: &mut [u8]| {
                let r = match decode::<Request>(req) {
                    Ok(Request::Write { bytes }) => {
                        printed += bytes.len();
                        Reply::Written(u16::try_from(bytes.len()).unwrap())
                    }
                    Ok(Request::Read { max }) => Reply::Data(
                        Chunk::from_slice(&b"hello"[..usize::from(max).min(5)]).unwrap(),
                    ),
                    Err(_) => Reply::Err(ServiceError::BadRequest),
                };
                Ok(encode(&r, reply)
                    .map_err(|_| SysError::MessageTooLarge)?
                    .len())
            },
        };
        let mut c = Client::new(&mut srv);
        assert_eq!(c.write(&[b'x'; 2500]).unwrap(), 2500);
        let mut buf = [0u8; 3];
        assert_eq!(c.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"hel");
        assert_eq!(srv.calls, 4);
        assert_eq!(printed, 2500);
    }
}
