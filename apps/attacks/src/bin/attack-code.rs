//! Hostile test guest: writes to its own code, which is shared read-only
//! with every domain of the same image. The instance holding a handle in
//! slot 1 (`notify=` itself) is the writer: the kernel must stop it, and
//! only it. The others are its neighbours: every 100 ms each checks that
//! its code page still holds the bytes it read at start and prints
//! `attack-code: tick <n>, code intact`; a test requires such a line
//! after the kernel's line that stopped the writer.
#![no_std]
#![no_main]

use ilwaco::protocol::Handle;
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

/// A page of this program's code: the one `main` starts in.
fn code_page() -> u64 {
    (main as fn() -> i32 as usize as u64) & !0xfff
}

/// FNV-1a over the code page, read a word at a time.
fn digest(page: u64) -> u64 {
    (0..512).fold(0xcbf2_9ce4_8422_2325u64, |h, k| {
        (h ^ sys::peek(page + k * 8)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() -> i32 {
    let page = code_page();
    let writer = sys::notify(Handle::new(1, 1), 0).is_ok();
    if writer {
        let target = page + 64;
        println!("attack-code: writing to my own code at {target:#x}");
        sys::poke_readonly(target, 0xcccc_cccc_cccc_cccc);
        println!("attack-code: the write to {target:#x} went through");
        return 1;
    }
    let want = digest(page);
    for tick in 1u64.. {
        if time::sleep_ns(100_000_000).is_err() {
            return 2;
        }
        if digest(page) == want {
            println!("attack-code: tick {tick}, code intact");
        } else {
            println!("attack-code: tick {tick}, code page {page:#x} CHANGED");
            return 3;
        }
    }
    0
}
