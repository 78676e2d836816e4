//! A block device: one extent of the disk server, read and written in
//! whole [`BLOCK_SIZE`] blocks.
//!
//! [`BlockDevice`] wraps the typed stub [`DiskClient`] with the handle and
//! the extent's size, so callers name blocks, not handles, and get one
//! error type. It is generic over the [`Transport`] (the default is the
//! `call` syscall through an [`Endpoint`]), so host tests drive it with a
//! fake server.
//!
//! Invariants: a block number at or past [`BlockDevice::len_blocks`] and a
//! write to a read-only extent fail here, before any message (the server
//! checks both again). Nothing here allocates. A server restart is
//! reported as [`BlockError::ServerRestarted`], never hidden: unflushed
//! writes may be lost with it, so only the caller knows whether
//! [`BlockDevice::reopen`] and carrying on is right.

use serac_protocol::client::{ClientError, ServiceError, Transport};
use serac_protocol::disk::{DiskClient, DiskHandle, ExtentInfo, ExtentKind, BLOCK_SIZE};
use serac_protocol::{Handle, SysError};

use crate::ipc::Endpoint;

/// One block's bytes.
pub type Block = [u8; BLOCK_SIZE];

/// Why a block operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// No extent of that kind and name (or a name no extent can have).
    NotFound,
    /// The server does not let this domain open that extent.
    NotPermitted,
    /// The block lies past the end of the extent.
    OutOfRange,
    /// A write to a read-only extent (an image).
    ReadOnly,
    /// The device reported an error; nothing was claimed to succeed.
    Io,
    /// The server found stored data failing its checksum.
    Corrupt,
    /// The server restarted: the handle is gone (see [`BlockDevice::reopen`]).
    ServerRestarted,
    /// After a reopen the extent is not what it was (kind, size or
    /// writability changed): another extent now has the name.
    Changed,
    /// Something of that name exists already (an image being created).
    Exists,
    /// The server stayed busy past the retries (an image's commit).
    Busy,
    /// The server has no room (disk space for an image).
    NoSpace,
    /// The `call` to the server failed (a dead or wrong endpoint).
    Ipc(SysError),
    /// Anything else the server or the stub reported: a broken protocol,
    /// not something a caller can act on.
    Protocol(ClientError),
}

impl From<ClientError> for BlockError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Service(s) => match s {
                ServiceError::NoSuchExtent => BlockError::NotFound,
                ServiceError::NotPermitted => BlockError::NotPermitted,
                ServiceError::OutOfRange => BlockError::OutOfRange,
                ServiceError::ReadOnly => BlockError::ReadOnly,
                ServiceError::Io => BlockError::Io,
                ServiceError::Corrupt => BlockError::Corrupt,
                ServiceError::ServerRestarted => BlockError::ServerRestarted,
                ServiceError::Exists => BlockError::Exists,
                ServiceError::Busy => BlockError::Busy,
                ServiceError::NoResources => BlockError::NoSpace,
                _ => BlockError::Protocol(e),
            },
            ClientError::Sys(SysError::ServerRestarted) => BlockError::ServerRestarted,
            ClientError::Sys(s) => BlockError::Ipc(s),
            ClientError::Codec(_) | ClientError::UnexpectedReply => BlockError::Protocol(e),
        }
    }
}

/// The server refuses a name outside the extent alphabet as `BadRequest`:
/// no extent has that name.
fn open_error(e: ClientError) -> BlockError {
    match e {
        ClientError::Service(ServiceError::BadRequest) => BlockError::NotFound,
        e => e.into(),
    }
}

/// An open extent of the disk server.
#[derive(Debug)]
pub struct BlockDevice<T = Endpoint> {
    client: DiskClient<T>,
    handle: DiskHandle,
    info: ExtentInfo,
    kind: ExtentKind,
    name: serac_protocol::disk::ExtentName,
}

impl BlockDevice<Endpoint> {
    /// Opens this domain's private disk `name` on the disk server behind
    /// `server` (an endpoint handle).
    pub fn disk(server: Handle, name: &str) -> Result<Self, BlockError> {
        Self::open(Endpoint(server), ExtentKind::Disk, name)
    }

    /// Opens the swap area of domain `name` (the swapper's business).
    pub fn swap(server: Handle, name: &str) -> Result<Self, BlockError> {
        Self::open(Endpoint(server), ExtentKind::Swap, name)
    }

    /// Opens the read-only image `name`.
    pub fn image(server: Handle, name: &str) -> Result<Self, BlockError> {
        Self::open(Endpoint(server), ExtentKind::Image, name)
    }

