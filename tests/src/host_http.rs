//! The host's side of a [`HostHttp`]: `curl` and `wrk` run by the runner
//! against guests' web servers through hostfwd rules. Their results are
//! the host's own observations, so no guest can forge the verdict.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serac_boot::Error;

use crate::spec::{HostHttp, HttpCheck};

/// How long the servers may take to answer their first `curl` once the
/// trigger line appeared.
const UP_WITHIN: Duration = Duration::from_secs(60);
/// One `curl`'s limit.
const CURL_MAX_SECS: &str = "10";

/// What the host did: one line per server, or what went wrong.
pub type Verdict = Result<Vec<String>, String>;

/// A [`HostHttp`] in a run: the loopback ports picked, and the client
/// thread once started.
#[derive(Debug)]
pub struct HostHttpRun {
    spec: HostHttp,
    ports: Vec<u16>,
    dir: PathBuf,
    name: String,
    started: bool,
    worker: Option<JoinHandle<Verdict>>,
}

/// `program`'s path, or an error saying how to install it.
fn need(program: &str) -> Result<(), Error> {
    if serac_boot::host::find_program(program).is_some() {
        return Ok(());
    }
    Err(Error::io(
        format!("run {program} on the host"),
        std::io::Error::other(format!(
            "{program} is not installed; install it with `sudo apt-get install -y {program}`"
        )),
    ))
}

impl HostHttpRun {
    /// Checks the clients are installed and picks a free loopback port per
    /// guest; `dir` and `name` place the files `curl` writes.
    pub fn new(spec: &HostHttp, dir: &Path, name: &str) -> Result<HostHttpRun, Error> {
        need("curl")?;
        if matches!(spec.check, HttpCheck::Wrk { .. }) {
            need("wrk")?;
        }
        let io = |e| Error::io("pick a loopback TCP port", e);
        // Bound together so the ports differ, then released for QEMU.
        let socks = spec
            .guests
            .iter()
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        let ports = socks
            .iter()
            .map(|s| s.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        Ok(HostHttpRun {
            spec: spec.clone(),
            ports,
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            started: false,
            worker: None,
        })
    }

    /// The hostfwd rules: port P to guest:80.
    pub fn hostfwd(&self) -> Vec<String> {
        self.spec
            .guests
            .iter()
            .zip(&self.ports)
            .map(|([a, b, c, d], p)| format!("tcp:127.0.0.1:{p}-{a}.{b}.{c}.{d}:80"))
            .collect()
    }

    /// Starts the client thread once the line has appeared.
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
        let targets: Vec<Target> = self
            .spec
            .guests
            .iter()
            .zip(&self.ports)
            .enumerate()
            .map(|(i, (&guest, &port))| Target {
                guest,
                port,
                body_file: self.dir.join(format!("{}.curl{i}.body", self.name)),
            })
            .collect();
        let check = self.spec.check.clone();
        self.worker = Some(thread::spawn(move || match check {
            HttpCheck::Curl {
                path,
                body,
                missing,
            } => curl_all(&targets, &path, &body, &missing),
            HttpCheck::Wrk { path, secs, conns } => wrk_all(&targets, &path, secs, conns),
        }));
    }

    /// After QEMU ended: the client's lines, or what went wrong (waiting
    /// for the client, which its own limits bound).
    pub fn finish(self) -> Verdict {
        match self.worker {
            None => Err(format!(
                "host HTTP: {} never appeared, no client run",
                self.spec.when
            )),
            Some(w) => w
                .join()
                .unwrap_or_else(|_| Err("host HTTP: the client thread panicked".into())),
        }
    }
}

/// One server as the host reaches it.
struct Target {
    guest: [u8; 4],
    port: u16,
    body_file: PathBuf,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn who(&self) -> String {
        let [a, b, c, d] = self.guest;
        format!("127.0.0.1:{} ({a}.{b}.{c}.{d}:80)", self.port)
    }

