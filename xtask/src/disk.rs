//! `disk`: make and inspect Serac disk images on the host.
//!
//! All format logic is `serac_disk_core`'s (the disk server links the same
//! code); this module only puts a file behind its `BlockDevice`, packs host
//! directories as tar, and prints.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serac_disk_core::layout::DEFAULT_TABLE_BLOCKS;
use serac_disk_core::table::CopyError;
use serac_disk_core::{
    fsck, AllocError, Block, BlockDevice, Error, Extent, GeometryError, Kind, Name, Problem,
    SlotState, SuperError, Volume, BLOCK,
};

use crate::cli::DiskCmd;
use crate::util::{out_dir, Result};

/// Size `create` uses without `--size`.
pub const DEFAULT_SIZE_MIB: u64 = 64;

/// Where the image is without a PATH argument.
pub fn default_path() -> PathBuf {
    out_dir().join("disk.img")
}

/// A disk image file as a block device.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    blocks: u64,
}

impl FileDevice {
    /// Opens an existing image for reading and writing.
    pub fn open(path: &Path) -> Result<FileDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open disk image {}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        Ok(FileDevice {
            file,
            blocks: len / BLOCK as u64,
        })
    }
}

impl BlockDevice for FileDevice {
    type Error = io::Error;

    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_block(&mut self, block: u64, buf: &mut Block) -> io::Result<()> {
        self.file.read_exact_at(buf, block * BLOCK as u64)
    }

