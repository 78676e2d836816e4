//! [`Image`], its index, and [`File`].

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::cmp::Ordering;
use core::fmt;

use serac_protocol::client::Transport;
use serac_protocol::disk::BLOCK_SIZE;
use serac_protocol::Handle;

use super::tar::{self, EntryKind, Header, TarError, Type, HEADER_LEN};
use crate::block::{Block, BlockDevice, BlockError};
use crate::ipc::Endpoint;

/// Most entries an image may have.
pub const MAX_ENTRIES: usize = 4096;
/// Most bytes of (normalised) paths an image may have, all entries together.
pub const MAX_PATH_BYTES: usize = 128 * 1024;
/// Most bytes of a GNU long name or a pax header, each read into memory.
pub const META_MAX: usize = 4096;

const BLOCK: u64 = BLOCK_SIZE as u64;
const HEADER: u64 = HEADER_LEN as u64;

/// Why a file operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// No entry has that path.
    NotFound,
    /// `open` of a directory.
    IsADirectory,
    /// `read_dir` of something else.
    NotADirectory,
    /// `open` of a link, device or unknown type (links are not followed).
    Unsupported,
    /// The archive is malformed at byte `offset` of the extent.
    Corrupt {
        /// The header's offset in the extent.
        offset: u64,
        /// What is wrong.
        why: TarError,
    },
    /// More entries, longer paths or metadata than the limits above, or a
    /// file too long for this address space.
    TooLarge,
    /// The heap had no room.
    NoMemory,
    /// The image was in use by a read already (not reachable from safe,
    /// single-threaded use; kept typed rather than a panic).
    Busy,
    /// The block device failed.
    Device(BlockError),
}

impl From<BlockError> for FsError {
    fn from(e: BlockError) -> Self {
        FsError::Device(e)
    }
}

/// The block device with one cached block.
struct Reader<T> {
    dev: BlockDevice<T>,
    cached: Option<u64>,
    buf: Block,
}

impl<T> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("extent", &self.dev.name())
            .field("cached", &self.cached)
            .finish()
    }
}

impl<T: Transport> Reader<T> {
    fn block(&mut self, n: u64) -> Result<&Block, BlockError> {
        if self.cached != Some(n) {
            self.cached = None;
            match self.dev.read_block(n, &mut self.buf) {
                // An image never changes: open it again and carry on.
                Err(BlockError::ServerRestarted) => {
                    self.dev.reopen()?;
                    self.dev.read_block(n, &mut self.buf)?;
                }
                r => r?,
            }
            self.cached = Some(n);
        }
        Ok(&self.buf)
    }

    /// Fills `out` from byte `pos` of the extent.
    fn read_at(&mut self, mut pos: u64, out: &mut [u8]) -> Result<(), BlockError> {
        let mut done = 0;
        while done < out.len() {
            let off = usize::try_from(pos % BLOCK).map_err(|_| BlockError::OutOfRange)?;
            let b = self.block(pos / BLOCK)?;
            let n = (BLOCK_SIZE - off).min(out.len() - done);
            out[done..done + n].copy_from_slice(&b[off..off + n]);
            done += n;
            pos += n as u64;
        }
        Ok(())
    }

    /// Reads `len` bytes at `pos` into `buf` (replacing what it held).
    fn read_meta(&mut self, pos: u64, len: u64, buf: &mut Vec<u8>) -> Result<(), FsError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= META_MAX)
            .ok_or(FsError::TooLarge)?;
        buf.clear();
        buf.try_reserve(len).map_err(|_| FsError::NoMemory)?;
        buf.resize(len, 0);
        Ok(self.read_at(pos, buf)?)
    }
}

/// One entry of the index: its path in `Image::paths`, what it is, and
/// where its data lies in the extent.
#[derive(Debug, Clone, Copy)]
struct Entry {
    path: (usize, usize),
    kind: EntryKind,
    data: u64,
    len: u64,
    /// Its place in the archive: the last of equal paths wins.
    seq: usize,
}

