//! Running one QEMU test: make its archive and ISO if it needs them, boot
//! QEMU with serial to a log file, enforce the wall-clock limit, and judge.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serac_boot::{archive, host, iso, Error};

use crate::host_http::HostHttpRun;
use crate::judge::{judge, Ending};
use crate::qemu::{Accel, Machine, Media, Serial};
use crate::spec::{Boot, DiskImage, QemuTest, Source};

/// Makes a formatted Serac disk image at a path with the extents a test
/// names. xtask provides it (its `disk` module, over `serac-disk-core`), so
/// the format code exists once.
pub type MakeDisk = fn(&Path, &DiskImage) -> Result<(), String>;
/// Checks a disk image after a run (`cargo xtask disk fsck`'s code):
/// the report and whether it is clean.
pub type CheckDisk = fn(&Path) -> Result<(String, bool), String>;

/// Sends one command to QEMU's human monitor on a unix socket.
fn send_monitor(path: &Path, command: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut sock = std::os::unix::net::UnixStream::connect(path)?;
    sock.write_all(command.as_bytes())?;
    sock.write_all(b"\n")?;
    // Give QEMU the time to read it before the socket closes.
    thread::sleep(Duration::from_millis(50));
    Ok(())
}

/// The serial line of a test that types on it: QEMU listens on a unix
/// socket (and waits for us before it starts); a thread copies what comes
/// out into the log, and [`SerialLine::type_line`] writes into it.
struct SerialLine {
    sock: std::os::unix::net::UnixStream,
    copier: thread::JoinHandle<()>,
}

impl SerialLine {
    fn connect(path: &Path, log: &Path, deadline: Instant) -> Result<SerialLine, Error> {
        use std::io::Write;
        let mut out =
            File::create(log).map_err(|e| Error::io(format!("create {}", log.display()), e))?;
        let sock = loop {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::io(format!("connect to {}", path.display()), e))
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut from = sock
            .try_clone()
            .map_err(|e| Error::io("clone the serial socket", e))?;
        let copier = thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = out.flush();
            }
        });
        Ok(SerialLine { sock, copier })
    }

    fn type_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        self.sock.write_all(line.as_bytes())?;
        self.sock.write_all(b"\r")
    }

    /// Waits until everything QEMU printed is in the log.
    fn finish(self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        let _ = self.copier.join();
    }
}

/// Flips the lowest bit of each byte at `offsets` in the file at `path`.
fn flip(path: &Path, offsets: &[u64]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if offsets.is_empty() {
        return Ok(());
    }
    let f = fs::OpenOptions::new().read(true).write(true).open(path)?;
    for &o in offsets {
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, o)?;
        b[0] ^= 1;
        f.write_all_at(&b, o)?;
    }
    f.sync_data()
}

/// The host's side of a [`crate::spec::UdpEcho`]: a UDP socket on
/// loopback, the hostfwd port it reaches the guest through, and whether
/// the echo came back.
struct HostEcho {
    spec: crate::spec::UdpEcho,
    sock: std::net::UdpSocket,
    port: u16,
    started: bool,
    last_send: Option<Instant>,
    sends: u32,
    echoed: bool,
    wrong: Option<Vec<u8>>,
}

impl HostEcho {
    fn new(spec: &crate::spec::UdpEcho) -> Result<HostEcho, Error> {
        let io = |e| Error::io("host UDP socket on 127.0.0.1", e);
        // A free loopback port for the hostfwd rule: bound, read, released.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(io)?
            .port();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        Ok(HostEcho {
            spec: spec.clone(),
            sock,
            port,
            started: false,
            last_send: None,
            sends: 0,
            echoed: false,
            wrong: None,
        })
    }

    fn hostfwd(&self) -> String {
        let ([a, b, c, d], gp) = self.spec.guest;
        format!("udp:127.0.0.1:{}-{a}.{b}.{c}.{d}:{gp}", self.port)
    }

