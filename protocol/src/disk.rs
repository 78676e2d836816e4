//! The disk server's protocol: read, write and flush one extent of the disk.
//!
//! A client first opens an extent (its swap area, its private virtual disk,
//! or a read-only image) by kind and name and gets a [`DiskHandle`]; every
//! other request names that handle. The server decides who may open what
//! from the sender's badge (`NotPermitted` otherwise). Offsets are in
//! [`BLOCK_SIZE`] blocks from the start of the extent, never device blocks:
//! the server checks them against the extent and translates them, so a
//! client cannot name a block outside its extent (`OutOfRange`).
//!
//! **How data moves.** A message carries at most
//! [`MAX_PAYLOAD`](crate::layout::MAX_PAYLOAD) = 4072 bytes, less than a
//! block, and the kernel has no frame transfer for clients yet. So a block
//! moves in pieces of at most [`MAX_IO`] = 2048 bytes, each one message: a
//! `Read` or `Write` names the block, a byte `offset` in it and a length,
//! both multiples of [`SECTOR_SIZE`] (`Misaligned` otherwise), at most
//! `MAX_IO` bytes (`TooLarge`) and not past the block's end (`OutOfRange`).
//! A whole block is two messages ([`DiskClient::read_block`],
//! [`DiskClient::write_block`]). Because each piece is whole sectors, the
//! server writes it to the device as it is, with no read-modify-write and no
//! state kept between messages: a client that dies between the halves
//! leaves nothing behind in the server. A block write is therefore not
//! atomic (a crash may leave one half new); clients that need that
//! (the swapper) checksum what they write. docs/disk-format.md argues it.
//! The stub and the server use [`RequestRef`]/[`ReplyRef`], whose data
//! borrows the caller's block, the message or the server's DMA slot, so a
//! piece is copied once on each side of the kernel's copy.
//!
//! **Idempotence.** Every request is idempotent: `Open` returns the
//! client's existing handle if it has one, reads and writes are positional
//! (a repeated write puts the same bytes in the same place), and `Flush`
//! and `Close` end in the same state. A handle names one incarnation of the
//! server (`epoch`), so after a restart every request on an old handle
//! fails with `ServerRestarted` and the client must `Open` again; the
//! stub's one retry then fails the same way, it never reaches another
//! extent.

use crate::client::{rpc, rpc_in_place, ClientError, Transport, LABEL_DISK};
use crate::codec::{decode_borrowed, varint_len, BoundedBytes, BoundedStr, CodecError};
use crate::layout::MAX_PAYLOAD;
use core::fmt;
use postcard::experimental::max_size::MaxSize;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::client::ServiceError;

/// Bytes in a disk block: the unit of extents and of request offsets.
pub const BLOCK_SIZE: usize = 4096;
/// The device's sector: the alignment of a piece of a block.
pub const SECTOR_SIZE: usize = 512;
/// Most data bytes one `Read` reply or `Write` request carries: half a block.
pub const MAX_IO: usize = 2048;
/// Pieces of [`MAX_IO`] bytes per block.
pub const PIECES_PER_BLOCK: usize = BLOCK_SIZE / MAX_IO;
/// Longest extent name: a domain name of the manifest, or an image name,
/// of `[A-Za-z0-9._-]`, like the kernel's domain names.
pub const NAME_MAX: usize = crate::syscall::DOMAIN_NAME_MAX;

/// The name of an extent.
pub type ExtentName = BoundedStr<NAME_MAX>;
/// The data of one piece of a block, held inline.
pub type Data = BoundedBytes<MAX_IO>;

/// The data of one piece borrowed from a buffer: what the client encodes
/// from the caller's block and the server from its DMA slot, and what both
/// decode in place. Encoded as [`Data`] is; at most [`MAX_IO`] bytes
/// (checked when decoding; [`DataRef::new`] checks too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataRef<'a>(&'a [u8]);

