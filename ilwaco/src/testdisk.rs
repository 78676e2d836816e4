//! A disk server in memory, for host tests: it serves `protocol::disk`
//! through [`Transport`] with the real server's checks (handles of an old
//! epoch, sector alignment, piece size, range, read-only images), and can
//! fail a block or restart.

use serac_protocol::client::Transport;
use serac_protocol::codec::{decode, encode};
use serac_protocol::disk::{
    Data, DiskHandle, ExtentInfo, ExtentKind, ExtentName, ImageEntry, ImagePage, Reply, Request,
    ServiceError, BLOCK_SIZE, IMAGE_PAGE_LEN, MAX_IO, SECTOR_SIZE,
};
use serac_protocol::SysError;
use std::string::String;
use std::vec::Vec;

#[derive(Debug)]
pub(crate) struct Extent {
    pub kind: ExtentKind,
    pub name: String,
    pub bytes: Vec<u8>,
    /// An image being created (`CreateImage`): writable, not listed, and
    /// not openable until committed.
    pub staged: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FakeDisk {
    pub extents: Vec<Extent>,
    pub epoch: u32,
    /// Calls served, and of them reads.
    pub calls: usize,
    pub reads: usize,
    /// Reads of this block (of any extent) fail with `Io`.
    pub bad_block: Option<u64>,
    /// After this many more calls the server restarts (once).
    pub restart_in: Option<usize>,
    /// Every call fails with this, as a dead endpoint would.
    pub dead: Option<SysError>,
    /// `CommitImage` answers `Busy` this many more times.
    pub busy_commits: usize,
    /// `CommitImage` finds the content not matching its CRC.
    pub corrupt_commit: bool,
}

impl FakeDisk {
    pub fn new() -> Self {
        FakeDisk {
            epoch: 1,
            ..Self::default()
        }
    }

    /// Adds an extent holding `content`, zero-padded to whole blocks
    /// (at least one), as `add-image` pads an image.
    pub fn add(&mut self, kind: ExtentKind, name: &str, content: &[u8]) {
        let mut bytes = content.to_vec();
        bytes.resize(content.len().div_ceil(BLOCK_SIZE).max(1) * BLOCK_SIZE, 0);
        self.extents.push(Extent {
            kind,
            name: name.into(),
            bytes,
            staged: false,
        });
    }

    pub fn with(kind: ExtentKind, name: &str, content: &[u8]) -> Self {
        let mut d = FakeDisk::new();
        d.add(kind, name, content);
        d
    }

    fn info(e: &Extent) -> ExtentInfo {
        ExtentInfo {
            kind: e.kind,
            blocks: (e.bytes.len() / BLOCK_SIZE) as u64,
            read_only: e.kind == ExtentKind::Image && !e.staged,
        }
    }

    fn extent(&mut self, h: DiskHandle) -> Result<&mut Extent, ServiceError> {
        if h.epoch != self.epoch {
            return Err(ServiceError::ServerRestarted);
        }
        self.extents
            .get_mut(h.slot as usize)
            .filter(|_| h.gen == 1)
            .ok_or(ServiceError::BadHandle)
    }

    /// The byte range of a piece, with the server's checks.
    fn piece(
        e: &Extent,
        block: u64,
        offset: u16,
        len: usize,
    ) -> Result<core::ops::Range<usize>, ServiceError> {
        let off = usize::from(offset);
        if len == 0 || !off.is_multiple_of(SECTOR_SIZE) || !len.is_multiple_of(SECTOR_SIZE) {
            return Err(ServiceError::Misaligned);
        }
        if len > MAX_IO {
            return Err(ServiceError::TooLarge);
        }
        let b = usize::try_from(block).map_err(|_| ServiceError::OutOfRange)?;
        if off + len > BLOCK_SIZE || b >= e.bytes.len() / BLOCK_SIZE {
            return Err(ServiceError::OutOfRange);
        }
        Ok(b * BLOCK_SIZE + off..b * BLOCK_SIZE + off + len)
    }

    /// The answer to an open of extent `slot`.
    fn opened(&self, slot: usize) -> Reply {
        Reply::Opened {
            handle: DiskHandle {
                epoch: self.epoch,
                slot: slot as u32,
                gen: 1,
            },
            info: Self::info(&self.extents[slot]),
        }
    }