    fn write_block(&mut self, block: u64, buf: &Block) -> io::Result<()> {
        self.file.write_all_at(buf, block * BLOCK as u64)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn zero_blocks(&mut self, start: u64, count: u64) -> io::Result<()> {
        // In 1 MiB writes: add-disk of a large disk stays quick.
        let zero = vec![0u8; 256 * BLOCK];
        let mut b = start;
        let end = start.saturating_add(count);
        while b < end {
            let n = (end - b).min(256);
            self.file
                .write_all_at(&zero[..n as usize * BLOCK], b * BLOCK as u64)?;
            b += n;
        }
        Ok(())
    }
}

/// Runs a `disk` subcommand; `cwd` is where xtask was started (relative
/// paths on the command line are from there).
pub fn disk(cmd: &DiskCmd, cwd: &Path) -> Result<ExitCode> {
    let path = |p: &Option<PathBuf>| match p {
        Some(p) => cwd.join(p),
        None => default_path(),
    };
    match cmd {
        DiskCmd::Create {
            size_mib,
            path: p,
            force,
        } => {
            let p = path(p);
            create(&p, *size_mib, *force)?;
            print!("{}", ls(&p)?);
        }
        DiskCmd::AddImage { name, dir, path: p } => {
            let p = path(p);
            let e = add_image(&p, name, &cwd.join(dir))?;
            println!("xtask: added {}", describe_extent(&e));
        }
        DiskCmd::AddExtent {
            kind,
            name,
            blocks,
            path: p,
        } => {
            let p = path(p);
            let e = add_extent(&p, *kind, name, *blocks)?;
            println!("xtask: added {}", describe_extent(&e));
        }
        DiskCmd::Ls { path: p } => print!("{}", ls(&path(p))?),
        DiskCmd::Fsck { path: p } => {
            let (text, clean) = check(&path(p))?;
            print!("{text}");
            if !clean {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A fresh id for each format, so a table left by an earlier format of
/// the same file is never taken for the new one's.
fn new_disk_id() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // splitmix64 of the time and pid.
    let mut z = t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `disk create`: a new image of `size_mib` MiB, formatted, no extents.
pub fn create(path: &Path, size_mib: u64, force: bool) -> Result {
    if path.exists() && !force {
        return Err(format!(
            "{} exists; pass --force to format it again (its extents are lost)",
            path.display()
        )
        .into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let bytes = size_mib.checked_mul(1 << 20).ok_or("--size is too large")?;
    // Sparse: the unused blocks take no room on the host.
    file.set_len(bytes)
        .map_err(|e| format!("cannot size {}: {e}", path.display()))?;
    let dev = FileDevice::open(path)?;
    Volume::format(dev, DEFAULT_TABLE_BLOCKS, new_disk_id()).map_err(|e| message(path, &e))?;
    Ok(())
}

fn open(path: &Path) -> Result<Volume<FileDevice>> {
    Volume::open(FileDevice::open(path)?).map_err(|e| message(path, &e).into())
}

/// The extent of `kind` named `who` on the disk image at `path`.
pub fn find_extent(path: &Path, kind: Kind, who: &str) -> Result<Extent> {
    let n = name(who)?;
    let v = open(path)?;
    v.table()
        .find(kind, &n)
        .copied()
        .ok_or_else(|| format!("{}: no {} extent `{who}`", path.display(), kind_name(kind)).into())
}

fn name(s: &str) -> Result<Name> {
    Name::new(s).map_err(|e| {
        format!("bad extent name `{s}` ({e:?}): 1 to 16 bytes of A-Z a-z 0-9 . _ -").into()
    })
}

/// `disk add-swap` / `add-disk`: a zeroed extent of `blocks` for domain `who`.
pub fn add_extent(path: &Path, kind: Kind, who: &str, blocks: u64) -> Result<Extent> {
    let n = name(who)?;
    let mut v = open(path)?;
    v.create(kind, n, blocks)
        .map_err(|e| message(path, &e).into())
}

/// Packs `dir` as a tar archive: entries sorted by name, owners, modes
/// and times normalised, so the same tree gives the same bytes (and the
/// same checksum) on every host.
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    fn walk(b: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            let full = root.join(&rel);
            if e.file_type()?.is_dir() {
                b.append_dir(&rel, &full)?;
                walk(b, root, &rel)?;
            } else {
                b.append_path_with_name(&full, &rel)?;
            }
        }
        Ok(())
    }
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()).into());
    }
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    walk(&mut b, dir, Path::new(""))
        .and_then(|()| b.into_inner())
        .map_err(|e| format!("cannot pack {}: {e}", dir.display()).into())
}

/// `disk add-image`: packs `dir` and stores it as read-only image `image`.
pub fn add_image(path: &Path, image: &str, dir: &Path) -> Result<Extent> {
    let n = name(image)?;
    let content = pack(dir)?;
    let mut v = open(path)?;
    v.add_image(n, &content)
        .map_err(|e| message(path, &e).into())
}

/// Makes image `image` hold `dir` as it is now: a new image when there is
/// none, a replacement when the packed content differs from what the
/// entry records (length and CRC-32C), nothing otherwise. Returns whether
/// it wrote anything.
pub fn refresh_image(path: &Path, image: &str, dir: &Path) -> Result<bool> {
    let n = name(image)?;
    let content = pack(dir)?;
    let mut v = open(path)?;
    let old = v.table().find(Kind::Image, &n).copied();
    if let Some(e) = old {
        let same = e.content.is_some_and(|c| {
            c.len == content.len() as u64 && c.crc == serac_disk_core::checksum::crc32c(&content)
        });
        if same {
            return Ok(false);
        }
        v.remove(e.id).map_err(|e| message(path, &e))?;
    }
    v.add_image(n, &content).map_err(|e| message(path, &e))?;
    Ok(true)
}

/// Blocks of the swapper's swap area on the run disk: its header, the
/// descriptors and 12,288 slots (48.5 MiB; the swapper's slot map would
/// take far more, `serac_pager_policy::swap::Sizing`).
pub const SWAPPER_BLOCKS: u64 = 12_416;

/// Adds a swap area for domain `who` of `blocks` blocks unless the disk
/// has one; true if it was added.
pub fn ensure_swap(path: &Path, who: &str, blocks: u64) -> Result<bool> {
    let n = name(who)?;
    if open(path)?.table().find(Kind::Swap, &n).is_some() {
        return Ok(false);
    }
    add_extent(path, Kind::Swap, who, blocks).map(|_| true)
}

fn add_image_bytes(path: &Path, n: &str, bytes: &[u8]) -> Result {
    let mut v = open(path)?;
    v.add_image(name(n)?, bytes)
        .map(|_| ())
        .map_err(|e| message(path, &e).into())
}

/// Packs (path, content) files as a tar archive, with the normalised
/// headers `pack` writes (mode 0644, owner 0, time 0).
pub fn pack_files(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (p, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, p, data.as_slice())
            .map_err(|e| format!("cannot pack {p}: {e}"))?;
    }
    b.into_inner()
        .map_err(|e| format!("cannot pack: {e}").into())
}

/// Makes the disk image a QEMU test attaches (`serac_tests::DiskImage`):
/// formatted afresh, then its extents in order. The runner calls it.
pub fn make_test_disk(
    path: &Path,
    disk: &serac_tests::DiskImage,
) -> std::result::Result<(), String> {
    use serac_tests::DiskExtent;
    let Some((size_mib, extents)) = &disk.fresh else {
        return Ok(());
    };
    let err = |e: crate::util::Failure| e.0;
    create(path, *size_mib, true).map_err(err)?;
    for x in extents {
        match x {
            DiskExtent::Swap(who, blocks) => add_extent(path, Kind::Swap, who, *blocks).map(|_| ()),
            DiskExtent::Disk(who, blocks) => add_extent(path, Kind::Disk, who, *blocks).map(|_| ()),
            DiskExtent::Image(n, bytes) => add_image_bytes(path, n, bytes),
            DiskExtent::Tar(n, files) => {
                pack_files(files).and_then(|b| add_image_bytes(path, n, &b))
            }
        }
        .map_err(err)?;
    }
    Ok(())
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Swap => "swap",
        Kind::Disk => "disk",
        Kind::Image => "image",
    }
}

