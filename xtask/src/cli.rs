//! Hand-rolled argument parsing and the help texts.

use std::path::PathBuf;

/// Top-level help.
pub const HELP: &str = "\
cargo xtask: build, run and test Serac.

Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  build   Build the kernel and the boot archive into target/serac/
  image   Build, then write the bootable USB/CD image target/serac.iso
  run     Build, then boot Serac in QEMU with the serial console on this terminal
  test    Run everything CI runs: fmt, clippy, TCB audit, host tests, QEMU tests
  gdb     Boot Serac in QEMU halted, waiting for gdb on :1234
  tcb     Audit the trusted computing base: kernel size, unsafe, syscalls, deps
  bench   Measure in QEMU: the microkernel (`bench core`), the disk server (`bench disk`),
          the network (`bench net`), swapping (`bench swap`), web scale (`bench web`)
  disk    Make and check disk images: create, add-image, add-disk, add-swap, ls, fsck
  swap-sim  Replay page-access traces through the swapper's replacement policies
  push      Sign a service and push it to a running host (`cargo xtask run`)
  help    Print this help, or a command's help (`cargo xtask help run`)

Each command checks its prerequisites first (rustup target and components,
QEMU, GRUB, xorriso, mtools, OVMF). As root on Debian it installs missing
packages with apt-get; otherwise it prints the command to run.

Run `cargo xtask <COMMAND> --help` for a command's options.
";

const BUILD_HELP: &str = "\
cargo xtask build: build the kernel and the boot archive.

Usage: cargo xtask build

Runs `cargo build -p serac-kernel --target x86_64-unknown-none --release` and
writes:
  target/serac/kernel.elf   the kernel (PVH note + multiboot2 header), no debug info
  target/serac/kernel.sym   the same kernel with debug info, for gdb
  target/serac/boot.sar     the boot archive (manifest; later the servers)
";

const IMAGE_HELP: &str = "\
cargo xtask image: build, then write a bootable ISO.

Usage: cargo xtask image

Writes target/serac.iso with grub-mkrescue: one image that boots under BIOS
and UEFI, from a CD or a USB stick. GRUB loads the kernel with multiboot2 and
the boot archive as a module, with an empty kernel command line, and mirrors
its console to the first serial port. Prints how to write it to a USB stick.
";

pub const RUN_HELP: &str = "\
cargo xtask run: build, then boot Serac in QEMU.

Usage: cargo xtask run [--config NAME] [--kvm] [--iso] [--ovmf] [--cmdline STR] [--pcap FILE] [-- QEMU ARGS...]

Options:
  --kvm          Use KVM if /dev/kvm is usable (else warn and use TCG).
                 The default is TCG: some hosts' /dev/kvm is slower than TCG.
  --iso          Boot the GRUB ISO (multiboot2) instead of the PVH fast path.
  --ovmf         Boot the ISO under UEFI (OVMF) instead of SeaBIOS; implies --iso.
  --cmdline STR  Kernel command line, e.g. `serac.test=boot`.
  --pcap FILE    Record every frame on the vnic's uplink to FILE (pcap).
  --config NAME  Boot the manifest configs/NAME.toml (default: web, the web
                 host; docs/operating.md lists the keys). The list follows.
  -- ARGS...     Extra arguments passed to qemu-system-x86_64 as they are.

The serial console is this terminal. Leave QEMU with Ctrl-A X
(Ctrl-A C switches to the QEMU monitor and back).
";

const TEST_HELP: &str = "\
cargo xtask test: run everything CI runs, in order.

Usage: cargo xtask test [--kvm] [--filter STR]

