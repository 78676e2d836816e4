//! The operator of the crash-point test: restarts the swapper `KILLS`
//! times, at random moments, while the patterners page in and out. The
//! swapper is a server, so this guest only runs while the swapper waits
//! (for the disk, mostly): the kills land inside page-outs and page-ins.
//! It learns the swapper's id from the badge of a `Stats` reply, and
//! follows each restart's new id. Its lines are information: the verdict
//! is every patterner's halt code and the supervisor's restart log.
//!
//! Handles: 1 = endpoint to the swapper, 2 = endpoint to the supervisor.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::pager;
use ilwaco::protocol::supervisor::Client;
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const SWAPPER: Handle = Handle::new(1, 1);
const SUPERVISOR: Handle = Handle::new(2, 1);
/// Restarts to inflict.
const KILLS: u32 = 100;

fn main() -> i32 {
    let mut rng = sys::rdtsc() | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Let the patterners start filling memory (page-outs under pressure).
    let _ = time::sleep_ns(300_000_000);
    let _ = pager::Client::new(Endpoint(SWAPPER)).stats();
    let mut swapper = DomainId::from_raw(sys::ipc_header_words()[2]);
    let mut sup = Client::new(Endpoint(SUPERVISOR));
    for n in 1..=KILLS {
        // 10 to 150 ms apart: the restarts span the patterners' fill
        // (page-outs), their sleeps (whole-domain swap-outs) and their
        // checks (swap-ins), about 9 s.
        let _ = time::sleep_ns(10_000_000 + next() % 140_000_000);
        match sup.restart(swapper) {
            Ok(id) => {
                if n % 10 == 0 {
                    println!(
                        "swapkill: {n} restarts, swapper now {}:{}",
                        id.index, id.gen
                    );
                }
                swapper = id;
            }
            Err(e) => {
                println!(
                    "swapkill: restart {n} of {}:{} failed: {e:?}",
                    swapper.index, swapper.gen
                );
                return 1;
            }
        }
    }
    println!("swapkill: done, {KILLS} restarts");
    0
}
