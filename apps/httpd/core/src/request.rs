//! Requests: the server's side.

use alloc::string::String;

use crate::{header, header_end, is_tchar, lines, lists, number, HttpError, Parsed};

/// Bounds on what one request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the request line and headers, with the empty line.
    pub header_bytes: usize,
    /// Header lines.
    pub headers: usize,
    /// Bytes of the target.
    pub target_bytes: usize,
    /// Bytes of a body (read and discarded).
    pub body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_bytes: 4096,
            headers: 48,
            target_bytes: 1024,
            body_bytes: 4096,
        }
    }
}

/// The methods httpd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: the same head, no body.
    Head,
}

/// HTTP/1.0 or HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 1.0: the connection closes unless the client asks to keep it.
    Http10,
    /// 1.1: the connection stays unless either side says `close`.
    Http11,
}

/// One parsed request; `target` borrows the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The path, without any query string.
    pub path: &'a str,
    /// The version.
    pub version: Version,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of the body that followed (skipped).
    pub body: u64,
}

/// Parses the request at the front of `buf`. `Complete(req, used)` says
/// how many bytes it took (head and body), so the next request of a
/// pipeline starts at `buf[used..]`. Never panics; never returns `used`
/// past `buf.len()`.
pub fn parse_request<'a>(buf: &'a [u8], limits: &Limits) -> Result<Parsed<Request<'a>>, HttpError> {
    // Blank lines before a request are allowed (RFC 9112 2.2).
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = buf.get(skip..).unwrap_or(&[]);
    let Some(end) = header_end(rest) else {
        if rest.len() >= limits.header_bytes {
            return Err(HttpError::HeaderTooLarge);
        }
        // A request line that is already wrong need not wait for the rest.
        if let Some(first) = rest.split(|&b| b == b'\n').next() {
            if rest.contains(&b'\n') || first.len() > limits.target_bytes + 32 {
                request_line(first.strip_suffix(b"\r").unwrap_or(first), limits)?;
            }
        }
        return Ok(Parsed::Incomplete);
    };
    if end > limits.header_bytes {
        return Err(HttpError::HeaderTooLarge);
    }
    let head = rest.get(..end).ok_or(HttpError::Malformed)?;
    let mut it = lines(head);
    let (method, path, version) = request_line(it.next().ok_or(HttpError::Malformed)?, limits)?;
    let mut keep_alive = version == Version::Http11;
    let mut length: Option<u64> = None;
    let mut host = false;
    let mut count = 0;
    for line in it {
        count += 1;
        if count > limits.headers {
            return Err(HttpError::HeaderTooLarge);
        }
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            // Obsolete line folding.
            return Err(HttpError::Malformed);
        }
        let (name, value) = header(line)?;
        if name.eq_ignore_ascii_case(b"connection") {
            if lists(value, b"close") {
                keep_alive = false;
            } else if lists(value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = number(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::NotImplemented);
        } else if name.eq_ignore_ascii_case(b"host") {
            if host {
                return Err(HttpError::Malformed);
            }
            host = true;
        }
    }
    if version == Version::Http11 && !host {
        return Err(HttpError::Malformed);
    }
    let body = length.unwrap_or(0);
    if body > limits.body_bytes {
        return Err(HttpError::BodyTooLarge);
    }
    // `body <= limits.body_bytes`, so this fits a usize on any target we build.
    let used = skip + end + usize::try_from(body).map_err(|_| HttpError::BodyTooLarge)?;
    if used > buf.len() {
        return Ok(Parsed::Incomplete);
    }
    Ok(Parsed::Complete(
        Request {
            method,
            path,
            version,
            keep_alive,
            body,
        },
        used,
    ))
}

fn request_line<'a>(
    line: &'a [u8],
    limits: &Limits,
) -> Result<(Method, &'a str, Version), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(m), Some(target), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed);
    };
    if m.is_empty() || !m.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::Malformed);
    }
    if target.len() > limits.target_bytes {
        return Err(HttpError::TargetTooLong);
    }
    if !target.starts_with(b"/") || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(HttpError::Malformed);
    }
    let version = match v {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', a, b'.', b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            return Err(HttpError::Version)
        }
        _ => return Err(HttpError::Malformed),
    };
    let method = match m {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => return Err(HttpError::NotImplemented),
    };
    let path = target
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or(target);
    // Visible ASCII only, so this cannot fail; map it to 400 anyway.
    let path = core::str::from_utf8(path).map_err(|_| HttpError::Malformed)?;
    Ok((method, path, version))
}

/// The file of the image a path names: the leading `/` dropped, a
/// directory (empty or ending in `/`) given its `index.html`. `None` for a
/// path with a `..` component (it would leave the image's root; the image
/// cannot be escaped anyway, but such a target is a 404 by rule).
pub fn file_path(path: &str) -> Option<String> {
    if path.split('/').any(|c| c == "..") {
        return None;
    }
    let p = path.trim_start_matches('/');
    let mut s = String::new();
    s.try_reserve(p.len() + 10).ok()?;
    s.push_str(p);
    if p.is_empty() || p.ends_with('/') {
        s.push_str("index.html");
    }
    Some(s)
}
