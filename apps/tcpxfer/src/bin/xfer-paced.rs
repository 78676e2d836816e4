//! xfer-paced: xfer-source sleeping 4 ms after each 4 KiB, so the 1 MiB
//! takes about a second and outlasts a vnic restart (`net_tcp_restart`).
//! Handle 1 = endpoint to the vnic (`net=yes`).
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_tcpxfer::sender_main("xfer-paced", Some(ilwaco::net::NetDuration::from_millis(4)))
}
