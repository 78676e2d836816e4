//! The console: formatted output over `debug_write`, without allocation.
//!
//! Output is formatted into a fixed [`BUF_LEN`]-byte buffer on the stack and
//! written whenever it fills and at the end of each `print!`, so one short
//! `println!` is one `debug_write` and lines from different domains do not
//! interleave mid-line.

use core::fmt;

/// Bytes formatted before a write.
pub const BUF_LEN: usize = 256;

/// A fixed buffer that hands full chunks to a sink.
#[derive(Debug)]
pub struct LineBuffer<F: FnMut(&[u8])> {
    buf: [u8; BUF_LEN],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8])> LineBuffer<F> {
    /// An empty buffer that flushes into `sink`.
    pub const fn new(sink: F) -> Self {
        LineBuffer {
            buf: [0; BUF_LEN],
            len: 0,
            sink,
        }
    }

    /// Appends bytes, flushing each time the buffer fills.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = BUF_LEN - self.len;
            let n = room.min(bytes.len());
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
            if self.len == BUF_LEN {
                self.flush();
            }
        }
    }

    /// Hands what is buffered to the sink.
    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// Text is cut only at `char` boundaries, so every chunk the sink gets from
/// formatting is valid UTF-8 (the kernel rejects chunks that are not).
impl<F: FnMut(&[u8])> fmt::Write for LineBuffer<F> {
    fn write_str(&mut self, mut s: &str) -> fmt::Result {
        while !s.is_empty() {
            let room = BUF_LEN - self.len;
            if s.len() <= room {
                self.push(s.as_bytes());
                break;
            }
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            let (head, tail) = s.split_at(cut);
            self.push(head.as_bytes());
            self.flush();
            s = tail;
        }
        Ok(())
    }
}

/// Writes raw bytes to the console (errors are dropped: there is nowhere
/// else to report them).
pub fn write_bytes(bytes: &[u8]) {
    let _ = crate::sys::debug_write(bytes);
}

/// Formats `args` to the console; what [`print!`](crate::print) expands to.
pub fn print(args: fmt::Arguments<'_>) {
    let mut out = LineBuffer::new(write_bytes);
    let _ = fmt::Write::write_fmt(&mut out, args);
    out.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::print(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::print(::core::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn flushes_in_order_at_full_and_end() {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let data: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
        {
            let mut b = LineBuffer::new(|c: &[u8]| chunks.push(c.to_vec()));
            b.push(&data[..100]);
            b.push(&data[100..]);
            b.flush();
            b.flush();
        }
        let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(lens, [256, 256, 88]);
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn formatted_chunks_stay_utf8() {
        use core::fmt::Write;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let text: std::string::String = "aé€😀".repeat(100);
        {
            let mut b = LineBuffer::new(|c: &[u8]| chunks.push(c.to_vec()));
            write!(b, "x{text}").unwrap();
            b.flush();
        }
        assert!(chunks
            .iter()
            .all(|c| c.len() <= BUF_LEN && core::str::from_utf8(c).is_ok()));
        assert_eq!(chunks.concat(), std::format!("x{text}").into_bytes());
    }
}