impl<'a> DataRef<'a> {
    /// `bytes` as piece data; `None` over [`MAX_IO`].
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() <= MAX_IO).then_some(DataRef(bytes))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &'a [u8] {
        self.0
    }

    /// Their number.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for DataRef<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0
    }
}

impl Serialize for DataRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = DataRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {MAX_IO} bytes borrowed from the message")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        DataRef::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for DataRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(DataVisitor)
    }
}

impl MaxSize for DataRef<'_> {
    const POSTCARD_MAX_SIZE: usize = varint_len(MAX_IO) + MAX_IO;
}

/// What an extent holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, MaxSize)]
pub enum ExtentKind {
    /// A domain's swap area (used by the swapper for that domain).
    Swap,
    /// A domain's private virtual disk.
    Disk,
    /// A read-only image many domains may mount.
    Image,
}

/// A client's open extent. `epoch` is the server incarnation that made it
/// (so a restart makes it fail with `ServerRestarted`), `slot` and `gen`
/// name an entry of that incarnation's table of open extents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, MaxSize)]
pub struct DiskHandle {
    /// The server incarnation.
    pub epoch: u32,
    /// Slot in the server's table of open extents.
    pub slot: u32,
    /// Generation of that slot.
    pub gen: u32,
}

/// What a client may know about its extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ExtentInfo {
    /// Its kind.
    pub kind: ExtentKind,
    /// Its length in [`BLOCK_SIZE`] blocks.
    pub blocks: u64,
    /// Whether writes fail with `ReadOnly` (images).
    pub read_only: bool,
}

/// Requests to the disk server. `D` is the piece data: [`Data`] held
/// inline, or [`DataRef`] borrowed (the stub's and the server's, see
/// [`RequestRef`]); both encode alike.
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Request<D = Data> {
    /// Opens the caller's extent of `kind` named `name`.
    Open {
        /// Swap area, private disk or image.
        kind: ExtentKind,
        /// Its name.
        name: ExtentName,
    },
    /// Kind and size of an open extent.
    Info {
        /// The extent.
        handle: DiskHandle,
    },
    /// Reads `len` bytes at byte `offset` of `block` of the extent.
    Read {
        /// The extent.
        handle: DiskHandle,
        /// Block number within the extent.
        block: u64,
        /// Byte offset in the block, a multiple of [`SECTOR_SIZE`].
        offset: u16,
        /// Bytes, a multiple of [`SECTOR_SIZE`], at most [`MAX_IO`].
        len: u16,
    },
    /// Writes `data` at byte `offset` of `block` of the extent.
    Write {
        /// The extent.
        handle: DiskHandle,
        /// Block number within the extent.
        block: u64,
        /// Byte offset in the block, a multiple of [`SECTOR_SIZE`].
        offset: u16,
        /// The bytes, a multiple of [`SECTOR_SIZE`] long.
        data: D,
    },
    /// Returns once every write the server acknowledged on this extent is
    /// on stable storage.
    Flush {
        /// The extent.
        handle: DiskHandle,
    },
    /// Drops the handle; closing a closed handle succeeds.
    Close {
        /// The extent.
        handle: DiskHandle,
    },
    /// Supervisor only (the first domain, slot 0): `client` is the domain
    /// the manifest calls `name`, so the swap area and private disk named
    /// `name` are its and nobody else's. Sent again when the client is
    /// restarted (a new generation) and when the server is.
    Name {
        /// The client's packed `DomainId` (its endpoint badge).
        client: crate::DomainId,
        /// Its name in the manifest.
        name: ExtentName,
    },
    // Appended for the push service; earlier requests keep their codes.
    /// Stages a new read-only image `name` of `len` content bytes whose
    /// CRC-32C is `crc`: the reply's handle writes it (the caller's only,
    /// like a private disk), nobody sees it, and the on-disk table does
    /// not name it until [`Request::CommitImage`]. Only a client the
    /// supervisor named with `create_images` may (the push service). One
    /// image is staged at a time; the same client staging again (or after
    /// a restart, by name) abandons its earlier one.
    CreateImage {
        /// Its name.
        name: ExtentName,
        /// Content bytes.
        len: u64,
        /// CRC-32C of the content.
        crc: u32,
    },
    /// Reads the staged image back, checks it against its CRC
    /// (`Corrupt` otherwise, and it is dropped), and commits it to the
    /// table: from then on it is an image like any other.
    CommitImage {
        /// The staged image's handle.
        handle: DiskHandle,
    },
    /// The images with extent id above `after`, by id, a page at a time
    /// (an empty page: no more).
    ListImages {
        /// The last id of the page before (0 at first).
        after: u32,
    },
    /// [`Request::Name`] with whether the client may create images.
    NameCreator {
        /// The client's packed `DomainId`.
        client: crate::DomainId,
        /// Its name in the manifest.
        name: ExtentName,
    },
}