Steps:
  fmt            cargo fmt --all --check
  clippy-host    cargo clippy --all-targets -- -D warnings   (host crates)
  clippy-target  cargo clippy --workspace --exclude xtask --exclude serac-tests
                 --exclude serac-boot --exclude serac-config
                 --target x86_64-unknown-none -- -D warnings
                 (the kernel and every ring-3 crate)
  clippy-host-ilwaco  cargo clippy -p ilwaco --tests -- -D warnings
  tcb            the `cargo xtask tcb` audit (fails on undocumented kernel unsafe,
                 unsafe outside sys/hal modules, or a kernel over its line budget)
  host-tests     cargo test   (host crates)
  host-tests-ilwaco  cargo test -p ilwaco --lib   (Ilwaco's tests run on the host)
  build          build the kernel and boot archive (needed by the QEMU tests)
  qemu:<name>    each QEMU test (see tests/src/spec.rs): boots Serac, checks the
                 serial lines and the exit status, with a hard timeout.
                 Serial logs go to target/serac/tests/<name>.log.

Options:
  --kvm          Use KVM for the QEMU tests if /dev/kvm is usable.
  --filter STR   Only steps and tests whose name contains STR (`build` runs
                 whenever a QEMU test is selected).

Prints ok/FAILED with the time of each, and ends with `N passed, M failed`;
exits non-zero if anything failed. .ci/run runs exactly `cargo xtask test`.
";

const GDB_HELP: &str = "\
cargo xtask gdb: debug the kernel with gdb.

Usage: cargo xtask gdb [--attach] [--cmdline STR] [-- QEMU ARGS...]

Builds, then boots the PVH kernel in QEMU (TCG) with `-s -S`: halted before
the first instruction, with a gdb server on localhost:1234.

Without --attach, QEMU runs in this terminal (serial console here; leave with
Ctrl-A X) and the gdb command to run in another terminal is printed:
    gdb -ex 'target remote :1234' target/serac/kernel.sym
With --attach, QEMU runs in the background (serial to target/serac/gdb-serial.log)
and gdb starts here; QEMU is stopped when gdb exits.

Options:
  --attach       Start gdb in this terminal.
  --cmdline STR  Kernel command line.
";

const TCB_HELP: &str = "\
cargo xtask tcb: audit the trusted computing base.

Usage: cargo xtask tcb [--json]

Reports:
  - the kernel's lines of code (microkernel/src, microkernel/core/src and
    microkernel/build.rs; no blank lines, comments or #[cfg(test)] items), per
    file and split into arch / core / other, against the budget in
    tcb-budget.toml;
  - the kernel's `unsafe` blocks, impls and fn/extern declarations, and every
    block or impl without a `// SAFETY:` comment directly above it (or above
    the statement it is part of);
  - the unsafe in ilwaco/src, servers/*/src and apps/*/src, and any of it
    outside the modules allowed to hold it (files or directories named sys or
    hal);
  - the syscalls (protocol/src/syscall.rs);
  - the crates linked into the kernel (cargo tree), with the workspace's own
    crates and the build-time-only proc macros listed apart;
  - the domains the boot manifest makes privileged (device, I/O-port or DMA
    handles); none until the manifest grants handles.

Options:
  --json         Print one JSON object on stdout instead of the report.

Exits non-zero, saying why on stderr, if a kernel unsafe block or impl is
undocumented, if unsafe appears outside sys/hal modules, or if the kernel is
over its line budget. `cargo xtask test` runs the same audit as its tcb step.
";

const DISK_HELP: &str = "\
cargo xtask disk: make and check Serac disk images (docs/disk-format.md).

Usage: cargo xtask disk <SUBCOMMAND> ...

Subcommands (PATH defaults to target/serac/disk.img):
  create [--size MiB] [--force] [PATH]
                 A new image of MiB mebibytes (default 64), formatted, with an
                 empty extent table. Refuses an existing file without --force.
  add-image NAME DIR [PATH]
                 Packs the host directory DIR as a tar archive (sorted, owners
                 and times normalised) into a new read-only image extent NAME,
                 with its CRC-32C recorded in the extent table.
  add-disk NAME BLOCKS [PATH]
                 A zeroed private virtual disk of BLOCKS 4 KiB blocks for domain NAME.
  add-swap NAME BLOCKS [PATH]
                 A zeroed swap area of BLOCKS 4 KiB blocks for domain NAME.
  ls [PATH]      The geometry, both table copies and the extent table (id, kind,
                 name, start, length, and each image's checksum state).
  fsck [PATH]    Verifies the superblock and both table copies, says which copy
                 is current, checks that no extents overlap and every image's
                 checksum. Exits non-zero on any problem, saying what it is.

Names are 1 to 16 bytes of A-Z a-z 0-9 . _ - (a domain name of the manifest).
";

/// A `disk` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskCmd {
    /// `create`
    Create {
        /// Size in MiB.
        size_mib: u64,
        /// The image file.
        path: Option<PathBuf>,
        /// Format an existing file.
        force: bool,
    },
    /// `add-image`
    AddImage {
        /// Image name.
        name: String,
        /// Directory to pack.
        dir: PathBuf,
        /// The image file.
        path: Option<PathBuf>,
    },
    /// `add-disk` and `add-swap`
    AddExtent {
        /// `Disk` or `Swap`.
        kind: serac_disk_core::Kind,
        /// Domain name.
        name: String,
        /// Length in blocks.
        blocks: u64,
        /// The image file.
        path: Option<PathBuf>,
    },
    /// `ls`
    Ls {
        /// The image file.
        path: Option<PathBuf>,
    },
    /// `fsck`
    Fsck {
        /// The image file.
        path: Option<PathBuf>,
    },
}

/// Options of `run` and `gdb`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOpts {
    /// Use KVM if usable.
    pub kvm: bool,
    /// Boot the ISO.
    pub iso: bool,
    /// Boot the ISO under OVMF.
    pub ovmf: bool,
    /// Kernel command line.
    pub cmdline: String,
    /// Extra QEMU arguments.
    pub qemu_args: Vec<String>,
    /// gdb only: start gdb here.
    pub attach: bool,
    /// run only: record the uplink to this pcap file (QEMU's filter-dump).
    pub pcap: Option<String>,
    /// run only: boot `configs/NAME.toml` instead of the web host.
    pub config: Option<String>,
}

