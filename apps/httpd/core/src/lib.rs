//! httpd's HTTP/1.1, with no I/O, so the host can test it.
//!
//! - [`parse_request`]: one request from the front of a buffer (so
//!   pipelined requests parse one after another), with limits on the
//!   header block, the target and the number of headers. Every outcome is
//!   a value: `Incomplete`, a [`Request`] and how many bytes it used, or an
//!   [`HttpError`] that names the status to answer with.
//! - [`write_head`]: a response's status line and headers.
//! - [`file_path`]: which file of the image a target names.
//! - [`parse_response`]: the client's side (loadgen), the same way.
//!
//! Invariant (proptested): no input panics, and the parser never claims
//! more bytes than it was given.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod request;
mod response;

pub use request::{file_path, parse_request, Limits, Method, Request, Version};
pub use response::{parse_response, reason, write_head, Response, HEAD_MAX};

/// Why a request (or response) is refused; each maps to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP: a bad request line, header or number (400).
    Malformed,
    /// The header block is over [`Limits::header_bytes`] or has more than
    /// [`Limits::headers`] headers (413, as the issue asks; 431 would be
    /// the modern code).
    HeaderTooLarge,
    /// A body over [`Limits::body_bytes`] (413).
    BodyTooLarge,
    /// A target over [`Limits::target_bytes`] (414).
    TargetTooLong,
    /// A method other than GET and HEAD, or a transfer coding (501).
    NotImplemented,
    /// An HTTP version other than 1.0 and 1.1 (505).
    Version,
}

impl HttpError {
    /// The status to answer with.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::HeaderTooLarge | HttpError::BodyTooLarge => 413,
            HttpError::TargetTooLong => 414,
            HttpError::NotImplemented => 501,
            HttpError::Version => 505,
        }
    }
}

/// A parse that may need more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not all of it is here yet.
    Incomplete,
    /// Done: the value and the bytes it took from the front of the buffer.
    Complete(T, usize),
}

/// The end of the header block: the offset just past the empty line.
/// Lines end in LF, optionally preceded by CR.
pub(crate) fn header_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        let next = buf.get(nl + 1..)?;
        if next.first() == Some(&b'\n') {
            return Some(nl + 2);
        }
        if next.starts_with(b"\r\n") {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// The header block's lines (without their CR LF), up to the empty line.
pub(crate) fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

/// A token character (RFC 9110 `tchar`).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One header line split into name and trimmed value.
pub(crate) fn header(line: &[u8]) -> Result<(&[u8], &[u8]), HttpError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::Malformed)?;
    let (name, rest) = line.split_at(colon);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::Malformed);
    }
    let value = rest.get(1..).unwrap_or(&[]).trim_ascii();
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(HttpError::Malformed);
    }
    Ok((name, value))
}

/// A decimal number of at most 18 digits (no sign, no spaces).
pub(crate) fn number(v: &[u8]) -> Result<u64, HttpError> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed);
    }
    Ok(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Whether a comma-separated header value lists `token` (any case).
pub(crate) fn lists(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;