/// Images per [`ImagePage`].
pub const IMAGE_PAGE_LEN: usize = 32;

/// One image of a [`ImagePage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, MaxSize)]
pub struct ImageEntry {
    /// Its extent id.
    pub id: u32,
    /// Its name.
    pub name: ExtentName,
    /// Its content's length in bytes.
    pub len: u64,
}

/// A page of [`Request::ListImages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub struct ImagePage {
    /// The entries; only the first `count` are meaningful.
    pub entries: [ImageEntry; IMAGE_PAGE_LEN],
    /// How many are used.
    pub count: u8,
}

impl ImagePage {
    /// The used entries (clamped to the array).
    pub fn entries(&self) -> &[ImageEntry] {
        let n = usize::from(self.count).min(IMAGE_PAGE_LEN);
        self.entries.get(..n).unwrap_or(&[])
    }
}

impl<D> Request<D> {
    /// Every disk request is idempotent (see the module docs).
    pub fn is_idempotent(&self) -> bool {
        match self {
            Request::Open { .. }
            | Request::Info { .. }
            | Request::Read { .. }
            | Request::Write { .. }
            | Request::Flush { .. }
            | Request::Close { .. }
            | Request::Name { .. }
            | Request::NameCreator { .. }
            | Request::ListImages { .. }
            | Request::CommitImage { .. } => true,
            Request::CreateImage { .. } => false,
        }
    }
}

/// Replies from the disk server; `D` as for [`Request`].
#[allow(
    clippy::large_enum_variant,
    reason = "fixed-size messages, no heap by design"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, MaxSize)]
pub enum Reply<D = Data> {
    /// `Write`, `Flush`, `Close`: done.
    Ok,
    /// `Open`: the handle and what it names.
    Opened {
        /// The handle for later requests.
        handle: DiskHandle,
        /// The extent.
        info: ExtentInfo,
    },
    /// `Info`.
    Info(ExtentInfo),
    /// `Read`: exactly the bytes asked for.
    Data(D),
    /// The request failed; an I/O error is never reported as success.
    Err(ServiceError),
    /// `ListImages`.
    Images(ImagePage),
}

/// A request whose data borrows the message (or the caller's block).
pub type RequestRef<'a> = Request<DataRef<'a>>;
/// A reply whose data borrows the message (or the server's DMA slot).
pub type ReplyRef<'a> = Reply<DataRef<'a>>;

/// Decodes a request in place (the server's side); never panics.
pub fn decode_request(payload: &[u8]) -> Result<RequestRef<'_>, CodecError> {
    decode_borrowed(payload)
}

crate::impl_messages!(LABEL_DISK, Request, Reply);

// A full piece plus its request fits one message, either way it is held.
const _: () = assert!(
    Request::<Data>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && Reply::<Data>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && RequestRef::<'static>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
        && ReplyRef::<'static>::POSTCARD_MAX_SIZE <= MAX_PAYLOAD
);
const _: () = assert!(BLOCK_SIZE.is_multiple_of(MAX_IO) && MAX_IO.is_multiple_of(SECTOR_SIZE));

/// Typed client of the disk server.
#[derive(Debug)]
pub struct DiskClient<T> {
    transport: T,
}

