//! Test guest: spins forever and never yields, so only preemption takes
//! the CPU back from it.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn spin() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

fn main() -> i32 {
    spin()
}
