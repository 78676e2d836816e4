//! Checks the kernel's syscall ABI from ring 3. Each check prints
//! `TEST <name> ... ok|FAILED: why`; the QEMU runner judges the lines.
//! The last step faults on purpose: the kernel must stop this domain alone
//! and report the fault.
#![no_std]
#![no_main]

use ilwaco::protocol::syscall::Syscall;
use ilwaco::protocol::upcall::ALARM;
use ilwaco::sys::probe;
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
    for n in [0, 12, 999, 1 << 32 | 1, u64::MAX] {
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
    // A good pointer still works after all that.
    match probe(dw, b"".as_ptr() as u64, 0, 0) {
        Ok(0) => Ok(()),
        _ => Err("empty write failed"),
    }
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
