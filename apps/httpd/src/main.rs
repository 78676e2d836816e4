//! httpd: serves the files of the read-only image `www` over HTTP/1.1.
//!
//! Handles: 1 = endpoint to the vnic (`net=yes`), 2 = endpoint to the disk
//! server. At start it reads every file of `www` (up to [`CACHE_MAX`]
//! bytes in all) into memory, so a request costs no disk call; then it
//! listens on port 80 with a backlog of [`BACKLOG`] and serves each
//! connection in its own task. It answers discovery probes for `httpd`
//! (`ilwaco::net::discover`), so clients find it without a table.
//!
//! Per connection: requests are parsed by `serac_httpd_core` (pipelined
//! ones in order); a bad request gets its status (400, 413, ...) and the
//! connection closes; a request head must arrive within [`HEAD_TIMEOUT`]
//! of its first byte (else 408) and an idle keep-alive connection closes
//! after [`IDLE_TIMEOUT`]. No input panics it: every parse result is a value.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use ilwaco::fs::{EntryKind, FsError};
use ilwaco::net::{self, Config, Net, NetDuration, NetError, TcpStream};
use ilwaco::protocol::client::{ClientError, ServiceError};
use ilwaco::{println, time, BlockError, Image};
use serac_httpd_core::{file_path, parse_request, write_head, Limits, Method, Parsed, HEAD_MAX};

ilwaco::entry!(main);

/// Handle slots (manifest order: `endpoint=vnic endpoint=disk`).
const VNIC: u32 = 1;
const DISK: u32 = 2;
/// Bytes of files kept in memory, at most.
const CACHE_MAX: usize = 512 * 1024;
/// Sockets listening on port 80: a connection beyond them is refused
/// (smoltcp has no queue behind its listening sockets), so as many as a
/// load's clients (loadgen's 8).
const BACKLOG: usize = 8;
/// Each socket's buffers, either way. They are held for good and were
/// most of an idle httpd's pages at 8 KiB: thousands of httpd share one
/// machine's memory (docs/performance.md, "Web scale"). A request head,
/// or a small page and its head, fits; a larger file streams through.
const SOCKET_BUF: usize = 4096;
/// From a request's first byte to the end of its head.
const HEAD_TIMEOUT: NetDuration = NetDuration::from_secs(5);
/// A keep-alive connection with no request.
const IDLE_TIMEOUT: NetDuration = NetDuration::from_secs(15);
/// The connection's buffer: a head and a skipped body at their limits.
const BUF: usize = 8192 + 512;
/// The path of [`ABOUT`].
const ABOUT_PATH: &str = "/about.txt";
/// A page built into the image rather than read from `www`: a variant of
/// httpd with another page is these 64 bytes patched (the push test makes
/// one so, and pushes it).
static ABOUT: [u8; 64] = *b"serac httpd: stock build, page from the image itself.          \n";

