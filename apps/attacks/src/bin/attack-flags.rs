//! Attack (RFLAGS): ring 3 hands the kernel every flag it can set: NT,
//! IOPL, AC and ID stay set for the whole run, DF is set around single
//! syscalls. Then it yields thousands of times while a spinner (whose
//! saved frame the kernel restores with `iretq`) and the neighbour run.
//! With NT reaching ring 0, the kernel's `iretq` raised #GP and the whole
//! machine stopped.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::Syscall;
use ilwaco::{println, sys};

ilwaco::entry!(main);

const YIELDS: u32 = 100;

fn main() -> i32 {
    let before = sys::rflags();
    let after = sys::set_rflags(sys::HOSTILE_RFLAGS);
    println!("attack-flags: rflags {before:#x} -> {after:#x}");
    let mut df_calls = 0;
    for n in 0..YIELDS {
        // A past deadline: a yield, so the others run in between.
        if let Err(e) = sys::idle(0) {
            println!("attack-flags: idle failed: {e:?}");
            return 1;
        }
        if n % 5 == 0 {
            let (rax, _) = sys::syscall_with_df(u64::from(Syscall::Idle.number()), 0, 0);
            if rax == 0 {
                df_calls += 1;
            }
        }
        // Flags the kernel restored with `iretq` were sanitised: set again.
        sys::set_rflags(sys::HOSTILE_RFLAGS);
    }
    println!(
        "attack-flags: {YIELDS} yields with NT|IOPL|AC|ID set, {df_calls} syscalls with DF; rflags now {:#x}",
        sys::rflags()
    );
    0
}