impl<T: Transport> DiskClient<T> {
    /// A client calling through `transport`.
    pub fn new(transport: T) -> Self {
        DiskClient { transport }
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// Opens the caller's extent. A name over [`NAME_MAX`] bytes fails
    /// locally with `Service(BadRequest)`.
    pub fn open(
        &mut self,
        kind: ExtentKind,
        name: &str,
    ) -> Result<(DiskHandle, ExtentInfo), ClientError> {
        let name = ExtentName::new(name).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        match rpc(&mut self.transport, &Request::Open { kind, name })? {
            Reply::Opened { handle, info } => Ok((handle, info)),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// See [`Request::Info`].
    pub fn info(&mut self, handle: DiskHandle) -> Result<ExtentInfo, ClientError> {
        match rpc(&mut self.transport, &Request::Info { handle })? {
            Reply::Info(i) => Ok(i),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// Reads `buf.len()` bytes at `offset` of `block`; the same rules as
    /// [`Request::Read`] (the server checks them; a length over `MAX_IO`
    /// fails locally with `Service(TooLarge)`). A reply of another length
    /// is `UnexpectedReply`.
    pub fn read(
        &mut self,
        handle: DiskHandle,
        block: u64,
        offset: u16,
        buf: &mut [u8],
    ) -> Result<(), ClientError> {
        if buf.len() > MAX_IO {
            return Err(ClientError::Service(ServiceError::TooLarge));
        }
        let len =
            u16::try_from(buf.len()).map_err(|_| ClientError::Service(ServiceError::TooLarge))?;
        let req = RequestRef::Read {
            handle,
            block,
            offset,
            len,
        };
        // The reply is decoded where it lies and its data copied once,
        // straight into `buf`.
        rpc_in_place(
            &mut self.transport,
            LABEL_DISK,
            true,
            &req,
            |bytes| match decode_borrowed::<ReplyRef<'_>>(bytes).map_err(ClientError::Codec)? {
                Reply::Data(d) if d.len() == buf.len() => {
                    buf.copy_from_slice(d.as_slice());
                    Ok(())
                }
                Reply::Err(e) => Err(ClientError::Service(e)),
                _ => Err(ClientError::UnexpectedReply),
            },
        )
    }

    /// Writes `data` at `offset` of `block` (see [`Request::Write`]); more
    /// than `MAX_IO` bytes fails locally with `Service(TooLarge)`.
    pub fn write(
        &mut self,
        handle: DiskHandle,
        block: u64,
        offset: u16,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let data = DataRef::new(data).ok_or(ClientError::Service(ServiceError::TooLarge))?;
        // Encoded from `data` straight into the message.
        let req = RequestRef::Write {
            handle,
            block,
            offset,
            data,
        };
        rpc_in_place(
            &mut self.transport,
            LABEL_DISK,
            true,
            &req,
            |bytes| match decode_borrowed::<ReplyRef<'_>>(bytes).map_err(ClientError::Codec)? {
                Reply::Ok => Ok(()),
                Reply::Err(e) => Err(ClientError::Service(e)),
                _ => Err(ClientError::UnexpectedReply),
            },
        )
    }

    /// Reads a whole block, in [`PIECES_PER_BLOCK`] messages.
    pub fn read_block(
        &mut self,
        handle: DiskHandle,
        block: u64,
        buf: &mut [u8; BLOCK_SIZE],
    ) -> Result<(), ClientError> {
        for (i, piece) in buf.chunks_mut(MAX_IO).enumerate() {
            self.read(handle, block, piece_offset(i), piece)?;
        }
        Ok(())
    }

    /// Writes a whole block, in [`PIECES_PER_BLOCK`] messages (not atomic:
    /// see the module docs).
    pub fn write_block(
        &mut self,
        handle: DiskHandle,
        block: u64,
        buf: &[u8; BLOCK_SIZE],
    ) -> Result<(), ClientError> {
        for (i, piece) in buf.chunks(MAX_IO).enumerate() {
            self.write(handle, block, piece_offset(i), piece)?;
        }
        Ok(())
    }

    /// See [`Request::Flush`].
    pub fn flush(&mut self, handle: DiskHandle) -> Result<(), ClientError> {
        expect_ok(rpc(&mut self.transport, &Request::Flush { handle })?)
    }

    /// See [`Request::Close`].
    pub fn close(&mut self, handle: DiskHandle) -> Result<(), ClientError> {
        expect_ok(rpc(&mut self.transport, &Request::Close { handle })?)
    }

    /// See [`Request::Name`] (the supervisor's).
    pub fn name(&mut self, client: crate::DomainId, name: &str) -> Result<(), ClientError> {
        let name = ExtentName::new(name).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        expect_ok(rpc(&mut self.transport, &Request::Name { client, name })?)
    }

    /// See [`Request::NameCreator`] (the supervisor's, for the push service).
    pub fn name_creator(&mut self, client: crate::DomainId, name: &str) -> Result<(), ClientError> {
        let name = ExtentName::new(name).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        expect_ok(rpc(
            &mut self.transport,
            &Request::NameCreator { client, name },
        )?)
    }

    /// Stages image `name` (see [`Request::CreateImage`]): the handle that
    /// writes it and what it is.
    pub fn create_image(
        &mut self,
        name: &str,
        len: u64,
        crc: u32,
    ) -> Result<(DiskHandle, ExtentInfo), ClientError> {
        let name = ExtentName::new(name).ok_or(ClientError::Service(ServiceError::BadRequest))?;
        match rpc(
            &mut self.transport,
            &Request::CreateImage { name, len, crc },
        )? {
            Reply::Opened { handle, info } => Ok((handle, info)),
            _ => Err(ClientError::UnexpectedReply),
        }
    }

    /// See [`Request::CommitImage`].
    pub fn commit_image(&mut self, handle: DiskHandle) -> Result<(), ClientError> {
        expect_ok(rpc(&mut self.transport, &Request::CommitImage { handle })?)
    }

    /// One page of [`Request::ListImages`].
    pub fn list_images(&mut self, after: u32) -> Result<ImagePage, ClientError> {
        match rpc(&mut self.transport, &Request::ListImages { after })? {
            Reply::Images(p) => Ok(p),
            _ => Err(ClientError::UnexpectedReply),
        }
    }
}

/// Byte offset of piece `i` of a block (`i < PIECES_PER_BLOCK`).
fn piece_offset(i: usize) -> u16 {
    u16::try_from(i * MAX_IO).unwrap_or(u16::MAX)
}

fn expect_ok(r: Reply) -> Result<(), ClientError> {
    match r {
        Reply::Ok => Ok(()),
        _ => Err(ClientError::UnexpectedReply),
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
    use std::vec::Vec;

    fn kind() -> impl Strategy<Value = ExtentKind> {
        prop_oneof![
            Just(ExtentKind::Swap),
            Just(ExtentKind::Disk),
            Just(ExtentKind::Image)
        ]
    }

    fn handle() -> impl Strategy<Value = DiskHandle> {
        any::<(u32, u32, u32)>().prop_map(|(epoch, slot, gen)| DiskHandle { epoch, slot, gen })
    }

    fn data() -> impl Strategy<Value = Data> {
        proptest::collection::vec(any::<u8>(), 0..=MAX_IO)
            .prop_map(|v| Data::from_slice(&v).unwrap())
    }

    fn info() -> impl Strategy<Value = ExtentInfo> {
        (kind(), any::<u64>(), any::<bool>()).prop_map(|(kind, blocks, read_only)| ExtentInfo {
            kind,
            blocks,
            read_only,
        })
    }

    fn request() -> impl Strategy<Value = Request> {
        // Over ten arms, prop_oneof! builds a Vec.
        use std::vec;
        prop_oneof![
            (kind(), "[A-Za-z0-9._-]{0,16}").prop_map(|(kind, s)| Request::Open {
                kind,
                name: ExtentName::new(&s).unwrap()
            }),
            handle().prop_map(|handle| Request::Info { handle }),
            (handle(), any::<u64>(), any::<u16>(), any::<u16>()).prop_map(
                |(handle, block, offset, len)| Request::Read {
                    handle,
                    block,
                    offset,
                    len
                }
            ),
            (handle(), any::<u64>(), any::<u16>(), data()).prop_map(
                |(handle, block, offset, data)| Request::Write {
                    handle,
                    block,
                    offset,
                    data
                }
            ),
            handle().prop_map(|handle| Request::Flush { handle }),
            handle().prop_map(|handle| Request::Close { handle }),
            (any::<u64>(), "[A-Za-z0-9._-]{1,16}").prop_map(|(c, s)| Request::Name {
                client: crate::DomainId::from_raw(c),
                name: ExtentName::new(&s).unwrap()
            }),
            (any::<u64>(), "[A-Za-z0-9._-]{1,16}").prop_map(|(c, s)| Request::NameCreator {
                client: crate::DomainId::from_raw(c),
                name: ExtentName::new(&s).unwrap()
            }),
            ("[A-Za-z0-9._-]{1,16}", any::<u64>(), any::<u32>()).prop_map(|(s, len, crc)| {
                Request::CreateImage {
                    name: ExtentName::new(&s).unwrap(),
                    len,
                    crc,
                }
            }),
            handle().prop_map(|handle| Request::CommitImage { handle }),
            any::<u32>().prop_map(|after| Request::ListImages { after }),
        ]
    }

    fn image_page() -> impl Strategy<Value = ImagePage> {
        (
            proptest::collection::vec(
                (any::<u32>(), "[A-Za-z0-9._-]{1,16}", any::<u64>()),
                0..=IMAGE_PAGE_LEN,
            ),
            any::<u8>(),
        )
            .prop_map(|(v, count)| {
                let mut p = ImagePage {
                    entries: [ImageEntry::default(); IMAGE_PAGE_LEN],
                    count,
                };
                for (e, (id, s, len)) in p.entries.iter_mut().zip(v) {
                    *e = ImageEntry {
                        id,
                        name: ExtentName::new(&s).unwrap(),
                        len,
                    };
                }
                p
            })
    }

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Ok),
            (handle(), info()).prop_map(|(handle, info)| Reply::Opened { handle, info }),
            info().prop_map(Reply::Info),
            data().prop_map(Reply::Data),
            service_error().prop_map(Reply::Err),
            image_page().prop_map(Reply::Images),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request()) {
            prop_assert_eq!(r.is_idempotent(), !matches!(r, Request::CreateImage { .. }));
            round_trip(&r);
        }

        #[test]
        fn replies_round_trip(r in reply()) { round_trip(&r); }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode::<Request>(&v);
            let _ = decode::<Reply>(&v);
        }

        // Garbage after a valid tag reaches the field decoders too.
        #[test]
        fn garbage_after_each_tag_never_panics(tag in 0u8..8, v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = Vec::from([tag]);
            b.extend_from_slice(&v);
            let _ = decode::<Request>(&b);
            let _ = decode::<Reply>(&b);
        }
    }