/// Options of `test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOpts {
    /// Use KVM if usable.
    pub kvm: bool,
    /// Only steps whose name contains this.
    pub filter: Option<String>,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print this text.
    Help(&'static str),
    /// `build`
    Build,
    /// `image`
    Image,
    /// `run`
    Run(RunOpts),
    /// `gdb`
    Gdb(RunOpts),
    /// `test`
    Test(TestOpts),
    /// `tcb`; true for `--json`.
    Tcb(bool),
    /// `bench <what> [--json]`.
    Bench(String, bool),
    /// `bench web [options]`.
    BenchWeb(crate::bench_web::WebOpts),
    /// `disk <subcommand>`.
    Disk(DiskCmd),
    /// `swap-sim [options]`.
    SwapSim(crate::swap_sim::Opts),
    /// `push IMAGE [options]`.
    Push(crate::push::Opts),
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// What to do.
    pub command: Command,
}

fn help_for(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "build" => BUILD_HELP,
        "image" => IMAGE_HELP,
        "run" => RUN_HELP,
        "test" => TEST_HELP,
        "gdb" => GDB_HELP,
        "tcb" => TCB_HELP,
        "bench" => BENCH_HELP,
        "disk" => DISK_HELP,
        "swap-sim" => crate::swap_sim::HELP,
        "push" => crate::push::HELP,
        _ => return None,
    })
}

fn is_help(a: &str) -> bool {
    matches!(a, "-h" | "--help" | "help")
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let Some(cmd) = it.next() else {
        return Ok(Args {
            command: Command::Help(HELP),
        });
    };
    let rest: Vec<String> = it.collect();
    let help = help_for(&cmd);
    // `cargo xtask CMD --help` (before any `--`).
    if let Some(h) = help {
        if rest
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "-h" || a == "--help")
        {
            return Ok(Args {
                command: Command::Help(h),
            });
        }
    }
    let command = match cmd.as_str() {
        c if is_help(c) => match rest.first() {
            None => Command::Help(HELP),
            Some(c) => Command::Help(help_for(c).ok_or_else(|| format!("no command `{c}`"))?),
        },
        "build" => no_options("build", &rest).map(|()| Command::Build)?,
        "image" => no_options("image", &rest).map(|()| Command::Image)?,
        "run" => Command::Run(run_opts("run", &rest, false)?),
        "gdb" => Command::Gdb(run_opts("gdb", &rest, true)?),
        "test" => Command::Test(test_opts(&rest)?),
        "bench" if rest.first().map(String::as_str) == Some("web") => {
            Command::BenchWeb(crate::bench_web::parse(&rest[1..])?)
        }
        "bench" => {
            let (what, json) = bench_opts(&rest)?;
            Command::Bench(what, json)
        }
        "tcb" => Command::Tcb(tcb_opts(&rest)?),
        "disk" => Command::Disk(disk_opts(&rest)?),
        "swap-sim" => Command::SwapSim(crate::swap_sim::parse(&rest)?),
        "push" if rest.iter().any(|a| is_help(a)) => Command::Help(crate::push::HELP),
        "push" => Command::Push(crate::push::parse(&rest)?),
        other => return Err(format!("unknown command `{other}`")),
    };
    Ok(Args { command })
}