    /// Sends once the line has appeared (again every 500 ms until
    /// answered) and reads what came back.
    fn step(&mut self, log: &Path) {
        if self.echoed {
            return;
        }
        if !self.started {
            let serial = fs::read_to_string(log).unwrap_or_default();
            let lines = crate::judge::clean_lines(&serial);
            self.started = lines.iter().any(|l| self.spec.when.matches(l));
            if !self.started {
                return;
            }
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            if buf[..n] == self.spec.payload[..] {
                self.echoed = true;
                return;
            }
            self.wrong = Some(buf[..n].to_vec());
        }
        if self
            .last_send
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        {
            let _ = self
                .sock
                .send_to(&self.spec.payload, ("127.0.0.1", self.port));
            self.sends += 1;
            self.last_send = Some(Instant::now());
        }
    }

    fn failure(&self) -> Option<String> {
        if self.echoed {
            return None;
        }
        Some(match (&self.wrong, self.started) {
            (_, false) => format!("host UDP echo: {} never appeared, nothing sent", self.spec.when),
            (Some(w), _) => format!(
                "host UDP echo: {} datagram(s) sent to 127.0.0.1:{}, the answer differs ({} bytes: {:?})",
                self.sends,
                self.port,
                w.len(),
                String::from_utf8_lossy(w)
            ),
            (None, _) => format!(
                "host UDP echo: {} datagram(s) sent to 127.0.0.1:{}, no answer",
                self.sends, self.port
            ),
        })
    }
}

/// Lines of serial output shown when a test fails.
pub const TAIL_LINES: usize = 30;

/// What the tests run against; xtask fills it in after building.
#[derive(Debug, Clone)]
pub struct Context {
    /// Build output directory (`target/serac`).
    pub out_dir: PathBuf,
    /// The kernel ELF.
    pub kernel: PathBuf,
    /// The standard boot archive.
    pub archive: PathBuf,
    /// The standard archive's entries, so a test can get a variant of it.
    pub base_entries: Vec<(String, Vec<u8>)>,
    /// Accelerator for every test.
    pub accel: Accel,
    /// Makes the disk images of tests that attach one.
    pub make_disk: Option<MakeDisk>,
    /// Checks them after a run, for tests that ask (`DiskImage::fsck_after`).
    pub check_disk: Option<CheckDisk>,
}

/// The result of one test.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Test name.
    pub name: String,
    /// Everything that went wrong; empty when it passed.
    pub problems: Vec<String>,
    /// Wall-clock time, including building its ISO if any.
    pub elapsed: Duration,
    /// Serial log.
    pub log: PathBuf,
    /// QEMU's own stdout and stderr.
    pub qemu_log: PathBuf,
    /// The QEMU command line, to rerun by hand (empty if setup failed).
    pub command: String,
    /// What the host's own clients (curl, wrk) reported, a line each; also
    /// written to `<name>.host.log`.
    pub host: Vec<String>,
}

impl Outcome {
    /// True when nothing went wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// A failure report: the problems, the command, and the end of the logs.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for p in &self.problems {
            s.push_str(&format!("    - {p}\n"));
        }
        if !self.command.is_empty() {
            s.push_str(&format!("    command: {}\n", self.command));
        }
        let serial = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        s.push_str(&format!(
            "    last {TAIL_LINES} serial lines ({}):\n",
            self.log.display()
        ));
        let tail = host::tail(&serial.replace('\r', ""), TAIL_LINES);
        if tail.is_empty() {
            s.push_str("      (none)\n");
        }
        for l in tail.lines() {
            s.push_str(&format!("      | {l}\n"));
        }
        let qemu = fs::read_to_string(&self.qemu_log).unwrap_or_default();
        if !qemu.trim().is_empty() {
            s.push_str(&format!("    QEMU said ({}):\n", self.qemu_log.display()));
            for l in host::tail(&qemu, 10).lines() {
                s.push_str(&format!("      | {l}\n"));
            }
        }
        s
    }
}

/// Runs tests against one [`Context`], reusing ISOs between tests that
/// boot the same command line and archive.
#[derive(Debug)]
pub struct Runner {
    ctx: Context,
    isos: HashMap<(String, PathBuf), PathBuf>,
}

fn create_dir(d: &Path) -> Result<(), Error> {
    fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))
}

impl Runner {
    /// A runner for `ctx`.
    pub fn new(ctx: Context) -> Self {
        Runner {
            ctx,
            isos: HashMap::new(),
        }
    }

    fn tests_dir(&self) -> PathBuf {
        self.ctx.out_dir.join("tests")
    }

