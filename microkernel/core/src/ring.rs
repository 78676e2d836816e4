//! A fixed ring of bytes: the serial console's input queue (bytes received
//! and not yet taken by the supervisor) and its output history (the last
//! bytes printed, for the operator console's `log`).
//!
//! No allocation, no panics: indices are taken modulo `N`, and a full ring
//! either refuses a byte ([`ByteRing::push`], input: the newest is dropped
//! and counted, so what was typed first is kept) or forgets its oldest
//! ([`ByteRing::record`], history).

/// `N` bytes of ring (`N` > 0).
#[derive(Debug, Clone)]
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    /// Bytes ever written (`record`) or pushed; the next goes at `head % N`.
    head: u64,
    /// Bytes held, at most `N`, ending at `head`.
    len: usize,
    /// Bytes refused by `push` on a full ring.
    dropped: u64,
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ByteRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        ByteRing {
            buf: [0; N],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    fn slot(pos: u64) -> usize {
        // `N` > 0 for any ring in use; a zero-sized one holds nothing.
        pos.checked_rem(N as u64).unwrap_or(0) as usize
    }

    fn put(&mut self, b: u8) {
        if let Some(s) = self.buf.get_mut(Self::slot(self.head)) {
            *s = b;
        }
        self.head = self.head.wrapping_add(1);
    }

    /// Queues `b`; false (and counted) if the ring is full.
    pub fn push(&mut self, b: u8) -> bool {
        if self.len >= N {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.put(b);
        self.len += 1;
        true
    }

    /// Appends `b`, forgetting the oldest byte when full.
    pub fn record(&mut self, b: u8) {
        if N == 0 {
            return;
        }
        self.put(b);
        self.len = (self.len + 1).min(N);
    }

    /// Moves the oldest queued bytes into `out`; returns how many.
    pub fn take(&mut self, out: &mut [u8]) -> usize {
        let n = self.len.min(out.len());
        let first = self.head.wrapping_sub(self.len as u64);
        for (k, o) in out.iter_mut().take(n).enumerate() {
            *o = self
                .buf
                .get(Self::slot(first.wrapping_add(k as u64)))
                .copied()
                .unwrap_or(0);
        }
        self.len -= n;
        n
    }

    /// Copies into `out` the up to `out.len()` bytes that end `back` bytes
    /// before the newest (0: the newest bytes), oldest first; returns how
    /// many (0 once `back` reaches past the oldest kept).
    pub fn tail(&self, back: usize, out: &mut [u8]) -> usize {
        let Some(end) = self.len.checked_sub(back) else {
            return 0;
        };
        let n = end.min(out.len());
        // Position of the first byte copied.
        let first = self.head.wrapping_sub((back + n) as u64);
        for (k, o) in out.iter_mut().take(n).enumerate() {
            *o = self
                .buf
                .get(Self::slot(first.wrapping_add(k as u64)))
                .copied()
                .unwrap_or(0);
        }
        n
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `push` refused since boot.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[test]
    fn input_keeps_the_first_bytes_and_counts_the_rest() {
        let mut r = ByteRing::<4>::new();
        for b in b"abcdef" {
            r.push(*b);
        }
        assert_eq!((r.len(), r.dropped()), (4, 2));
        let mut out = [0; 3];
        assert_eq!(r.take(&mut out), 3);
        assert_eq!(&out, b"abc");
        assert!(r.push(b'x'));
        let mut out = [0; 8];
        assert_eq!(r.take(&mut out), 2);
        assert_eq!(&out[..2], b"dx");
        assert!(r.is_empty());
        assert_eq!(r.take(&mut out), 0);
    }

    #[test]
    fn history_keeps_the_last_bytes() {
        let mut r = ByteRing::<5>::new();
        for b in b"hello world" {
            r.record(*b);
        }
        let mut out = [0; 8];
        assert_eq!(r.tail(0, &mut out), 5);
        assert_eq!(&out[..5], b"world");
        assert_eq!(r.tail(0, &mut out[..2]), 2);
        assert_eq!(&out[..2], b"ld");
        assert_eq!(r.tail(2, &mut out), 3);
        assert_eq!(&out[..3], b"wor");
        assert_eq!(r.tail(5, &mut out), 0);
        assert_eq!(r.tail(usize::MAX, &mut out), 0);
        let z = ByteRing::<0>::new();
        assert_eq!(z.tail(0, &mut out), 0);
    }

    proptest! {
        /// Against a model: push/take is a bounded FIFO, record/tail the
        /// last N bytes.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..3, any::<u8>(), 0usize..12), 0..200)) {
            let mut r = ByteRing::<8>::new();
            let mut fifo: VecDeque<u8> = VecDeque::new();
            for (op, b, n) in &ops {
                match op {
                    0 => {
                        let ok = r.push(*b);
                        prop_assert_eq!(ok, fifo.len() < 8);
                        if ok { fifo.push_back(*b); }
                    }
                    1 => {
                        let mut out = [0u8; 12];
                        let k = r.take(&mut out[..*n]);
                        let want: Vec<u8> = (0..k).filter_map(|_| fifo.pop_front()).collect();
                        prop_assert_eq!(&out[..k], &want[..]);
                        prop_assert_eq!(k, (*n).min(k + fifo.len()));
                    }
                    _ => {
                        let mut out = [0u8; 12];
                        let k = r.tail(*n % 9, &mut out);
                        let held: Vec<u8> = fifo.iter().copied().collect();
                        let end = held.len().saturating_sub(*n % 9);
                        let start = end.saturating_sub(12);
                        prop_assert_eq!(&out[..k], &held[start..end]);
                    }
                }
                prop_assert_eq!(r.len(), fifo.len());
            }
        }

        #[test]
        fn record_keeps_the_last_n(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut r = ByteRing::<8>::new();
            for b in &bytes { r.record(*b); }
            let mut out = [0u8; 8];
            let k = r.tail(0, &mut out);
            prop_assert_eq!(&out[..k], &bytes[bytes.len().saturating_sub(8)..]);
        }
    }
}