struct Site {
    /// (path, content type, bytes), sorted by path.
    files: Vec<(String, &'static str, Vec<u8>)>,
}

impl Site {
    fn get(&self, path: &str) -> Option<&(String, &'static str, Vec<u8>)> {
        self.files
            .binary_search_by(|f| f.0.as_str().cmp(path))
            .ok()
            .and_then(|i| self.files.get(i))
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") | Some("htm") => "text/html",
        Some("txt") => "text/plain",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// Mounts `www`. The disk server's table of open extents can be full
/// while hundreds of httpd start at once (each holds it only while it
/// caches the site), so that is retried for up to a minute.
fn mount_www() -> Result<Image, FsError> {
    let mut tries = 0;
    loop {
        match Image::mount_named(ilwaco::rt::granted(DISK), "www") {
            Err(FsError::Device(BlockError::Protocol(ClientError::Service(
                ServiceError::NoResources,
            )))) if tries < 600 => {
                tries += 1;
                let _ = time::sleep_ns(100_000_000);
            }
            r => return r,
        }
    }
}

fn load() -> Result<Site, &'static str> {
    let img = mount_www().map_err(|e| {
        println!("httpd: mount www: {e:?}");
        "cannot mount www"
    })?;
    let mut files = Vec::new();
    let mut total = 0usize;
    let paths: Vec<(String, u64)> = img
        .entries()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| (String::from(e.path), e.len))
        .collect();
    for (path, len) in paths {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if total.saturating_add(len) > CACHE_MAX {
            println!("httpd: {path}: not cached ({len} bytes; cache full)");
            continue;
        }
        let mut data = Vec::new();
        match img.open(&path).and_then(|mut f| f.read_to_end(&mut data)) {
            Ok(_) => {
                total += data.len();
                let ct = content_type(&path);
                files.push((path, ct, data));
            }
            Err(e) => println!("httpd: {path}: {e:?}"),
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    // Everything is cached: free the disk server's slot for the next httpd.
    let _ = img.into_device().close();
    println!(
        "httpd: {} files, {total} bytes cached from www",
        files.len()
    );
    Ok(Site { files })
}

/// Writes one response; `Err` ends the connection.
async fn respond(
    s: &mut TcpStream,
    status: u16,
    ctype: &str,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> Result<(), NetError> {
    let mut head = [0u8; HEAD_MAX];
    let n =
        write_head(&mut head, status, ctype, body.len(), keep_alive).ok_or(NetError::TooLarge)?;
    s.write_all(head.get(..n).unwrap_or(&[])).await?;
    if !head_only {
        s.write_all(body).await?;
    }
    Ok(())
}

fn error_body(status: u16) -> &'static [u8] {
    match status {
        400 => b"400 Bad Request\n",
        404 => b"404 Not Found\n",
        408 => b"408 Request Timeout\n",
        413 => b"413 Content Too Large\n",
        414 => b"414 URI Too Long\n",
        501 => b"501 Not Implemented\n",
        505 => b"505 HTTP Version Not Supported\n",
        _ => b"error\n",
    }
}

async fn serve(net: Net, mut s: TcpStream, site: Rc<Site>) {
    let limits = Limits::default();
    let mut buf = alloc::vec![0u8; BUF];
    let mut len = 0;
    // When the request under way must be complete.
    let mut deadline = net.now() + IDLE_TIMEOUT;
    loop {
        let parsed = parse_request(buf.get(..len).unwrap_or(&[]), &limits);
        match parsed {
            Ok(Parsed::Complete(req, used)) => {
                let head_only = req.method == Method::Head;
                // Read through black_box: the bytes stay in the image as they are.
                let about: &[u8] = core::hint::black_box(&ABOUT[..]);
                let r = match file_path(req.path).as_deref().and_then(|p| site.get(p)) {
                    _ if req.path == ABOUT_PATH => {
                        respond(&mut s, 200, "text/plain", about, head_only, req.keep_alive).await
                    }
                    Some((_, ct, body)) => {
                        respond(&mut s, 200, ct, body, head_only, req.keep_alive).await
                    }
                    None => {
                        respond(
                            &mut s,
                            404,
                            "text/plain",
                            error_body(404),
                            head_only,
                            req.keep_alive,
                        )
                        .await
                    }
                };
                let keep = req.keep_alive;
                if r.is_err() || !keep {
                    break;
                }
                buf.copy_within(used..len, 0);
                len -= used;
                deadline = net.now() + if len > 0 { HEAD_TIMEOUT } else { IDLE_TIMEOUT };
                continue;
            }
            Ok(Parsed::Incomplete) => {}
            Err(e) => {
                let st = e.status();
                let _ = respond(&mut s, st, "text/plain", error_body(st), false, false).await;
                break;
            }
        }
        let Some(room) = buf.get_mut(len..).filter(|r| !r.is_empty()) else {
            // The limits keep a request inside the buffer; this is the backstop.
            let _ = respond(&mut s, 413, "text/plain", error_body(413), false, false).await;
            break;
        };
        let was_empty = len == 0;
        match net.timeout(deadline, s.read(room)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                len += n;
                if was_empty {
                    // A new request has begun: its head gets its own bound.
                    deadline = net.now() + HEAD_TIMEOUT;
                }
            }
            Err(_) => {
                if len > 0 {
                    let _ = respond(&mut s, 408, "text/plain", error_body(408), false, false).await;
                }
                break;
            }
        }
    }
    // Dropping the stream closes it: queued bytes still go out, and a
    // peer that does not finish is aborted after the linger.
}

/// [`serve`], counted in `open` while it runs.
async fn serve_counted(net: Net, s: TcpStream, site: Rc<Site>, open: Rc<core::cell::Cell<usize>>) {
    serve(net, s, site).await;
    open.set(open.get().saturating_sub(1));
}

fn main() -> i32 {
    let site = match load() {
        Ok(s) => Rc::new(s),
        Err(why) => {
            println!("httpd: {why}");
            return 1;
        }
    };
    let config = Config {
        tcp_rx: SOCKET_BUF,
        tcp_tx: SOCKET_BUF,
        ..Config::default()
    };
    let net = match net::attach(ilwaco::rt::granted(VNIC), config) {
        Ok(n) => n,
        Err(e) => {
            println!("httpd: no network: {e:?}");
            return 1;
        }
    };
    let listener = match net.listen(80, BACKLOG) {
        Ok(l) => l,
        Err(e) => {
            println!("httpd: listen: {e:?}");
            return 1;
        }
    };
    match net::announce(&net, "httpd") {
        Ok(t) => net.spawn(t),
        Err(e) => println!("httpd: no discovery: {e:?}"),
    }
    let [a, b, c, d] = net.addresses().ipv4.0;
    println!("httpd: listening on {a}.{b}.{c}.{d}:80");
    let n2 = net.clone();
    let open = Rc::new(core::cell::Cell::new(0usize));
    let mut high = 0;
    net::run(&net, async move {
        loop {
            match listener.accept().await {
                Ok(s) => {
                    let (site, open2) = (site.clone(), open.clone());
                    open.set(open.get() + 1);
                    n2.spawn(serve_counted(n2.clone(), s, site, open2));
                    // The heap at each new high of 8, 16, ... connections:
                    // `bench net` takes the cost of one from two of them.
                    let now = open.get();
                    if now > high && now >= 8 && now.is_power_of_two() {
                        println!(
                            "httpd: {now} connection(s) open, heap in use {} bytes",
                            ilwaco::sys::heap_in_use()
                        );
                    }
                    high = high.max(now);
                }
                Err(e) => {
                    println!("httpd: accept: {e:?}");
                    return 1;
                }
            }
        }
    })
}
