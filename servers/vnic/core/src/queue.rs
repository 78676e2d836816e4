//! One port's receive queue: frames stored as batch records
//! (`protocol::net`'s format), so a take is one contiguous slice that goes
//! into the reply as it is.
//!
//! The storage is a "bip buffer": records never wrap. They are appended
//! after region A (`head..tail`) and, when the end of the storage is
//! reached, into region B (`0..wrap`), which grows toward A's head and
//! becomes A once A is drained. A take reads whole records from A's front.
//!
//! Bounds: at most `cap_frames` records and `cap_bytes` bytes of records.
//! A push is refused only if the frame bound is reached or the records
//! plus the new one would exceed `cap_bytes - MAX_RECORD` (the end gap the
//! wrap may leave), so the bytes bound wastes at most one record.
//!
//! Memory: nothing until the first frame, then exactly `cap_bytes`
//! (`try_reserve`, so no memory is `NoMemory`, never an abort), until
//! [`Queue::release`] frees an empty queue's storage.

use alloc::vec::Vec;
use serac_protocol::net::{record_header, BATCH_MAX, RECORD_HEADER};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is at its frame or byte bound.
    Full,
    /// The storage could not be allocated.
    NoMemory,
}

/// A bounded FIFO of frames.
#[derive(Debug)]
pub struct Queue {
    buf: Vec<u8>,
    cap_bytes: usize,
    cap_frames: usize,
    head: usize,
    tail: usize,
    wrap: usize,
    frames: usize,
}

/// Invariants (checked by [`Queue::check`] in tests): `wrap <= head <=
/// tail <= cap_bytes`; `buf` is empty or `cap_bytes` long, and empty only
/// when the queue is; A empty (`head == tail`) means all three are 0.
impl Queue {
    /// An empty queue of at most `cap_frames` frames in `cap_bytes` bytes of
    /// records; allocates nothing.
    pub const fn new(cap_frames: usize, cap_bytes: usize) -> Self {
        Queue {
            buf: Vec::new(),
            cap_bytes,
            cap_frames,
            head: 0,
            tail: 0,
            wrap: 0,
            frames: 0,
        }
    }

    /// Frames queued.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes of records queued (frames and their headers).
    pub fn bytes(&self) -> usize {
        self.tail - self.head + self.wrap
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Bytes of storage held.
    pub fn footprint(&self) -> usize {
        self.buf.capacity()
    }

    /// Appends `frame` (at most `MAX_FRAME` bytes; longer is `Full`).
    pub fn push(&mut self, frame: &[u8]) -> Result<(), QueueError> {
        let header = record_header(frame.len()).ok_or(QueueError::Full)?;
        let n = RECORD_HEADER + frame.len();
        if self.frames >= self.cap_frames || n > self.cap_bytes {
            return Err(QueueError::Full);
        }
        let (at, into_b) = if self.wrap > 0 {
            if self.wrap + n > self.head {
                return Err(QueueError::Full);
            }
            (self.wrap, true)
        } else if self.tail + n <= self.cap_bytes {
            (self.tail, false)
        } else if n <= self.head {
            (0, true)
        } else {
            return Err(QueueError::Full);
        };
        if self.buf.is_empty() {
            self.buf
                .try_reserve_exact(self.cap_bytes)
                .map_err(|_| QueueError::NoMemory)?;
            // Within the reserved capacity: no allocation.
            self.buf.resize(self.cap_bytes, 0);
        }
        let (h, rest) = self
            .buf
            .get_mut(at..at + n)
            .ok_or(QueueError::Full)?
            .split_at_mut(RECORD_HEADER);
        h.copy_from_slice(&header);
        rest.copy_from_slice(frame);
        if into_b {
            self.wrap = at + n;
        } else {
            self.tail = at + n;
        }
        self.frames += 1;
        Ok(())
    }

    /// Removes the oldest frames whose records fit in `max` bytes (at most
    /// `BATCH_MAX`) and returns their records, their count and whether
    /// frames remain. Takes nothing only if the queue is empty or its
    /// oldest record is longer than `max`.
    pub fn take(&mut self, max: usize) -> (&[u8], usize, bool) {
        self.take_upto(max, usize::MAX)
    }

    /// [`Queue::take`], but at most `frames` frames (the uplink takes only
    /// as many as the device has transmit buffers for).
    pub fn take_upto(&mut self, max: usize, frames: usize) -> (&[u8], usize, bool) {
        let max = max.min(BATCH_MAX);
        let start = self.head;
        let mut end = start;
        let mut count = 0;
        while end < self.tail && count < frames {
            let Some(&[lo, hi]) = self.buf.get(end..end + RECORD_HEADER) else {
                break;
            };
            let n = RECORD_HEADER + usize::from(u16::from_le_bytes([lo, hi]));
            if end - start + n > max {
                break;
            }
            end += n;
            count += 1;
        }
        self.head = end;
        self.frames -= count;
        if self.head == self.tail {
            // A is drained: B (possibly empty) becomes A.
            self.head = 0;
            self.tail = self.wrap;
            self.wrap = 0;
        }
        // The taken bytes stay intact until the next push, which needs
        // `&mut self` and so waits for the returned borrow to end.
        let more = self.frames > 0;
        (self.buf.get(start..end).unwrap_or(&[]), count, more)
    }

    /// Drops every frame; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.frames;
        *self = Queue::new(self.cap_frames, self.cap_bytes);
        n
    }

