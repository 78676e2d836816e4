//! Host-side image builders, used by `cargo xtask`.
//!
//! - [`archive`] packs named files into a boot archive ("SAR"), in exactly the
//!   format that `serac_protocol::bootarc` parses.
//! - [`bootimg`] digests the first domain's ELF into the page runs that
//!   `serac_protocol::bootimg` parses (the kernel reads no ELF).
//! - [`iso`] writes a GRUB `grub.cfg` and runs `grub-mkrescue` to produce one
//!   ISO that boots under BIOS and UEFI, with the kernel and the boot archive
//!   as multiboot2 modules.
//! - [`host`] runs external programs so that a missing program is reported by
//!   name, together with the Debian package that provides it.
//!
//! Invariant: every archive [`archive::build`] returns parses back with
//! `serac_protocol::bootarc::Archive` and yields the same entries in order,
//! and every image [`bootimg::from_elf`] returns parses with
//! `serac_protocol::bootimg::BootImage`.
//! This crate is host-only (std) and has no `unsafe`.
#![forbid(unsafe_code)]

pub mod archive;
pub mod bootimg;
mod error;
pub mod host;
pub mod iso;

pub use error::Error;
