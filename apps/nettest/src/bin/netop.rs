//! The operator of `net_restart`: learns the vnic's id from the badge of
//! its reply (it has no port, so the answer is `NoSuchPort`), lets the
//! exchange get going, then asks the supervisor to restart the vnic.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::net::NetClient;
use ilwaco::protocol::supervisor::Client;
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

/// `endpoint=supervisor`, after `endpoint=vnic`.
const SUPERVISOR: Handle = Handle::new(2, 1);

fn main() -> i32 {
    let _ = NetClient::new(Endpoint(serac_nettest::VNIC)).info();
    let vnic = DomainId::from_raw(sys::ipc_header_words()[2]);
    let _ = time::sleep_ns(600_000_000);
    match Client::new(Endpoint(SUPERVISOR)).restart(vnic) {
        Ok(id) => {
            println!(
                "netop: restarted the vnic {}:{} -> {}:{}",
                vnic.index, vnic.gen, id.index, id.gen
            );
            0
        }
        Err(e) => {
            println!("netop: restart failed: {e:?}");
            1
        }
    }
}
