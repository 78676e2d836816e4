//! The operator of `net_restart`: learns the vnic's id from the badge of
//! its reply (it has no port, so the answer is `NoSuchPort`), waits for
//! the pinger's half-way notification, then asks the supervisor to
//! restart the vnic. An `operator=yes` guest may not (only the console
//! may), so it says so, and the test types `restart vnic` on the console
//! when that line appears: the restart lands in the middle of the exchange.
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
    // The pinger's notification (its `notify=netop`), or ten seconds.
    let end = time::tsc().saturating_add(serac_nettest::ms_ticks(10_000));
    while time::tsc() < end {
        if let Ok(mask) = sys::idle(end) {
            if mask & ilwaco::protocol::upcall::NOTIFY != 0 {
                break;
            }
        }
    }
    match Client::new(Endpoint(SUPERVISOR)).restart(vnic) {
        Ok(id) => {
            println!(
                "netop: restarted the vnic {}:{} -> {}:{}, which only the console may do",
                vnic.index, vnic.gen, id.index, id.gen
            );
            1
        }
        Err(e) => {
            println!("netop: Restart refused ({e:?}); console: restart the vnic now");
            0
        }
    }
}
