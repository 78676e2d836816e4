//! QEMU command lines, shared by `cargo xtask run`, `gdb` and the tests.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use serac_boot::Error;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slow but predictable, and the default (the
    /// `/dev/kvm` of some hosts is itself emulated and slower than TCG).
    Tcg,
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
}

impl Accel {
    /// Whether `/dev/kvm` can be opened for reading and writing.
    pub fn kvm_usable() -> bool {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
    }

    /// KVM if asked for and usable, else TCG; the message says why KVM was
    /// not used when it was asked for.
    pub fn choose(want_kvm: bool) -> (Accel, Option<String>) {
        if !want_kvm {
            (Accel::Tcg, None)
        } else if Self::kvm_usable() {
            (Accel::Kvm, None)
        } else {
            (
                Accel::Tcg,
                Some("--kvm: /dev/kvm is missing or not readable and writable; using TCG".into()),
            )
        }
    }

    /// The CPU model: everything TCG emulates, or the host CPU under KVM.
    /// `-arch-capabilities` because some nested or emulated KVMs refuse to
    /// set that MSR (QEMU then aborts); Serac does not read it.
    fn cpu(self) -> &'static str {
        match self {
            Accel::Tcg => "max",
            Accel::Kvm => "host,-arch-capabilities",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// The firmware an ISO boots under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default BIOS.
    SeaBios,
    /// UEFI (EDK II's OVMF).
    Ovmf,
}

/// OVMF code and variable-store templates, as installed by a distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovmf {
    /// Read-only firmware code.
    pub code: PathBuf,
    /// Template for the variable store; each run gets a fresh copy.
    pub vars: PathBuf,
}

/// (code, vars) pairs we know, most preferred first. Secure-boot builds are
/// left out: they need SMM and enrolled keys.
const OVMF_CANDIDATES: &[(&str, &str)] = &[
    // Debian, Ubuntu (package `ovmf`).
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    // Fedora (edk2-ovmf).
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
    // Arch (edk2-ovmf).
    (
        "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
        "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
    ),
    (
        "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
        "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd",
    ),
    // openSUSE (qemu-ovmf-x86_64).
    (
        "/usr/share/qemu/ovmf-x86_64-code.bin",
        "/usr/share/qemu/ovmf-x86_64-vars.bin",
    ),
];

impl Ovmf {
    /// Finds an installed OVMF, or says what to install.
    pub fn locate() -> Result<Ovmf, Error> {
        OVMF_CANDIDATES
            .iter()
            .map(|&(c, v)| (Path::new(c), Path::new(v)))
            .find(|(c, v)| c.is_file() && v.is_file())
            .map(|(c, v)| Ovmf {
                code: c.to_path_buf(),
                vars: v.to_path_buf(),
            })
            .ok_or_else(|| Error::Missing {
                path: PathBuf::from(OVMF_CANDIDATES[0].0),
                hint: format!(
                    "no OVMF firmware found (looked for {}); install it with `sudo apt-get install -y ovmf`",
                    OVMF_CANDIDATES
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// What the machine boots.
#[derive(Debug, Clone)]
pub enum Media {
    /// The PVH entry: `-kernel`, `-initrd`, `-append`.
    Pvh {
        /// Kernel ELF.
        kernel: PathBuf,
        /// Boot archive.
        initrd: PathBuf,
        /// Kernel command line.
        cmdline: String,
    },
    /// A CD image under a firmware.
    Iso {
        /// The ISO.
        iso: PathBuf,
        /// The firmware.
        firmware: Firmware,
    },
}

/// Where COM1 goes.
#[derive(Debug, Clone)]
pub enum Serial {
    /// The terminal, multiplexed with the QEMU monitor (Ctrl-A C; Ctrl-A X quits).
    Terminal,
    /// A file (overwritten).
    File(PathBuf),
    /// A unix socket QEMU listens on and waits for before it starts: the
    /// runner copies what comes out to the log and types into it.
    Socket(PathBuf),
}

/// A QEMU machine: q35, `-cpu max` (TCG) or `host` (KVM), 256 MiB, no display, no network,
/// isa-debug-exit at port 0xf4, and `-no-reboot` so a triple fault ends QEMU.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Accelerator.
    pub accel: Accel,
    /// Boot media.
    pub media: Media,
    /// Serial port destination.
    pub serial: Serial,
    /// Start a gdb server on :1234 and wait for it (`-s -S`).
    pub gdb: bool,
    /// Where to put the fresh OVMF variable store, when OVMF is used.
    pub ovmf_vars: PathBuf,
    /// Extra arguments appended last.
    pub extra: Vec<OsString>,
}

impl Machine {
    /// The QEMU command. For OVMF this copies a fresh variable store to
    /// `self.ovmf_vars` first, so runs never see each other's NVRAM.
    pub fn command(&self) -> Result<Command, Error> {
        let mut c = Command::new(QEMU);
        c.args(["-M", "q35", "-cpu", self.accel.cpu(), "-m", "256M"]);
        c.args(["-accel", self.accel.arg()]);
        c.args(["-display", "none", "-no-reboot", "-nic", "none"]);
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        match &self.serial {
            Serial::Terminal => {
                c.args(["-serial", "mon:stdio"]);
            }
            Serial::File(p) => {
                let mut a = OsString::from("file:");
                a.push(p);
                c.arg("-serial").arg(a);
            }
            Serial::Socket(p) => {
                let mut a = OsString::from("unix:");
                a.push(p);
                a.push(",server=on,wait=on");
                c.arg("-serial").arg(a);
            }
        }
        match &self.media {
            Media::Pvh {
                kernel,
                initrd,
                cmdline,
            } => {
                c.arg("-kernel").arg(kernel);
                c.arg("-initrd").arg(initrd);
                c.arg("-append").arg(cmdline);
            }
            Media::Iso { iso, firmware } => {
                if *firmware == Firmware::Ovmf {
                    let ovmf = Ovmf::locate()?;
                    if let Some(dir) = self.ovmf_vars.parent() {
                        fs::create_dir_all(dir)
                            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                    }
                    fs::copy(&ovmf.vars, &self.ovmf_vars).map_err(|e| {
                        Error::io(
                            format!(
                                "copy {} to {}",
                                ovmf.vars.display(),
                                self.ovmf_vars.display()
                            ),
                            e,
                        )
                    })?;
                    let mut code = OsString::from("if=pflash,format=raw,readonly=on,file=");
                    code.push(&ovmf.code);
                    let mut vars = OsString::from("if=pflash,format=raw,file=");
                    vars.push(&self.ovmf_vars);
                    c.arg("-drive").arg(code).arg("-drive").arg(vars);
                }
                c.arg("-cdrom").arg(iso).args(["-boot", "d"]);
            }
        }
        if self.gdb {
            c.args(["-s", "-S"]);
        }
        c.args(&self.extra);
        Ok(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn pvh_command() {
        let m = Machine {
            accel: Accel::Tcg,
            media: Media::Pvh {
                kernel: "k.elf".into(),
                initrd: "b.sar".into(),
                cmdline: "serac.test=boot".into(),
            },
            serial: Serial::File("t.log".into()),
            gdb: false,
            ovmf_vars: "v.fd".into(),
            extra: vec![],
        };
        let a = args(&m.command().unwrap()).join(" ");
        assert!(a.contains("-kernel k.elf -initrd b.sar -append serac.test=boot"));
        assert!(a.contains("-serial file:t.log"));
        assert!(a.contains("-accel tcg"));
        assert!(a.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(a.contains("-no-reboot"));
        assert!(!a.contains("-S"));
    }
}