    /// Frees the storage of an empty queue (a later frame allocates again).
    pub fn release(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
        }
    }

    /// Whether the invariants hold (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) -> bool {
        let layout = self.wrap <= self.head && self.head <= self.tail;
        let storage = if self.buf.is_empty() {
            self.tail == 0
        } else {
            self.buf.len() == self.cap_bytes && self.tail <= self.cap_bytes
        };
        let drained = self.head != self.tail || (self.head == 0 && self.wrap == 0);
        layout
            && storage
            && drained
            && self.frames <= self.cap_frames
            && self.bytes() <= self.cap_bytes
            && (self.frames == 0) == (self.bytes() == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serac_protocol::net::{FramesRef, MAX_FRAME, MAX_RECORD};
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize),
        Take(usize),
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => prop_oneof![0usize..100, 0usize..=MAX_FRAME + 1].prop_map(Op::Push),
            2 => prop_oneof![0usize..300, 0usize..=BATCH_MAX + 10].prop_map(Op::Take),
            1 => Just(Op::Release),
        ]
    }

    proptest! {
        // The queue behaves as a bounded FIFO, takes are whole records in
        // order, and refusals happen only at the stated bounds.
        #[test]
        fn behaves_as_a_bounded_fifo(
            cap_frames in 1usize..40,
            cap_bytes in 0usize..6000,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut q = Queue::new(cap_frames, cap_bytes);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut seq = 0u8;
            for op in ops {
                match op {
                    Op::Push(len) => {
                        seq = seq.wrapping_add(1);
                        let frame = std::vec![seq; len];
                        let n = RECORD_HEADER + len;
                        match q.push(&frame) {
                            Ok(()) => model.push_back(frame),
                            Err(e) => {
                                prop_assert_eq!(e, QueueError::Full);
                                prop_assert!(
                                    len > MAX_FRAME
                                        || model.len() == cap_frames
                                        || q.bytes() + n > cap_bytes.saturating_sub(MAX_RECORD),
                                    "refused {} bytes with {} of {} used", n, q.bytes(), cap_bytes
                                );
                            }
                        }
                    }
                    Op::Take(max) => {
                        let first = model.front().map(|f| RECORD_HEADER + f.len());
                        let (bytes, count, more) = q.take(max);
                        prop_assert_eq!(more, model.len() > count);
                        let bytes = bytes.to_vec();
                        let batch = FramesRef::new(&bytes).unwrap();
                        prop_assert_eq!(batch.iter().count(), count);
                        prop_assert!(bytes.len() <= max.min(BATCH_MAX));
                        for f in batch.iter() {
                            let expected = model.pop_front();
                            prop_assert_eq!(Some(f), expected.as_deref());
                        }
                        if let Some(first) = first {
                            prop_assert_eq!(count == 0, first > max.min(BATCH_MAX));
                        }
                    }
                    Op::Release => q.release(),
                }
                prop_assert!(q.check());
                prop_assert_eq!(q.frames(), model.len());
                let model_bytes: usize = model.iter().map(|f| RECORD_HEADER + f.len()).sum();
                prop_assert_eq!(q.bytes(), model_bytes);
                prop_assert!(q.footprint() == 0 || q.footprint() == cap_bytes);
            }
        }
    }

    #[test]
    fn wraps_without_splitting_a_record() {
        // Room for three 98-byte records; the fourth goes to the front.
        let mut q = Queue::new(10, 300);
        for i in 0..3u8 {
            q.push(&[i; 96]).unwrap();
        }
        assert_eq!(q.push(&[3; 96]), Err(QueueError::Full));
        let (bytes, n, more) = q.take(98);
        assert_eq!((bytes.len(), n, more), (98, 1, true));
        q.push(&[3; 96]).unwrap();
        assert!(q.check());
        // A take stops at the wrap; the next one reads the front.
        let (bytes, n, more) = q.take(BATCH_MAX);
        assert_eq!((bytes.len(), n, more), (196, 2, true));
        let (bytes, n, more) = q.take(BATCH_MAX);
        assert_eq!((n, bytes.get(2), more), (1, Some(&3), false));
        assert!(q.is_empty() && q.check());
        assert_eq!(q.footprint(), 300);
        q.release();
        assert_eq!(q.footprint(), 0);
    }

    #[test]
    fn frame_bound_and_clear() {
        let mut q = Queue::new(2, 10_000);
        q.push(&[1; 14]).unwrap();
        q.push(&[2; 14]).unwrap();
        assert_eq!(q.push(&[3; 14]), Err(QueueError::Full));
        // An oversized record is refused, not split.
        assert_eq!(
            Queue::new(2, 10_000).push(&[0; MAX_FRAME + 1]),
            Err(QueueError::Full)
        );
        assert_eq!(Queue::new(2, 20).push(&[0; 19]), Err(QueueError::Full));
        assert_eq!(q.clear(), 2);
        assert!(q.is_empty() && q.check() && q.footprint() == 0);
        assert_eq!(q.take(BATCH_MAX), (&[][..], 0, false));
    }
}
