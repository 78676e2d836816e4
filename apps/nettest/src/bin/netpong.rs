//! The ponger of the exchange (`serac_nettest::pong`).
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_nettest::pong("netpong")
}