    fn serve(&mut self, req: Request) -> Result<Reply, ServiceError> {
        Ok(match req {
            Request::Open { kind, name } => {
                let slot = self
                    .extents
                    .iter()
                    .position(|e| e.kind == kind && e.name == name.as_str() && !e.staged)
                    .ok_or(ServiceError::NoSuchExtent)?;
                self.opened(slot)
            }
            Request::Info { handle } => Reply::Info(Self::info(self.extent(handle)?)),
            Request::Read {
                handle,
                block,
                offset,
                len,
            } => {
                self.reads += 1;
                let bad = self.bad_block == Some(block);
                let e = self.extent(handle)?;
                let r = Self::piece(e, block, offset, usize::from(len))?;
                if bad {
                    return Err(ServiceError::Io);
                }
                Reply::Data(Data::from_slice(&e.bytes[r]).unwrap())
            }
            Request::Write {
                handle,
                block,
                offset,
                data,
            } => {
                let e = self.extent(handle)?;
                let r = Self::piece(e, block, offset, data.len())?;
                if e.kind == ExtentKind::Image && !e.staged {
                    return Err(ServiceError::ReadOnly);
                }
                e.bytes[r].copy_from_slice(data.as_slice());
                Reply::Ok
            }
            Request::Flush { handle } | Request::Close { handle } => {
                self.extent(handle)?;
                Reply::Ok
            }
            // The supervisor's, never a client's.
            Request::Name { .. } | Request::NameCreator { .. } => {
                return Err(ServiceError::NotPermitted)
            }
            Request::CreateImage { name, len, .. } => {
                if self
                    .extents
                    .iter()
                    .any(|e| e.name == name.as_str() && !e.staged)
                {
                    return Err(ServiceError::Exists);
                }
                self.extents.retain(|e| !e.staged);
                let blocks = usize::try_from(len).unwrap().div_ceil(BLOCK_SIZE).max(1);
                self.extents.push(Extent {
                    kind: ExtentKind::Image,
                    name: name.as_str().into(),
                    bytes: std::vec![0; blocks * BLOCK_SIZE],
                    staged: true,
                });
                self.opened(self.extents.len() - 1)
            }
            Request::CommitImage { handle } => {
                if !self.extent(handle)?.staged {
                    return Err(ServiceError::BadHandle);
                }
                if self.busy_commits > 0 {
                    self.busy_commits -= 1;
                    return Err(ServiceError::Busy);
                }
                if self.corrupt_commit {
                    self.extents.retain(|e| !e.staged);
                    return Err(ServiceError::Corrupt);
                }
                self.extent(handle)?.staged = false;
                Reply::Ok
            }
            Request::ListImages { after } => {
                let mut page = ImagePage {
                    entries: [ImageEntry::default(); IMAGE_PAGE_LEN],
                    count: 0,
                };
                // Ids are slots + 1, so 0 is before every image.
                let images = self
                    .extents
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| {
                        e.kind == ExtentKind::Image && !e.staged && *i as u32 + 1 > after
                    })
                    .take(IMAGE_PAGE_LEN);
                for (n, (i, e)) in images.enumerate() {
                    page.entries[n] = ImageEntry {
                        id: i as u32 + 1,
                        name: ExtentName::new(&e.name).unwrap(),
                        len: e.bytes.len() as u64,
                    };
                    page.count += 1;
                }
                Reply::Images(page)
            }
        })
    }
}

impl Transport for FakeDisk {
    fn call(&mut self, label: u32, req: &[u8], reply: &mut [u8]) -> Result<usize, SysError> {
        assert_eq!(label, serac_protocol::client::LABEL_DISK);
        if let Some(e) = self.dead {
            return Err(e);
        }
        self.calls += 1;
        if let Some(n) = self.restart_in {
            if n == 0 {
                self.epoch += 1;
                self.restart_in = None;
            } else {
                self.restart_in = Some(n - 1);
            }
        }
        let r = match decode::<Request>(req) {
            Ok(req) => self.serve(req).unwrap_or_else(Reply::Err),
            Err(_) => Reply::Err(ServiceError::BadRequest),
        };
        Ok(encode(&r, reply)
            .map_err(|_| SysError::MessageTooLarge)?
            .len())
    }
}