/// The components of a lookup path: no empty ones, no `.`.
fn components(p: &str) -> impl Iterator<Item = &str> + Clone {
    p.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Whether stored path `p` lies strictly below lookup path `q`.
fn is_under(p: &str, q: &str) -> bool {
    let mut pc = p.split('/');
    components(q).all(|c| pc.next() == Some(c)) && pc.next().is_some()
}

/// The first `depth` components of stored path `p`.
fn prefix(p: &str, depth: usize) -> &str {
    let end = match depth.checked_sub(1) {
        None => 0,
        Some(d) => p.match_indices('/').nth(d).map_or(p.len(), |(i, _)| i),
    };
    p.get(..end).unwrap_or(p)
}

/// Appends the components of `parts` to `paths`, `/`-separated.
fn push_path(paths: &mut String, parts: &[&[u8]], offset: u64) -> Result<(), FsError> {
    let corrupt = FsError::Corrupt {
        offset,
        why: TarError::Path,
    };
    let start = paths.len();
    for part in parts {
        let s = core::str::from_utf8(part).map_err(|_| corrupt)?;
        if s.contains('\0') {
            return Err(corrupt);
        }
        for c in components(s) {
            let sep = usize::from(paths.len() > start);
            if paths.len() + sep + c.len() > MAX_PATH_BYTES {
                return Err(FsError::TooLarge);
            }
            paths
                .try_reserve(sep + c.len())
                .map_err(|_| FsError::NoMemory)?;
            if sep == 1 {
                paths.push('/');
            }
            paths.push_str(c);
        }
    }
    Ok(())
}

/// What a path names.
enum Found<'a> {
    Root,
    Entry(&'a Entry),
    /// A directory with no entry of its own: some path lies below it.
    Implied(&'a str),
}

/// A mounted image.
pub struct Image<T = Endpoint> {
    reader: RefCell<Reader<T>>,
    /// Sorted by path, compared by components; paths unique.
    entries: Vec<Entry>,
    paths: String,
}

impl<T> fmt::Debug for Image<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("reader", &self.reader)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Image<Endpoint> {
    /// Opens image `name` on the disk server behind `server` and mounts it.
    pub fn mount_named(server: Handle, name: &str) -> Result<Self, FsError> {
        Self::mount(BlockDevice::image(server, name)?)
    }
}

/// The walk's state between headers: what metadata headers said about the
/// next entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

impl<T: Transport> Image<T> {
    /// Reads the archive's headers and builds the index. The archive ends
    /// at an all-zero header, or at the end of the extent.
    pub fn mount(dev: BlockDevice<T>) -> Result<Self, FsError> {
        let end = dev
            .len_blocks()
            .checked_mul(BLOCK)
            .ok_or(FsError::TooLarge)?;
        let mut r = Reader {
            dev,
            cached: None,
            buf: [0; BLOCK_SIZE],
        };
        let mut entries: Vec<Entry> = Vec::new();
        let mut paths = String::new();
        let mut pending = Pending::default();
        let mut meta = Vec::new();
        let mut pos = 0u64;
        // Each pass moves `pos` on by at least a header, and `end` bounds it.
        while pos < end {
            let mut block = [0u8; HEADER_LEN];
            r.read_at(pos, &mut block)?;
            let corrupt = |why| FsError::Corrupt { offset: pos, why };
            let (prefix, name, ty, size) = match tar::parse(&block).map_err(corrupt)? {
                Header::End => break,
                Header::Item {
                    prefix,
                    name,
                    ty,
                    size,
                } => (prefix, name, ty, size),
            };
            let size = match ty {
                Type::Entry(_) => pending.pax_size.take().unwrap_or(size),
                _ => size,
            };
            let data = pos + HEADER;
            let data_end = data
                .checked_add(ty.data_len(size))
                .filter(|&e| e <= end)
                .ok_or(corrupt(TarError::Truncated))?;
            match ty {
                Type::LongName => {
                    r.read_meta(data, size, &mut meta)?;
                    let n = meta.iter().position(|&b| b == 0).unwrap_or(meta.len());
                    meta.truncate(n);
                    pending.long_name = Some(core::mem::take(&mut meta));
                }
                Type::Pax => {
                    r.read_meta(data, size, &mut meta)?;
                    let pax = tar::parse_pax(&meta).map_err(corrupt)?;
                    if let Some(s) = pax.size {
                        pending.pax_size = Some(s);
                    }
                    if let Some(p) = pax.path {
                        let mut v = Vec::new();
                        v.try_reserve(p.len()).map_err(|_| FsError::NoMemory)?;
                        v.extend_from_slice(p);
                        pending.pax_path = Some(v);
                    }
                }
                Type::LongLink | Type::PaxGlobal => {}
                Type::Entry(kind) => {
                    let start = paths.len();
                    let long = pending.pax_path.take().or(pending.long_name.take());
                    pending = Pending::default();
                    match &long {
                        Some(p) => push_path(&mut paths, &[p], pos)?,
                        None => push_path(&mut paths, &[prefix, name], pos)?,
                    }
                    // The root (`./`) is no entry.
                    if paths.len() > start {
                        if entries.len() == MAX_ENTRIES {
                            return Err(FsError::TooLarge);
                        }
                        entries.try_reserve(1).map_err(|_| FsError::NoMemory)?;
                        entries.push(Entry {
                            path: (start, paths.len()),
                            kind,
                            data,
                            len: ty.data_len(size),
                            seq: entries.len(),
                        });
                    }
                }
            }
            // `end` is a multiple of the header size, so this stays <= end.
            pos = data_end.div_ceil(HEADER) * HEADER;
        }
        let path = |e: &Entry| paths.get(e.path.0..e.path.1).unwrap_or("");
        // Unstable sort: it does not allocate. Later entries first among
        // equals, so dedup keeps them.
        entries.sort_unstable_by(|a, b| {
            path(a)
                .split('/')
                .cmp(path(b).split('/'))
                .then(b.seq.cmp(&a.seq))
        });
        entries.dedup_by(|a, b| path(a) == path(b));
        Ok(Image {
            reader: RefCell::new(r),
            entries,
            paths,
        })
    }

    /// Unmounts, giving the device back.
    pub fn into_device(self) -> BlockDevice<T> {
        self.reader.into_inner().dev
    }
}

impl<T> Image<T> {
    fn path(&self, e: &Entry) -> &str {
        self.paths.get(e.path.0..e.path.1).unwrap_or("")
    }

    fn dir_entry<'a>(&'a self, e: &Entry) -> DirEntry<'a> {
        DirEntry {
            path: self.path(e),
            kind: e.kind,
            len: e.len,
        }
    }

    /// The entries strictly below `q`, a contiguous run of the sorted index.
    fn below(&self, q: &str) -> &[Entry] {
        let lo = self
            .entries
            .partition_point(|e| self.path(e).split('/').cmp(components(q)) != Ordering::Greater);
        let rest = self.entries.get(lo..).unwrap_or(&[]);
        let n = rest.partition_point(|e| is_under(self.path(e), q));
        rest.get(..n).unwrap_or(&[])
    }

    fn find(&self, path: &str) -> Result<Found<'_>, FsError> {
        let depth = components(path).count();
        if depth == 0 {
            return Ok(Found::Root);
        }
        if let Ok(i) = self
            .entries
            .binary_search_by(|e| self.path(e).split('/').cmp(components(path)))
        {
            return self
                .entries
                .get(i)
                .map(Found::Entry)
                .ok_or(FsError::NotFound);
        }
        match self.below(path).first() {
            Some(e) => Ok(Found::Implied(prefix(self.path(e), depth))),
            None => Err(FsError::NotFound),
        }
    }

    /// Opens the regular file at `path`.
    pub fn open(&self, path: &str) -> Result<File<'_, T>, FsError> {
        match self.find(path)? {
            Found::Entry(e) if e.kind == EntryKind::File => Ok(File {
                image: self,
                data: e.data,
                len: e.len,
                pos: 0,
            }),
            Found::Root | Found::Implied(_) => Err(FsError::IsADirectory),
            Found::Entry(e) if e.kind == EntryKind::Dir => Err(FsError::IsADirectory),
            Found::Entry(_) => Err(FsError::Unsupported),
        }
    }

    /// What `path` names; a directory with no entry of its own (only paths
    /// below it) is reported as one.
    pub fn metadata(&self, path: &str) -> Result<DirEntry<'_>, FsError> {
        let dir = |path| DirEntry {
            path,
            kind: EntryKind::Dir,
            len: 0,
        };
        Ok(match self.find(path)? {
            Found::Root => dir(""),
            Found::Implied(p) => dir(p),
            Found::Entry(e) => self.dir_entry(e),
        })
    }

    /// Every entry, sorted by path (components compared in turn).
    pub fn entries(&self) -> impl Iterator<Item = DirEntry<'_>> + '_ {
        self.entries.iter().map(|e| self.dir_entry(e))
    }

    /// The entries directly in directory `path` (`""` or `"/"` is the
    /// root), including directories that only appear in longer paths.
    pub fn read_dir(&self, path: &str) -> Result<ReadDir<'_, T>, FsError> {
        match self.find(path)? {
            Found::Entry(e) if e.kind != EntryKind::Dir => Err(FsError::NotADirectory),
            _ => Ok(ReadDir {
                image: self,
                below: self.below(path),
                depth: components(path).count(),
                last: None,
            }),
        }
    }
}

