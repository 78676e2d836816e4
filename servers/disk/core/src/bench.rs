//! The disk benchmark's work (`cargo xtask bench disk`, docs/performance.md).
//!
//! The same operations, in the same order and with the same data, run by a
//! client through the disk server and by the server on the device directly
//! (its `bench-disk` binary), so the two figures differ only in the path.
//! Both drive a [`BlockDevice`] with [`run_batch`].
//!
//! A run is `rounds` rounds; a round is one batch of each [`Workload`], in
//! [`Workload::ALL`] order ([`schedule`]). A 4 KiB batch is `ops` requests
//! at blocks drawn by xorshift from a seed of (round, workload); a
//! sequential batch is `seq` reads of [`SEQ_BLOCKS`] consecutive blocks.
//! The parameters are the content of the image [`PARAMS_IMAGE`] on the
//! bench's disk ([`Params`]), so a QEMU test runs the same binaries with
//! small counts.

use core::fmt;

use crate::layout::Block;
use crate::volume::BlockDevice;

/// The image holding the [`Params`] text.
pub const PARAMS_IMAGE: &str = "bench-params";
/// The private disk the server's direct batches use (no client has it).
pub const DIRECT_EXTENT: &str = "bench-direct";
/// The bench client's domain, and the name of its private disk.
pub const CLIENT: &str = "bench-diskclient";
/// Blocks of one sequential read (64 KiB).
pub const SEQ_BLOCKS: u64 = 16;
/// Largest counts [`Params::parse`] accepts: a typo must not make a run
/// that never ends.
pub const MAX_ROUNDS: u32 = 64;
/// See [`MAX_ROUNDS`].
pub const MAX_OPS: u32 = 100_000;

/// How much work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Rounds (each one batch of every workload).
    pub rounds: u32,
    /// Requests in a 4 KiB batch.
    pub ops: u32,
    /// 64 KiB reads in a sequential batch.
    pub seq: u32,
}

impl Params {
    /// Parses `rounds=R ops=N seq=S` (any order, whitespace-separated;
    /// the text ends at the first NUL, as in a zero-padded block). Every
    /// key exactly once, each count 1 up to its bound.
    pub fn parse(text: &[u8]) -> Option<Params> {
        let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
        let text = core::str::from_utf8(text.get(..end)?).ok()?;
        let (mut rounds, mut ops, mut seq) = (None, None, None);
        for word in text.split_ascii_whitespace() {
            let (k, v) = word.split_once('=')?;
            let v: u32 = v.parse().ok()?;
            let (slot, max) = match k {
                "rounds" => (&mut rounds, MAX_ROUNDS),
                "ops" => (&mut ops, MAX_OPS),
                "seq" => (&mut seq, MAX_OPS),
                _ => return None,
            };
            if v == 0 || v > max || slot.replace(v).is_some() {
                return None;
            }
        }
        Some(Params {
            rounds: rounds?,
            ops: ops?,
            seq: seq?,
        })
    }

    /// Batches in a run.
    pub fn batches(&self) -> usize {
        self.rounds as usize * Workload::ALL.len()
    }
}

/// The text [`Params::parse`] reads.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rounds={} ops={} seq={}",
            self.rounds, self.ops, self.seq
        )
    }
}

/// One kind of batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// 4 KiB reads at random blocks.
    Read4k,
    /// 4 KiB writes at random blocks.
    Write4k,
    /// 64 KiB reads of consecutive blocks.
    SeqRead64k,
}

impl Workload {
    /// The workloads of a round, in order.
    pub const ALL: [Workload; 3] = [Workload::Read4k, Workload::Write4k, Workload::SeqRead64k];

    /// Its name in `BENCH` keys.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Read4k => "read_4k",
            Workload::Write4k => "write_4k",
            Workload::SeqRead64k => "seq_read_64k",
        }
    }

    /// Its index in [`Workload::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Requests in one batch.
    pub fn ops(self, p: &Params) -> u32 {
        match self {
            Workload::Read4k | Workload::Write4k => p.ops,
            Workload::SeqRead64k => p.seq,
        }
    }

    /// Blocks one request moves.
    pub fn blocks_per_op(self) -> u64 {
        match self {
            Workload::Read4k | Workload::Write4k => 1,
            Workload::SeqRead64k => SEQ_BLOCKS,
        }
    }
}

