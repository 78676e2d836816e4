//! `run` and `gdb`: boot Serac in QEMU interactively.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use serac_boot::host;
use serac_tests::judge::describe_exit;
use serac_tests::qemu::{Accel, Firmware, Machine, Media, Serial};
use serac_tests::spec::EXIT_SUCCESS;

use crate::artifacts::{self, Built};
use crate::cli::RunOpts;
use crate::prereq::{self, Needs};
use crate::util::{out_dir, Failure, Result};

fn media(built: &Built, o: &RunOpts) -> Result<Media> {
    if !o.iso {
        return Ok(Media::Pvh {
            kernel: built.kernel.clone(),
            initrd: built.archive.clone(),
            cmdline: o.cmdline.clone(),
        });
    }
    // target/serac.iso is the user image: the default manifest only.
    let iso: PathBuf = if o.cmdline.is_empty() && o.config.is_none() {
        artifacts::user_iso_path()
    } else {
        out_dir().join("run.iso")
    };
    println!("xtask: writing {}", iso.display());
    artifacts::iso(built, &o.cmdline, &iso)?;
    Ok(Media::Iso {
        iso,
        firmware: if o.ovmf {
            Firmware::Ovmf
        } else {
            Firmware::SeaBios
        },
    })
}

fn accel(kvm: bool) -> Accel {
    let (a, warning) = Accel::choose(kvm);
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    a
}

/// `cargo xtask run`.
pub fn run(o: &RunOpts) -> Result<ExitCode> {
    prereq::ensure(Needs {
        kernel: true,
        qemu: true,
        iso: o.iso,
        ovmf: o.ovmf,
        ..Default::default()
    })?;
    let config = match &o.config {
        Some(n) => serac_config::Config::new(n),
        None => artifacts::default_config(),
    };
    // Pushes signed with target/serac/operator.key are accepted: its
    // public key joins the manifest's `operator-keys`.
    let pk = crate::push::ensure_default_key()?;
    let config = config.operator_key(&pk);
    // Checked before the build, so a mistake shows at once.
    let manifest = artifacts::manifest(&config)?;
    let mut built = artifacts::build()?;
    built = with_manifest(built, &config.name, manifest)?;
    if o.config.is_some() {
        println!("xtask: booting {}", config.file());
    }
    println!(
        "xtask: operator key {} (public key {pk})",
        crate::push::default_key_path().display()
    );
    let disk = default_disk()?;
    let mut extra: Vec<std::ffi::OsString> = vec![
        "-drive".into(),
        format!("file={},if=none,id=disk0,format=raw", disk.display()).into(),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,disable-legacy=on".into(),
    ];
    let (fwd, urls) = web_forwards(&config)?;
    let pcap = o.pcap.as_deref();
    extra.extend(
        serac_tests::spec::net_args(&fwd, pcap)
            .into_iter()
            .map(Into::into),
    );
    // `cargo xtask push` adds the forwards of pushed copies here.
    let monitor = crate::push::monitor_path();
    let _ = std::fs::remove_file(&monitor);
    extra.push("-monitor".into());
    extra.push(format!("unix:{},server=on,wait=off", monitor.display()).into());
    extra.extend(o.qemu_args.iter().map(Into::into));
    for u in &urls {
        println!("xtask: {u}");
    }
    if let Some(f) = pcap {
        println!("xtask: recording the uplink to {f}");
    }
    let machine = Machine {
        accel: accel(o.kvm),
        media: media(&built, o)?,
        serial: Serial::Terminal,
        gdb: false,
        ovmf_vars: out_dir().join("run-ovmf-vars.fd"),
        extra,
    };
    let mut cmd = machine.command()?;
    println!("xtask: {}", host::display(&cmd));
    println!("xtask: serial console follows. Leave QEMU with Ctrl-A X (Ctrl-A C: monitor).");
    let status = host::status(&mut cmd)?;
    match status.code() {
        Some(0) => Ok(ExitCode::SUCCESS),
        Some(EXIT_SUCCESS) => {
            println!("xtask: QEMU exit status {}", describe_exit(EXIT_SUCCESS));
            Ok(ExitCode::SUCCESS)
        }
        Some(c) => Err(Failure(format!("QEMU exit status {}", describe_exit(c)))),
        None => Err("QEMU was killed by a signal".into()),
    }
}

