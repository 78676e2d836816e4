//! Load on the disk server: reads the image `www` piece by piece, many
//! times, and checks every byte. Several of these run at once, so the
//! server holds several clients' requests in flight together.
#![no_std]
#![no_main]

use ilwaco::println;
use ilwaco::protocol::disk::{ExtentKind, MAX_IO};
use serac_diskclient::{disk, image_byte, IMAGE_LEN};

ilwaco::entry!(main);

/// Passes over the image.
const ROUNDS: usize = 40;

fn load() -> Result<usize, &'static str> {
    let mut c = disk();
    let (h, _) = c
        .open(ExtentKind::Image, "www")
        .map_err(|_| "cannot open the image")?;
    let mut buf = [0u8; MAX_IO];
    let mut pieces = 0;
    for _ in 0..ROUNDS {
        for p in 0..IMAGE_LEN.div_ceil(MAX_IO) {
            let at = p * MAX_IO;
            let (block, offset) = ((at / 4096) as u64, (at % 4096) as u16);
            c.read(h, block, offset, &mut buf)
                .map_err(|_| "a read failed")?;
            let n = MAX_IO.min(IMAGE_LEN - at);
            if (0..n).any(|i| buf[i] != image_byte(at + i)) {
                return Err("the image read back wrong");
            }
            pieces += 1;
        }
    }
    Ok(pieces)
}

fn main() -> i32 {
    match load() {
        Ok(n) => {
            println!("diskload: {n} pieces read and checked");
            0
        }
        Err(why) => {
            println!("diskload: {why}");
            1
        }
    }
}