fn size(blocks: u64) -> String {
    let bytes = blocks * BLOCK as u64;
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn describe_extent(e: &Extent) -> String {
    format!(
        "{} {} (id {}): blocks {}..{} ({})",
        kind_name(e.kind),
        e.name,
        e.id,
        e.start,
        e.end(),
        size(e.blocks)
    )
}

fn slot_state(s: &SlotState) -> String {
    match s {
        SlotState::Blank => "blank (never written)".into(),
        SlotState::Valid { seq, extents } => format!("valid, seq {seq}, {extents} extent(s)"),
        SlotState::Invalid(e) => format!("INVALID: {}", copy_error(*e)),
    }
}

fn copy_error(e: CopyError) -> &'static str {
    match e {
        CopyError::Blank => "blank",
        CopyError::BadMagic => "not a table copy (bad magic)",
        CopyError::Unsupported => "unsupported version",
        CopyError::Foreign => "left from an earlier format of this file",
        CopyError::Checksum => "checksum mismatch (torn by an interrupted update, or damaged)",
        CopyError::BadEntry => "checksum matches but an entry is invalid",
        CopyError::Overlap => "checksum matches but extents overlap or leave the data area",
        CopyError::Duplicate => "checksum matches but an id or a name is used twice",
        CopyError::NoMemory => "too large to hold in memory",
    }
}

