//! Errors, paths and small helpers shared by the subcommands.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A failure to report to the user; the message says what to do.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure(s.to_owned())
    }
}

impl From<serac_boot::Error> for Failure {
    fn from(e: serac_boot::Error) -> Self {
        Failure(e.to_string())
    }
}

/// Result of a subcommand.
pub type Result<T = ()> = std::result::Result<T, Failure>;

/// The kernel's target triple.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The repository root (the workspace directory).
pub fn root() -> PathBuf {
    // xtask lives one level below the root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory, relative to the root unless overridden.
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

/// Where xtask puts what it builds: `target/serac`.
pub fn out_dir() -> PathBuf {
    target_dir().join("serac")
}

/// The cargo that runs us (so the pinned toolchain is used), or `cargo`.
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// File size, for messages.
pub fn size_of(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) if m.len() >= 1 << 20 => format!("{:.1} MiB", m.len() as f64 / f64::from(1 << 20)),
        Ok(m) if m.len() >= 1 << 10 => format!("{:.1} KiB", m.len() as f64 / 1024.0),
        Ok(m) => format!("{} bytes", m.len()),
        Err(_) => "missing".into(),
    }
}