    #[test]
    fn service_error_codes_are_stable() {
        // Postcard encodes a variant by its index: appending keeps old codes.
        let all = [
            ServiceError::BadRequest,
            ServiceError::NotPermitted,
            ServiceError::NoSuchDomain,
            ServiceError::NoSuchImage,
            ServiceError::NoResources,
            ServiceError::Io,
            ServiceError::ServerRestarted,
            ServiceError::Unsupported,
            ServiceError::OutOfRange,
            ServiceError::ReadOnly,
            ServiceError::Misaligned,
            ServiceError::TooLarge,
            ServiceError::Corrupt,
            ServiceError::NoSuchExtent,
            ServiceError::BadHandle,
            ServiceError::NoSuchPort,
            ServiceError::AddressInUse,
            ServiceError::Exists,
            ServiceError::Busy,
        ];
        for (code, e) in all.iter().enumerate() {
            let mut buf = [0u8; 4];
            assert_eq!(encode(e, &mut buf).unwrap(), &[code as u8]);
        }
        assert!(decode::<ServiceError>(&[all.len() as u8]).is_err());
    }

    #[test]
    fn worst_case_fits() {
        let h = DiskHandle {
            epoch: u32::MAX,
            slot: u32::MAX,
            gen: u32::MAX,
        };
        round_trip(&Request::Write {
            handle: h,
            block: u64::MAX,
            offset: u16::MAX,
            data: Data::from_slice(&[0xa5; MAX_IO]).unwrap(),
        });
        round_trip(&Reply::Data(Data::from_slice(&[0x5a; MAX_IO]).unwrap()));
        round_trip(&Request::<Data>::Open {
            kind: ExtentKind::Image,
            name: ExtentName::new(&"x".repeat(NAME_MAX)).unwrap(),
        });
        // One byte more than a piece does not decode.
        let mut buf = [0u8; MAX_PAYLOAD];
        let over = BoundedBytes::<{ MAX_IO + 1 }>::from_slice(&[1; MAX_IO + 1]).unwrap();
        let enc = encode(&over, &mut buf).unwrap().to_vec();
        assert!(decode::<Data>(&enc).is_err());
    }