/// Batch `k` of a run: (round, workload); `None` past the end.
pub fn schedule(p: &Params, k: usize) -> Option<(u32, Workload)> {
    let n = Workload::ALL.len();
    if k >= p.batches() {
        return None;
    }
    Some(((k / n) as u32, Workload::ALL[k % n]))
}

/// `ticks` of a `hz` clock in nanoseconds (0 for an unknown clock).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX)
}

/// xorshift64: cheap, so the draw costs both paths the same few
/// instructions.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(round: u32, w: Workload) -> Rng {
        Rng((u64::from(round) << 8 | w.index() as u64) ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Why a batch did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError<E> {
    /// The device is smaller than one sequential read.
    TooSmall,
    /// A request failed.
    Device(E),
}

/// Marks `buf` as the write of `block` in `round` (its first 16 bytes).
pub fn stamp(buf: &mut Block, block: u64, round: u32) {
    buf[..8].copy_from_slice(&block.to_le_bytes());
    buf[8..12].copy_from_slice(&round.to_le_bytes());
    buf[12..16].copy_from_slice(b"SBNC");
}

/// Whether `buf` carries the stamp of `block` written in `round`.
pub fn stamped(buf: &Block, block: u64, round: u32) -> bool {
    let mut want = *buf;
    stamp(&mut want, block, round);
    want[..16] == buf[..16]
}

/// The block the last write of a run went to, and its round: what a
/// reader finds there afterwards.
pub fn last_write(p: &Params, blocks: u64) -> Option<(u64, u32)> {
    let round = p.rounds.checked_sub(1)?;
    let mut rng = Rng::new(round, Workload::Write4k);
    let mut last = None;
    for _ in 0..p.ops {
        last = Some(rng.next() % blocks.max(1));
    }
    last.map(|b| (b, round))
}

/// Runs batch (`round`, `w`) on `dev`, with `buf` as the data buffer
/// (writes send it stamped per block). Returns the requests made.
pub fn run_batch<D: BlockDevice>(
    dev: &mut D,
    round: u32,
    w: Workload,
    p: &Params,
    buf: &mut Block,
) -> Result<u32, BatchError<D::Error>> {
    let blocks = dev.block_count();
    if blocks < SEQ_BLOCKS {
        return Err(BatchError::TooSmall);
    }
    let ops = w.ops(p);
    let mut rng = Rng::new(round, w);
    match w {
        Workload::Read4k => {
            for _ in 0..ops {
                let b = rng.next() % blocks;
                dev.read_block(b, buf).map_err(BatchError::Device)?;
            }
        }
        Workload::Write4k => {
            for _ in 0..ops {
                let b = rng.next() % blocks;
                stamp(buf, b, round);
                dev.write_block(b, buf).map_err(BatchError::Device)?;
            }
        }
        Workload::SeqRead64k => {
            // Round after round carries on where the last stopped.
            let span = blocks / SEQ_BLOCKS * SEQ_BLOCKS;
            for i in 0..u64::from(ops) {
                let start = ((u64::from(round) * u64::from(ops) + i) * SEQ_BLOCKS) % span;
                for b in start..start + SEQ_BLOCKS {
                    dev.read_block(b, buf).map_err(BatchError::Device)?;
                }
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeDisk;
    use crate::layout::BLOCK;
    use std::vec::Vec;

    /// A device that records what it was asked.
    struct Log {
        disk: FakeDisk,
        reads: Vec<u64>,
        writes: Vec<u64>,
    }

    impl BlockDevice for Log {
        type Error = crate::fake::Crashed;
        fn block_count(&self) -> u64 {
            self.disk.block_count()
        }
        fn read_block(&mut self, b: u64, buf: &mut Block) -> Result<(), Self::Error> {
            self.reads.push(b);
            self.disk.read_block(b, buf)
        }
        fn write_block(&mut self, b: u64, buf: &Block) -> Result<(), Self::Error> {
            self.writes.push(b);
            self.disk.write_block(b, buf)
        }
        fn flush(&mut self) -> Result<(), Self::Error> {
            self.disk.flush()
        }
    }

    fn log(blocks: usize) -> Log {
        Log {
            disk: FakeDisk::new(blocks),
            reads: Vec::new(),
            writes: Vec::new(),
        }
    }

    const P: Params = Params {
        rounds: 3,
        ops: 50,
        seq: 4,
    };

    #[test]
    fn params_round_trip_and_refuse_nonsense() {
        let text = std::format!("{P}");
        assert_eq!(Params::parse(text.as_bytes()), Some(P));
        let mut block = [0u8; BLOCK];
        block[..text.len()].copy_from_slice(text.as_bytes());
        assert_eq!(Params::parse(&block), Some(P));
        assert_eq!(
            Params::parse(b"seq=1 ops=2 rounds=3"),
            Some(Params {
                rounds: 3,
                ops: 2,
                seq: 1
            })
        );
        for bad in [
            &b"rounds=1 ops=2"[..],
            b"rounds=1 ops=2 seq=0",
            b"rounds=1 ops=2 seq=3 seq=3",
            b"rounds=65 ops=2 seq=3",
            b"rounds=1 ops=100001 seq=3",
            b"rounds=1 ops=2 seq=3 extra=1",
            b"rounds=1 ops=two seq=3",
            b"rounds=1 ops=2 seq",
            b"\xff",
        ] {
            assert_eq!(Params::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_schedule_is_rounds_of_every_workload() {
        let s: Vec<_> = (0..).map_while(|k| schedule(&P, k)).collect();
        assert_eq!(s.len(), 9);
        assert_eq!(s[0], (0, Workload::Read4k));
        assert_eq!(s[4], (1, Workload::Write4k));
        assert_eq!(s[8], (2, Workload::SeqRead64k));
    }

    #[test]
    fn batches_do_what_they_say_and_the_same_every_time() {
        let mut buf = [0u8; BLOCK];
        let (mut a, mut b) = (log(100), log(100));
        for k in 0..P.batches() {
            let (r, w) = schedule(&P, k).unwrap();
            assert_eq!(run_batch(&mut a, r, w, &P, &mut buf), Ok(w.ops(&P)));
            assert_eq!(run_batch(&mut b, r, w, &P, &mut buf), Ok(w.ops(&P)));
        }
        assert_eq!((&a.reads, &a.writes), (&b.reads, &b.writes));
        // 3 rounds of 50 random reads and 4 x 16 sequential ones; 50 writes.
        assert_eq!(a.reads.len(), 3 * (50 + 4 * 16));
        assert_eq!(a.writes.len(), 3 * 50);
        assert!(a.reads.iter().chain(&a.writes).all(|&x| x < 100));
        // Random, not one block over and over; rounds differ.
        let first: std::collections::BTreeSet<_> = a.writes[..50].iter().collect();
        assert!(first.len() > 30);
        assert_ne!(a.writes[..50], a.writes[50..100]);
        // Sequential reads are runs of 16 within the 96 whole-run blocks.
        let seq = &a.reads[50..50 + 64];
        assert!(seq
            .chunks(16)
            .all(|c| c.windows(2).all(|p| p[1] == p[0] + 1)));
        assert!(seq.iter().all(|&x| x < 96));
    }

    #[test]
    fn the_last_write_is_found_stamped() {
        let mut buf = [0u8; BLOCK];
        let mut d = log(100);
        for k in 0..P.batches() {
            let (r, w) = schedule(&P, k).unwrap();
            run_batch(&mut d, r, w, &P, &mut buf).unwrap();
        }
        let (block, round) = last_write(&P, 100).unwrap();
        assert_eq!(Some(&block), d.writes.last());
        assert_eq!(round, 2);
        d.read_block(block, &mut buf).unwrap();
        assert!(stamped(&buf, block, round));
        assert!(!stamped(&buf, block, round - 1));
        assert!(!stamped(&buf, block + 1, round));
    }

    #[test]
    fn nanoseconds() {
        assert_eq!(ticks_to_ns(3_000, 3_000_000_000), 1_000);
        assert_eq!(ticks_to_ns(u64::MAX, 1_000_000_000), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 0);
    }

    #[test]
    fn a_small_device_is_refused() {
        let mut buf = [0u8; BLOCK];
        assert_eq!(
            run_batch(&mut log(15), 0, Workload::Read4k, &P, &mut buf),
            Err(BatchError::TooSmall)
        );
    }
}
