//! Building what boots: the kernel, the boot archive and the ISO images.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serac_boot::{archive, bootimg, host, iso};
use serac_protocol::bootimg::ARCHIVE_SUFFIX;

use serac_config::Config;

use crate::util::{cargo, out_dir, size_of, target_dir, Failure, Result, KERNEL_TARGET};

/// The paths `build` produces.
#[derive(Debug, Clone)]
pub struct Built {
    /// `target/serac/kernel.elf`: the kernel without debug info.
    pub kernel: PathBuf,
    /// `target/serac/kernel.sym`: the same kernel with debug info, for gdb.
    pub kernel_sym: PathBuf,
    /// `target/serac/boot.sar`: the boot archive.
    pub archive: PathBuf,
    /// The archive's entries, for tests that need a variant of it.
    pub entries: Vec<(String, Vec<u8>)>,
}

/// Ring-3 programs packed into the boot archive: (cargo package, binary,
/// archive name). The kernel starts `supervisor`; the rest are started by it.
/// Those in [`FIRST_DOMAINS`] are packed as boot images, the others as ELF.
pub const USER_PROGRAMS: &[(&str, &str, &str)] = &[
    ("serac-supervisor", "serac-supervisor", "supervisor"),
    ("serac-swapper", "serac-swapper", "swapper"),
    ("serac-disk", "serac-disk", "disk"),
    ("serac-disk", "bench-disk", "bench-disk"),
    ("serac-vnic", "vnic", "vnic"),
    ("serac-hello", "serac-hello", "hello"),
    ("serac-selftest", "serac-selftest", "selftest"),
    ("serac-pong", "serac-pong", "pong"),
    ("serac-ping", "serac-ping", "ping"),
    ("serac-spinner", "serac-spinner", "spinner"),
    ("serac-ticker", "serac-ticker", "ticker"),
    ("serac-faulter", "serac-faulter", "faulter"),
    ("serac-neighbour", "serac-neighbour", "neighbour"),
    ("serac-idler", "serac-idler", "idler"),
    ("serac-alarm", "serac-alarm", "alarm"),
    ("serac-mapper", "serac-mapper", "mapper"),
    ("serac-toucher", "serac-toucher", "toucher"),
    ("serac-hog", "serac-hog", "hog"),
    ("serac-crashy", "serac-crashy", "crashy"),
    ("serac-crashclient", "serac-crashclient", "crashclient"),
    ("serac-relay", "serac-relay", "relay"),
    ("serac-xferclient", "serac-xferclient", "xferclient"),
    ("serac-waketest", "waketest", "waketest"),
    ("serac-waketest", "wakepoker", "wakepoker"),
    ("serac-chaos", "serac-chaos", "chaos"),
    ("serac-irqtest", "serac-irqtest", "irqtest"),
    ("serac-intruder", "serac-intruder", "intruder"),
    ("serac-prober", "serac-prober", "prober"),
    ("serac-collector", "serac-collector", "collector"),
    ("serac-regrant", "serac-regrant", "regrant"),
    ("serac-catfile", "serac-catfile", "catfile"),
    ("serac-httpd", "serac-httpd", "httpd"),
    ("serac-control", "serac-control", "control"),
    ("serac-udp-echo", "udp-echo", "udp-echo"),
    ("serac-udp-echo", "udp-ping", "udp-ping"),
    ("serac-udp-echo", "udp-census", "udp-census"),
    ("serac-loadgen", "loadgen", "loadgen"),
    ("serac-loadgen", "httpprobe", "httpprobe"),
    ("serac-loadgen", "connhold", "connhold"),
    ("serac-tcpxfer", "net-judge", "net-judge"),
    ("serac-tcpxfer", "xfer-source", "xfer-source"),
    ("serac-tcpxfer", "xfer-paced", "xfer-paced"),
    ("serac-benchkit", "bench-core", "bench-core"),
    ("serac-benchkit", "bench-echo", "bench-echo"),
    ("serac-benchkit", "bench-yielder", "bench-yielder"),
    ("serac-benchkit", "bench-sleeper", "bench-sleeper"),
    ("serac-benchkit", "bench-worker", "bench-worker"),
    ("serac-benchkit", "bench-poller", "bench-poller"),
    ("serac-benchkit", "bench-waiter", "bench-waiter"),
    ("serac-benchkit", "bench-notifier", "bench-notifier"),
    ("serac-benchkit", "bench-target", "bench-target"),
    ("serac-benchkit", "bench-diskclient", "bench-diskclient"),
    ("serac-attacks", "attack-flags", "attack-flags"),
    ("serac-attacks", "attack-x87", "attack-x87"),
    ("serac-attacks", "attack-mmx", "attack-mmx"),
    ("serac-attacks", "attack-sse", "attack-sse"),
    ("serac-attacks", "attack-label", "attack-label"),
    ("serac-attacks", "label-client", "label-client"),
    ("serac-attacks", "attack-handles", "attack-handles"),
    ("serac-attacks", "attack-tables", "attack-tables"),
    ("serac-attacks", "attack-code", "attack-code"),
    ("serac-attacks", "attack-console", "attack-console"),
    ("serac-attacks", "attack-pager", "attack-pager"),
    ("serac-attacks", "pager-victim", "pager-victim"),
    ("serac-attacks", "revoke-pager", "revoke-pager"),
    ("serac-attacks", "revoke-client", "revoke-client"),
    ("serac-swaptest", "patterner", "patterner"),
    ("serac-swaptest", "minipatterner", "minipatterner"),
    ("serac-swaptest", "swapkill", "swapkill"),
    ("serac-swaptest", "swapbench", "swapbench"),
    ("serac-swaptest", "ipcidler", "ipcidler"),
    ("serac-attacks", "devprobe", "devprobe"),
    ("serac-attacks", "device-denied", "device-denied"),
    ("serac-attacks", "attack-disk", "attack-disk"),
    ("serac-diskclient", "diskclient", "diskclient"),
    ("serac-diskclient", "diskcheck", "diskcheck"),
    ("serac-diskclient", "diskthief", "diskthief"),
    ("serac-diskclient", "diskload", "diskload"),
    ("serac-diskclient", "diskcorrupt", "diskcorrupt"),
    ("serac-diskclient", "diskeio", "diskeio"),
    ("serac-diskclient", "diskwriter", "diskwriter"),
    ("serac-diskclient", "diskop", "diskop"),
    ("serac-diskclient", "diskflush", "diskflush"),
    ("serac-nettest", "netping", "netping"),
    ("serac-nettest", "netwatch", "netwatch"),
    ("serac-nettest", "netfuzz", "netfuzz"),
    ("serac-nettest", "netsynflood", "netsynflood"),
    ("serac-nettest", "netping-retry", "netping-retry"),
    ("serac-nettest", "netpong", "netpong"),
    ("serac-nettest", "netspoof", "netspoof"),
    ("serac-nettest", "netflood", "netflood"),
    ("serac-nettest", "netdeaf", "netdeaf"),
    ("serac-nettest", "netecho", "netecho"),
    ("serac-nettest", "netop", "netop"),
];

