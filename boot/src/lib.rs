//! Host-side image builders, used by `cargo xtask`.
//!
//! - [`archive`] packs named files into a boot archive ("SAR"), in exactly the
//!   format that `serac_protocol::bootarc` parses.
//! - [`iso`] writes a GRUB `grub.cfg` and runs `grub-mkrescue` to produce one
//!   ISO that boots under BIOS and UEFI, with the kernel and the boot archive
//!   as multiboot2 modules.
//! - [`host`] runs external programs so that a missing program is reported by
//!   name, together with the Debian package that provides it.
//!
//! Invariant: every archive [`archive::build`] returns parses back with
//! `serac_protocol::bootarc::Archive` and yields the same entries in order.
//! This crate is host-only (std) and has no `unsafe`.
#![forbid(unsafe_code)]

pub mod archive;
mod error;
pub mod host;
pub mod iso;

pub use error::Error;
