//! netwatch: reads other domains' kernel counters over a window, for
//! `bench net`'s `idle_httpd_upcalls_per_s` and the QEMU test
//! `net_httpd_idle`. Handle 1 = endpoint to the supervisor
//! (`operator=yes`, so it may `Stat` anyone).
//!
//! It waits [`SETTLE_MS`] (the others' start-up), then reads every live
//! domain's upcall count, waits [`WINDOW_MS`] and reads them again:
//! `BENCH idle_upcalls_<slot> <delta>` per domain, in one boot, so a
//! start-up that varies from boot to boot is not counted.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::supervisor::{Client, LIST_PAGE_LEN};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys, time};

ilwaco::entry!(main);

const SUPERVISOR: Handle = Handle::new(1, 1);
const SETTLE_MS: u64 = 2_000;
const WINDOW_MS: u64 = 6_000;
/// Domains watched at most.
const MAX: usize = 64;

fn sleep_ms(ms: u64) {
    let end = time::tsc().saturating_add(serac_nettest::ms_ticks(ms));
    while time::tsc() < end {
        let _ = sys::idle(end);
    }
}

/// (id, upcalls) of every live domain, up to [`MAX`].
fn read(sup: &mut Client<Endpoint>, out: &mut [(DomainId, u64); MAX]) -> usize {
    let mut n = 0;
    let mut from = Some(0);
    while let Some(f) = from {
        let Ok(page) = sup.list(f) else { break };
        for &id in page.ids() {
            if let (Ok(s), Some(slot)) = (sup.stat(id), out.get_mut(n)) {
                *slot = (id, s.upcalls_delivered);
                n += 1;
            }
        }
        from = page.next.filter(|_| page.ids().len() == LIST_PAGE_LEN);
    }
    n
}

fn main() -> i32 {
    let mut sup = Client::new(Endpoint(SUPERVISOR));
    sleep_ms(SETTLE_MS);
    let mut before = [(DomainId::from_raw(0), 0u64); MAX];
    let n0 = read(&mut sup, &mut before);
    sleep_ms(WINDOW_MS);
    let mut after = [(DomainId::from_raw(0), 0u64); MAX];
    let n1 = read(&mut sup, &mut after);
    println!("BENCH idle_window_ms {WINDOW_MS}");
    let mut watched = 0;
    for (id, u1) in after.iter().take(n1) {
        // Only domains alive over the whole window, same incarnation.
        if let Some((_, u0)) = before.iter().take(n0).find(|(b, _)| b == id) {
            // The totals too, so a reading of zeros would show.
            println!("netwatch: {}:{} upcalls {u0} -> {u1}", id.index, id.gen);
            println!("BENCH idle_upcalls_{} {}", id.index, u1.saturating_sub(*u0));
            watched += 1;
        }
    }
    println!("netwatch: {watched} domain(s) watched over {WINDOW_MS} ms");
    0
}
