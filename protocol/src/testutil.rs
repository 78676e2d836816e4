//! Shared checks for message types (tests only).

use crate::codec::{decode, encode, CodecError};
use crate::layout::MAX_PAYLOAD;
use core::fmt::Debug;
use postcard::experimental::max_size::MaxSize;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes `m` into a buffer of exactly `T::POSTCARD_MAX_SIZE` bytes, checks
/// it fits a payload, decodes it back, and checks that a trailing byte and
/// every strict prefix are rejected.
pub(crate) fn round_trip<T: Serialize + DeserializeOwned + MaxSize + PartialEq + Debug>(m: &T) {
    assert!(T::POSTCARD_MAX_SIZE <= MAX_PAYLOAD);
    let mut buf = [0u8; MAX_PAYLOAD + 1];
    let Ok(enc) = encode(m, &mut buf[..T::POSTCARD_MAX_SIZE]) else {
        panic!("{m:?} does not fit its MaxSize");
    };
    let n = enc.len();
    assert_eq!(decode::<T>(&buf[..n]).as_ref(), Ok(m));
    assert_eq!(decode::<T>(&buf[..=n]), Err(CodecError::TrailingBytes));
    for cut in 0..n {
        assert!(
            decode::<T>(&buf[..cut]).is_err(),
            "prefix {cut} of {m:?} decoded"
        );
    }
}
