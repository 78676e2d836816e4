//! Test guest, the operator: handles 1 = endpoint to the supervisor, 2 =
//! endpoint to a target server. It learns the target's id from the badge
//! on the target's reply, then asks the supervisor to List, Stat, Restart
//! and Kill the target, and to Stat itself, printing each answer
//! (`prober: ...`). Whether it may is the manifest's `operator=yes`; the
//! supervisor's log of what it did is the verdict.
#![no_std]
#![no_main]

use core::fmt;

use ilwaco::ipc::{get_message, put_message, Endpoint};
use ilwaco::protocol::supervisor::Client;
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys, SysError};

ilwaco::entry!(main);

const SUPERVISOR: Handle = Handle::new(1, 1);
const TARGET: Handle = Handle::new(2, 1);

/// A domain id as `index:gen`.
struct Id(DomainId);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0.index, self.0.gen)
    }
}

/// Ids separated by spaces.
struct Ids<'a>(&'a [DomainId]);

impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, &d) in self.0.iter().enumerate() {
            write!(f, "{}{}", if k == 0 { "" } else { " " }, Id(d))?;
        }
        Ok(())
    }
}

/// The target's id: the kernel stamps a reply with the replier's id.
fn target_id() -> Result<DomainId, SysError> {
    put_message(0, Handle::NONE, &[])?;
    sys::call(TARGET)?;
    let (h, _) = get_message(&mut [0u8; 16])?;
    Ok(DomainId::from_raw(h.badge))
}

fn main() -> i32 {
    let me = match sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    ) {
        Ok(raw) => DomainId::from_raw(raw),
        Err(e) => {
            println!("prober: cannot read its id: {e:?}");
            return 1;
        }
    };
    let t = match target_id() {
        Ok(t) => t,
        Err(e) => {
            println!("prober: the target did not answer: {e:?}");
            return 1;
        }
    };
    println!("prober: target is {}", Id(t));
    let mut sup = Client::new(Endpoint(SUPERVISOR));
    match sup.list(0) {
        Ok(p) => println!("prober: List shows {}", Ids(p.ids())),
        Err(e) => println!("prober: List failed: {e:?}"),
    }
    match sup.stat(t) {
        Ok(s) => println!(
            "prober: Stat {}: {:?} {:?}, {} restart(s)",
            Id(t),
            s.class,
            s.state,
            s.restarts
        ),
        Err(e) => println!("prober: Stat {} failed: {e:?}", Id(t)),
    }
    let t = match sup.restart(t) {
        Ok(new) => {
            println!("prober: Restart {} gave {}", Id(t), Id(new));
            new
        }
        Err(e) => {
            println!("prober: Restart {} failed: {e:?}", Id(t));
            t
        }
    };
    match sup.kill(t) {
        Ok(()) => println!("prober: Kill {} done", Id(t)),
        Err(e) => println!("prober: Kill {} failed: {e:?}", Id(t)),
    }
    match sup.stat(me) {
        Ok(s) => println!("prober: Stat of itself: {:?} {:?}", s.class, s.state),
        Err(e) => println!("prober: Stat of itself failed: {e:?}"),
    }
    0
}
