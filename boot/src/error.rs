//! The one error type of the builders.

use std::fmt;
use std::path::PathBuf;

/// Why building an archive or an image failed.
#[derive(Debug)]
pub enum Error {
    /// An archive entry name is empty, longer than the name field, or
    /// contains a NUL byte.
    BadName(String),
    /// Two archive entries have the same name.
    DuplicateName(String),
    /// More entries than `bootarc::MAX_ENTRIES`.
    TooManyEntries(usize),
    /// The archive would not fit the 32-bit offsets of the format.
    TooLarge,
    /// An ELF cannot become a boot image; the reason says why.
    BadBootImage(String),
    /// A kernel command line that cannot be put in `grub.cfg` (e.g. it holds
    /// a newline).
    BadCmdline(String),
    /// A file operation failed.
    Io {
        /// What we were doing, e.g. "write target/serac/boot.sar".
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external program is not installed.
    MissingProgram {
        /// The program name, e.g. `grub-mkrescue`.
        program: String,
        /// The Debian package providing it, if known.
        package: Option<&'static str>,
    },
    /// An external program could not be started for another reason.
    Spawn {
        /// The program name.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external program ran and failed.
    CommandFailed {
        /// The command line, for the user to rerun.
        command: String,
        /// Its exit status, as text.
        status: String,
        /// The tail of its output, if it was captured.
        output: String,
    },
    /// A required file or directory does not exist.
    Missing {
        /// What is missing.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
}

impl Error {
    /// Wraps an I/O error with what we were doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadName(n) => write!(
                f,
                "bad boot-archive entry name {n:?}: must be 1..={} bytes of UTF-8 without NUL",
                serac_protocol::bootarc::NAME_LEN
            ),
            Error::DuplicateName(n) => write!(f, "boot-archive entry {n:?} appears twice"),
            Error::TooManyEntries(n) => write!(
                f,
                "{n} boot-archive entries, at most {} allowed",
                serac_protocol::bootarc::MAX_ENTRIES
            ),
            Error::TooLarge => write!(f, "boot archive would exceed 4 GiB"),
            Error::BadBootImage(why) => write!(f, "cannot make a boot image: {why}"),
            Error::BadCmdline(c) => write!(f, "kernel command line {c:?} cannot go in grub.cfg"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::MissingProgram { program, package } => {
                write!(f, "`{program}` is not installed (not found in PATH)")?;
                if let Some(p) = package {
                    write!(
                        f,
                        "; it comes with the Debian package `{p}`: sudo apt-get install -y {p}"
                    )?;
                }
                Ok(())
            }
            Error::Spawn { program, source } => write!(f, "could not start `{program}`: {source}"),
            Error::CommandFailed {
                command,
                status,
                output,
            } => {
                write!(f, "`{command}` failed ({status})")?;
                if !output.is_empty() {
                    write!(f, "; its output ended with:\n{output}")?;
                }
                Ok(())
            }
            Error::Missing { path, hint } => write!(f, "{} is missing: {hint}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Spawn { source, .. } => Some(source),
            _ => None,
        }
    }
}