/// An entry as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The normalised path (no leading `/` or `./`).
    pub path: &'a str,
    /// What it is.
    pub kind: EntryKind,
    /// Bytes of data (0 but for files).
    pub len: u64,
}

impl<'a> DirEntry<'a> {
    /// The last component of the path.
    pub fn name(&self) -> &'a str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// The entries of one directory; see [`Image::read_dir`].
#[derive(Debug)]
pub struct ReadDir<'a, T> {
    image: &'a Image<T>,
    below: &'a [Entry],
    depth: usize,
    last: Option<&'a str>,
}

impl<'a, T> Iterator for ReadDir<'a, T> {
    type Item = DirEntry<'a>;

    fn next(&mut self) -> Option<DirEntry<'a>> {
        // A child's own entry sorts right before the paths below it, so
        // all paths through one child are adjacent.
        while let Some((e, rest)) = self.below.split_first() {
            self.below = rest;
            let p = self.image.path(e);
            let child = prefix(p, self.depth + 1);
            if self.last == Some(child) {
                continue;
            }
            self.last = Some(child);
            return Some(if child.len() == p.len() {
                self.image.dir_entry(e)
            } else {
                DirEntry {
                    path: child,
                    kind: EntryKind::Dir,
                    len: 0,
                }
            });
        }
        None
    }
}

