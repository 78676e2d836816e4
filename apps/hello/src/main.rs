//! The smallest Serac guest: prints a line and halts with code 0.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    ilwaco::println!("hello from domain");
    0
}