    /// Stages new image `name` of `len` bytes with CRC-32C `crc` on the
    /// disk server behind `server` (only the push service may): write its
    /// blocks, then [`BlockDevice::commit`]. Until then nobody sees it, and
    /// dropping it leaves nothing on the disk.
    pub fn create_image(
        server: Handle,
        name: &str,
        len: u64,
        crc: u32,
    ) -> Result<Self, BlockError> {
        Self::stage(Endpoint(server), name, len, crc)
    }

    /// Records the staged image; the server checks it against its CRC
    /// first (`Corrupt`: it is dropped). While other requests are on the
    /// device the server answers `Busy`, and this retries for a while.
    pub fn commit(mut self) -> Result<(), BlockError> {
        for _ in 0..COMMIT_TRIES {
            match self.try_commit() {
                Err(BlockError::Busy) => {
                    let _ = crate::time::sleep_ns(COMMIT_PAUSE_NS);
                }
                r => return r,
            }
        }
        Err(BlockError::Busy)
    }
}

/// [`BlockDevice::commit`]'s tries, [`COMMIT_PAUSE_NS`] apart.
const COMMIT_TRIES: u32 = 2_000;
const COMMIT_PAUSE_NS: u64 = 1_000_000;

/// The disk's images, by extent id: (id, name, content bytes). Pages
/// through the server's list; this allocates.
pub fn list_images(
    server: Handle,
) -> Result<alloc::vec::Vec<(u32, alloc::string::String, u64)>, BlockError> {
    list_images_through(Endpoint(server))
}

fn list_images_through<T: Transport>(
    transport: T,
) -> Result<alloc::vec::Vec<(u32, alloc::string::String, u64)>, BlockError> {
    let mut client = DiskClient::new(transport);
    let mut out = alloc::vec::Vec::new();
    let mut after = 0;
    loop {
        let page = client.list_images(after)?;
        let entries = page.entries();
        for e in entries {
            if e.id <= after {
                // Ids only grow along the list: a server saying otherwise
                // would make this loop for ever.
                return Err(BlockError::Protocol(ClientError::UnexpectedReply));
            }
            after = e.id;
            out.push((e.id, alloc::string::String::from(e.name.as_str()), e.len));
        }
        if entries.is_empty() {
            return Ok(out);
        }
    }
}

impl<T: Transport> BlockDevice<T> {
    /// Opens the extent of `kind` named `name` through `transport`.
    pub fn open(transport: T, kind: ExtentKind, name: &str) -> Result<Self, BlockError> {
        let name = serac_protocol::disk::ExtentName::new(name).ok_or(BlockError::NotFound)?;
        let mut client = DiskClient::new(transport);
        let (handle, info) = client.open(kind, name.as_str()).map_err(open_error)?;
        Ok(BlockDevice {
            client,
            handle,
            info,
            kind,
            name,
        })
    }
}

impl<T: Transport> BlockDevice<T> {
    /// [`BlockDevice::create_image`] through `transport`.
    pub fn stage(transport: T, name: &str, len: u64, crc: u32) -> Result<Self, BlockError> {
        let n = serac_protocol::disk::ExtentName::new(name).ok_or(BlockError::NotFound)?;
        let mut client = DiskClient::new(transport);
        let (handle, info) = client.create_image(name, len, crc).map_err(open_error)?;
        Ok(BlockDevice {
            client,
            handle,
            info,
            kind: ExtentKind::Image,
            name: n,
        })
    }

    /// One try of [`BlockDevice::commit`]: `Busy` is the server's.
    pub fn try_commit(&mut self) -> Result<(), BlockError> {
        Ok(self.client.commit_image(self.handle)?)
    }
}

impl<T> BlockDevice<T> {
    /// The extent's length in blocks.
    pub fn len_blocks(&self) -> u64 {
        self.info.blocks
    }

