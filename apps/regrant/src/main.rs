//! Test guest: frames given with `frames=` survive a restart the right
//! way. Generation 1 binds each of its frames, fills it with a pattern and
//! faults on purpose; the supervisor restarts it (`restart=yes`).
//! Generation 2 must find the same number of frames in its grant page,
//! own them again (each binds), and find them zeroed: nothing of the
//! previous incarnation leaks. Prints `TEST frames_after_restart ... ok`.
#![no_std]
#![no_main]

use ilwaco::protocol::layout::PAGE_SIZE;
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{DomainId, Handle, PageRights};
use ilwaco::{println, sys};

ilwaco::entry!(main);

const PATTERN: [u8; 8] = *b"regrant!";

fn page(i: usize) -> u64 {
    sys::SCRATCH_BASE + i as u64 * PAGE_SIZE
}

fn run(gen: u32) -> Result<(), &'static str> {
    let g = ilwaco::rt::frame_grant().ok_or("no grant page")?;
    if g.frames().len() != 4 {
        return Err("the grant does not list 4 frames");
    }
    for (i, &f) in g.frames().iter().enumerate() {
        sys::map(Handle::NONE, page(i), f, PageRights::READ_WRITE)
            .map_err(|_| "a granted frame does not bind")?;
        if gen == 1 {
            for off in (0..PAGE_SIZE as usize).step_by(PATTERN.len()) {
                sys::scratch_write(page(i), off, &PATTERN).map_err(|_| "write failed")?;
            }
        } else if (0..PAGE_SIZE)
            .step_by(8)
            .any(|off| sys::peek(page(i) + off) != 0)
        {
            return Err("a frame given again still holds the last generation's bytes");
        }
    }
    Ok(())
}

fn main() -> i32 {
    let id = sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    )
    .map(DomainId::from_raw)
    .unwrap_or(DomainId::NONE);
    match (id.gen, run(id.gen)) {
        (1, Ok(())) => {
            println!("regrant: generation 1 filled its frames; faulting on purpose");
            let v = sys::peek(0x7000_0000_0000);
            println!("TEST frames_after_restart ... FAILED: an unmapped read returned {v:#x}");
            1
        }
        (_, Ok(())) => {
            println!("TEST frames_after_restart ... ok");
            0
        }
        (_, Err(why)) => {
            println!(
                "TEST frames_after_restart ... FAILED: generation {}: {why}",
                id.gen
            );
            1
        }
    }
}