/// `built` with its archive's `manifest` replaced, written to
/// `target/serac/run-NAME.sar`.
fn with_manifest(mut built: Built, name: &str, manifest: Vec<u8>) -> Result<Built> {
    for e in built.entries.iter_mut().filter(|e| e.0 == "manifest") {
        e.1.clone_from(&manifest);
    }
    let bytes = serac_boot::archive::build(&built.entries)?;
    let path = out_dir().join(format!("run-{name}.sar"));
    std::fs::write(&path, bytes).map_err(|e| Failure(format!("write {}: {e}", path.display())))?;
    built.archive = path;
    Ok(built)
}

/// First host port of the web forwards.
const FIRST_WEB_PORT: u16 = 8080;

/// The hostfwd rules and URLs for `manifest`'s `net = true` domains: TCP
/// 127.0.0.1:8080, 8081, ... to port 80 of each instance, in manifest
/// order (the address plan by slot, see `serac_tests::spec::guest_ipv4`).
fn web_forwards(config: &serac_config::Config) -> Result<(Vec<String>, Vec<String>)> {
    let (mut fwd, mut urls) = (Vec::new(), Vec::new());
    let bytes = config.pack().map_err(Failure)?;
    let m = serac_supervisor_core::manifest::Manifest::decode(&bytes)
        .map_err(|e| Failure(format!("manifest: {e}")))?;
    let push = m.push_service().map(|d| m.domains()[d].name);
    let guests = serac_tests::spec::net_guests(config).map_err(Failure)?;
    let (pushers, guests): (Vec<_>, Vec<_>) = guests
        .into_iter()
        .partition(|(name, _, _)| Some(name.as_str()) == push);
    for (name, _, [a0, a1, a2, a3]) in &pushers {
        let p = serac_protocol::push::PORT;
        fwd.push(format!("tcp:127.0.0.1:{p}-{a0}.{a1}.{a2}.{a3}:{p}"));
        urls.push(format!(
            "{name}: the push service on 127.0.0.1:{p} (`cargo xtask push httpd --name web2 --count 4`)"
        ));
    }
    for ((name, _, [a0, a1, a2, a3]), port) in guests.iter().zip(FIRST_WEB_PORT..) {
        fwd.push(format!("tcp:127.0.0.1:{port}-{a0}.{a1}.{a2}.{a3}:80"));
        urls.push(format!("{name}: http://127.0.0.1:{port}/"));
    }
    Ok((fwd, urls))
}

/// `target/serac/disk.img`, made when missing: a Serac disk with the
/// image `www` (the repository's `www/`), which the default manifest's
/// disk server serves and `catfile` reads; on an existing disk the image
/// is replaced when `www/` has changed. It also gets the swapper's swap
/// area (`swapper`) if it has none.
fn default_disk() -> Result<std::path::PathBuf> {
    let path = crate::disk::default_path();
    if !path.exists() {
        println!(
            "xtask: creating {} with the image www (from www/)",
            path.display()
        );
        crate::disk::create(&path, crate::disk::DEFAULT_SIZE_MIB, false)?;
        crate::disk::add_image(&path, "www", std::path::Path::new("www"))?;
    } else if crate::disk::refresh_image(&path, "www", std::path::Path::new("www"))? {
        // An older disk keeps its other extents; only the pages change.
        println!(
            "xtask: www/ changed: image www in {} replaced",
            path.display()
        );
    }
    let blocks = crate::disk::SWAPPER_BLOCKS;
    if crate::disk::ensure_swap(&path, "swapper", blocks)? {
        println!(
            "xtask: swap area swapper ({blocks} blocks) added to {}",
            path.display()
        );
    }
    Ok(path)
}

