//! The disk server (the library's docs say what it does).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use serac_disk::serve::Server;

ilwaco::entry!(main);

fn main() -> i32 {
    let (epoch, backend) = serac_disk::start();
    Server::new(epoch, backend, ()).run()
}