fn message(path: &Path, e: &Error<io::Error>) -> String {
    let p = path.display();
    match e {
        Error::Io(e) => format!("{p}: I/O error: {e}"),
        Error::Geometry(GeometryError::TooSmall) => {
            format!("{p}: too small for the metadata and one extent block")
        }
        Error::Geometry(GeometryError::TooLarge) => format!("{p}: larger than a disk may be"),
        Error::Geometry(GeometryError::TableSize) => format!("{p}: bad table size"),
        Error::Super(SuperError::NotFormatted) => {
            format!("{p}: not a Serac disk (no superblock; run `cargo xtask disk create`)")
        }
        Error::Super(SuperError::Corrupt) => format!("{p}: the superblock is corrupt (checksum)"),
        Error::Super(SuperError::Unsupported) => {
            format!("{p}: the superblock is of an unsupported version")
        }
        Error::Super(SuperError::Geometry(_)) => {
            format!("{p}: the superblock states an impossible geometry")
        }
        Error::DeviceTooSmall => format!("{p}: the file is shorter than its superblock says"),
        Error::Corrupt => format!(
            "{p}: Corrupt: neither table copy is valid, the extent table is lost \
             (`cargo xtask disk fsck` says why)"
        ),
        Error::Alloc(a) => format!(
            "{p}: {}",
            match a {
                AllocError::Empty => "an extent needs at least one block",
                AllocError::NoSpace => "no free run of blocks is long enough",
                AllocError::Exists => "an extent of that kind and name exists",
                AllocError::TableFull => "the extent table is full",
                AllocError::NotFound => "no such extent",
                AllocError::BadContent => "bad image content",
                AllocError::NoMemory => "out of memory",
            }
        ),
        Error::SeqExhausted => format!("{p}: the table's sequence number is exhausted"),
    }
}

fn header(v: &Volume<FileDevice>, path: &Path) -> String {
    let g = v.table().geometry();
    let mut s = format!(
        "disk {}: {} blocks ({}), disk id {:016x}\n  metadata: superblock, 2 table copies of {} blocks \
         ({} extents each); extents from block {}\n",
        path.display(),
        g.total_blocks(),
        size(g.total_blocks()),
        g.disk_id(),
        g.table_blocks(),
        g.capacity(),
        g.data_start()
    );
    for (i, st) in v.slots_at_open().iter().enumerate() {
        let cur = if i == v.current_slot() {
            " (current)"
        } else {
            ""
        };
        let _ = writeln!(s, "  table copy {i}: {}{cur}", slot_state(st));
    }
    s
}

/// `disk ls`: the geometry, both copies and the current extent table.
pub fn ls(path: &Path) -> Result<String> {
    let mut v = open(path)?;
    let mut s = header(&v, path);
    let extents = v.table().extents().to_vec();
    let _ = writeln!(
        s,
        "  {:>4}  {:<5}  {:<16}  {:>10}  {:>10}  {:>10}  checksum",
        "id", "kind", "name", "start", "blocks", "size"
    );
    for e in &extents {
        let sum = match e.content {
            None => "-".to_owned(),
            Some(c) => {
                let state = match v.verify_image(e) {
                    Ok(true) => "ok",
                    Ok(false) => "BAD",
                    Err(_) => "unreadable",
                };
                format!("crc32c {:08x} of {} bytes: {state}", c.crc, c.len)
            }
        };
        let _ = writeln!(
            s,
            "  {:>4}  {:<5}  {:<16}  {:>10}  {:>10}  {:>10}  {sum}",
            e.id,
            kind_name(e.kind),
            e.name.as_str(),
            e.start,
            e.blocks,
            size(e.blocks)
        );
    }
    let t = v.table();
    let _ = writeln!(
        s,
        "  {} extent(s), {} of {} data blocks free",
        extents.len(),
        t.free_blocks(),
        t.geometry().data_blocks()
    );
    Ok(s)
}

/// `check` for the test runner (`DiskImage::fsck_after`).
pub fn check_test_disk(path: &Path) -> std::result::Result<(String, bool), String> {
    check(path).map_err(|e| e.to_string())
}

