//! The pinger of the exchange, sending nothing twice (`serac_nettest::ping`).
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_nettest::ping("netping", serac_nettest::ROUNDS, None, None)
}
