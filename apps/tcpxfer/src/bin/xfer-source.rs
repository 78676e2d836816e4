//! xfer-source: the sending end of the guest-to-guest TCP test. Handle 1
//! = endpoint to the vnic (`net=yes`).
//!
//! It finds `net-judge` by discovery, connects, sends 1 MiB of the
//! pattern as fast as TCP goes, waits until all is acknowledged and
//! closes (`serac_tcpxfer::send`). It gives no verdict: the judge does.
#![no_std]
#![no_main]

ilwaco::entry!(main);

fn main() -> i32 {
    serac_tcpxfer::sender_main("xfer-source", None, None)
}
