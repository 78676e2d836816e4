//! Adversarial guest: the attacker of the `chaos_syscalls` test. It makes
//! thousands of syscalls with random numbers and hostile arguments through
//! `ilwaco::sys::fuzz_syscall`, which pins only what would end its own run
//! early (halt, waits for ever). It owns frames (`frames=`) and maps and
//! unmaps them anywhere in its own space, points its upcall entry at
//! random addresses, writes random message headers and calls, sends and
//! notifies through real handles. The kernel, the servers it calls and an
//! innocent neighbour must carry on; the test judges them, not this domain,
//! which prints no verdict (its summary line is information).
//!
//! Manifest contract: `eager=yes` with no pager (what makes `fuzz_syscall`'s
//! `map`/`unmap` harmless to its own Rust memory), `frames=N`, and handles
//! 1 = endpoint to `pong`, 2 = endpoint to the supervisor, 3 = notification
//! to `chaos` (instance 0), 4 = notification to `neighbour`.
//!
//! Run with `count=N`: each instance seeds itself from its own `DomainId`.
//! Instances in odd slots enable upcalls, so a random `SetUpcall` hijacks
//! them at their next upcall and they usually die early; instances in even
//! slots never enable upcalls and make all their calls.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use ilwaco::protocol::layout::{
    CLOCK_PAGE_ADDR, GRANT_PAGE_ADDR, IPC_BUFFER_ADDR, MAX_PAYLOAD, PAGE_SIZE, UPCALL_PAGE_ADDR,
    USER_END, USER_START,
};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp, Syscall};
use ilwaco::protocol::{DomainId, Handle, SysError};
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// Calls per instance.
const ITERATIONS: u32 = 10_000;
/// Handle slots the manifest fills.
const HANDLES: u32 = 4;
/// Bytes from `USER_START` that hold this image (text first; Ilwaco's
/// heap and stack follow in `.bss`): comfortably more than it is.
const OWN_IMAGE: u64 = 4 << 20;
/// Syscall numbers 1..=11 are real; 0 and 12 are the edges around them.
const LAST_SYSCALL: u64 = 11;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    /// An argument worth trying: edges of the address space, sizes around
    /// the limits, or noise.
    fn arg(&mut self) -> u64 {
        let r = self.next();
        match r % 4 {
            0 => self.pick(&[
                0,
                1,
                4095,
                4096,
                4073,
                u64::MAX,
                u64::MAX - 4,
                0x0000_8000_0000_0000,
                0xffff_8000_0000_0000,
                0xffff_ffff_8020_0000,
                CLOCK_PAGE_ADDR,
                IPC_BUFFER_ADDR,
                UPCALL_PAGE_ADDR,
                USER_START,
                USER_END,
                USER_END - PAGE_SIZE,
                GRANT_PAGE_ADDR,
                1 << 32 | 1,
                0x1_0000_0000,
            ]),
            1 => r >> (r % 64),
            2 => (r >> 16) & 0xffff,
            _ => r,
        }
    }
}

/// What this instance attacks with.
struct Arsenal {
    /// Its own frames (from the grant page) and the grant page's frame.
    frames: [u64; 8],
    n_frames: usize,
    page_frame: u64,
    /// Where it bound frames lately (targets for `unmap` and upcalls).
    bound: [u64; 8],
}

impl Arsenal {
    fn handle(&self, rng: &mut Rng) -> u64 {
        match rng.below(6) {
            0..=2 => Handle::new(1 + rng.below(u64::from(HANDLES)) as u32, 1).to_raw(),
            3 => Handle::NONE.to_raw(),
            // Stale generation, an empty slot, or noise.
            4 => Handle::new(rng.below(20) as u32, 1 + rng.below(3) as u32).to_raw(),
            _ => rng.arg(),
        }
    }

    fn frame(&self, rng: &mut Rng) -> u64 {
        let own = self.frames[rng.below(self.n_frames as u64) as usize];
        match rng.below(6) {
            0..=2 if self.n_frames > 0 => own,
            3 => self.page_frame,
            4 => own.wrapping_add(rng.pick(&[1, u64::MAX, 2, 100])),
            _ => rng.arg(),
        }
    }