/// The programs the kernel may start as the first domain (`supervisor`, or
/// `serac.init=NAME` in tests). Each is packed as `NAME.boot`, a boot image
/// digested from its ELF here on the host (`serac_protocol::bootimg`), so the
/// kernel parses no ELF; the supervisor never loads them.
pub const FIRST_DOMAINS: &[&str] = &["supervisor", "irqtest", "selftest"];

/// The configuration packed into the standard archive (tests replace it
/// with their own, `run --config` too): the web host, `configs/web.toml`
/// (`serac_tests::spec::WEB_HOST_CONFIG`), which the QEMU tests `net_curl`
/// and `net_wrk` boot too. `cargo xtask tcb` reads it for privileged domains.
pub fn default_config() -> Config {
    Config::new(serac_tests::spec::WEB_HOST_CONFIG)
}

/// `config` packed: the archive entry `manifest`.
pub fn manifest(config: &Config) -> Result<Vec<u8>> {
    config.pack().map_err(Failure)
}

/// The files packed into the boot archive, in order: the manifest, then
/// each user program's stripped ELF (written to `out/<name>.elf` by
/// [`build`]), or for a first-domain program its boot image `<name>.boot`.
pub fn archive_entries(out: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut entries = vec![("manifest".to_owned(), manifest(&default_config())?)];
    for (_, _, name) in USER_PROGRAMS {
        let path = out.join(format!("{name}.elf"));
        let bytes =
            fs::read(&path).map_err(|e| Failure(format!("read {}: {e}", path.display())))?;
        if FIRST_DOMAINS.contains(name) {
            let image = bootimg::from_elf(&bytes)
                .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
            entries.push((format!("{name}{ARCHIVE_SUFFIX}"), image));
        } else {
            entries.push(((*name).to_owned(), bytes));
        }
    }
    Ok(entries)
}

