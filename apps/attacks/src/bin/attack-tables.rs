//! Attack (page-table frames): the kernel builds intermediate page tables
//! from its own pool and never frees them one by one. This domain (the
//! pager of a dummy domain, which is how it owns a frame) maps and unmaps
//! one frame at ever fresh strides of its address space: two or three new
//! tables a step. Unbounded, that drained the pool until innocent domains
//! died at dispatch; the kernel must keep each space within its budget.
#![no_std]
#![no_main]

use ilwaco::protocol::{Handle, PageRights};
use ilwaco::{println, sys};
use serac_attacks::{pager_recv, put_pager_ok, PagerMsg};

ilwaco::entry!(main);

const STEPS: u64 = 20_000;

/// A fresh 1 GiB region for each step: PML4 slot 1 + k % 200 (away from
/// the image, the scratch window's slot 28 included harmlessly: nothing is
/// there), PDPT slot (k / 200) % 512.
fn stride(k: u64) -> u64 {
    ((1 + k % 200) << 39) | (((k / 200) % 512) << 30)
}

fn main() -> i32 {
    // Serve the supervisor as a pager until the dummy's first fault, which
    // comes after every request the supervisor makes of its pager.
    let mut frame = None;
    let mut reply = Handle::NONE;
    loop {
        let (msg, r) = match pager_recv(reply) {
            Ok(m) => m,
            Err(e) => {
                println!("attack-tables: receive failed: {e:?}");
                return 1;
            }
        };
        reply = r;
        match msg {
            PagerMsg::Grant { first, count } => {
                println!("attack-tables: granted {count} frames from {first:#x}");
                frame = Some(first);
                put_pager_ok();
            }
            PagerMsg::Other { .. } => put_pager_ok(),
            PagerMsg::Fault { .. } => break,
        }
    }
    let Some(f) = frame else {
        println!("attack-tables: no frame granted");
        return 1;
    };
    let mut failed = 0u64;
    for k in 0..STEPS {
        let va = stride(k);
        if sys::map(Handle::NONE, va, f, PageRights::READ_WRITE).is_err()
            || sys::unmap(Handle::NONE, va).is_err()
        {
            failed += 1;
        }
        if (k + 1) % 5000 == 0 {
            println!("attack-tables: {} steps, {failed} failed", k + 1);
        }
    }
    // Hold whatever the kernel let this space keep while the neighbour
    // wakes: short sleeps, because an idle over 100 ms drops the tables.
    for _ in 0..40 {
        let _ = ilwaco::time::sleep_ns(10_000_000);
    }
    println!("attack-tables: done holding");
    0
}
