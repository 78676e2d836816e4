//! Postcard encoding of IPC payloads, and bounded byte/string fields.
//!
//! Every message type implements `MaxSize`, so a buffer of
//! `T::POSTCARD_MAX_SIZE` bytes always suffices to encode it. [`decode`] takes
//! untrusted bytes and cannot panic: postcard checks every length, enum tag
//! and varint, our bounded fields check their lengths, and trailing bytes
//! are rejected so one message has exactly one encoding length.
//! No message type is recursive and none borrows from the buffer.

use core::fmt;
use core::marker::PhantomData;
use postcard::experimental::max_size::MaxSize;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// Why a payload could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The output buffer is smaller than the encoding.
    BufferTooSmall,
    /// The bytes are not a valid encoding (bad tag, varint, length, UTF-8...).
    Malformed,
    /// A valid message followed by extra bytes.
    TrailingBytes,
}

/// Encodes `msg` into `buf`, returning the used prefix.
pub fn encode<'b, T: Serialize + MaxSize>(
    msg: &T,
    buf: &'b mut [u8],
) -> Result<&'b [u8], CodecError> {
    match postcard::to_slice(msg, buf) {
        Ok(used) => Ok(used),
        Err(postcard::Error::SerializeBufferFull) => Err(CodecError::BufferTooSmall),
        Err(_) => Err(CodecError::Malformed),
    }
}

/// Decodes exactly one `T` from `bytes`; trailing bytes are an error.
pub fn decode<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// [`decode`] for a `T` that may borrow from `bytes`, so a server can read
/// bulk data (the vnic's frames) in place instead of copying it out first.
pub fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|_| CodecError::Malformed)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes);
    }
    Ok(msg)
}

/// Bytes a postcard varint of `n` takes at most (7 bits per byte).
pub const fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut v = n >> 7;
    while v != 0 {
        len += 1;
        v >>= 7;
    }
    len
}

/// At most `N` bytes, inline. Encoded as a postcard byte string.
#[derive(Clone, Copy)]
pub struct BoundedBytes<const N: usize> {
    len: usize,
    buf: [u8; N],
}

impl<const N: usize> BoundedBytes<N> {
    /// Empty.
    pub const fn new() -> Self {
        BoundedBytes {
            len: 0,
            buf: [0; N],
        }
    }

    /// Copies `data`; `None` if longer than `N`.
    pub fn from_slice(data: &[u8]) -> Option<Self> {
        let mut b = Self::new();
        b.buf.get_mut(..data.len())?.copy_from_slice(data);
        b.len = data.len();
        Some(b)
    }

    /// Appends `data`; `None` (and nothing appended) if the total would
    /// exceed `N`.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> Option<()> {
        let end = self.len.checked_add(data.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(data);
        self.len = end;
        Some(())
    }

    /// The bytes held (invariant: `len <= N`).
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Number of bytes held.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> AsRef<[u8]> for BoundedBytes<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> Default for BoundedBytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> PartialEq for BoundedBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl<const N: usize> Eq for BoundedBytes<N> {}

impl<const N: usize> fmt::Debug for BoundedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoundedBytes<{N}>({:?})", self.as_slice())
    }
}

impl<const N: usize> Serialize for BoundedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

struct BytesVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for BytesVisitor<N> {
    type Value = BoundedBytes<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {N} bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        BoundedBytes::from_slice(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(BytesVisitor::<N>)
    }
}

impl<const N: usize> MaxSize for BoundedBytes<N> {
    const POSTCARD_MAX_SIZE: usize = varint_len(N) + N;
}

/// At most `N` bytes of UTF-8, inline (names of images, domains).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct BoundedStr<const N: usize> {
    bytes: BoundedBytes<N>,
}

impl<const N: usize> BoundedStr<N> {
    /// Copies `s`; `None` if longer than `N` bytes.
    pub fn new(s: &str) -> Option<Self> {
        Some(BoundedStr {
            bytes: BoundedBytes::from_slice(s.as_bytes())?,
        })
    }

    /// The string (always valid UTF-8: checked on every construction path).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.bytes.as_slice()).unwrap_or("")
    }
}

impl<const N: usize> fmt::Debug for BoundedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Serialize for BoundedStr<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

struct StrVisitor<const N: usize>(PhantomData<[u8; N]>);

impl<const N: usize> Visitor<'_> for StrVisitor<N> {
    type Value = BoundedStr<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {N} bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        BoundedStr::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedStr<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor::<N>(PhantomData))
    }
}

impl<const N: usize> MaxSize for BoundedStr<N> {
    const POSTCARD_MAX_SIZE: usize = varint_len(N) + N;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_lengths() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16383), 2);
        assert_eq!(varint_len(16384), 3);
    }

    #[test]
    fn bounded_fields_reject_overlong_input() {
        let long = BoundedBytes::<8>::from_slice(&[1; 8]).unwrap();
        let mut buf = [0u8; 16];
        let enc = encode(&long, &mut buf).unwrap().to_vec();
        assert_eq!(enc.len(), BoundedBytes::<8>::POSTCARD_MAX_SIZE);
        assert_eq!(decode::<BoundedBytes<8>>(&enc), Ok(long));
        assert_eq!(decode::<BoundedBytes<7>>(&enc), Err(CodecError::Malformed));
        assert!(BoundedBytes::<7>::from_slice(&[1; 8]).is_none());
        let mut tail = enc.clone();
        tail.push(0);
        assert_eq!(
            decode::<BoundedBytes<8>>(&tail),
            Err(CodecError::TrailingBytes)
        );
        assert_eq!(
            encode(&long, &mut buf[..3]),
            Err(CodecError::BufferTooSmall)
        );
        // Invalid UTF-8 is rejected as a string.
        assert_eq!(
            decode::<BoundedStr<8>>(&[2, 0xff, 0xfe]),
            Err(CodecError::Malformed)
        );
        let mut grown = BoundedBytes::<4>::from_slice(&[1, 2]).unwrap();
        assert_eq!(grown.extend_from_slice(&[3, 4]), Some(()));
        assert_eq!(grown.extend_from_slice(&[5]), None);
        assert_eq!(grown.as_slice(), &[1, 2, 3, 4]);
        let s = BoundedStr::<8>::new("httpd").unwrap();
        let enc = encode(&s, &mut buf).unwrap().to_vec();
        assert_eq!(decode::<BoundedStr<8>>(&enc).unwrap().as_str(), "httpd");
        assert!(BoundedStr::<4>::new("httpd").is_none());
    }

    proptest! {
        #[test]
        fn bytes_round_trip(v in proptest::collection::vec(any::<u8>(), 0..=200)) {
            let b = BoundedBytes::<200>::from_slice(&v).unwrap();
            let mut buf = [0u8; BoundedBytes::<200>::POSTCARD_MAX_SIZE];
            let enc = encode(&b, &mut buf).unwrap();
            prop_assert!(enc.len() <= BoundedBytes::<200>::POSTCARD_MAX_SIZE);
            let back = decode::<BoundedBytes<200>>(enc).unwrap();
            prop_assert_eq!(back.as_slice(), &v[..]);
        }

        #[test]
        fn garbage_never_panics(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<BoundedBytes<16>>(&v);
            let _ = decode::<BoundedStr<16>>(&v);
        }
    }
}
