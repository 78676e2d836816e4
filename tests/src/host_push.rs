//! The host's side of a push (docs/operating.md, "Pushing a service"):
//! the upload client `cargo xtask push` and the tests share, and the
//! runner's [`HostPushRun`], which uploads a test's bundles once a serial
//! line appears, then reaches copies of a pushed service with `curl`
//! through hostfwd rules it adds on QEMU's monitor.
//!
//! Which copies exist is read from the supervisor's lines (`supervisor:
//! started NAME#k as I:G ...`), not from the push service's answer: the
//! supervisor's are the lines no guest can forge. The answers are checked
//! too, as what a user would see.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::pattern::Pattern;

/// What the push service answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every line, in order.
    pub lines: Vec<String>,
    /// `ok NAME N`: the service and the copies started.
    pub ok: Option<(String, u32)>,
    /// `copy I:G ADDR` lines: (id, address).
    pub copies: Vec<(String, String)>,
    /// `error KIND: what`: (kind, what).
    pub error: Option<(String, String)>,
}

impl Answer {
    /// Parses the answer's text.
    pub fn parse(text: &str) -> Answer {
        let mut a = Answer::default();
        for l in text.lines() {
            a.lines.push(l.to_owned());
            let mut w = l.splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("ok"), Some(name), Some(n)) => {
                    a.ok = n.parse().ok().map(|n| (name.to_owned(), n));
                }
                (Some("copy"), Some(id), Some(addr)) => {
                    a.copies.push((id.to_owned(), addr.to_owned()));
                }
                (Some("error"), Some(kind), rest) => {
                    let kind = kind.trim_end_matches(':').to_owned();
                    a.error = Some((kind, rest.unwrap_or("").to_owned()));
                }
                _ => {}
            }
        }
        a
    }
}

/// Uploads `bytes` to the push service at `addr` (`127.0.0.1:PORT`),
/// retrying the connection until `up_within` passes (the service may not
/// listen yet), then half-closes and reads the answer. `progress` is told
/// the bytes sent so far.
pub fn upload(
    addr: &str,
    bytes: &[u8],
    up_within: Duration,
    mut progress: impl FnMut(usize),
) -> Result<Answer, String> {
    let since = Instant::now();
    loop {
        match try_upload(addr, bytes, &mut progress) {
            Ok(a) if !a.lines.is_empty() => return Ok(a),
            Ok(_) if since.elapsed() < up_within => {}
            Ok(_) => {
                return Err(format!(
                    "push to {addr}: the connection closed without an answer"
                ))
            }
            Err(_) if since.elapsed() < up_within => {}
            Err(e) => return Err(format!("push to {addr}: {e}")),
        }
        thread::sleep(Duration::from_millis(500));
    }
}

fn try_upload(
    addr: &str,
    bytes: &[u8],
    progress: &mut impl FnMut(usize),
) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut sent = 0;
    for chunk in bytes.chunks(16 * 1024) {
        s.write_all(chunk)?;
        sent += chunk.len();
        progress(sent);
    }
    s.shutdown(Shutdown::Write)?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(Answer::parse(&text))
}

/// Adds a hostfwd rule on QEMU's human monitor at `monitor`:
/// `tcp:127.0.0.1:PORT-GUEST:80` on netdev `n0`.
pub fn hostfwd_add(monitor: &Path, rule: &str) -> Result<(), String> {
    let mut sock = std::os::unix::net::UnixStream::connect(monitor)
        .map_err(|e| format!("QEMU monitor {}: {e}", monitor.display()))?;
    sock.write_all(format!("hostfwd_add n0 {rule}\n").as_bytes())
        .map_err(|e| format!("QEMU monitor: {e}"))?;
    thread::sleep(Duration::from_millis(100));
    Ok(())
}

/// A free loopback TCP port (bound, read, released).
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("pick a loopback port: {e}"))
}

/// The address of the domain in slot `index` (the vnic's plan by slot).
pub fn address(index: u32) -> Option<[u8; 4]> {
    serac_vnic_core::assign::addresses(index)
        .ok()
        .map(|a| a.ipv4.0)
}