    /// The archive a test boots: the standard one, or a variant with its
    /// extra files written to `tests/<name>.sar`.
    fn archive_for(&self, t: &QemuTest) -> Result<PathBuf, Error> {
        if t.archive_extra.is_empty() {
            return Ok(self.ctx.archive.clone());
        }
        let mut entries = self.ctx.base_entries.clone();
        for (name, src) in &t.archive_extra {
            let data = match src {
                Source::Bytes(b) => b.clone(),
                Source::Config(c) => c
                    .pack()
                    .map_err(|e| Error::io("the test's manifest", std::io::Error::other(e)))?,
                Source::File(p) => {
                    let p = self.ctx.out_dir.join(p);
                    fs::read(&p).map_err(|e| Error::io(format!("read {}", p.display()), e))?
                }
            };
            match entries.iter_mut().find(|(n, _)| n == name) {
                Some(e) => e.1 = data,
                None => entries.push((name.clone(), data)),
            }
        }
        let bytes = archive::build(&entries)?;
        let path = self.tests_dir().join(format!("{}.sar", t.name));
        fs::write(&path, bytes).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        Ok(path)
    }

    /// The ISO for a command line and archive, built once per run. The
    /// standard archive with `serac.test=NAME` gives `test-NAME.iso` in the
    /// output directory; anything else gives `tests/<test>.iso`.
    fn iso_for(&mut self, t: &QemuTest, archive: &Path) -> Result<PathBuf, Error> {
        let key = (t.cmdline.clone(), archive.to_path_buf());
        if let Some(p) = self.isos.get(&key) {
            return Ok(p.clone());
        }
        let test_name = t
            .cmdline
            .strip_prefix("serac.test=")
            .filter(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let stem = match test_name {
            Some(n) if archive == self.ctx.archive => format!("test-{n}"),
            _ => format!("tests/{}", t.name),
        };
        let out = self.ctx.out_dir.join(format!("{stem}.iso"));
        let staging = self.ctx.out_dir.join("iso-staging").join(&stem);
        iso::build(&iso::IsoSpec {
            kernel: &self.ctx.kernel,
            archive,
            cmdline: &t.cmdline,
            output: &out,
            staging: &staging,
        })?;
        self.isos.insert(key, out.clone());
        Ok(out)
    }

    /// Runs one test. Never panics on a test failure: everything that goes
    /// wrong, setup included, is in the returned problems.
    pub fn run(&mut self, t: &QemuTest) -> Outcome {
        let start = Instant::now();
        let dir = self.tests_dir();
        let mut out = Outcome {
            name: t.name.clone(),
            problems: Vec::new(),
            elapsed: Duration::ZERO,
            log: dir.join(format!("{}.log", t.name)),
            qemu_log: dir.join(format!("{}.qemu.log", t.name)),
            command: String::new(),
            host: Vec::new(),
        };
        // Stale logs from an earlier run would confuse the report.
        let _ = fs::remove_file(&out.log);
        let _ = fs::remove_file(&out.qemu_log);
        match self.boot(t, &mut out) {
            Ok(ending) => {
                let serial = fs::read(&out.log)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                out.problems.extend(judge(t, &serial, ending));
                if let Some(disk) = t.disk.as_ref().filter(|d| d.fsck_after) {
                    let path = self.tests_dir().join(format!("{}.img", disk.file));
                    match self.ctx.check_disk.map(|check| check(&path)) {
                        Some(Ok((_, true))) => {}
                        Some(Ok((report, false))) => out
                            .problems
                            .push(format!("fsck after the run: not clean:\n{report}")),
                        Some(Err(e)) => out.problems.push(format!("fsck after the run: {e}")),
                        None => out
                            .problems
                            .push("this runner cannot check disk images".into()),
                    }
                }
            }
            Err(e) => out.problems.push(format!("setup failed: {e}")),
        }
        if let Some(next) = &t.then {
            if out.passed() {
                let o = self.run(next);
                for p in o.problems {
                    out.problems
                        .push(format!("{} (log {}): {p}", next.name, o.log.display()));
                }
            } else {
                out.problems
                    .push(format!("{} not run: the boot before it failed", next.name));
            }
        }
        out.elapsed = start.elapsed();
        out
    }

    /// The QEMU arguments attaching `disk`, after making it if it is fresh.
    fn disk_args(&self, disk: &DiskImage) -> Result<Vec<std::ffi::OsString>, Error> {
        let path = self.tests_dir().join(format!("{}.img", disk.file));
        if disk.fresh.is_some() {
            let what = format!("make {}", path.display());
            let make = self.ctx.make_disk.ok_or_else(|| {
                Error::io(
                    &what,
                    std::io::Error::other("this runner cannot make disk images"),
                )
            })?;
            make(&path, disk).map_err(|e| Error::io(&what, std::io::Error::other(e)))?;
            flip(&path, &disk.flips).map_err(|e| Error::io(&what, e))?;
        } else if !path.exists() {
            return Err(Error::io(
                format!("open {}", path.display()),
                std::io::Error::other("missing: the boot that makes it did not run"),
            ));
        }
        let mut drive = std::ffi::OsString::from("file=");
        if !disk.eio.is_empty() {
            // blkdebug: the image behind a layer that fails chosen requests.
            let cfg = self.tests_dir().join(format!("{}.blkdebug", disk.file));
            let rules: String = disk
                .eio
                .iter()
                .map(|(event, sector)| {
                    // Without `iotype` blkdebug fails every kind of request
                    // at the sector once the rule is active; a read event
                    // means reads only (spec.rs: `DiskImage::eio`).
                    let iotype = if event.starts_with("read") { "iotype = \"read\"\n" } else { "" };
                    format!("[inject-error]\nevent = \"{event}\"\nerrno = \"5\"\nsector = \"{sector}\"\n{iotype}\n")
                })
                .collect();
            fs::write(&cfg, rules).map_err(|e| Error::io(format!("write {}", cfg.display()), e))?;
            drive.push("blkdebug:");
            drive.push(&cfg);
            drive.push(":");
        }
        drive.push(&path);
        drive.push(",if=none,id=d0,format=raw");
        for o in &disk.drive_options {
            drive.push(",");
            drive.push(o);
        }
        Ok(vec![
            "-drive".into(),
            drive,
            "-device".into(),
            "virtio-blk-pci,drive=d0,disable-legacy=on".into(),
        ])
    }

    fn boot(&mut self, t: &QemuTest, out: &mut Outcome) -> Result<Ending, Error> {
        create_dir(&self.tests_dir())?;
        let archive = self.archive_for(t)?;
        let media = match t.boot {
            Boot::Pvh => Media::Pvh {
                kernel: self.ctx.kernel.clone(),
                initrd: archive,
                cmdline: t.cmdline.clone(),
            },
            Boot::Iso(firmware) => Media::Iso {
                iso: self.iso_for(t, &archive)?,
                firmware,
            },
        };
        let mut extra: Vec<std::ffi::OsString> = t.qemu_args.iter().map(Into::into).collect();
        if let Some(disk) = &t.disk {
            extra.extend(self.disk_args(disk)?);
        }
        let mut http = None;
        let monitor = self.tests_dir().join(format!("{}.monitor", t.name));
        let mut push = match t.net.as_ref().and_then(|n| n.push.as_ref()) {
            Some(p) => Some(
                crate::host_push::HostPushRun::new(p, &monitor, &self.ctx.out_dir)
                    .map_err(|e| Error::io("host push", std::io::Error::other(e)))?,
            ),
            None => None,
        };
        let mut echo = match &t.net {
            Some(net) => {
                let echo = net.udp_echo.as_ref().map(HostEcho::new).transpose()?;
                http = net
                    .http
                    .as_ref()
                    .map(|h| HostHttpRun::new(h, &self.tests_dir(), &t.name))
                    .transpose()?;
                let fwd: Vec<String> = echo
                    .iter()
                    .map(HostEcho::hostfwd)
                    .chain(http.iter().flat_map(HostHttpRun::hostfwd))
                    .chain(net.hostfwd.iter().cloned())
                    .chain(push.iter().map(crate::host_push::HostPushRun::hostfwd))
                    .collect();
                extra.extend(
                    crate::spec::net_args(&fwd, None)
                        .into_iter()
                        .map(Into::into),
                );
                echo
            }
            None => None,
        };
        // Monitor commands a test sends when a serial line appears (an NMI
        // or a machine check injected while a domain runs).
        if !t.monitor.is_empty() || push.is_some() {
            let _ = fs::remove_file(&monitor);
            extra.push("-monitor".into());
            extra.push(format!("unix:{},server=on,wait=off", monitor.display()).into());
        }
        // A test that types on the serial line talks to it through a socket.
        let socket = self.tests_dir().join(format!("{}.serial", t.name));
        let typing = !t.serial_input.is_empty();
        if typing {
            let _ = fs::remove_file(&socket);
        }
        let machine = Machine {
            accel: self.ctx.accel,
            media,
            serial: if typing {
                Serial::Socket(socket.clone())
            } else {
                Serial::File(out.log.clone())
            },
            gdb: false,
            ovmf_vars: self.tests_dir().join(format!("{}.ovmf-vars.fd", t.name)),
            extra,
        };
        let mut cmd = machine.command()?;
        out.command = host::display(&cmd);
        let qlog = File::create(&out.qemu_log)
            .map_err(|e| Error::io(format!("create {}", out.qemu_log.display()), e))?;
        let qlog2 = qlog
            .try_clone()
            .map_err(|e| Error::io(format!("open {}", out.qemu_log.display()), e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(qlog))
            .stderr(Stdio::from(qlog2));
        let mut child = host::spawn(&mut cmd)?;
        let started = Instant::now();
        let mut line = if typing {
            match SerialLine::connect(&socket, &out.log, started + Duration::from_secs(10)) {
                Ok(l) => Some(l),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
            }
        } else {
            None
        };
        let mut to_type: Vec<&(crate::pattern::Pattern, String)> = t.serial_input.iter().collect();
        let mut pending: Vec<&(crate::pattern::Pattern, String)> = t.monitor.iter().collect();
        let ending = loop {
            if let Some(e) = echo.as_mut() {
                e.step(&out.log);
            }
            if let Some(h) = http.as_mut() {
                h.step(&out.log);
            }
            if let Some(p) = push.as_mut() {
                p.step(&out.log);
            }
            if let Some(p) = echo.as_ref().and_then(HostEcho::failure) {
                if child.try_wait().ok().flatten().is_some() {
                    out.problems.push(p);
                    echo = None;
                }
            }
            if !pending.is_empty() {
                let serial = fs::read_to_string(&out.log).unwrap_or_default();
                let lines = crate::judge::clean_lines(&serial);
                pending.retain(|(when, command)| {
                    if !lines.iter().any(|l| when.matches(l)) {
                        return true;
                    }
                    if let Err(e) = send_monitor(&monitor, command) {
                        out.problems
                            .push(format!("monitor command {command:?} not sent: {e}"));
                    }
                    false
                });
            }
            if let Some(l) = line.as_mut().filter(|_| !to_type.is_empty()) {
                let serial = fs::read_to_string(&out.log).unwrap_or_default();
                let lines = crate::judge::clean_lines(&serial);
                // In order: a line is typed only after the ones before it.
                while let Some((when, text)) = to_type.first() {
                    if !lines.iter().any(|x| when.matches(x)) {
                        break;
                    }
                    if let Err(e) = l.type_line(text) {
                        out.problems
                            .push(format!("serial line {text:?} not typed: {e}"));
                    }
                    to_type.remove(0);
                }
            }
            match child.try_wait() {
                Ok(Some(st)) => break st.code().map_or(Ending::Signalled, Ending::Exited),
                Ok(None) if started.elapsed() >= t.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Ending::TimedOut(t.timeout);
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::io("wait for QEMU", e));
                }
            }
        };
        if let Some(l) = line {
            l.finish();
        }
        for (when, text) in to_type {
            out.problems.push(format!(
                "serial line {text:?} never typed: no line matched {when}"
            ));
        }
        if let Some(p) = push {
            match p.finish() {
                Ok(lines) => out.host.extend(lines),
                Err(e) => out.problems.push(e),
            }
            let path = self.tests_dir().join(format!("{}.host.log", t.name));
            let _ = fs::write(&path, out.host.join("\n") + "\n");
        }
        if let Some(h) = http {
            match h.finish() {
                Ok(lines) => out.host.extend(lines),
                Err(p) => out.problems.push(p),
            }
            let path = self.tests_dir().join(format!("{}.host.log", t.name));
            let _ = fs::write(&path, out.host.join("\n") + "\n");
        }
        Ok(ending)
    }
}