/// Builds the ring-3 programs and writes stripped copies to `out`.
fn build_user_programs(out: &Path) -> Result {
    let mut cmd = cargo();
    cmd.args(["build", "--target", KERNEL_TARGET, "--release"]);
    let mut packages: Vec<&str> = USER_PROGRAMS.iter().map(|p| p.0).collect();
    packages.dedup();
    for package in packages {
        cmd.args(["-p", package]);
    }
    eprintln!("xtask: building ring-3 programs ({})", USER_PROGRAMS.len());
    host::run(&mut cmd).map_err(|e| Failure(format!("user program build failed: {e}")))?;
    let objcopy = llvm_objcopy();
    for (_, bin, name) in USER_PROGRAMS {
        let built = target_dir().join(KERNEL_TARGET).join("release").join(bin);
        let dest = out.join(format!("{name}.elf"));
        match &objcopy {
            Some(objcopy) => host::run(
                Command::new(objcopy)
                    .arg("--strip-all")
                    .arg(&built)
                    .arg(&dest),
            )?,
            None => {
                fs::copy(&built, &dest)
                    .map_err(|e| Failure(format!("copy {}: {e}", built.display())))?;
            }
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result {
    fs::write(path, bytes).map_err(|e| Failure(format!("write {}: {e}", path.display())))
}

/// llvm-objcopy from the llvm-tools component of the active toolchain.
fn llvm_objcopy() -> Option<PathBuf> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let vv = Command::new("rustc").arg("-vV").output().ok()?;
    let host_triple = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))?;
    let p = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib")
        .join(host_triple)
        .join("bin/llvm-objcopy");
    p.is_file().then_some(p)
}

/// Builds the kernel (release) and the boot archive into `target/serac`.
pub fn build() -> Result<Built> {
    let out = out_dir();
    fs::create_dir_all(&out).map_err(|e| Failure(format!("create {}: {e}", out.display())))?;

    eprintln!("xtask: building the kernel (cargo build -p serac-kernel --target {KERNEL_TARGET} --release)");
    host::run(cargo().args([
        "build",
        "-p",
        "serac-kernel",
        "--target",
        KERNEL_TARGET,
        "--release",
    ]))
    .map_err(|e| Failure(format!("kernel build failed: {e}")))?;
    let built = target_dir()
        .join(KERNEL_TARGET)
        .join("release")
        .join("serac-kernel");
    let kernel = out.join("kernel.elf");
    let kernel_sym = out.join("kernel.sym");
    fs::copy(&built, &kernel_sym).map_err(|e| {
        Failure(format!(
            "copy {} to {}: {e}",
            built.display(),
            kernel_sym.display()
        ))
    })?;
    // kernel.elf drops the debug info (smaller ISO, faster loads); the
    // segments, notes and symbols are unchanged.
    match llvm_objcopy() {
        Some(objcopy) => host::run(
            Command::new(objcopy)
                .arg("--strip-debug")
                .arg(&kernel_sym)
                .arg(&kernel),
        )?,
        None => {
            eprintln!("xtask: llvm-objcopy (rustup component llvm-tools) not found; kernel.elf keeps its debug info");
            fs::copy(&kernel_sym, &kernel)
                .map_err(|e| Failure(format!("copy to {}: {e}", kernel.display())))?;
        }
    }

    build_user_programs(&out)?;
    let entries = archive_entries(&out)?;
    let bytes = archive::build(&entries)?;
    let archive = out.join("boot.sar");
    write(&archive, &bytes)?;

    eprintln!("xtask: built");
    eprintln!("  {:<28} {}", kernel.display(), size_of(&kernel));
    eprintln!(
        "  {:<28} {} (with debug info, for gdb)",
        kernel_sym.display(),
        size_of(&kernel_sym)
    );
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!(
        "  {:<28} {} ({})",
        archive.display(),
        size_of(&archive),
        names.join(", ")
    );
    Ok(Built {
        kernel,
        kernel_sym,
        archive,
        entries,
    })
}

/// Writes an ISO booting `built` with `cmdline` to `output`.
pub fn iso(built: &Built, cmdline: &str, output: &Path) -> Result {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    iso::build(&iso::IsoSpec {
        kernel: &built.kernel,
        archive: &built.archive,
        cmdline,
        output,
        staging: &out_dir().join("iso-staging").join(stem),
    })?;
    Ok(())
}

/// `target/serac.iso`, the user image (empty command line).
pub fn user_iso_path() -> PathBuf {
    target_dir().join("serac.iso")
}
