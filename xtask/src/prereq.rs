//! Prerequisite checks: the Rust target and components, and the host
//! programs (QEMU, GRUB, xorriso, mtools, OVMF). Missing pieces are installed
//! when that is safe (rustup always; apt-get only as root on Debian),
//! otherwise the exact command to run is printed.

use std::path::Path;
use std::process::Command;

use serac_boot::host::{self, APT_PACKAGES};
use serac_boot::iso::GRUB_PLATFORMS;
use serac_tests::qemu::{Ovmf, QEMU};

use crate::util::{Failure, Result, KERNEL_TARGET};

/// What a subcommand needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The kernel target and llvm-tools (every build).
    pub kernel: bool,
    /// rustfmt and clippy (`test`).
    pub lint: bool,
    /// qemu-system-x86_64.
    pub qemu: bool,
    /// grub-mkrescue, xorriso, mtools and GRUB's BIOS and EFI modules.
    pub iso: bool,
    /// OVMF firmware.
    pub ovmf: bool,
}

/// Checks (and where possible installs) everything in `needs`.
pub fn ensure(needs: Needs) -> Result {
    if needs.kernel || needs.lint {
        ensure_rust(needs)?;
    }
    ensure_system(needs)
}

fn rustup_lines(args: &[&str]) -> Result<Vec<String>> {
    let out = host::output(Command::new("rustup").args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .collect())
}

fn ensure_rust(needs: Needs) -> Result {
    if host::find_program("rustup").is_none() {
        eprintln!(
            "warning: rustup not found; cannot check for the {KERNEL_TARGET} target and \
             components (install rustup from your distribution or rustup.rs)"
        );
        return Ok(());
    }
    // Run from the root so rust-toolchain.toml picks the toolchain.
    let targets = rustup_lines(&["target", "list", "--installed"])?;
    if !targets.iter().any(|t| t == KERNEL_TARGET) {
        eprintln!(
            "xtask: installing the {KERNEL_TARGET} target: rustup target add {KERNEL_TARGET}"
        );
        host::run(Command::new("rustup").args(["target", "add", KERNEL_TARGET]))?;
    }
    let installed = rustup_lines(&["component", "list", "--installed"])?;
    let mut wanted = vec!["llvm-tools"];
    if needs.lint {
        wanted.extend(["rustfmt", "clippy"]);
    }
    for c in wanted {
        if !installed.iter().any(|i| i.starts_with(c)) {
            eprintln!("xtask: installing the {c} component: rustup component add {c}");
            host::run(Command::new("rustup").args(["component", "add", c]))?;
        }
    }
    Ok(())
}

/// Missing system packages, each with what was missing.
fn missing_packages(needs: Needs) -> Vec<(&'static str, String)> {
    let mut missing = Vec::new();
    let mut program = |name: &str, pkg: &'static str| {
        if host::find_program(name).is_none() {
            missing.push((pkg, format!("program `{name}`")));
        }
    };
    if needs.qemu {
        program(QEMU, "qemu-system-x86");
    }
    if needs.iso {
        program("grub-mkrescue", "grub-common");
        program("xorriso", "xorriso");
        program("mformat", "mtools");
        for (dir, pkg) in GRUB_PLATFORMS {
            if !Path::new(dir).is_dir() {
                missing.push((pkg, format!("directory {dir}")));
            }
        }
    }
    if needs.ovmf && Ovmf::locate().is_err() {
        missing.push((
            "ovmf",
            "OVMF firmware (OVMF_CODE*.fd, OVMF_VARS*.fd)".into(),
        ));
    }
    missing
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt_install(pkgs: &[&str]) -> bool {
    let install = || {
        host::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y"])
                .args(pkgs),
        )
    };
    match install() {
        Ok(()) => return true,
        Err(e) => eprintln!("xtask: {e}\nxtask: running apt-get update and retrying"),
    }
    let retry = host::run(Command::new("apt-get").arg("update")).and_then(|()| install());
    if let Err(e) = &retry {
        eprintln!("xtask: {e}");
    }
    retry.is_ok()
}

fn ensure_system(needs: Needs) -> Result {
    let missing = missing_packages(needs);
    if missing.is_empty() {
        return Ok(());
    }
    let mut pkgs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    pkgs.sort_unstable();
    pkgs.dedup();
    let what: Vec<String> = missing
        .iter()
        .map(|(p, w)| format!("  - {w} (Debian package {p})"))
        .collect();
    let what = what.join("\n");
    if is_root() && Path::new("/etc/debian_version").exists() {
        eprintln!(
            "xtask: missing:\n{what}\nxtask: installing: apt-get install -y {}",
            pkgs.join(" ")
        );
        if apt_install(&pkgs) && missing_packages(needs).is_empty() {
            return Ok(());
        }
        return Err(Failure(format!(
            "could not install {} with apt-get; still missing:\n{what}",
            pkgs.join(" ")
        )));
    }
    Err(Failure(format!(
        "missing prerequisites:\n{what}\nInstall them (Debian/Ubuntu) with:\n    sudo apt-get install -y {}",
        APT_PACKAGES.join(" ")
    )))
}
