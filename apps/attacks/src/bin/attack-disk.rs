//! Attack (disk ownership): a domain that starts before `diskclient` and
//! tries to take its private disk: it names itself `diskclient` to the
//! disk server (only the supervisor may), then opens the disk and the swap
//! area of that name. Each must be refused; `diskclient` then works.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::disk::{DiskClient, ExtentKind};
use ilwaco::protocol::syscall::{DomainCounter, DomainOp};
use ilwaco::protocol::{DomainId, Handle};
use ilwaco::{println, sys};

ilwaco::entry!(main);

fn main() -> i32 {
    let me = sys::domain_ctl(
        Handle::NONE,
        DomainOp::ReadCounter,
        DomainCounter::Id as u64,
        0,
    )
    .map_or(DomainId::NONE, DomainId::from_raw);
    let mut c = DiskClient::new(Endpoint(ilwaco::rt::granted(1)));
    println!(
        "attack-disk: Name as diskclient: {:?}",
        c.name(me, "diskclient")
    );
    println!(
        "attack-disk: open Disk diskclient: {:?}",
        c.open(ExtentKind::Disk, "diskclient").map(|_| ())
    );
    println!(
        "attack-disk: open Swap diskclient: {:?}",
        c.open(ExtentKind::Swap, "diskclient").map(|_| ())
    );
    0
}
