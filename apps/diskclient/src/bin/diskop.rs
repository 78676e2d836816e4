//! The operator of `disk_restart`: learns the disk server's id from the
//! badge of one of its replies, lets `diskwriter` get going, then asks the
//! supervisor to restart the disk server under it. An `operator=yes` guest
//! may not (only the console may), so it says so, and the test types
//! `restart disk` on the console when that line appears.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::disk::DiskHandle;
use ilwaco::protocol::supervisor::Client;
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys, time};
use serac_diskclient::disk;

ilwaco::entry!(main);

/// `endpoint=supervisor`, after `endpoint=disk`.
const SUPERVISOR: Handle = Handle::new(2, 1);

fn main() -> i32 {
    // Any answer carries the server's id as its badge.
    let _ = disk().info(DiskHandle::default());
    let server = DomainId::from_raw(sys::ipc_header_words()[2]);
    let _ = time::sleep_ns(30_000_000);
    match Client::new(Endpoint(SUPERVISOR)).restart(server) {
        Ok(id) => {
            println!(
                "diskop: restarted the disk server {}:{} -> {}:{}, which only the console may do",
                server.index, server.gen, id.index, id.gen
            );
            1
        }
        Err(e) => {
            println!("diskop: Restart refused ({e:?}); console: restart the disk server now");
            0
        }
    }
}
