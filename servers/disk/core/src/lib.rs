//! The disk server's core, kept free of syscalls so the host can test it.
//!
//! - [`layout`]: the geometry and the superblock (block 0).
//! - [`extent`]: what an extent is (kind, name, blocks) and its 64-byte entry.
//! - [`table`]: the extent table, its allocator and the codec of one table
//!   copy (checksummed with CRC-32C as a whole).
//! - [`volume`]: a formatted device behind the [`BlockDevice`] trait:
//!   format, open (the valid copy with the highest sequence number),
//!   commit (always into the other copy, then flush), fsck.
//! - [`request`]: checking a client's read, write or flush against its
//!   extent and translating it to device blocks.
//! - [`clients`]: who may open which extent, and the table of open ones.
//! - [`pci`]: BAR sizing emulated over a kernel that owns the BARs.
//! - [`bench`]: the disk benchmark's workloads, shared by its client and
//!   the server's direct runs.
//!
//! The layout and the crash-safety argument are in docs/disk-format.md.
//!
//! Invariants: every byte read from the device is untrusted and nothing here
//! panics on it (proptested); no two extents of a table overlap each other
//! or the metadata area; a commit never writes the copy that holds the
//! current table, so a crash at any point leaves it readable; an operation
//! reports success only after its data and table are flushed.
//!
//! Memory: the table is a `Vec` grown only after `try_reserve`, so a table
//! too large for the heap is `NoMemory`, never an abort; I/O goes one
//! block at a time, with no buffer of a whole table copy.
#![no_std]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test, not a defect.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod bench;
pub mod checksum;
pub mod clients;
pub mod extent;
pub mod layout;
pub mod pci;
pub mod request;
pub mod table;
pub mod volume;

#[cfg(test)]
mod fake;

pub use clients::Clients;
pub use extent::{Content, Extent, Kind, Name, NameError};
pub use layout::{Block, Geometry, GeometryError, SuperError, BLOCK};
pub use request::{check_blocks, check_piece, check_request, Checked, IoError, Piece};
pub use table::{AllocError, CopyError, Table};
pub use volume::{fsck, plan_image, BlockDevice, Error, Problem, Report, SlotState, Volume};
