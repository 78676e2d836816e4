#![no_std]
#![no_main]
extern crate alloc;
use ilwaco::println;
ilwaco::entry!(main);
fn main() -> i32 {
    let v: alloc::vec::Vec<u64> = (0..1000).collect();
    println!("sum {} {}", v.iter().sum::<u64>(), "é€😀".repeat(100).len());
    let t0 = ilwaco::time::now_ns();
    let ev = ilwaco::time::sleep_ns(10_000_000);
    let t1 = ilwaco::time::now_ns();
    println!("slept {:?} -> {:?} events {:?}", t0, t1, ev);
    println!("upcall entry {:#x} frame {:?}", ilwaco::upcall::entry_address(), ilwaco::sys::upcall_frame());
    let r: Result<u64, _> = ilwaco::ipc::put_message(5, ilwaco::protocol::Handle::NONE, b"hi").map(|_| 0);
    println!("ipc put {:?} call {:?}", r, ilwaco::sys::call(ilwaco::protocol::Handle::new(1, 1)));
    let x: Option<u32> = None;
    x.unwrap();
    0
}
