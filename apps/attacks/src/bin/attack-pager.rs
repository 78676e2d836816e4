//! Attack (teardown): a pager that maps its own frames into its client
//! (`pager-victim`), then dies while they are bound there. The frames
//! stay bound in the client (a pager's crash loses no page) and pass to
//! the supervisor; nobody else can bind them while they are, and the
//! client's next fault waits for a pager that is never restarted.
#![no_std]
#![no_main]

use ilwaco::ipc::put_message;
use ilwaco::protocol::pager::FAULT_RESUME;
use ilwaco::protocol::{Handle, PageRights};
use ilwaco::{println, sys};
use serac_attacks::{pager_recv, put_pager_ok, PagerMsg};

ilwaco::entry!(main);

/// The client's label for "done, you may go".
const DONE: u32 = 99;

fn main() -> i32 {
    let mut next = None::<(u64, u64)>;
    let mut reply = Handle::NONE;
    let mut served = 0u64;
    loop {
        let (msg, r) = match pager_recv(reply) {
            Ok(m) => m,
            Err(e) => {
                println!("attack-pager: receive failed: {e:?}");
                return 1;
            }
        };
        reply = r;
        match msg {
            PagerMsg::Grant { first, count } => {
                next = Some((first, count));
                put_pager_ok();
            }
            PagerMsg::Fault { fault, reply: fr } => {
                let Some((f, left)) = next.filter(|&(_, n)| n > 0) else {
                    println!("attack-pager: out of frames");
                    return 1;
                };
                next = Some((f + 1, left - 1));
                let page = fault.vaddr & !0xfff;
                if let Err(e) = sys::map(fr, page, f, PageRights::READ_WRITE) {
                    println!("attack-pager: map failed: {e:?}");
                    return 1;
                }
                served += 1;
                let _ = put_message(FAULT_RESUME, Handle::NONE, &[]);
            }
            PagerMsg::Other { label: DONE } => {
                // The client's "done": answer, then die with its pages bound.
                let mut words = [0u8; 4];
                let _ = ilwaco::ipc::get_message(&mut words);
                let _ = put_message(DONE, Handle::NONE, &[]);
                let _ = sys::reply_recv_until(reply, sys::rdtsc() + 1);
                println!("attack-pager: served {served} faults; dying with them bound");
                return 0;
            }
            PagerMsg::Other { .. } => put_pager_ok(),
        }
    }
}
