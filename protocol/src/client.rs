//! What every server protocol shares: the service error, the [`Transport`]
//! a client stub calls through, and the generic typed call.
//!
//! Stubs are generic over `Transport`, so Ilwaco plugs in the `call` syscall
//! and host tests plug in a fake. A request marked idempotent is retried
//! once when the server turns out to have restarted; others are not, so a
//! restart never silently repeats a side effect.

use crate::codec::{decode, encode, CodecError};
use crate::layout::MAX_PAYLOAD;
use crate::SysError;
use postcard::experimental::max_size::MaxSize;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Errors a server reports inside its reply (shared by all servers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum ServiceError {
    /// The request decoded but makes no sense here.
    BadRequest,
    /// The caller may not do this: the sender's badge lacks the authority
    /// (the supervisor: not an operator; a pager: not its controller).
    NotPermitted,
    /// No such domain (or a stale generation of it).
    NoSuchDomain,
    /// No such image in the boot archive.
    NoSuchImage,
    /// Out of frames, swap space or table slots.
    NoResources,
    /// A device reported an error; nothing was claimed to succeed.
    Io,
    /// The server (or one it depends on) restarted and lost the state this
    /// request needed.
    ServerRestarted,
    /// The request is valid but not implemented yet.
    Unsupported,
    // Appended for the disk server; earlier codes keep their numbers.
    /// A block, offset or length lies outside the extent or the block.
    OutOfRange,
    /// A write to a read-only extent (an image).
    ReadOnly,
    /// An offset or length is not a multiple of the sector size, or empty.
    Misaligned,
    /// More data than one message may carry.
    TooLarge,
    /// Stored data or metadata failed its checksum; nothing was returned.
    Corrupt,
    /// No extent of that kind and name.
    NoSuchExtent,
    /// The handle names nothing this server incarnation opened.
    BadHandle,
    // Appended for the vnic; earlier codes keep their numbers.
    /// The caller (named by its badge) has no port on the switch.
    NoSuchPort,
    /// Another port already has that MAC or IPv4 address.
    AddressInUse,
    // Appended for pushed images; earlier codes keep their numbers.
    /// Something of that name exists already (an image on the disk).
    Exists,
    /// The server cannot do this now (requests in flight); try again soon.
    Busy,
}

/// Moves one encoded request to a server and its encoded reply back.
pub trait Transport {
    /// Sends `req` with `label`, writes the reply payload into `reply` and
    /// returns its length.
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError>;

    /// [`call`](Self::call) without staging buffers: `put` writes the
    /// request payload into the outgoing message and returns its length
    /// (`None`: it does not fit, the call fails with `MessageTooLarge`),
    /// and `take` reads the reply payload where it lies. `put` may run
    /// again for a retry. The default stages through two buffers; the IPC
    /// transport overrides it so a stub copies data once each way.
    fn call_in_place<R>(
        &mut self,
        label: u32,
        put: impl FnOnce(&mut [u8]) -> Option<usize>,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SysError> {
        let mut out = [0u8; MAX_PAYLOAD];
        let n = put(&mut out).ok_or(SysError::MessageTooLarge)?;
        let req = out.get(..n).ok_or(SysError::MessageTooLarge)?;
        let mut back = [0u8; MAX_PAYLOAD];
        let m = self.call(label, req, &mut back)?;
        // A length past the buffer is a malformed reply: nothing decodes.
        Ok(take(back.get(..m).unwrap_or(&[])))
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        (**self).call(label, req, reply)
    }

    fn call_in_place<R>(
        &mut self,
        label: u32,
        put: impl FnOnce(&mut [u8]) -> Option<usize>,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, SysError> {
        (**self).call_in_place(label, put, take)
    }
}

/// A request type of some server protocol.
pub trait Request: Serialize + DeserializeOwned + MaxSize {
    /// The header label carrying this protocol.
    const LABEL: u32;
    /// The matching reply enum.
    type Reply: Reply;
    /// Whether repeating the request has the same effect as sending it once.
    fn is_idempotent(&self) -> bool;
}

/// A reply type of some server protocol.
pub trait Reply: Serialize + DeserializeOwned + MaxSize {
    /// The error the reply carries, if it is an error reply.
    fn service_error(&self) -> Option<ServiceError>;
}

/// Why a typed call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The `call` itself failed.
    Sys(SysError),
    /// The request did not encode or the reply did not decode.
    Codec(CodecError),
    /// The server answered with an error.
    Service(ServiceError),
    /// The server answered with a reply of the wrong variant.
    UnexpectedReply,
}

/// Label of the supervisor protocol.
pub const LABEL_SUPERVISOR: u32 = 1;
/// Label of the pager protocol.
pub const LABEL_PAGER: u32 = 2;
/// Label of the console protocol.
pub const LABEL_CONSOLE: u32 = 3;
/// Label of the disk protocol.
pub const LABEL_DISK: u32 = 4;
/// Label of the vnic (network switch) protocol.
pub const LABEL_NET: u32 = 5;

/// One typed call; an idempotent request is retried once after a restart.
pub fn rpc<T: Transport, R: Request>(t: &mut T, req: &R) -> Result<R::Reply, ClientError> {
    rpc_in_place(t, R::LABEL, req.is_idempotent(), req, |bytes| {
        let reply: R::Reply = decode(bytes).map_err(ClientError::Codec)?;
        match reply.service_error() {
            None => Ok(reply),
            Some(e) => Err(ClientError::Service(e)),
        }
    })
}

/// A typed call whose reply `read` handles in place (decoding it borrowed,
/// copying out only what the caller wants), so no reply moves by value.
/// `read` returns `Err(Service(e))` for an error reply; with
/// `idempotent`, a `ServerRestarted` (from the kernel or in the reply) is
/// retried once.
pub fn rpc_in_place<T: Transport, Q: Serialize + MaxSize, X>(
    t: &mut T,
    label: u32,
    idempotent: bool,
    req: &Q,
    mut read: impl FnMut(&[u8]) -> Result<X, ClientError>,
) -> Result<X, ClientError> {
    let mut tries = if idempotent { 2 } else { 1 };
    loop {
        tries -= 1;
        let mut codec = None;
        let put = |buf: &mut [u8]| match encode(req, buf) {
            Ok(b) => Some(b.len()),
            Err(e) => {
                codec = Some(e);
                None
            }
        };
        let restarted = match t.call_in_place(label, put, &mut read) {
            Ok(Ok(x)) => return Ok(x),
            Ok(Err(e @ ClientError::Service(ServiceError::ServerRestarted))) => e,
            Ok(Err(e)) => return Err(e),
            Err(_) if codec.is_some() => {
                return Err(ClientError::Codec(codec.unwrap_or(CodecError::Malformed)))
            }
            Err(SysError::ServerRestarted) => ClientError::Sys(SysError::ServerRestarted),
            Err(e) => return Err(ClientError::Sys(e)),
        };
        if tries == 0 {
            return Err(restarted);
        }
    }
}

/// A fake transport for host tests: hands each request to a closure that
/// plays the server.
/// Implements [`Request`] and [`Reply`] for a server's message pair: the
/// label, the idempotence the request type states, and `Reply::Err(e)` as
/// the service error. Every server's `Request`/`Reply` is wired this way.
#[macro_export]
macro_rules! impl_messages {
    ($label:expr, $request:ty, $reply:ident) => {
        impl $crate::client::Request for $request {
            const LABEL: u32 = $label;
            type Reply = $reply;
            fn is_idempotent(&self) -> bool {
                <$request>::is_idempotent(self)
            }
        }

        impl $crate::client::Reply for $reply {
            fn service_error(&self) -> Option<$crate::client::ServiceError> {
                match self {
                    $reply::Err(e) => Some(*e),
                    _ => None,
                }
            }
        }
    };
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    pub(crate) struct FakeServer<F> {
        pub(crate) serve: F,
        pub(crate) calls: usize,
    }

    impl<F: FnMut(u32, &[u8], &mut [u8]) -> Result<usize, SysError>> Transport for FakeServer<F> {
        fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
            self.calls += 1;
            (self.serve)(label, req, reply)
        }
    }
}
