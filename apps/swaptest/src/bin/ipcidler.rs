//! A guest that has done IPC and then idles for good: one `Stats` call to
//! its pager (so it has an IPC buffer and a handle), then `idle` with no
//! deadline. `bench swap` boots many of them and measures what the kernel
//! keeps for each once the swapper has swapped them out.
//!
//! Handles: 1 = endpoint to the swapper.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::pager;
use ilwaco::protocol::syscall::IDLE_FOREVER;
use ilwaco::protocol::Handle;
use ilwaco::{println, sys};

ilwaco::entry!(main);

fn main() -> i32 {
    if let Err(e) = pager::Client::new(Endpoint(Handle::new(1, 1))).stats() {
        println!("ipcidler: the pager did not answer: {e:?}");
        return 1;
    }
    loop {
        let _ = sys::idle(IDLE_FOREVER);
    }
}
