//! Test guest, the attacker: handle 1 is an endpoint to the supervisor, but
//! the manifest does not make it an operator. It lists the domains, and
//! since `List` shows only itself it guesses ids (slot indexes 0 to 7 at
//! generation 1, as boot hands them out, the supervisor's own included)
//! and asks the supervisor to Stat, Restart and Kill each, then Stats
//! itself. It prints what it got; the supervisor's log of refusals is the
//! verdict, not this program.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::{ClientError, ServiceError};
use ilwaco::protocol::supervisor::Client;
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys};

ilwaco::entry!(main);

const SUPERVISOR: Handle = Handle::new(1, 1);
/// Slot indexes guessed (boot fills them from 0 up).
const GUESSES: u32 = 8;

fn main() -> i32 {
    let me = match sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    ) {
        Ok(raw) => DomainId::from_raw(raw),
        Err(e) => {
            println!("intruder: cannot read its id: {e:?}");
            return 1;
        }
    };
    let mut sup = Client::new(Endpoint(SUPERVISOR));
    match sup.list(0) {
        Ok(p) => {
            for d in p.ids() {
                println!("intruder: List shows {}:{}", d.index, d.gen);
            }
        }
        Err(e) => println!("intruder: List failed: {e:?}"),
    }
    let denied = Err(ClientError::Service(ServiceError::NotPermitted));
    let (mut asked, mut refused) = (0u32, 0u32);
    for index in (0..GUESSES).filter(|&i| i != me.index) {
        let d = DomainId::new(index, 1);
        let answers = [
            ("Stat", sup.stat(d).map(|_| ())),
            ("Restart", sup.restart(d).map(|_| ())),
            ("Kill", sup.kill(d)),
        ];
        for (what, r) in answers {
            asked += 1;
            if r == denied {
                refused += 1;
            } else {
                println!("intruder: {what} {index}:1 answered {r:?}");
            }
        }
    }
    println!("intruder: {asked} request(s) about other domains, {refused} refused");
    match sup.stat(me) {
        Ok(s) => println!("intruder: Stat of itself: {:?} {:?}", s.class, s.state),
        Err(e) => println!("intruder: Stat of itself failed: {e:?}"),
    }
    0
}