fn bench_opts(rest: &[String]) -> Result<(String, bool), String> {
    let mut what = None;
    let mut json = false;
    for a in rest {
        match a.as_str() {
            "--json" => json = true,
            s if !s.starts_with('-') && what.is_none() => what = Some(s.to_owned()),
            other => return Err(format!("`bench` does not take `{other}`")),
        }
    }
    Ok((what.unwrap_or_else(|| "core".into()), json))
}

/// `cargo xtask bench --help`.
pub const BENCH_HELP: &str = "\
cargo xtask bench core [--json]

Measures the microkernel in QEMU under `-icount shift=0`, where the guest
TSC counts executed instructions, so figures are deterministic path lengths
in TSC units. Boots five scenarios (core figures; 100 idle-with-timeout
waiters vs 100 pollers beside a worker; 100 and 1,000 idle domains) and
prints a table, or one JSON object with --json: syscall_null, ipc_roundtrip,
upcall, switch, fault_to_map, domain_create, batching_factor, idle_vs_spin,
domains_booted, kernel_bytes_per_idle_domain. Logs are in
target/serac/tests/bench_*.log.

cargo xtask bench disk [--json]

Measures the disk server: 4 KiB random reads and writes and 64 KiB
sequential reads by a client through it, against the same requests made
by the server on the device directly, in rounds that alternate the two
(plain TCG, wall clock, medians); and the kernel-plus-server path length
of a request under -icount shift=0. Figures: disk_read_4k_iops,
disk_write_4k_iops, disk_seq_read_mib_s, disk_server_vs_direct,
disk_request_ticks, and the direct figures and per-workload ratios
(docs/performance.md). Logs: target/serac/tests/bench_disk*.log.

cargo xtask bench net [--json]

Measures the network: udp_rtt (16-byte UDP round trip between two guests
through the vnic) and http_request (loadgen to httpd, connect to close,
2 KiB page) under -icount shift=0, medians, beside the Linux peers;
wrk_rps (host wrk through the uplink against four httpd, plain TCG);
idle_httpd_upcalls_per_s (the kernel's counts over a window of an idle
web host); bytes_per_connection (httpd's heap at 8 and 16 idle
connections). Needs wrk and curl on the host. Logs:
target/serac/tests/bench_net*.log.

cargo xtask bench swap [--json]

Measures swapping (plain TCG): swap_in_first_byte_vs_raw (time to first
byte of a request to an httpd just swapped out whole, over a raw read of
as many pages from the same disk, medians of 5 rounds), swap_ins_per_s
(uniform load over more httpd than fit in 64 MiB),
kernel_bytes_per_swapped_domain and swapper_bytes_per_domain (250
swapped-out guests against 50), and each policy's fault rate on the
simulator's Zipf(0.8) trace. Logs: target/serac/tests/bench_swap*.log.

cargo xtask bench web [--json] [--plot] [--sizes 10,100,1000,10000] [--ceiling]

