//! A fake device for tests, with a model of what a power cut keeps.
//!
//! Writes go to a volatile cache until `flush`. A crash keeps everything
//! flushed, plus any subset of the cached writes, any one of them torn at
//! a sector boundary (a device may reorder writes between flushes and
//! writes whole sectors at best). A write budget makes the device "lose
//! power" at a chosen write.

use std::vec::Vec;

use crate::layout::{Block, BLOCK};
use crate::volume::BlockDevice;
use serac_protocol::disk::SECTOR_SIZE;

/// The device lost power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Crashed;

#[derive(Debug, Clone)]
pub(crate) struct FakeDisk {
    pub(crate) durable: Vec<Block>,
    pub(crate) cache: Vec<(u64, Block)>,
    /// Writes that succeed before the power cut (None: never).
    pub(crate) budget: Option<usize>,
    pub(crate) writes: usize,
}

impl FakeDisk {
    pub(crate) fn new(blocks: usize) -> FakeDisk {
        FakeDisk {
            durable: std::vec![[0u8; BLOCK]; blocks],
            cache: Vec::new(),
            budget: None,
            writes: 0,
        }
    }

    /// The device as it comes back after the crash: `keep` picks the cached
    /// writes that reached the medium (bit i of the mask, cycling), and
    /// `tear` cuts one of them after that many sectors.
    pub(crate) fn after_crash(&self, keep: u64, tear: Option<(usize, usize)>) -> FakeDisk {
        let mut d = FakeDisk::new(0);
        d.durable = self.durable.clone();
        for (i, (block, data)) in self.cache.iter().enumerate() {
            if keep >> (i % 64) & 1 == 0 {
                continue;
            }
            let Some(dst) = d.durable.get_mut(*block as usize) else {
                continue;
            };
            let n = match tear {
                Some((t, sectors)) if t % self.cache.len().max(1) == i => sectors * SECTOR_SIZE,
                _ => BLOCK,
            };
            dst[..n.min(BLOCK)].copy_from_slice(&data[..n.min(BLOCK)]);
        }
        d
    }
}

impl BlockDevice for FakeDisk {
    type Error = Crashed;

    fn block_count(&self) -> u64 {
        self.durable.len() as u64
    }

    fn read_block(&mut self, block: u64, buf: &mut Block) -> Result<(), Crashed> {
        let newest = self.cache.iter().rev().find(|(b, _)| *b == block);
        match newest {
            Some((_, d)) => *buf = *d,
            None => *buf = *self.durable.get(block as usize).ok_or(Crashed)?,
        }
        Ok(())
    }

    fn write_block(&mut self, block: u64, buf: &Block) -> Result<(), Crashed> {
        if block >= self.block_count() {
            return Err(Crashed);
        }
        match self.budget {
            Some(0) => {
                // The interrupted write may still land, torn.
                self.cache.push((block, *buf));
                return Err(Crashed);
            }
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        self.writes += 1;
        self.cache.push((block, *buf));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Crashed> {
        if self.budget == Some(0) {
            return Err(Crashed);
        }
        for (b, d) in self.cache.drain(..) {
            if let Some(dst) = self.durable.get_mut(b as usize) {
                *dst = d;
            }
        }
        Ok(())
    }
}
