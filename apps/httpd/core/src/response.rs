//! Responses: the head httpd writes, and the client's parser.

use core::fmt::Write;

use crate::{header, header_end, lines, lists, number, HttpError, Parsed};

/// Room for any head [`write_head`] writes.
pub const HEAD_MAX: usize = 192;

/// The reason phrase of the statuses httpd sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Writes a response head into `out` and returns its length, or `None`
/// if `out` is shorter than [`HEAD_MAX`] would need.
pub fn write_head(
    out: &mut [u8],
    status: u16,
    content_type: &str,
    length: usize,
    keep_alive: bool,
) -> Option<usize> {
    let mut c = Cursor { buf: out, len: 0 };
    let conn = if keep_alive { "keep-alive" } else { "close" };
    write!(
        c,
        "HTTP/1.1 {status} {}\r\nServer: serac-httpd\r\nContent-Type: {}\r\nContent-Length: {length}\r\nConnection: {conn}\r\n\r\n",
        reason(status),
        content_type.get(..40).unwrap_or(content_type),
    )
    .ok()?;
    Some(c.len)
}

/// A parsed response head (the client's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body's length (a response without one is refused: httpd always
    /// sends it).
    pub length: u64,
    /// Whether the server keeps the connection.
    pub keep_alive: bool,
}

/// Parses the response head at the front of `buf`; `Complete(resp, n)`
/// with `n` the head's length (the body follows). Never panics.
pub fn parse_response(buf: &[u8], max_head: usize) -> Result<Parsed<Response>, HttpError> {
    let Some(end) = header_end(buf) else {
        return if buf.len() >= max_head {
            Err(HttpError::HeaderTooLarge)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if end > max_head {
        return Err(HttpError::HeaderTooLarge);
    }
    let mut it = lines(buf.get(..end).ok_or(HttpError::Malformed)?);
    let status_line = it.next().ok_or(HttpError::Malformed)?;
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let (Some(v), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HttpError::Malformed);
    };
    let mut keep_alive = match v {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(HttpError::Malformed),
    };
    if code.len() != 3 {
        return Err(HttpError::Malformed);
    }
    let status = u16::try_from(number(code)?).map_err(|_| HttpError::Malformed)?;
    let mut length = None;
    for line in it {
        let (name, value) = header(line)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            length = Some(number(value)?);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if lists(value, b"close") {
                keep_alive = false;
            } else if lists(value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(HttpError::NotImplemented);
        }
    }
    let length = length.ok_or(HttpError::Malformed)?;
    Ok(Parsed::Complete(
        Response {
            status,
            length,
            keep_alive,
        },
        end,
    ))
}
