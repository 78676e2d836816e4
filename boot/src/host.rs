//! Running external programs with useful errors.
//!
//! `std::process::Command` reports a missing program as a bare "No such file
//! or directory". Every spawn in xtask goes through this module instead, so
//! the message names the program and the Debian package that provides it.

use std::env;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};

use crate::Error;

/// The Debian packages xtask needs, in one `apt-get install` line.
pub const APT_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    "ovmf",
];

/// The Debian package that provides `program`, when we know it.
pub fn package_for(program: &str) -> Option<&'static str> {
    Some(match program {
        "qemu-system-x86_64" | "qemu-img" => "qemu-system-x86",
        "grub-mkrescue" | "grub-file" => "grub-common",
        "xorriso" => "xorriso",
        "mformat" | "mcopy" => "mtools",
        "gdb" => "gdb",
        "cargo" | "rustup" | "rustc" => "rustup",
        "apt-get" => "apt",
        _ => return None,
    })
}

/// Finds `program` in `PATH`, like `which`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let p = Path::new(program);
    if p.components().count() > 1 {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|cand| cand.is_file())
}

fn program_name(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Renders a command as a shell-like line, for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = program_name(cmd);
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

fn quote(a: &OsStr) -> String {
    let a = a.to_string_lossy();
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        a.into_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn spawn_error(cmd: &Command, e: io::Error) -> Error {
    let program = program_name(cmd);
    if e.kind() == io::ErrorKind::NotFound {
        let package = package_for(
            Path::new(&program)
                .file_name()
                .and_then(OsStr::to_str)
                .unwrap_or(&program),
        );
        Error::MissingProgram { program, package }
    } else {
        Error::Spawn { program, source: e }
    }
}

/// Starts `cmd`; a missing program becomes [`Error::MissingProgram`].
pub fn spawn(cmd: &mut Command) -> Result<Child, Error> {
    cmd.spawn().map_err(|e| spawn_error(cmd, e))
}

/// Runs `cmd` with inherited stdio and returns its exit status, whatever it is.
pub fn status(cmd: &mut Command) -> Result<ExitStatus, Error> {
    cmd.status().map_err(|e| spawn_error(cmd, e))
}

/// Runs `cmd` with inherited stdio; a non-zero exit is an error.
pub fn run(cmd: &mut Command) -> Result<(), Error> {
    let st = status(cmd)?;
    if st.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command: display(cmd),
            status: st.to_string(),
            output: String::new(),
        })
    }
}

/// Runs `cmd` capturing stdout and stderr; a non-zero exit is an error that
/// carries the last lines of its output.
pub fn output(cmd: &mut Command) -> Result<Output, Error> {
    let out = cmd.output().map_err(|e| spawn_error(cmd, e))?;
    if out.status.success() {
        Ok(out)
    } else {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(Error::CommandFailed {
            command: display(cmd),
            status: out.status.to_string(),
            output: tail(&text, 30),
        })
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_program() {
        let err = run(&mut Command::new("serac-no-such-program")).unwrap_err();
        assert!(matches!(err, Error::MissingProgram { .. }), "{err}");
        assert!(err.to_string().contains("serac-no-such-program"));
    }

    #[test]
    fn missing_known_program_names_package() {
        let e = spawn_error(
            &Command::new("grub-mkrescue"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(
            e.to_string().contains("apt-get install -y grub-common"),
            "{e}"
        );
    }

    #[test]
    fn display_quotes() {
        let mut c = Command::new("qemu");
        c.args(["-append", "a b", "x=y"]);
        assert_eq!(display(&c), "qemu -append 'a b' x=y");
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
