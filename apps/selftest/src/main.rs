//! Checks the kernel's syscall ABI from ring 3. Each check prints
//! `TEST <name> ... ok|FAILED: why`; the QEMU runner judges the lines.
//! The last step faults on purpose: the kernel must stop this domain alone
//! and report the fault.
#![no_std]
#![no_main]

use ilwaco::protocol::layout::{IPC_BUFFER_ADDR, PAGE_SIZE};
use ilwaco::protocol::syscall::{Syscall, DEBUG_WRITE_MAX};
use ilwaco::protocol::upcall::ALARM;
use ilwaco::protocol::{Handle, PageRights};
use ilwaco::sys::{self, probe};
use ilwaco::SysError;

ilwaco::entry!(main);

fn check(name: &str, r: Result<(), &'static str>) -> bool {
    match r {
        Ok(()) => ilwaco::println!("TEST {name} ... ok"),
        Err(why) => ilwaco::println!("TEST {name} ... FAILED: {why}"),
    }
    r.is_ok()
}

fn expect(r: Result<u64, SysError>, want: SysError) -> Result<(), &'static str> {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => {
            ilwaco::println!("selftest: got {e:?}, wanted {want:?}");
            Err("wrong error code")
        }
        Ok(v) => {
            ilwaco::println!("selftest: call succeeded with {v}, wanted {want:?}");
            Err("call succeeded")
        }
    }
}

fn bad_syscalls() -> Result<(), &'static str> {
    for n in [0, 13, 999, 1 << 32 | 1, u64::MAX] {
        expect(probe(n, 0, 0, 0), SysError::BadSyscall)?;
    }
    Ok(())
}

fn bad_pointers() -> Result<(), &'static str> {
    let dw = u64::from(Syscall::DebugWrite.number());
    // Kernel half, non-canonical, wrapping, unmapped, null page.
    expect(
        probe(dw, 0xffff_8000_0000_0000, 16, 0),
        SysError::BadPointer,
    )?;
    expect(
        probe(dw, 0x0000_8000_0000_0000, 16, 0),
        SysError::BadPointer,
    )?;
    expect(probe(dw, u64::MAX - 4, 10, 0), SysError::BadPointer)?;
    expect(
        probe(dw, 0x0000_2000_0000_0000, 16, 0),
        SysError::BadPointer,
    )?;
    expect(probe(dw, 0x10, 4, 0), SysError::BadPointer)?;
    expect(probe(dw, 0x40_0000, 1 << 20, 0), SysError::MessageTooLarge)?;
    // A good pointer still works after all that, and the kernel reports
    // every byte written (the first domain has no console budget).
    let line = b"selftest: a good pointer still works\n";
    if sys::debug_write(line) != Ok(line.len() as u64) {
        return Err("a write of a bound buffer did not report its length");
    }
    Ok(())
}

/// The scratch pages the buffer checks bind grant frames at. The page after
/// `LAST` stays unbound, so a buffer running past `LAST`'s end is bad.
const PAIR: u64 = sys::SCRATCH_BASE + 60 * PAGE_SIZE;
const LAST: u64 = sys::SCRATCH_BASE + 62 * PAGE_SIZE;

/// Binds the memory grant's first frames at `PAIR`, `PAIR + 1 page` and
/// `LAST`; returns the frames in that order.
fn bind_buffers() -> Result<[u64; 3], &'static str> {
    let a = ilwaco::rt::boot_args();
    if a.a3 < 3 {
        return Err("the memory grant has fewer than 3 frames");
    }
    let frames = [a.a2, a.a2 + 1, a.a2 + 2];
    for (va, f) in [PAIR, PAIR + PAGE_SIZE, LAST].into_iter().zip(frames) {
        sys::map(Handle::NONE, va, f, PageRights::READ_WRITE)
            .map_err(|_| "map of a grant frame failed")?;
    }
    Ok(frames)
}

/// `debug_write` reads exactly what it is pointed at: a line across two
/// bound pages comes out whole, the 256-byte limit holds exactly, a buffer
/// that runs one byte into an unbound page is refused, and so is a buffer
/// whose binding is gone (the kernel checks the software TLB, not a stale
/// page-table entry). The QEMU test requires the lines printed here.
fn bound_buffers() -> Result<(), &'static str> {
    bind_buffers()?;
    let dw = u64::from(Syscall::DebugWrite.number());
    let write = |at: u64, bytes: &[u8]| -> Result<(), &'static str> {
        let page = at & !(PAGE_SIZE - 1);
        let off = (at - page) as usize;
        let first = bytes.len().min(PAGE_SIZE as usize - off);
        sys::scratch_write(page, off, &bytes[..first]).map_err(|_| "scratch write failed")?;
        if first < bytes.len() {
            sys::scratch_write(page + PAGE_SIZE, 0, &bytes[first..])
                .map_err(|_| "scratch write failed")?;
        }
        Ok(())
    };
    // Across the boundary of two bound pages.
    let straddle = b"selftest: this line straddles two bound pages\n";
    let at = PAIR + PAGE_SIZE - 20;
    write(at, straddle)?;
    if probe(dw, at, straddle.len() as u64, 0) != Ok(straddle.len() as u64) {
        return Err("a buffer across two bound pages was not written whole");
    }
    // Exactly DEBUG_WRITE_MAX bytes, ending at the last byte of `LAST`.
    let mut max = [b'.'; DEBUG_WRITE_MAX as usize];
    let head = b"selftest: 256 bytes at a page end ";
    max[..head.len()].copy_from_slice(head);
    max[DEBUG_WRITE_MAX as usize - 1] = b'\n';
    let at = LAST + PAGE_SIZE - DEBUG_WRITE_MAX;
    write(at, &max)?;
    if probe(dw, at, DEBUG_WRITE_MAX, 0) != Ok(DEBUG_WRITE_MAX) {
        return Err("a 256-byte write of a bound buffer failed");
    }
    // One byte more is over the limit, however good the pointer.
    expect(
        probe(dw, at - 1, DEBUG_WRITE_MAX + 1, 0),
        SysError::MessageTooLarge,
    )?;
    // The same 16 bytes are fine at the page end, and bad one byte later.
    let tail = b"selftest: tail.\n";
    let at = LAST + PAGE_SIZE - tail.len() as u64;
    write(at, tail)?;
    if probe(dw, at, tail.len() as u64, 0) != Ok(tail.len() as u64) {
        return Err("a buffer ending at a page end failed");
    }
    expect(
        probe(dw, at + 1, tail.len() as u64, 0),
        SysError::BadPointer,
    )?;
    // Unbound: the same buffer is now bad.
    match sys::unmap(Handle::NONE, LAST) {
        Ok(_) => {}
        Err(_) => return Err("unmap of a bound grant frame failed"),
    }
    expect(probe(dw, at, tail.len() as u64, 0), SysError::BadPointer)?;
    // The IPC buffer is a fixed page inside the syscall space.
    let ipc = b"selftest: written from the IPC buffer\n";
    ilwaco::sys::ipc_write(0, ipc).map_err(|_| "IPC buffer write failed")?;
    if probe(dw, IPC_BUFFER_ADDR, ipc.len() as u64, 0) != Ok(ipc.len() as u64) {
        return Err("a write from the IPC buffer failed");
    }
    Ok(())
}