    proptest! {
        // The borrowed forms the stub and the server use are the same
        // bytes on the wire as the owned ones, both ways.
        #[test]
        fn borrowed_forms_encode_alike(r in request(), p in reply()) {
            let mut a = [0u8; MAX_PAYLOAD];
            let mut b = [0u8; MAX_PAYLOAD];
            let owned = encode(&r, &mut a).unwrap();
            let back = decode_request(owned).unwrap();
            prop_assert_eq!(encode(&back, &mut b).unwrap(), owned);
            let owned = encode(&p, &mut a).unwrap().to_vec();
            let view: ReplyRef<'_> = decode_borrowed(&owned).unwrap();
            prop_assert_eq!(encode(&view, &mut b).unwrap(), &owned[..]);
            prop_assert_eq!(decode::<Reply>(encode(&view, &mut b).unwrap()).unwrap(), p);
        }
    }

    #[test]
    fn borrowed_data_is_bounded() {
        assert!(DataRef::new(&[0; MAX_IO]).is_some());
        assert!(DataRef::new(&[0; MAX_IO + 1]).is_none());
        let mut buf = [0u8; MAX_PAYLOAD];
        let over = BoundedBytes::<{ MAX_IO + 1 }>::from_slice(&[1; MAX_IO + 1]).unwrap();
        let enc = encode(&over, &mut buf).unwrap().to_vec();
        assert!(decode_borrowed::<DataRef<'_>>(&enc).is_err());
        let mut tag = std::vec![3u8];
        tag.extend_from_slice(&enc);
        assert!(decode_borrowed::<ReplyRef<'_>>(&tag).is_err());
    }

    /// A fake server holding one 4-block extent in memory.
    fn serve(store: &mut [u8], req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        let h = DiskHandle {
            epoch: 1,
            slot: 0,
            gen: 1,
        };
        let info = ExtentInfo {
            kind: ExtentKind::Disk,
            blocks: 4,
            read_only: false,
        };
        let range = |block: u64, offset: u16, len: usize| {
            let start = usize::try_from(block).ok()? * BLOCK_SIZE + usize::from(offset);
            (start + len <= store.len()).then_some(start..start + len)
        };
        let r = match decode::<Request>(req) {
            Ok(Request::Open { name, .. }) if name.as_str() == "httpd" => {
                Reply::Opened { handle: h, info }
            }
            Ok(Request::Open { .. }) => Reply::Err(ServiceError::NoSuchExtent),
            Ok(Request::Read { handle, .. } | Request::Write { handle, .. }) if handle != h => {
                Reply::Err(ServiceError::ServerRestarted)
            }
            Ok(Request::Read {
                block, offset, len, ..
            }) => match range(block, offset, usize::from(len)) {
                Some(r) => Reply::Data(Data::from_slice(&store[r]).unwrap()),
                None => Reply::Err(ServiceError::OutOfRange),
            },
            Ok(Request::Write {
                block,
                offset,
                data,
                ..
            }) => match range(block, offset, data.len()) {
                Some(r) => {
                    store[r].copy_from_slice(data.as_slice());
                    Reply::Ok
                }
                None => Reply::Err(ServiceError::OutOfRange),
            },
            Ok(Request::Info { .. }) => Reply::Info(info),
            Ok(Request::Flush { .. } | Request::Close { .. }) => Reply::Ok,
            Ok(
                Request::Name { .. }
                | Request::NameCreator { .. }
                | Request::CreateImage { .. }
                | Request::CommitImage { .. }
                | Request::ListImages { .. },
            ) => Reply::Err(ServiceError::NotPermitted),
            Err(_) => Reply::Err(ServiceError::BadRequest),
        };
        Ok(encode(&r, reply)
            .map_err(|_| SysError::MessageTooLarge)?
            .len())
    }

    #[test]
    fn stub_moves_blocks_in_pieces() {
        let mut store = std::vec![0u8; 4 * BLOCK_SIZE];
        let mut srv = FakeServer {
            calls: 0,
            serve: |label: u32, req: &[u8], reply: &mut [u8]| {
                assert_eq!(label, LABEL_DISK);
                serve(&mut store, req, reply)
            },
        };
        let mut c = DiskClient::new(&mut srv);
        let (h, info) = c.open(ExtentKind::Disk, "httpd").unwrap();
        assert_eq!(info.blocks, 4);
        let mut block = [0u8; BLOCK_SIZE];
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        c.write_block(h, 3, &block).unwrap();
        let mut back = [0u8; BLOCK_SIZE];
        c.read_block(h, 3, &mut back).unwrap();
        assert_eq!(back, block);
        c.flush(h).unwrap();
        assert_eq!(
            c.read_block(h, 4, &mut back),
            Err(ClientError::Service(ServiceError::OutOfRange))
        );
        assert_eq!(
            c.open(ExtentKind::Disk, "nobody"),
            Err(ClientError::Service(ServiceError::NoSuchExtent))
        );
        assert_eq!(
            c.open(ExtentKind::Disk, &"x".repeat(NAME_MAX + 1)),
            Err(ClientError::Service(ServiceError::BadRequest))
        );
        assert_eq!(
            c.write(h, 0, 0, &[0; MAX_IO + 1]),
            Err(ClientError::Service(ServiceError::TooLarge))
        );
        // Open, 2 + 2 pieces, flush, the failed first piece, the unknown
        // name: 8. The two local refusals never reach the server.
        let calls_before_stale = 8;
        assert_eq!(srv.calls, calls_before_stale);
        // An old incarnation's handle: the idempotent retry fails the same way.
        let mut c = DiskClient::new(&mut srv);
        let stale = DiskHandle { epoch: 0, ..h };
        assert_eq!(
            c.read(stale, 0, 0, &mut [0; 512]),
            Err(ClientError::Service(ServiceError::ServerRestarted))
        );
        assert_eq!(srv.calls, calls_before_stale + 2);
    }

    #[test]
    fn stub_rejects_a_short_read_reply() {
        let mut srv = FakeServer {
            calls: 0,
            serve: |_: u32, _: &[u8], reply: &mut [u8]| {
                let r = Reply::Data(Data::from_slice(&[0; 512]).unwrap());
                Ok(encode(&r, reply).unwrap().len())
            },
        };
        let mut c = DiskClient::new(&mut srv);
        let h = DiskHandle::default();
        assert_eq!(
            c.read(h, 0, 0, &mut [0; 1024]),
            Err(ClientError::UnexpectedReply)
        );
        let mut ok = [1u8; 512];
        c.read(h, 0, 0, &mut ok).unwrap();
        assert_eq!(ok, [0; 512]);
    }
}
