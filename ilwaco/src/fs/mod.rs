//! Read-only files on a mounted image.
//!
//! An image is a read-only extent of the disk server holding a tar archive
//! (`cargo xtask disk add-image`). [`Image::mount`] walks the archive's
//! headers once, reading 512-byte headers out of 4 KiB blocks and skipping
//! file data, and keeps an index of paths and offsets; [`Image::open`] looks
//! a path up in it and [`File::read`] reads the data blocks as asked.
//!
//! Invariants:
//! - memory is bounded whatever the image holds: one cached block, and an
//!   index of at most [`MAX_ENTRIES`] entries and [`MAX_PATH_BYTES`] bytes
//!   of paths (past that, `TooLarge`); every allocation is a `try_reserve`,
//!   so a full heap is [`FsError::NoMemory`], not an abort;
//! - any bytes mount or fail with a typed error, never a panic (headers
//!   are checked by their checksum, every offset against the extent;
//!   proptested on garbage and on mutated archives);
//! - paths are compared by components: leading `/`, `./`, empty and `.`
//!   components are ignored, in the archive and in a lookup alike; a later
//!   entry of the same path replaces an earlier one, as when extracting;
//! - links are listed but not followed (`Unsupported`).

mod image;
mod tar;

pub use image::{DirEntry, File, FsError, Image, ReadDir, MAX_ENTRIES, MAX_PATH_BYTES, META_MAX};
pub use tar::{EntryKind, TarError};