/// What one upload must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `ok NAME N` with N copies.
    Ok(u32),
    /// `error KIND: ...`.
    Error(&'static str),
}

/// How a test's upload is spoiled after signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Sent as signed.
    None,
    /// One byte of the ELF flipped after signing (a tampered image).
    FlipImageByte,
    /// Only the first so many bytes sent.
    Truncate(usize),
}

/// One upload of a test: a bundle made at run time from a built ELF.
#[derive(Debug, Clone)]
pub struct PushStep {
    /// What it is, in messages.
    pub label: String,
    /// The ELF, a file in `target/serac/` (`httpd.elf`).
    pub elf: String,
    /// Bytes of the ELF replaced before signing (same length): an httpd
    /// variant with another built-in page.
    pub patch: Option<(Vec<u8>, Vec<u8>)>,
    /// The service's name.
    pub name: String,
    /// Copies asked for.
    pub count: u32,
    /// The key it is signed with (a seed).
    pub seed: [u8; 32],
    /// What happens to it after signing.
    pub damage: Damage,
    /// The answer it must get.
    pub expect: Expect,
}

impl PushStep {
    /// The bytes sent.
    pub fn bytes(&self, out_dir: &Path) -> Result<Vec<u8>, String> {
        let path = out_dir.join(&self.elf);
        let mut elf = fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        if let Some((from, to)) = &self.patch {
            let at = elf
                .windows(from.len())
                .position(|w| w == &from[..])
                .ok_or(format!("{}: the bytes to patch are not in it", self.elf))?;
            elf[at..at + to.len()].copy_from_slice(to);
        }
        let need = serac_control_core::memory_kib(&elf)
            .map_err(|e| format!("{}: not loadable: {e:?}", self.elf))?;
        let fragment = serac_protocol::push::Fragment {
            name: &self.name,
            count: self.count,
            memory_kib: need + 64,
            net: true,
            disk: true,
        };
        let mut b = serac_control_core::bundle(&fragment, &elf, &self.seed)
            .map_err(|e| format!("bundle: {e:?}"))?;
        match self.damage {
            Damage::None => {}
            Damage::FlipImageByte => {
                let n = b.len();
                b[n - 100] ^= 0x01;
            }
            Damage::Truncate(n) => b.truncate(n),
        }
        Ok(b)
    }
}

/// The host pushes and then fetches from copies of a service.
#[derive(Debug, Clone)]
pub struct HostPush {
    /// When to start.
    pub when: Pattern,
    /// The push service's address on the guests' network.
    pub control: [u8; 4],
    /// The uploads, in order.
    pub steps: Vec<PushStep>,
    /// Then: service name, copies to reach, path, and the body each must
    /// answer with.
    pub fetch: Option<(String, usize, String, Vec<u8>)>,
}

/// A [`HostPush`] in a run.
#[derive(Debug)]
pub struct HostPushRun {
    spec: HostPush,
    port: u16,
    monitor: PathBuf,
    out_dir: PathBuf,
    started: bool,
    worker: Option<JoinHandle<Result<Vec<String>, String>>>,
}

impl HostPushRun {
    /// Picks the loopback port of the push service's forward.
    pub fn new(spec: &HostPush, monitor: &Path, out_dir: &Path) -> Result<HostPushRun, String> {
        Ok(HostPushRun {
            spec: spec.clone(),
            port: free_port()?,
            monitor: monitor.to_path_buf(),
            out_dir: out_dir.to_path_buf(),
            started: false,
            worker: None,
        })
    }

    /// The push service's hostfwd rule.
    pub fn hostfwd(&self) -> String {
        let [a, b, c, d] = self.spec.control;
        format!(
            "tcp:127.0.0.1:{}-{a}.{b}.{c}.{d}:{}",
            self.port,
            serac_protocol_port()
        )
    }

    /// Starts the worker once the line has appeared.
    pub fn step(&mut self, log: &Path) {
        if self.started {
            return;
        }
        let serial = fs::read_to_string(log).unwrap_or_default();
        if !crate::judge::clean_lines(&serial)
            .iter()
            .any(|l| self.spec.when.matches(l))
        {
            return;
        }
        self.started = true;
        let (spec, port, monitor, log, out) = (
            self.spec.clone(),
            self.port,
            self.monitor.clone(),
            log.to_path_buf(),
            self.out_dir.clone(),
        );
        self.worker = Some(thread::spawn(move || {
            run(&spec, port, &monitor, &log, &out)
        }));
    }