    /// Whether writes fail with [`BlockError::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.info.read_only
    }

    /// What the server said about the extent when it was opened.
    pub fn info(&self) -> ExtentInfo {
        self.info
    }

    /// The name it was opened by.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl<T: Transport> BlockDevice<T> {
    fn check(&self, n: u64) -> Result<(), BlockError> {
        if n < self.info.blocks {
            Ok(())
        } else {
            Err(BlockError::OutOfRange)
        }
    }

    /// Reads block `n` of the extent into `buf`. On an error `buf` may
    /// hold part of the block.
    pub fn read_block(&mut self, n: u64, buf: &mut Block) -> Result<(), BlockError> {
        self.check(n)?;
        Ok(self.client.read_block(self.handle, n, buf)?)
    }

    /// Writes `buf` to block `n`. Not atomic: after an error or a crash the
    /// block may hold half of the new bytes (docs/disk-format.md, section 3).
    pub fn write_block(&mut self, n: u64, buf: &Block) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.check(n)?;
        Ok(self.client.write_block(self.handle, n, buf)?)
    }

    /// Returns once every write acknowledged so far is on stable storage.
    pub fn flush(&mut self) -> Result<(), BlockError> {
        Ok(self.client.flush(self.handle)?)
    }

    /// Opens the extent again, after [`BlockError::ServerRestarted`].
    /// `Changed` if the name now names an extent of another size or
    /// writability; the old handle is kept then.
    pub fn reopen(&mut self) -> Result<(), BlockError> {
        let (handle, info) = self
            .client
            .open(self.kind, self.name.as_str())
            .map_err(open_error)?;
        if info != self.info {
            return Err(BlockError::Changed);
        }
        self.handle = handle;
        Ok(())
    }

    /// Closes the handle and gives the transport back. Dropping a device
    /// without closing it leaves the handle open in the server until it
    /// restarts (the server keeps one per client and extent, so this does
    /// not grow).
    pub fn close(mut self) -> Result<T, BlockError> {
        self.client.close(self.handle)?;
        Ok(self.client.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdisk::FakeDisk;

    fn pattern(seed: u8) -> Block {
        let mut b = [0u8; BLOCK_SIZE];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i % 251) as u8 ^ seed;
        }
        b
    }

    #[test]
    fn a_disk_reads_back_what_was_written() {
        let mut srv = FakeDisk::with(ExtentKind::Disk, "httpd", &[0; 3 * BLOCK_SIZE]);
        let mut d = BlockDevice::open(&mut srv, ExtentKind::Disk, "httpd").unwrap();
        assert_eq!(d.len_blocks(), 3);
        assert!(!d.is_read_only());
        assert_eq!(d.name(), "httpd");
        d.write_block(2, &pattern(7)).unwrap();
        d.flush().unwrap();
        let mut back = [0u8; BLOCK_SIZE];
        d.read_block(2, &mut back).unwrap();
        assert_eq!(back, pattern(7));
        d.read_block(0, &mut back).unwrap();
        assert_eq!(back, [0; BLOCK_SIZE]);
        let srv = d.close().unwrap();
        assert_eq!(&srv.extents[0].bytes[2 * BLOCK_SIZE..], &pattern(7)[..]);
    }

    #[test]
    fn range_and_read_only_fail_before_any_message() {
        let mut srv = FakeDisk::with(ExtentKind::Image, "www", &pattern(1));
        let mut d = BlockDevice::open(&mut srv, ExtentKind::Image, "www").unwrap();
        assert!(d.is_read_only());
        let mut b = [0u8; BLOCK_SIZE];
        assert_eq!(d.read_block(1, &mut b), Err(BlockError::OutOfRange));
        assert_eq!(d.read_block(u64::MAX, &mut b), Err(BlockError::OutOfRange));
        assert_eq!(d.write_block(0, &b), Err(BlockError::ReadOnly));
        d.read_block(0, &mut b).unwrap();
        assert_eq!(b, pattern(1));
        // The open and the two pieces of the one read.
        assert_eq!(srv.calls, 3);
    }

    #[test]
    fn server_errors_are_typed() {
        let mut srv = FakeDisk::with(ExtentKind::Disk, "a", &[0; 2 * BLOCK_SIZE]);
        assert_eq!(
            BlockDevice::open(&mut srv, ExtentKind::Disk, "b").unwrap_err(),
            BlockError::NotFound
        );
        // Same name, other kind.
        assert_eq!(
            BlockDevice::open(&mut srv, ExtentKind::Swap, "a").unwrap_err(),
            BlockError::NotFound
        );
        // Longer than any extent name: refused locally.
        assert_eq!(
            BlockDevice::open(&mut srv, ExtentKind::Disk, &"x".repeat(17)).unwrap_err(),
            BlockError::NotFound
        );
        srv.bad_block = Some(1);
        let mut d = BlockDevice::open(&mut srv, ExtentKind::Disk, "a").unwrap();
        let mut b = [0u8; BLOCK_SIZE];
        assert_eq!(d.read_block(1, &mut b), Err(BlockError::Io));
        d.read_block(0, &mut b).unwrap();
        srv.dead = Some(SysError::PeerDead);
        assert_eq!(
            BlockDevice::open(&mut srv, ExtentKind::Disk, "a").unwrap_err(),
            BlockError::Ipc(SysError::PeerDead)
        );
        assert_eq!(
            BlockError::from(ClientError::UnexpectedReply),
            BlockError::Protocol(ClientError::UnexpectedReply)
        );
        assert_eq!(
            BlockError::from(ClientError::Sys(SysError::ServerRestarted)),
            BlockError::ServerRestarted
        );
    }

    #[test]
    fn a_restart_is_reported_and_reopen_recovers() {
        let mut srv = FakeDisk::with(ExtentKind::Disk, "a", &pattern(3));
        let mut d = BlockDevice::open(&mut srv, ExtentKind::Disk, "a").unwrap();
        let mut b = [0u8; BLOCK_SIZE];
        d.read_block(0, &mut b).unwrap();
        let srv = d.close().unwrap();
        srv.epoch += 1;
        let mut d = BlockDevice::open(&mut *srv, ExtentKind::Disk, "a").unwrap();
        let stale = d.handle;
        d.handle.epoch -= 1;
        assert_eq!(d.read_block(0, &mut b), Err(BlockError::ServerRestarted));
        assert_eq!(d.write_block(0, &b), Err(BlockError::ServerRestarted));
        assert_eq!(d.flush(), Err(BlockError::ServerRestarted));
        d.reopen().unwrap();
        assert_eq!(d.handle, stale);
        d.read_block(0, &mut b).unwrap();
        assert_eq!(b, pattern(3));
    }

    #[test]
    fn a_staged_image_is_written_committed_and_listed() {
        let mut srv = FakeDisk::with(ExtentKind::Image, "www", &pattern(1));
        srv.add(ExtentKind::Disk, "httpd", &[0; BLOCK_SIZE]);
        let mut d = BlockDevice::stage(&mut srv, "web2", 2 * BLOCK_SIZE as u64, 0).unwrap();
        assert_eq!(d.len_blocks(), 2);
        assert!(!d.is_read_only());
        d.write_block(1, &pattern(9)).unwrap();
        assert_eq!(d.write_block(2, &pattern(9)), Err(BlockError::OutOfRange));
        let srv = d.client.into_inner();
        // Not there until committed: not openable, not listed.
        assert_eq!(
            BlockDevice::open(&mut *srv, ExtentKind::Image, "web2").unwrap_err(),
            BlockError::NotFound
        );
        let names = |srv: &mut FakeDisk| -> Vec<String> {
            list_images_through(srv)
                .unwrap()
                .into_iter()
                .map(|(_, n, _)| n)
                .collect()
        };
        assert_eq!(names(srv), ["www"]);
        let mut d = BlockDevice::stage(&mut *srv, "web2", 2 * BLOCK_SIZE as u64, 0).unwrap();
        d.write_block(1, &pattern(9)).unwrap();
        let srv = d.client.into_inner();
        srv.busy_commits = 1;
        let h = d.handle;
        let mut d = BlockDevice {
            client: DiskClient::new(&mut *srv),
            handle: h,
            info: d.info,
            kind: ExtentKind::Image,
            name: d.name,
        };
        assert_eq!(d.try_commit(), Err(BlockError::Busy));
        d.try_commit().unwrap();
        let srv = d.client.into_inner();
        assert_eq!(names(srv), ["www", "web2"]);
        let mut img = BlockDevice::open(&mut *srv, ExtentKind::Image, "web2").unwrap();
        assert!(img.is_read_only());
        let mut b = [0u8; BLOCK_SIZE];
        img.read_block(1, &mut b).unwrap();
        assert_eq!(b, pattern(9));
        let srv = img.close().unwrap();
        // A second image of the name, and a bad commit, are refused.
        assert_eq!(
            BlockDevice::stage(&mut *srv, "web2", 1, 0).unwrap_err(),
            BlockError::Exists
        );
        srv.corrupt_commit = true;
        let mut d = BlockDevice::stage(&mut *srv, "web3", 1, 0).unwrap();
        assert_eq!(d.try_commit(), Err(BlockError::Corrupt));
        let srv = d.client.into_inner();
        assert_eq!(names(srv), ["www", "web2"]);
    }

    #[test]
    fn reopen_refuses_another_extent_under_the_name() {
        let mut srv = FakeDisk::with(ExtentKind::Disk, "a", &pattern(3));
        let d = BlockDevice::open(&mut srv, ExtentKind::Disk, "a").unwrap();
        let srv = d.close().unwrap();
        srv.extents[0].bytes.resize(2 * BLOCK_SIZE, 0);
        srv.epoch += 1;
        let mut d = BlockDevice::open(&mut *srv, ExtentKind::Disk, "a").unwrap();
        d.info.blocks = 1;
        assert_eq!(d.reopen(), Err(BlockError::Changed));
    }
}