    fn vaddr(&mut self, rng: &mut Rng) -> u64 {
        match rng.below(5) {
            0 => self.bound[rng.below(8) as usize],
            1 | 2 => (USER_START + rng.next() % (USER_END - USER_START)) & !(PAGE_SIZE - 1),
            3 => USER_START + PAGE_SIZE * rng.below(64),
            _ => rng.arg(),
        }
    }

    /// Arguments for syscall `num`: usually shaped for it, sometimes noise.
    fn args(&mut self, rng: &mut Rng, num: u64) -> [u64; 6] {
        let mut a = [
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
        ];
        if rng.below(4) == 0 {
            return a;
        }
        match Syscall::try_from(num) {
            Ok(Syscall::DebugWrite) => {
                a[1] = rng.pick(&[1, 16, 256, 257, 4096, u64::MAX]);
            }
            // Mostly through the two endpoints, so messages reach servers.
            Ok(Syscall::Call | Syscall::Send) => {
                a[0] = match rng.below(3) {
                    0 => self.handle(rng),
                    _ => Handle::new(1 + rng.below(2) as u32, 1).to_raw(),
                };
            }
            Ok(Syscall::Notify | Syscall::IrqAck) => a[0] = self.handle(rng),
            Ok(Syscall::ReplyRecv) => {
                a[0] = self.handle(rng);
                a[1] = rng.pick(&[0, 1, u64::MAX, sys::rdtsc()]);
            }
            Ok(Syscall::Idle) => a[0] = rng.pick(&[0, 1, u64::MAX, sys::rdtsc() + 1000]),
            Ok(Syscall::Map) => {
                a[0] = if rng.below(3) == 0 {
                    self.handle(rng)
                } else {
                    0
                };
                a[1] = self.vaddr(rng);
                a[2] = self.frame(rng);
                a[3] = rng.below(9);
            }
            Ok(Syscall::Unmap) => {
                a[0] = if rng.below(3) == 0 {
                    self.handle(rng)
                } else {
                    0
                };
                a[1] = self.vaddr(rng);
            }
            Ok(Syscall::DomainCtl) => {
                a[0] = if rng.below(2) == 0 {
                    0
                } else {
                    self.handle(rng)
                };
                // The real operations and one past them.
                a[1] = rng.below(DomainOp::ALL.len() as u64 + 2);
                match DomainOp::try_from(a[1]) {
                    Ok(DomainOp::SetUpcall) => {
                        a[2] = if rng.below(2) == 0 {
                            self.vaddr(rng)
                        } else {
                            rng.arg()
                        };
                    }
                    Ok(DomainOp::ReadCounter) => a[2] = rng.below(7),
                    Ok(DomainOp::GiveFrame) => a[2] = self.frame(rng),
                    Ok(DomainOp::Grant | DomainOp::Close) => a[2] = self.handle(rng),
                    _ => {}
                }
            }
            _ => {}
        }
        a
    }
}

/// A random message header (and sometimes payload) in the IPC buffer
/// before a call or send: labels the kernel reserves, lengths past the
/// limit, handles to move.
fn scribble_header(rng: &mut Rng, arsenal: &Arsenal) {
    let label = match rng.below(4) {
        0 => rng.pick(&[0, 1, 2, 3]),
        1 => 0xffff_0000 | rng.below(4) as u32,
        _ => rng.next() as u32,
    };
    let len = match rng.below(4) {
        0 | 1 => rng.below(24) as u32,
        2 => rng.pick(&[MAX_PAYLOAD as u32, MAX_PAYLOAD as u32 + 1, u32::MAX]),
        _ => rng.next() as u32,
    };
    // Rarely: a moved endpoint is gone from this domain for good.
    let handle = match rng.below(10) {
        0 => arsenal.handle(rng),
        _ => 0,
    };
    sys::ipc_set_header(label, len, handle);
    if rng.below(2) == 0 {
        let noise = rng.next().to_le_bytes();
        let _ = sys::ipc_write(24 + rng.below(16) as usize, &noise);
    }
}