    /// One `curl` of `path`: the status and the body.
    fn curl(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let _ = fs::remove_file(&self.body_file);
        let out = Command::new("curl")
            .args(["-sS", "--max-time", CURL_MAX_SECS, "-o"])
            .arg(&self.body_file)
            .args(["-w", "%{http_code}"])
            .arg(self.url(path))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "curl {}: {} ({})",
                self.url(path),
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ));
        }
        let code = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| format!("curl {}: no status code", self.url(path)))?;
        let body = fs::read(&self.body_file).unwrap_or_default();
        Ok((code, body))
    }

    /// Retries `path` until it answers 200 or [`UP_WITHIN`] has passed
    /// (the server may not listen yet: a reset or an empty reply).
    fn wait_up(&self, path: &str, since: Instant) -> Result<Vec<u8>, String> {
        loop {
            let got = self.curl(path);
            match got {
                Ok((200, body)) => return Ok(body),
                _ if since.elapsed() >= UP_WITHIN => {
                    return Err(format!(
                        "{} not up within {} s: last answer {got:?}",
                        self.who(),
                        UP_WITHIN.as_secs()
                    ))
                }
                _ => thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

fn curl_all(targets: &[Target], path: &str, want: &[u8], missing: &str) -> Verdict {
    let since = Instant::now();
    let mut lines = Vec::new();
    for t in targets {
        let body = t.wait_up(path, since)?;
        if body != want {
            return Err(format!(
                "curl {}: {} bytes, not the {} bytes of the page (first difference at byte {})",
                t.url(path),
                body.len(),
                want.len(),
                body.iter()
                    .zip(want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(body.len().min(want.len()))
            ));
        }
        let (code, _) = t.curl(missing)?;
        if code != 404 {
            return Err(format!("curl {}: status {code}, not 404", t.url(missing)));
        }
        lines.push(format!(
            "curl {}: {path} 200, {} bytes byte-exact; {missing} 404",
            t.who(),
            body.len()
        ));
    }
    Ok(lines)
}

fn wrk_all(targets: &[Target], path: &str, secs: u32, conns: u32) -> Verdict {
    let since = Instant::now();
    for t in targets {
        t.wait_up(path, since)?;
    }
    // All at once: the servers share the switch and the CPU.
    let mut children = Vec::new();
    for t in targets {
        let child = Command::new("wrk")
            .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s")])
            .arg(t.url(path))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        children.push(child);
    }
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (t, child) in targets.iter().zip(children) {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("wait for wrk: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match WrkSummary::parse(&text) {
            Ok(s) => {
                lines.push(format!("wrk {}: {s}", t.who()));
                if let Some(p) = s.problem() {
                    problems.push(format!("wrk {}: {p}", t.who()));
                }
            }
            Err(e) => problems.push(format!(
                "wrk {}: {e} ({}; stdout {:?}, stderr {:?})",
                t.who(),
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(format!(
            "{}; all: {}",
            problems.join("; "),
            lines.join("; ")
        ))
    }
}

/// What `wrk` printed, the parts a verdict needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkSummary {
    /// Requests completed.
    pub requests: u64,
    /// Over how many seconds.
    pub secs: f64,
    /// `Requests/sec`.
    pub rps: f64,
    /// Socket errors: connect, read, write, timeout.
    pub socket_errors: [u64; 4],
    /// Answers with a status of 400 or more (wrk's "Non-2xx or 3xx").
    pub bad_status: u64,
}

impl WrkSummary {
    /// Parses wrk's report: `N requests in Ts, ...`, the optional
    /// `Socket errors: connect a, read b, write c, timeout d` and
    /// `Non-2xx or 3xx responses: n` lines, and `Requests/sec: r`.
    pub fn parse(out: &str) -> Result<WrkSummary, String> {
        let mut s = WrkSummary {
            requests: 0,
            secs: 0.0,
            rps: 0.0,
            socket_errors: [0; 4],
            bad_status: 0,
        };
        let (mut got_requests, mut got_rps) = (false, false);
        for l in out.lines().map(str::trim) {
            if let Some((n, rest)) = l.split_once(" requests in ") {
                s.requests = n.trim().parse().map_err(|_| format!("bad line {l:?}"))?;
                let t = rest.split(',').next().unwrap_or("");
                s.secs = parse_secs(t).ok_or_else(|| format!("bad duration in {l:?}"))?;
                got_requests = true;
            } else if let Some(rest) = l.strip_prefix("Socket errors:") {
                for (i, key) in ["connect", "read", "write", "timeout"].iter().enumerate() {
                    let v = rest
                        .split(',')
                        .map(str::trim)
                        .find_map(|p| p.strip_prefix(key))
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| format!("bad line {l:?}"))?;
                    s.socket_errors[i] = v;
                }
            } else if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
                s.bad_status = rest.trim().parse().map_err(|_| format!("bad line {l:?}"))?;
            } else if let Some(rest) = l.strip_prefix("Requests/sec:") {
                s.rps = rest.trim().parse().map_err(|_| format!("bad line {l:?}"))?;
                got_rps = true;
            }
        }
        if !got_requests || !got_rps {
            return Err("no wrk summary".into());
        }
        Ok(s)
    }

    /// Why this run fails the test: a socket error, a bad status, or no
    /// request done.
    pub fn problem(&self) -> Option<String> {
        let [c, r, w, t] = self.socket_errors;
        if c + r + w + t > 0 {
            return Some(format!(
                "socket errors: connect {c}, read {r}, write {w}, timeout {t}"
            ));
        }
        if self.bad_status > 0 {
            return Some(format!("{} non-2xx answer(s)", self.bad_status));
        }
        if self.requests == 0 {
            return Some("no request completed".into());
        }
        None
    }
}

/// wrk's durations: `10.00s`, `1.00m`, `500.00ms`.
fn parse_secs(t: &str) -> Option<f64> {
    let t = t.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

impl std::fmt::Display for WrkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [c, r, w, t] = self.socket_errors;
        write!(
            f,
            "{} requests in {:.2} s, {:.1} requests/s, socket errors {c}/{r}/{w}/{t}, non-2xx {}",
            self.requests, self.secs, self.rps, self.bad_status
        )
    }
}

/// `curl` of `url` until it answers 200 (its body) or `within` passes.
pub fn curl_until(url: &str, within: Duration) -> Result<Vec<u8>, String> {
    let since = Instant::now();
    let body_file = std::env::temp_dir().join(format!("serac-curl-{}.body", std::process::id()));
    loop {
        let _ = fs::remove_file(&body_file);
        let out = Command::new("curl")
            .args(["-sS", "--max-time", CURL_MAX_SECS, "-o"])
            .arg(&body_file)
            .args(["-w", "%{http_code}"])
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && code == "200" {
            let body = fs::read(&body_file).unwrap_or_default();
            let _ = fs::remove_file(&body_file);
            return Ok(body);
        }
        if since.elapsed() >= within {
            return Err(format!(
                "curl {url}: no 200 within {} s (last: {code} {})",
                within.as_secs(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 10s test @ http://127.0.0.1:8080/2k.html
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.41ms  503.12us  12.01ms   91.00%
    Req/Sec     2.86k   150.00     3.10k    70.00%
  28467 requests in 10.00s, 62.88MB read
Requests/sec:   2846.31
Transfer/sec:      6.29MB
";

    #[test]
    fn a_clean_run_passes() {
        let s = WrkSummary::parse(CLEAN).unwrap();
        assert_eq!(s.requests, 28467);
        assert!((s.secs - 10.0).abs() < 1e-9);
        assert!((s.rps - 2846.31).abs() < 1e-9);
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn errors_and_bad_statuses_fail() {
        let t = CLEAN.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 2, write 0, timeout 5\nRequests/sec",
        );
        let s = WrkSummary::parse(&t).unwrap();
        assert_eq!(s.socket_errors, [0, 2, 0, 5]);
        assert!(s.problem().unwrap().contains("timeout 5"));
        let t = CLEAN.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert_eq!(WrkSummary::parse(&t).unwrap().bad_status, 12);
        assert!(WrkSummary::parse(&t).unwrap().problem().is_some());
        let t = CLEAN.replace("28467 requests", "0 requests");
        assert!(WrkSummary::parse(&t).unwrap().problem().is_some());
    }

    #[test]
    fn no_summary_is_an_error() {
        assert!(
            WrkSummary::parse("unable to connect to 127.0.0.1:8080 Connection refused").is_err()
        );
        assert!(WrkSummary::parse(&CLEAN.replace("Requests/sec", "Requests/min")).is_err());
        assert!(WrkSummary::parse(
            &CLEAN.replace("Requests/sec", "  Socket errors: connect x\nRequests/sec")
        )
        .is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_secs("10.00s"), Some(10.0));
        assert_eq!(parse_secs("1.00m"), Some(60.0));
        assert_eq!(parse_secs("500.00ms"), Some(0.5));
        assert_eq!(parse_secs("x"), None);
    }
}