const GDB_LINE: &str = "gdb -ex 'target remote :1234' target/serac/kernel.sym";

/// `cargo xtask gdb`.
pub fn gdb(o: &RunOpts) -> Result<ExitCode> {
    prereq::ensure(Needs {
        kernel: true,
        qemu: true,
        ..Default::default()
    })?;
    let have_gdb = host::find_program("gdb").is_some();
    if o.attach && !have_gdb {
        return Err("gdb is not installed; install it with `sudo apt-get install -y gdb`".into());
    }
    let built = artifacts::build()?;
    let serial_log = out_dir().join("gdb-serial.log");
    let machine = Machine {
        accel: Accel::Tcg,
        media: media(&built, o)?,
        serial: if o.attach {
            Serial::File(serial_log.clone())
        } else {
            Serial::Terminal
        },
        gdb: true,
        ovmf_vars: out_dir().join("gdb-ovmf-vars.fd"),
        extra: o.qemu_args.iter().map(Into::into).collect(),
    };
    let mut cmd = machine.command()?;
    println!("xtask: {}", host::display(&cmd));

    if !o.attach {
        println!("xtask: QEMU is halted before the first instruction, waiting for gdb on :1234.");
        println!("xtask: in another terminal, from the repository root, run:\n\n    {GDB_LINE}\n");
        if !have_gdb {
            println!("xtask: gdb is not installed: sudo apt-get install -y gdb");
        }
        println!("xtask: serial console follows. Leave QEMU with Ctrl-A X.");
        host::status(&mut cmd)?;
        return Ok(ExitCode::SUCCESS);
    }

    let qlog = out_dir().join("gdb-qemu.log");
    let f = File::create(&qlog).map_err(|e| Failure(format!("create {}: {e}", qlog.display())))?;
    let f2 = f
        .try_clone()
        .map_err(|e| Failure(format!("open {}: {e}", qlog.display())))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2));
    let mut qemu = host::spawn(&mut cmd)?;
    println!(
        "xtask: QEMU started (serial output in {}, QEMU messages in {})",
        serial_log.display(),
        qlog.display()
    );
    println!("xtask: {GDB_LINE}");
    let result = host::status(
        Command::new("gdb")
            .args(["-ex", "target remote :1234"])
            .arg(&built.kernel_sym),
    );
    let _ = qemu.kill();
    let _ = qemu.wait();
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn one_forward_per_net_instance() {
        // The vnic, then netpong and netping, each with a port.
        let (fwd, urls) = web_forwards(&serac_config::Config::new("net_exchange")).unwrap();
        assert_eq!(
            fwd,
            [
                "tcp:127.0.0.1:8080-10.0.1.2:80",
                "tcp:127.0.0.1:8081-10.0.1.3:80"
            ]
        );
        assert_eq!(
            urls,
            [
                "netpong: http://127.0.0.1:8080/",
                "netping: http://127.0.0.1:8081/"
            ]
        );
        // The default manifest's push service on 7070, then its four
        // httpd on 8080 to 8083.
        let (fwd, urls) = web_forwards(&artifacts::default_config()).unwrap();
        assert_eq!(fwd.len(), 5);
        assert!(
            fwd[0].starts_with("tcp:127.0.0.1:7070-10.0.1."),
            "{}",
            fwd[0]
        );
        assert!(fwd[0].ends_with(":7070"), "{}", fwd[0]);
        assert!(urls[0].starts_with("control: the push service on 127.0.0.1:7070"));
        for (i, (f, u)) in fwd[1..].iter().zip(&urls[1..]).enumerate() {
            assert!(
                f.starts_with(&format!("tcp:127.0.0.1:{}-10.0.1.", 8080 + i)),
                "{f}"
            );
            assert_eq!(u, &format!("httpd#{i}: http://127.0.0.1:{}/", 8080 + i));
        }
    }
}
