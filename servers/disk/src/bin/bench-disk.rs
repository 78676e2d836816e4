//! The disk server with the disk benchmark's measurements
//! (`serac_disk::bench`): run as domain `bench-disk` by
//! `cargo xtask bench disk` and the QEMU test `disk_bench`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use serac_disk::bench::Bench;
use serac_disk::serve::Server;

ilwaco::entry!(main);

fn main() -> i32 {
    let (epoch, mut backend) = serac_disk::start();
    let bench = Bench::new(&mut backend);
    Server::new(epoch, backend, bench).run()
}