    /// After QEMU ended: what the host did, or what went wrong.
    pub fn finish(self) -> Result<Vec<String>, String> {
        match self.worker {
            None => Err(format!("host push: {} never appeared", self.spec.when)),
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err("host push: the worker panicked".into())),
        }
    }
}

fn serac_protocol_port() -> u16 {
    serac_protocol::push::PORT
}

/// The copies of `service` the supervisor says it started: (name, index).
fn started_copies(log: &Path, service: &str) -> Vec<(String, u32)> {
    let serial = fs::read_to_string(log).unwrap_or_default();
    let p = Pattern::new(format!(
        "[0:1 supervisor] supervisor: started {service}#%d as %d:%d (%d pages) for the push service"
    ));
    crate::judge::clean_lines(&serial)
        .iter()
        .filter(|l| p.matches(l))
        .filter_map(|l| {
            let rest = l.split("supervisor: started ").nth(1)?;
            let mut w = rest.split(' ');
            let name = w.next()?.to_owned();
            let _as = w.next()?;
            let index = w.next()?.split(':').next()?.parse().ok()?;
            Some((name, index))
        })
        .collect()
}

fn run(
    spec: &HostPush,
    port: u16,
    monitor: &Path,
    log: &Path,
    out_dir: &Path,
) -> Result<Vec<String>, String> {
    let addr = format!("127.0.0.1:{port}");
    let mut out = Vec::new();
    for s in &spec.steps {
        let bytes = s.bytes(out_dir)?;
        let a = upload(&addr, &bytes, Duration::from_secs(120), |_| {})?;
        let ok = match (&s.expect, &a.ok, &a.error) {
            (Expect::Ok(n), Some((_, got)), None) => got == n && a.copies.len() == *n as usize,
            (Expect::Error(kind), None, Some((got, _))) => got == kind,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "push {}: expected {:?}, got: {}",
                s.label,
                s.expect,
                a.lines.join(" | ")
            ));
        }
        out.push(format!(
            "push {}: {}",
            s.label,
            a.lines.last().cloned().unwrap_or_default()
        ));
    }
    let Some((service, n, path, body)) = &spec.fetch else {
        return Ok(out);
    };
    // The supervisor's lines say which copies run.
    let since = Instant::now();
    let copies = loop {
        let c = started_copies(log, service);
        if c.len() >= *n {
            break c;
        }
        if since.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "host push: the supervisor started {} of the {n} copies of {service} to reach",
                c.len()
            ));
        }
        thread::sleep(Duration::from_millis(500));
    };
    // The first, the last and some between.
    let pick: Vec<&(String, u32)> = (0..*n)
        .map(|k| &copies[k * (copies.len() - 1) / (*n - 1).max(1)])
        .collect();
    for (name, index) in pick {
        let [a, b, c, d] = address(*index).ok_or(format!("no address for slot {index}"))?;
        let p = free_port()?;
        hostfwd_add(monitor, &format!("tcp:127.0.0.1:{p}-{a}.{b}.{c}.{d}:80"))?;
        let url = format!("http://127.0.0.1:{p}{path}");
        let got = crate::host_http::curl_until(&url, Duration::from_secs(120))?;
        if &got != body {
            return Err(format!(
                "curl {url} ({name}): got {:?}, not the pushed page {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(body)
            ));
        }
        out.push(format!(
            "curl {name} ({a}.{b}.{c}.{d}) {path}: the pushed page"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let a = Answer::parse(
            "progress verified x\nok web2 2\ncopy 9:1 10.0.1.9\ncopy 10:1 10.0.1.10\nend\n",
        );
        assert_eq!(a.ok, Some(("web2".into(), 2)));
        assert_eq!(a.copies.len(), 2);
        assert_eq!(a.error, None);
        let e = Answer::parse("error signature: no operator key verifies the signature\n");
        assert_eq!(e.error.unwrap().0, "signature");
        assert_eq!(e.ok, None);
    }
}