/// `disk fsck`: the report and whether the disk is clean.
pub fn check(path: &Path) -> Result<(String, bool)> {
    let mut dev = FileDevice::open(path)?;
    let r = fsck(&mut dev).map_err(|e| message(path, &e))?;
    let p = path.display();
    let mut s = format!(
        "fsck {p}: superblock ok ({} blocks)\n",
        r.geometry.total_blocks()
    );
    for (i, st) in r.slots.iter().enumerate() {
        let _ = writeln!(s, "  table copy {i}: {}", slot_state(st));
    }
    if let (Some(c), Some(t)) = (&r.current, &r.table) {
        let _ = writeln!(
            s,
            "  current: copy {c} (seq {}), {} extent(s), none overlapping, {} image(s) checked",
            t.seq(),
            t.extents().len(),
            t.extents().iter().filter(|e| e.content.is_some()).count()
        );
    }
    for pr in &r.problems {
        let line = match pr {
            Problem::Copy { slot, error } => {
                let fallback = match r.current {
                    Some(c) => format!("copy {c} is used instead"),
                    None => "and so is the other".into(),
                };
                format!(
                    "table copy {slot} is invalid: {}; {fallback}",
                    copy_error(*error)
                )
            }
            Problem::Blank { slot } => {
                format!("table copy {slot} is blank although the table was updated since format")
            }
            Problem::NoValidCopy => {
                "Corrupt: neither table copy is valid, the extent table is lost".into()
            }
            Problem::Image { id, name } => {
                format!("image {name} (id {id}): its blocks do not match its checksum")
            }
        };
        let _ = writeln!(s, "  PROBLEM: {line}");
    }
    if r.is_clean() {
        let _ = writeln!(s, "fsck {p}: clean");
    } else {
        let _ = writeln!(s, "fsck {p}: {} problem(s)", r.problems.len());
    }
    Ok((s, r.is_clean()))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
mod tests {
    use super::*;

    fn flip(path: &Path, byte: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, byte).unwrap();
        b[0] ^= 0x01;
        f.write_all_at(&b, byte).unwrap();
    }

    fn tree(dir: &Path) {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>hello</h1>\n".repeat(300)).unwrap();
        std::fs::write(dir.join("sub/a.txt"), b"a").unwrap();
    }

    #[test]
    fn create_add_ls_fsck_and_damage() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("disk.img");
        let www = tmp.path().join("www");
        tree(&www);
        create(&img, 4, false).unwrap();
        assert!(create(&img, 4, false).is_err(), "refuses to overwrite");
        let e = add_image(&img, "www", &www).unwrap();
        assert_eq!(e.kind, Kind::Image);
        add_extent(&img, Kind::Swap, "httpd", 64).unwrap();
        add_extent(&img, Kind::Disk, "httpd", 32).unwrap();
        assert!(add_extent(&img, Kind::Swap, "httpd", 1).is_err());
        assert!(add_extent(&img, Kind::Disk, "bad/name", 1).is_err());
        assert!(add_extent(&img, Kind::Disk, "huge", 1 << 20).is_err());

        let out = ls(&img).unwrap();
        assert!(out.contains("www") && out.contains(": ok"), "{out}");
        assert!(out.contains("swap") && out.contains("httpd"), "{out}");
        assert!(out.contains("3 extent(s)"), "{out}");

        // The image is the tar of the tree, and reads back as such.
        let mut v = open(&img).unwrap();
        let c = e.content.unwrap();
        let mut bytes = vec![0u8; (e.blocks as usize) * BLOCK];
        for i in 0..e.blocks {
            let mut b = [0u8; BLOCK];
            v.device().read_block(e.start + i, &mut b).unwrap();
            bytes[i as usize * BLOCK..][..BLOCK].copy_from_slice(&b);
        }
        bytes.truncate(c.len as usize);
        assert_eq!(bytes, pack(&www).unwrap());
        let mut ar = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["index.html", "sub", "sub/a.txt"].map(String::from));
        let current = v.current_slot();
        let g = *v.table().geometry();
        drop(v);

        let (text, clean) = check(&img).unwrap();
        assert!(clean, "{text}");
        assert!(text.contains("clean"));

        // A flipped byte in the current copy: fsck fails, names the copy,
        // and the other (older) copy is used: the last extent is gone.
        flip(&img, g.slot_start(current) * BLOCK as u64 + 100);
        let (text, clean) = check(&img).unwrap();
        assert!(!clean);
        assert!(
            text.contains(&format!(
                "table copy {current} is invalid: checksum mismatch"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("copy {} is used instead", 1 - current)),
            "{text}"
        );
        let out = ls(&img).unwrap();
        assert!(out.contains("2 extent(s)"), "{out}");
        // Both copies: Corrupt.
        flip(&img, g.slot_start(1 - current) * BLOCK as u64 + 7);
        let (text, clean) = check(&img).unwrap();
        assert!(!clean && text.contains("Corrupt"), "{text}");
        let err = ls(&img).unwrap_err().to_string();
        assert!(err.contains("Corrupt"), "{err}");
    }

    #[test]
    fn image_rot_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("d.img");
        let www = tmp.path().join("www");
        tree(&www);
        create(&img, 1, false).unwrap();
        let e = add_image(&img, "www", &www).unwrap();
        flip(&img, e.start * BLOCK as u64 + 600);
        let (text, clean) = check(&img).unwrap();
        assert!(!clean);
        assert!(
            text.contains("image www (id 1): its blocks do not match"),
            "{text}"
        );
        assert!(ls(&img).unwrap().contains("BAD"));
        // The superblock.
        flip(&img, 40);
        let err = check(&img).unwrap_err().to_string();
        assert!(err.contains("superblock is corrupt"), "{err}");
    }

    #[test]
    fn ensure_swap_adds_the_area_once() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("d.img");
        create(&img, 64, false).unwrap();
        assert!(ensure_swap(&img, "swapper", SWAPPER_BLOCKS).unwrap());
        assert!(!ensure_swap(&img, "swapper", SWAPPER_BLOCKS).unwrap());
        let v = open(&img).unwrap();
        let e = v
            .table()
            .find(Kind::Swap, &name("swapper").unwrap())
            .copied();
        assert_eq!(e.map(|e| e.blocks), Some(SWAPPER_BLOCKS));
    }

    #[test]
    fn refresh_replaces_a_changed_image_only() {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("d.img");
        let www = tmp.path().join("www");
        tree(&www);
        create(&img, 4, false).unwrap();
        add_extent(&img, Kind::Disk, "keeper", 8).unwrap();
        assert!(
            refresh_image(&img, "www", &www).unwrap(),
            "no image yet: added"
        );
        assert!(
            !refresh_image(&img, "www", &www).unwrap(),
            "same tree: untouched"
        );
        std::fs::write(www.join("new.html"), b"fresh page").unwrap();
        assert!(
            refresh_image(&img, "www", &www).unwrap(),
            "changed tree: replaced"
        );
        let packed = pack(&www).unwrap();
        let mut v = open(&img).unwrap();
        let images: Vec<_> = v
            .table()
            .extents()
            .iter()
            .filter(|e| e.kind == Kind::Image)
            .copied()
            .collect();
        assert_eq!(images.len(), 1, "the old image is gone");
        assert_eq!(images[0].content.unwrap().len, packed.len() as u64);
        assert!(v.verify_image(&images[0]).unwrap());
        let keeper = Name::new("keeper").unwrap();
        assert!(
            v.table().find(Kind::Disk, &keeper).is_some(),
            "other extents stay"
        );
        let (_, clean) = check(&img).unwrap();
        assert!(clean);
    }

    #[test]
    fn packing_is_deterministic() {
        let tmp = tempfile::tempdir().unwrap();
        tree(&tmp.path().join("a"));
        tree(&tmp.path().join("b"));
        assert_eq!(
            pack(&tmp.path().join("a")).unwrap(),
            pack(&tmp.path().join("b")).unwrap()
        );
        assert!(pack(&tmp.path().join("missing")).is_err());
    }
}
