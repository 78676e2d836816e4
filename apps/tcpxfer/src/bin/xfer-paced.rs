//! xfer-paced: xfer-source sleeping 4 ms after each 4 KiB, so the 1 MiB
//! takes about a second and outlasts a vnic restart (`net_tcp_restart`).
//! Handles: 1 = endpoint to the vnic (`net=yes`), 2 = the notification it
//! raises half way (`notify=netop`: netop then restarts the vnic).
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_tcpxfer::sender_main(
        "xfer-paced",
        Some(ilwaco::net::NetDuration::from_millis(4)),
        Some(ilwaco::rt::granted(2)),
    )
}
