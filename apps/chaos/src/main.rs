//! Adversarial test guest: makes tens of thousands of syscalls with random
//! numbers and hostile arguments (kernel addresses, non-canonical and
//! wrapping pointers, forged and stale handles, huge lengths, unowned
//! frames). Every answer must be success or a known `SysError` code, and
//! the kernel and the other domains must carry on. Handle 1 is an endpoint
//! to `pong`, so some calls reach a real server.
#![no_std]
#![no_main]

use ilwaco::protocol::layout::{CLOCK_PAGE_ADDR, IPC_BUFFER_ADDR, USER_START};
use ilwaco::protocol::syscall::Syscall;
use ilwaco::protocol::SysError;
use ilwaco::sys;

ilwaco::entry!(main);

const ITERATIONS: u32 = 20_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// An argument worth trying: edges of the address space, handles that
    /// look real, sizes around the limits, or noise.
    fn arg(&mut self) -> u64 {
        let interesting = [
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
            USER_START,
            0x0000_7fff_ffff_f000,
            1 << 32 | 1,
            2 << 32 | 1,
            1 << 32 | 2,
            0x100,
            0x1_0000_0000,
        ];
        let r = self.next();
        match r % 4 {
            0 => interesting[(r >> 8) as usize % interesting.len()],
            1 => r >> (r % 64),
            2 => (r >> 16) & 0xffff,
            _ => r,
        }
    }
}

fn main() -> i32 {
    let seed = sys::rdtsc() | 1;
    ilwaco::println!("chaos: seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut ok = 0u32;
    let mut codes = [0u32; 18];
    for _ in 0..ITERATIONS {
        let num = match rng.next() % 8 {
            0 => rng.next(),
            _ => rng.next() % 13,
        };
        let mut args = [
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
            rng.arg(),
        ];
        // A `debug_write` of this domain's own memory would print noise over
        // the other domains' lines: keep those empty (bad pointers are what
        // this test is about; the selftest covers good ones).
        if num == u64::from(Syscall::DebugWrite.number()) && args[0] < 0x0000_8000_0000_0000 {
            args[1] = 0;
        }
        let (rax, _) = sys::fuzz_syscall(num, args);
        if rax == 0 {
            ok += 1;
        } else if SysError::from_code(rax).is_some() && (rax as usize) < codes.len() {
            codes[rax as usize] += 1;
        } else {
            ilwaco::println!(
                "TEST chaos_syscalls ... FAILED: syscall {num:#x} answered rax={rax:#x}"
            );
            return 1;
        }
    }
    ilwaco::println!(
        "chaos: {ITERATIONS} syscalls: {ok} succeeded, errors by code {:?}",
        &codes[1..]
    );
    ilwaco::println!("TEST chaos_syscalls ... ok");
    0
}
