//! The pinger for tests that lose frames: more rounds, and a datagram
//! unanswered for 50 ms is sent again (`serac_nettest::ping`).
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_nettest::ping(
        "netping-retry",
        20 * serac_nettest::ROUNDS,
        Some(50),
        Some(300),
    )
}