Denali's Figure 3: for each N of --sizes (default 10,100,1000,10000), one
boot of N paged httpd with the swapper, disk and vnic in 1 GiB; loadgen
reads 16 MiB of its disk raw, touches every httpd once, drives them 20 s
under Zipf(0.8) and 20 s uniform, reads the 16 MiB again, then (N <= 100)
holds off while host wrk drives 4 of them. Per N and distribution:
web_rps, p50/p99 latency, swap-ins/s, resident pages and domains, memory
in use; per N the raw-disk bound (the faster raw read over the bytes one
httpd's swap-in reads) and wrk_rps. A size that cannot boot is reported
with the supervisor's reason and the others go on. --json writes
target/serac/bench/web.json; --plot target/serac/bench/web.svg (and
docs/web-scale.svg after a run of all of 10, 100, 1000 and 10000 that
passed). --ceiling instead finds domains_ceiling_1gib: the largest N at
which every httpd boots and answers (doubling, then bisecting). Logs:
target/serac/tests/bench_web_*.log.
";

fn no_options(cmd: &str, rest: &[String]) -> Result<(), String> {
    match rest.first() {
        None => Ok(()),
        Some(a) => Err(format!("`{cmd}` takes no arguments, got `{a}`")),
    }
}

fn run_opts(cmd: &str, rest: &[String], gdb: bool) -> Result<RunOpts, String> {
    let mut o = RunOpts::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kvm" if !gdb => o.kvm = true,
            "--iso" if !gdb => o.iso = true,
            "--ovmf" if !gdb => {
                o.ovmf = true;
                o.iso = true;
            }
            "--attach" if gdb => o.attach = true,
            "--pcap" if !gdb => {
                o.pcap = Some(
                    it.next()
                        .ok_or("--pcap needs a file, e.g. --pcap target/serac/uplink.pcap")?
                        .clone(),
                );
            }
            "--config" if !gdb => {
                o.config = Some(
                    it.next()
                        .ok_or("--config needs a name, e.g. --config web (see `cargo xtask run --help`)")?
                        .clone(),
                );
            }
            "--cmdline" => {
                o.cmdline = it
                    .next()
                    .ok_or("--cmdline needs a value, e.g. --cmdline serac.test=boot")?
                    .clone();
            }
            s if s.starts_with("--cmdline=") => o.cmdline = s["--cmdline=".len()..].to_owned(),
            "--" => {
                o.qemu_args = it.by_ref().cloned().collect();
            }
            other => return Err(format!("`{cmd}`: unknown option `{other}`")),
        }
    }
    Ok(o)
}

fn disk_opts(rest: &[String]) -> Result<DiskCmd, String> {
    let usage = "see `cargo xtask disk --help`";
    let (sub, args) = rest
        .split_first()
        .ok_or_else(|| format!("`disk` needs a subcommand; {usage}"))?;
    let mut size_mib = crate::disk::DEFAULT_SIZE_MIB;
    let mut force = false;
    let mut pos: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" if sub == "create" => {
                let v = it
                    .next()
                    .ok_or("--size needs a value in MiB, e.g. --size 64")?;
                size_mib =
                    v.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--size takes a positive number of MiB, got `{v}`")
                    })?;
            }
            "--force" if sub == "create" => force = true,
            s if s.starts_with('-') => return Err(format!("`disk {sub}`: unknown option `{s}`")),
            s => pos.push(s),
        }
    }
    let (need, most) = match sub.as_str() {
        "create" | "ls" | "fsck" => (0, 1),
        "add-image" | "add-disk" | "add-swap" => (2, 3),
        other => return Err(format!("unknown `disk` subcommand `{other}`; {usage}")),
    };
    if pos.len() < need || pos.len() > most {
        return Err(format!("`disk {sub}`: wrong number of arguments; {usage}"));
    }
    let path = pos.get(need).map(PathBuf::from);
    let blocks = || -> Result<u64, String> {
        pos[1]
            .parse()
            .ok()
            .filter(|&n: &u64| n > 0)
            .ok_or_else(|| format!("BLOCKS must be a positive number, got `{}`", pos[1]))
    };
    Ok(match sub.as_str() {
        "create" => DiskCmd::Create {
            size_mib,
            path,
            force,
        },
        "ls" => DiskCmd::Ls { path },
        "fsck" => DiskCmd::Fsck { path },
        "add-image" => DiskCmd::AddImage {
            name: pos[0].to_owned(),
            dir: PathBuf::from(pos[1]),
            path,
        },
        kind => DiskCmd::AddExtent {
            kind: if kind == "add-swap" {
                serac_disk_core::Kind::Swap
            } else {
                serac_disk_core::Kind::Disk
            },
            name: pos[0].to_owned(),
            blocks: blocks()?,
            path,
        },
    })
}

fn tcb_opts(rest: &[String]) -> Result<bool, String> {
    let mut json = false;
    for a in rest {
        match a.as_str() {
            "--json" => json = true,
            other => return Err(format!("`tcb`: unknown option `{other}`")),
        }
    }
    Ok(json)
}

