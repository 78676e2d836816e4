//! What loadgen and httpprobe share: one HTTP exchange on a stream.
#![no_std]

use ilwaco::net::{NetError, TcpStream};
use serac_httpd_core::{parse_response, Parsed, Response};

/// Longest response head read.
pub const HEAD_LIMIT: usize = 2048;

/// What went wrong with an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeError {
    /// The connection failed.
    Net(NetError),
    /// The server closed before the response was whole.
    Truncated,
    /// The response head does not parse.
    BadResponse,
}

impl From<NetError> for ExchangeError {
    fn from(e: NetError) -> Self {
        ExchangeError::Net(e)
    }
}

/// A response: its head, the body's length and FNV-1a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The head.
    pub head: Response,
    /// Body bytes read.
    pub body_len: u64,
    /// Their FNV-1a hash.
    pub body_hash: u64,
}

/// FNV-1a over `data`, continuing from `h`.
pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// FNV-1a's starting value.
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Reads one response (head and `Content-Length` body) from `s`. Bytes
/// after it (a pipelined next response) are left in `buf[..*len]`.
pub async fn read_response(
    s: &mut TcpStream,
    buf: &mut [u8],
    len: &mut usize,
) -> Result<Answer, ExchangeError> {
    let (head, used) = loop {
        match parse_response(buf.get(..*len).unwrap_or(&[]), HEAD_LIMIT) {
            Ok(Parsed::Complete(r, n)) => break (r, n),
            Ok(Parsed::Incomplete) => {}
            Err(_) => return Err(ExchangeError::BadResponse),
        }
        let room = buf.get_mut(*len..).ok_or(ExchangeError::BadResponse)?;
        if room.is_empty() {
            return Err(ExchangeError::BadResponse);
        }
        match s.read(room).await? {
            0 => return Err(ExchangeError::Truncated),
            n => *len += n,
        }
    };
    let mut want = head.length;
    let mut hash = FNV_START;
    // Body bytes that came with the head.
    let have = u64::try_from(*len - used).unwrap_or(0).min(want);
    let take = usize::try_from(have).unwrap_or(0);
    hash = fnv(hash, buf.get(used..used + take).unwrap_or(&[]));
    want -= have;
    buf.copy_within(used + take..*len, 0);
    *len -= used + take;
    while want > 0 {
        let n = s.read(buf).await?;
        if n == 0 {
            return Err(ExchangeError::Truncated);
        }
        let body = usize::try_from(want).unwrap_or(usize::MAX).min(n);
        hash = fnv(hash, buf.get(..body).unwrap_or(&[]));
        want -= body as u64;
        buf.copy_within(body..n, 0);
        *len = n - body;
    }
    Ok(Answer {
        head,
        body_len: head.length,
        body_hash: hash,
    })
}