fn alarm() -> Result<(), &'static str> {
    let clock = ilwaco::time::clock().ok_or("no clock page")?;
    let start = ilwaco::time::tsc();
    let deadline = clock.deadline_after_ns(start, 20_000_000);
    let events = ilwaco::sys::idle(deadline).map_err(|_| "idle failed")?;
    let woke = ilwaco::time::tsc();
    if woke < deadline {
        return Err("woke before the deadline");
    }
    if events & ALARM == 0 {
        return Err("ALARM bit not delivered");
    }
    let late_us = clock
        .ns_since_boot(woke)
        .saturating_sub(clock.ns_since_boot(deadline))
        / 1000;
    ilwaco::println!("selftest: 20 ms alarm woke {late_us} us late");
    if late_us > 100_000 {
        return Err("woke more than 100 ms late");
    }
    Ok(())
}

/// `reply_recv` with a deadline and no message: `WouldBlock`, not before
/// the deadline.
fn recv_timeout() -> Result<(), &'static str> {
    let clock = ilwaco::time::clock().ok_or("no clock page")?;
    let deadline = clock.deadline_after_ns(ilwaco::time::tsc(), 5_000_000);
    match ilwaco::sys::reply_recv_until(ilwaco::protocol::Handle::NONE, deadline) {
        Err(SysError::WouldBlock) if ilwaco::time::tsc() >= deadline => Ok(()),
        Err(SysError::WouldBlock) => Err("gave up before the deadline"),
        Err(_) => Err("wrong error"),
        Ok(_) => Err("received a message nobody sent"),
    }
}

/// `domain_ctl(Create)` takes a checked name: bad characters, lengths,
/// classes and pointers are refused; a good one names the domain in the
/// kernel's log (the QEMU test requires the `probe-1.x_Z killed` line).
fn domain_names() -> Result<(), &'static str> {
    use ilwaco::protocol::syscall::{create_arg, DomainOp};
    let root = ilwaco::protocol::Handle::new(1, 1);
    let create = |name: &str| ilwaco::sys::create_domain(root, 1, name).map(|h| h.to_raw());
    for bad in [
        "a b",
        "a/b",
        "tab\t",
        "caf\u{e9}",
        "[0:1 x]",
        "abcdefghijklmnopq",
    ] {
        expect(create(bad), SysError::BadArgument)?;
    }
    let raw = |a, b| ilwaco::sys::domain_ctl(root, DomainOp::Create, a, b);
    expect(
        raw(create_arg(1, 4), 0x0000_2000_0000_0000),
        SysError::BadPointer,
    )?;
    expect(
        raw(create_arg(1, 4), 0xffff_8000_0000_0000),
        SysError::BadPointer,
    )?;
    let abcd = b"abcd".as_ptr() as u64;
    expect(raw(create_arg(2, 4), abcd), SysError::BadArgument)?;
    expect(raw(1 << 16 | create_arg(1, 4), abcd), SysError::BadArgument)?;
    expect(raw(1 | 17 << 8, abcd), SysError::BadArgument)?;
    let h = ilwaco::sys::create_domain(root, 1, "probe-1.x_Z").map_err(|_| "good name refused")?;
    // Kill logs its name; the second Kill reaps the dead domain.
    for _ in 0..2 {
        ilwaco::sys::domain_ctl(h, DomainOp::Kill, 0, 0).map_err(|_| "kill failed")?;
    }
    Ok(())
}

fn main() -> i32 {
    let mut ok = true;
    ok &= check("user_bad_syscall", bad_syscalls());
    ok &= check("user_bad_pointer", bad_pointers());
    ok &= check("user_bound_buffer", bound_buffers());
    ok &= check("user_alarm", alarm());
    ok &= check("user_recv_timeout", recv_timeout());
    ok &= check("user_domain_names", domain_names());
    if !ok {
        return 1;
    }
    ilwaco::println!("selftest: now faulting on purpose at 0x700000000000");
    let v = ilwaco::sys::peek(0x7000_0000_0000);
    ilwaco::println!("TEST user_fault ... FAILED: read of an unmapped page returned {v:#x}");
    2
}