/// An open file of an image: a position in its data.
pub struct File<'a, T = Endpoint> {
    image: &'a Image<T>,
    data: u64,
    len: u64,
    /// At most `len`.
    pos: u64,
}

impl<T> fmt::Debug for File<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("data", &self.data)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<T: Transport> File<'_, T> {
    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the next read starts.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the position (past the end means at the end).
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos.min(self.len);
    }

    /// Reads from the position into `buf`; returns the bytes read, 0 at
    /// the end. Fills `buf` unless the file ends first.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        let left = self.len - self.pos;
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let Some(out) = buf.get_mut(..n).filter(|o| !o.is_empty()) else {
            return Ok(0);
        };
        let mut r = self
            .image
            .reader
            .try_borrow_mut()
            .map_err(|_| FsError::Busy)?;
        r.read_at(self.data + self.pos, out)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Appends the rest of the file to `out`; returns the bytes read.
    /// `NoMemory` (and nothing appended) if the heap cannot hold it.
    pub fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize, FsError> {
        let left = usize::try_from(self.len - self.pos).map_err(|_| FsError::TooLarge)?;
        out.try_reserve_exact(left).map_err(|_| FsError::NoMemory)?;
        let start = out.len();
        out.resize(start + left, 0);
        let r = self.read(out.get_mut(start..).unwrap_or(&mut []));
        out.truncate(start + *r.as_ref().unwrap_or(&0));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdisk::FakeDisk;
    use proptest::prelude::*;
    use serac_protocol::disk::ExtentKind;
    use std::string::ToString;
    use std::vec;

    /// A tar made the way `cargo xtask disk add-image` makes one.
    fn archive(files: &[(&str, &[u8])], dirs: &[&str]) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        b.mode(::tar::HeaderMode::Deterministic);
        for d in dirs {
            let mut h = ::tar::Header::new_gnu();
            h.set_entry_type(::tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, d, &[][..]).unwrap();
        }
        for (p, data) in files {
            let mut h = ::tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, p, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn disk(tar: &[u8]) -> FakeDisk {
        FakeDisk::with(ExtentKind::Image, "www", tar)
    }

    fn mount(srv: &mut FakeDisk) -> Result<Image<&mut FakeDisk>, FsError> {
        Image::mount(BlockDevice::open(srv, ExtentKind::Image, "www").unwrap())
    }

    fn read_all<T: Transport>(img: &Image<T>, path: &str) -> Result<Vec<u8>, FsError> {
        let mut v = Vec::new();
        img.open(path)?.read_to_end(&mut v)?;
        Ok(v)
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i % 253) as u8 ^ seed).collect()
    }

    #[test]
    fn reads_every_file_whole_and_in_pieces() {
        let sizes = [0, 1, 511, 512, 513, 4096, 4097, 10_000];
        let contents: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| bytes(n, i as u8))
            .collect();
        let names: Vec<String> = sizes.iter().map(|n| format!("d/f{n}")).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .map(String::as_str)
            .zip(contents.iter().map(Vec::as_slice))
            .collect();
        let mut srv = disk(&archive(&files, &["d"]));
        let img = mount(&mut srv).unwrap();
        for (name, want) in &files {
            assert_eq!(read_all(&img, name).unwrap(), *want, "{name}");
            let mut f = img.open(name).unwrap();
            assert_eq!(f.len(), want.len() as u64);
            assert_eq!(f.is_empty(), want.is_empty());
            let mut got = Vec::new();
            let mut piece = [0u8; 7];
            loop {
                let n = f.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&piece[..n]);
            }
            assert_eq!(got, *want);
            assert_eq!(f.position(), f.len());
            assert_eq!(f.read(&mut piece), Ok(0));
            f.seek(1);
            let mut rest = Vec::new();
            assert_eq!(
                f.read_to_end(&mut rest).unwrap(),
                want.len().saturating_sub(1)
            );
            assert_eq!(rest, want.get(1..).unwrap_or(&[]));
        }
    }

    #[test]
    fn paths_are_normalised_and_missing_ones_typed() {
        let mut srv = disk(&archive(
            &[("./index.html", b"<html>\n"), ("a/b/c.txt", b"c")],
            &["./", "a/"],
        ));
        let img = mount(&mut srv).unwrap();
        for p in [
            "index.html",
            "./index.html",
            "/index.html",
            "//./index.html",
        ] {
            assert_eq!(read_all(&img, p).unwrap(), b"<html>\n", "{p}");
        }
        assert_eq!(read_all(&img, "a//b/./c.txt").unwrap(), b"c");
        assert_eq!(img.open("missing.html").unwrap_err(), FsError::NotFound);
        assert_eq!(img.open("index.html/x").unwrap_err(), FsError::NotFound);
        assert_eq!(img.open("a/b/c").unwrap_err(), FsError::NotFound);
        assert_eq!(img.open("a/../index.html").unwrap_err(), FsError::NotFound);
        // Explicit, implied and the root.
        for d in ["a", "a/", "a/b", "", "/", "."] {
            assert_eq!(img.open(d).unwrap_err(), FsError::IsADirectory, "{d}");
            assert_eq!(img.metadata(d).unwrap().kind, EntryKind::Dir, "{d}");
        }
        assert_eq!(img.metadata("./a/b/").unwrap().path, "a/b");
        assert_eq!(
            img.read_dir("index.html").unwrap_err(),
            FsError::NotADirectory
        );
        assert_eq!(img.read_dir("nope").unwrap_err(), FsError::NotFound);
    }

    #[test]
    fn lists_entries_and_directories() {
        let mut srv = disk(&archive(
            &[
                ("b.txt", b"bb"),
                ("a/x", b"x"),
                ("a-z", b"-"),
                ("a/sub/deep/y", b"yy"),
                ("a/sub/z", b"z"),
            ],
            &["a"],
        ));
        let img = mount(&mut srv).unwrap();
        let all: Vec<&str> = img.entries().map(|e| e.path).collect();
        // By components: everything under `a` before `a-z`.
        assert_eq!(all, ["a", "a/sub/deep/y", "a/sub/z", "a/x", "a-z", "b.txt"]);
        let root: Vec<(&str, EntryKind, u64)> = img
            .read_dir("/")
            .unwrap()
            .map(|e| (e.name(), e.kind, e.len))
            .collect();
        assert_eq!(
            root,
            [
                ("a", EntryKind::Dir, 0),
                ("a-z", EntryKind::File, 1),
                ("b.txt", EntryKind::File, 2)
            ]
        );
        let a: Vec<(&str, EntryKind)> = img
            .read_dir("a")
            .unwrap()
            .map(|e| (e.path, e.kind))
            .collect();
        assert_eq!(a, [("a/sub", EntryKind::Dir), ("a/x", EntryKind::File)]);
        let sub: Vec<&str> = img.read_dir("a/sub").unwrap().map(|e| e.path).collect();
        assert_eq!(sub, ["a/sub/deep", "a/sub/z"]);
        assert_eq!(img.read_dir("a/sub/deep").unwrap().count(), 1);
        assert_eq!(img.read_dir("a/x").unwrap_err(), FsError::NotADirectory);
    }

    #[test]
    fn long_names_pax_links_and_replaced_entries() {
        let long = format!("{}/{}.html", "dir".repeat(50), "n".repeat(120));
        let mut b = ::tar::Builder::new(Vec::new());
        b.mode(::tar::HeaderMode::Deterministic);
        let mut h = ::tar::Header::new_gnu();
        h.set_size(4);
        b.append_data(&mut h, &long, &b"long"[..]).unwrap();
        // pax path and size override the header's.
        let pax_path = "p".repeat(300);
        b.append_pax_extensions([("path", pax_path.as_bytes()), ("size", b"3".as_slice())])
            .unwrap();
        let mut h = ::tar::Header::new_ustar();
        h.set_size(0);
        b.append_data(&mut h, "ignored", &b"pax"[..]).unwrap();
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(::tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", "x.txt").unwrap();
        for body in [&b"old"[..], b"new!"] {
            let mut h = ::tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            b.append_data(&mut h, "x.txt", body).unwrap();
        }
        let mut srv = disk(&b.into_inner().unwrap());
        let img = mount(&mut srv).unwrap();
        assert_eq!(read_all(&img, &long).unwrap(), b"long");
        assert_eq!(read_all(&img, &pax_path).unwrap(), b"pax");
        assert_eq!(img.open("ignored").unwrap_err(), FsError::NotFound);
        assert_eq!(img.open("link").unwrap_err(), FsError::Unsupported);
        assert_eq!(img.metadata("link").unwrap().kind, EntryKind::Symlink);
        assert_eq!(read_all(&img, "x.txt").unwrap(), b"new!");
        assert_eq!(img.entries().count(), 4);
    }

    /// The same tar calls as `pack` in xtask/src/disk.rs, on a real tree.
    #[test]
    fn mounts_a_tree_packed_like_add_image() {
        use std::path::Path;
        fn walk(b: &mut ::tar::Builder<Vec<u8>>, root: &Path, rel: &Path) {
            let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let rel = rel.join(e.file_name());
                let full = root.join(&rel);
                if e.file_type().unwrap().is_dir() {
                    b.append_dir(&rel, &full).unwrap();
                    walk(b, root, &rel);
                } else {
                    b.append_path_with_name(&full, &rel).unwrap();
                }
            }
        }
        let root = std::env::temp_dir().join(format!("ilwaco-fs-test-{}", std::process::id()));
        let deep = root.join("css").join("x".repeat(90));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>\nmore\n").unwrap();
        std::fs::write(deep.join("site.css"), bytes(9000, 5)).unwrap();
        let mut b = ::tar::Builder::new(Vec::new());
        b.mode(::tar::HeaderMode::Deterministic);
        b.follow_symlinks(false);
        walk(&mut b, &root, Path::new(""));
        let tar = b.into_inner().unwrap();
        std::fs::remove_dir_all(&root).unwrap();

        let mut srv = disk(&tar);
        let img = mount(&mut srv).unwrap();
        assert_eq!(
            read_all(&img, "index.html").unwrap(),
            b"<h1>hi</h1>\nmore\n"
        );
        let css = format!("css/{}/site.css", "x".repeat(90));
        assert_eq!(read_all(&img, &css).unwrap(), bytes(9000, 5));
        let top: Vec<&str> = img.read_dir("").unwrap().map(|e| e.path).collect();
        assert_eq!(top, ["css", "index.html"]);
    }

    #[test]
    fn mount_reads_headers_not_data() {
        let big = bytes(1 << 20, 1);
        let mut srv = disk(&archive(&[("big", &big), ("small", b"s")], &[]));
        let img = mount(&mut srv).unwrap();
        drop(img);
        // Blocks 0 (header of big), 256 (header of small, end marker):
        // two pieces each, and the open.
        assert_eq!(srv.reads, 4);
        assert_eq!(srv.calls, 5);
    }

    #[test]
    fn a_server_restart_is_hidden_an_io_error_is_not() {
        let content = bytes(5 * BLOCK_SIZE, 9);
        let mut srv = disk(&archive(&[("f", &content)], &[]));
        let img = mount(&mut srv).unwrap();
        let mut f = img.open("f").unwrap();
        let mut first = vec![0u8; 100];
        f.read(&mut first).unwrap();
        let srv = img.into_device().close().unwrap();
        // Mounting takes 5 calls (the open, blocks 0 and 5); the server
        // restarts on the first read after them.
        srv.restart_in = Some(5);
        let img = mount(srv).unwrap();
        assert_eq!(read_all(&img, "f").unwrap(), content);
        let srv = img.into_device().close().unwrap();
        assert_eq!(srv.epoch, 2);

        // Data starts in block 0 (after the header); block 2 fails.
        srv.bad_block = Some(2);
        let img = mount(srv).unwrap();
        assert_eq!(
            read_all(&img, "f").unwrap_err(),
            FsError::Device(BlockError::Io)
        );
        let mut f = img.open("f").unwrap();
        let mut head = [0u8; 64];
        assert_eq!(f.read(&mut head), Ok(64));
    }

    #[test]
    fn malformed_archives_are_corrupt() {
        let good = archive(&[("a", b"aaaa"), ("b", &bytes(3000, 2))], &[]);
        // A flipped byte in the second header.
        let mut t = good.clone();
        t[1024 + 3] ^= 1;
        let mut srv = disk(&t);
        assert_eq!(
            mount(&mut srv).unwrap_err(),
            FsError::Corrupt {
                offset: 1024,
                why: TarError::Checksum
            }
        );
        // A size running past the extent (one block).
        let mut h = ::tar::Header::new_gnu();
        h.set_path("a").unwrap();
        h.set_size(4096);
        h.set_cksum();
        let mut srv = disk(h.as_bytes());
        assert_eq!(
            mount(&mut srv).unwrap_err(),
            FsError::Corrupt {
                offset: 0,
                why: TarError::Truncated
            }
        );
        // A name that is not UTF-8.
        let mut h = ::tar::Header::new_gnu();
        h.as_mut_bytes()[..2].copy_from_slice(&[0xff, 0xfe]);
        h.set_size(0);
        h.set_cksum();
        let mut srv = disk(h.as_bytes());
        assert_eq!(
            mount(&mut srv).unwrap_err(),
            FsError::Corrupt {
                offset: 0,
                why: TarError::Path
            }
        );
    }

    #[test]
    fn an_archive_may_end_with_the_extent() {
        // Eight 0-byte files fill exactly one block: no end marker fits.
        let names: Vec<String> = (0..8).map(|i| i.to_string()).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let t = archive(&files, &[]);
        let mut srv = disk(&t[..BLOCK_SIZE]);
        assert_eq!(srv.extents[0].bytes.len(), BLOCK_SIZE);
        let img = mount(&mut srv).unwrap();
        assert_eq!(img.entries().count(), 8);
    }

    #[test]
    fn limits_are_typed() {
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("d{i}")).collect();
        let dirs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut srv = disk(&archive(&[], &dirs));
        assert_eq!(mount(&mut srv).unwrap_err(), FsError::TooLarge);
        let mut srv = disk(&archive(&[], &dirs[..MAX_ENTRIES]));
        assert_eq!(mount(&mut srv).unwrap().entries().count(), MAX_ENTRIES);
        let long = "x/".repeat(META_MAX / 2 + 1);
        let mut srv = disk(&archive(&[(&long, b"")], &[]));
        assert_eq!(mount(&mut srv).unwrap_err(), FsError::TooLarge);
    }

    /// Everything a mounted image offers, on whatever it mounted.
    fn exercise<T: Transport>(img: &Image<T>) {
        let paths: Vec<String> = img.entries().map(|e| e.path.to_string()).collect();
        for p in &paths {
            let m = img.metadata(p).unwrap();
            if let Ok(mut f) = img.open(p) {
                let mut v = Vec::new();
                match f.read_to_end(&mut v) {
                    Ok(n) => assert_eq!(n as u64, m.len),
                    Err(e) => assert!(matches!(e, FsError::NoMemory | FsError::TooLarge)),
                }
            }
            if let Ok(d) = img.read_dir(p) {
                d.for_each(drop);
            }
        }
    }

    fn tree() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
        let name = "[a-c]{1,3}(/[a-c][a-c.]{0,2}){0,3}|[a-z]{100,140}";
        proptest::collection::btree_map(
            name,
            proptest::collection::vec(any::<u8>(), 0..3000),
            0..12,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..3 * BLOCK_SIZE)) {
            let mut srv = disk(&v);
            match mount(&mut srv) {
                Ok(img) => exercise(&img),
                Err(e) => prop_assert!(
                    matches!(e, FsError::Corrupt { .. } | FsError::TooLarge),
                    "{:?}", e
                ),
            }
        }

        #[test]
        fn mutated_archives_never_panic(
            t in tree(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let files: Vec<(&str, &[u8])> = t.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
            let mut a = archive(&files, &["a"]);
            for (i, x) in flips {
                let i = i.index(a.len());
                a[i] ^= x;
            }
            let mut srv = disk(&a);
            if let Ok(img) = mount(&mut srv) {
                exercise(&img);
            }
        }

        #[test]
        fn trees_round_trip(t in tree()) {
            let files: Vec<(&str, &[u8])> = t.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
            let a = archive(&files, &[]);
            let mut srv = disk(&a);
            let img = mount(&mut srv).unwrap();
            // A file whose path is also a directory of another (a and a/b)
            // is listed once, the last entry winning; skip those.
            for (p, d) in &t {
                if t.iter().any(|(q, _)| q.starts_with(&format!("{p}/"))) {
                    continue;
                }
                prop_assert_eq!(&read_all(&img, p).unwrap(), d);
            }
            exercise(&img);
        }

        // tar-no-std agrees on archives it reads (names under 100 bytes).
        #[test]
        fn agrees_with_tar_no_std(t in tree()) {
            let files: Vec<(&str, &[u8])> = t
                .iter()
                .filter(|(p, _)| p.len() < 100)
                .map(|(p, d)| (p.as_str(), d.as_slice()))
                .collect();
            let a = archive(&files, &["a"]);
            let theirs = tar_no_std::TarArchiveRef::new(&a).unwrap();
            let mut srv = disk(&a);
            let img = mount(&mut srv).unwrap();
            for e in theirs.entries() {
                let name = e.filename();
                let name = name.as_str().unwrap();
                prop_assert_eq!(read_all(&img, name).unwrap(), e.data());
            }
            let ours = img.entries().filter(|e| e.kind == EntryKind::File).count();
            prop_assert_eq!(ours, theirs.entries().count());
        }
    }
}