static UPCALLS: AtomicU64 = AtomicU64::new(0);

fn on_upcall(_: ilwaco::upcall::Events) {
    UPCALLS.fetch_add(1, Ordering::Relaxed);
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
    // splitmix64 of the id: distinct, reproducible seeds per instance.
    let mut z = id.to_raw().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let seed = (z ^ (z >> 31)) | 1;
    let hijackable = id.index % 2 == 1;
    let mut rng = Rng(seed);

    let mut arsenal = Arsenal {
        frames: [0; 8],
        n_frames: 0,
        page_frame: 0,
        bound: [USER_START; 8],
    };
    match ilwaco::rt::frame_grant() {
        Some(g) => {
            for (slot, f) in arsenal.frames.iter_mut().zip(g.frames()) {
                *slot = *f;
            }
            arsenal.n_frames = g.frames().len().min(8);
            arsenal.page_frame = g.page_frame;
        }
        None => println!("chaos: no grant page; attacking without frames of its own"),
    }
    if hijackable {
        if ilwaco::upcall::set_handler(on_upcall).is_err()
            || ilwaco::upcall::install(Handle::NONE).is_err()
        {
            println!("chaos: cannot install the upcall handler");
        }
        ilwaco::upcall::enable();
    }
    println!(
        "chaos: seed {seed:#x}, {} frames of its own, upcalls {}",
        arsenal.n_frames,
        if hijackable { "on (hijackable)" } else { "off" }
    );

    // Successes per syscall number (1..=11), so the log shows which
    // hostile calls the kernel let through.
    let mut ok = [0u32; LAST_SYSCALL as usize + 1];
    let mut codes = [0u32; SysError::ALL.len() + 1];
    for _ in 0..ITERATIONS {
        let num = match rng.below(16) {
            0 => rng.next(),
            1 => rng.pick(&[0, LAST_SYSCALL + 1]),
            _ => 1 + rng.below(LAST_SYSCALL),
        };
        let mut args = arsenal.args(&mut rng, num);
        // A `debug_write` of this domain's own memory would put its bytes
        // (its strings included) on the console the judge reads: keep
        // those empty. Bad pointers are what is tried here; the selftest
        // covers good ones.
        if num == u64::from(Syscall::DebugWrite.number()) && args[0] < 0x0000_8000_0000_0000 {
            args[1] = 0;
        }
        if matches!(Syscall::try_from(num), Ok(Syscall::Call | Syscall::Send)) {
            scribble_header(&mut rng, &arsenal);
        }
        // An upcall entry inside its own image would run its code from the
        // middle of a function, which may loop for ever (its run would
        // never end), or `_start`, which panics setting up the heap twice:
        // such an entry becomes the real one. Anywhere else goes.
        if num == u64::from(Syscall::DomainCtl.number())
            && args[1] == DomainOp::SetUpcall as u64
            && (USER_START..USER_START + OWN_IMAGE).contains(&args[2])
        {
            args[2] = ilwaco::upcall::entry_address();
        }
        let (rax, _) = sys::fuzz_syscall(num, args);
        if rax == 0 && num == u64::from(Syscall::Map.number()) {
            arsenal.bound[rng.below(8) as usize] = args[1];
        }
        if rax == 0 {
            if let Some(n) = ok.get_mut(num as usize) {
                *n += 1;
            }
        } else if SysError::from_code(rax).is_some() && (rax as usize) < codes.len() {
            codes[rax as usize] += 1;
        } else {
            println!(
                "chaos: syscall {num:#x} {args:x?} answered rax={rax:#x}, not a SysError code"
            );
        }
    }
    println!(
        "chaos: {ITERATIONS} syscalls done: {} succeeded (by number 1..=11: {:?}), errors by code {:?}, {} upcalls",
        ok.iter().sum::<u32>(),
        &ok[1..],
        &codes[1..],
        UPCALLS.load(Ordering::Relaxed)
    );
    // The one halt, with any code, as the last call.
    sys::halt(rng.next())
}