fn test_opts(rest: &[String]) -> Result<TestOpts, String> {
    let mut o = TestOpts::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kvm" => o.kvm = true,
            "--filter" => {
                o.filter = Some(it.next().ok_or("--filter needs a value")?.clone());
            }
            s if s.starts_with("--filter=") => o.filter = Some(s["--filter=".len()..].to_owned()),
            other => return Err(format!("`test`: unknown option `{other}`")),
        }
    }
    Ok(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(String::from)).map(|a| a.command)
    }

    #[test]
    fn help_everywhere() {
        assert_eq!(p("").unwrap(), Command::Help(HELP));
        assert_eq!(p("--help").unwrap(), Command::Help(HELP));
        assert_eq!(p("help run").unwrap(), Command::Help(RUN_HELP));
        for c in [
            "build", "image", "run", "test", "gdb", "tcb", "disk", "swap-sim",
        ] {
            assert!(matches!(
                p(&format!("{c} --help")).unwrap(),
                Command::Help(_)
            ));
        }
    }

    #[test]
    fn run_options() {
        let Command::Run(o) =
            p("run --kvm --ovmf --cmdline serac.test=boot -- -smp 2 --help").unwrap()
        else {
            panic!()
        };
        assert!(o.kvm && o.iso && o.ovmf);
        assert_eq!(o.cmdline, "serac.test=boot");
        assert_eq!(o.qemu_args, ["-smp", "2", "--help"]);
        assert!(p("run --bogus").is_err());
        assert!(p("run --cmdline").is_err());
        assert!(p("gdb --iso").is_err());
        let Command::Run(o) = p("run --pcap up.pcap").unwrap() else {
            panic!()
        };
        assert_eq!(o.pcap.as_deref(), Some("up.pcap"));
        assert!(p("run --pcap").is_err());
        assert!(p("gdb --pcap x").is_err());
        let Command::Run(o) = p("run --config net_uplink").unwrap() else {
            panic!()
        };
        assert_eq!(o.config.as_deref(), Some("net_uplink"));
        assert!(p("run --config").is_err());
        assert!(p("gdb --config web").is_err());
    }

    #[test]
    fn disk_options() {
        assert_eq!(
            p("disk create").unwrap(),
            Command::Disk(DiskCmd::Create {
                size_mib: crate::disk::DEFAULT_SIZE_MIB,
                path: None,
                force: false
            })
        );
        assert_eq!(
            p("disk create --size 8 --force x.img").unwrap(),
            Command::Disk(DiskCmd::Create {
                size_mib: 8,
                path: Some("x.img".into()),
                force: true
            })
        );
        assert_eq!(
            p("disk add-swap httpd 256").unwrap(),
            Command::Disk(DiskCmd::AddExtent {
                kind: serac_disk_core::Kind::Swap,
                name: "httpd".into(),
                blocks: 256,
                path: None
            })
        );
        assert_eq!(
            p("disk add-image www site d.img").unwrap(),
            Command::Disk(DiskCmd::AddImage {
                name: "www".into(),
                dir: "site".into(),
                path: Some("d.img".into())
            })
        );
        assert_eq!(
            p("disk fsck d.img").unwrap(),
            Command::Disk(DiskCmd::Fsck {
                path: Some("d.img".into())
            })
        );
        for bad in [
            "disk",
            "disk frob",
            "disk create --size 0",
            "disk create --size",
            "disk create a b",
            "disk ls --size 3",
            "disk add-disk httpd",
            "disk add-disk httpd 0",
            "disk add-disk httpd many",
            "disk add-image www",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn test_options() {
        assert_eq!(
            p("test --filter boot").unwrap(),
            Command::Test(TestOpts {
                kvm: false,
                filter: Some("boot".into())
            })
        );
        assert!(p("build extra").is_err());
        assert!(p("frobnicate").is_err());
        assert_eq!(p("tcb").unwrap(), Command::Tcb(false));
        assert_eq!(p("tcb --json").unwrap(), Command::Tcb(true));
        assert!(p("tcb --yaml").is_err());
        assert_eq!(p("bench").unwrap(), Command::Bench("core".into(), false));
        assert!(matches!(
            p("bench web --json --sizes 10,50").unwrap(),
            Command::BenchWeb(o) if o.json && o.sizes == [10, 50]
        ));
        assert!(p("bench web --sizes 0").is_err());
        assert_eq!(
            p("bench core --json").unwrap(),
            Command::Bench("core".into(), true)
        );
    }
}
