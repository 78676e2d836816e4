//! Test guest: the `map`/`unmap` rules of docs/abi.md section 7, checked
//! against the errors documented there. The manifest gives it frames of
//! its own (`frames=4`, listed in its grant page) and handle 1, a
//! notification (a handle of the wrong kind for `map`). Each check prints
//! `mapper: ok: <what>` and the run ends with `TEST map_frames ... ok`, or
//! `TEST map_frames ... FAILED: <what>: <why>` at the first that fails.
#![no_std]
#![no_main]

use ilwaco::protocol::layout::{IPC_BUFFER_ADDR, PAGE_SIZE, USER_END, USER_START};
use ilwaco::protocol::syscall::Syscall;
use ilwaco::protocol::{Handle, PageRights, SysError};
use ilwaco::{println, sys};

ilwaco::entry!(main);

/// Pages the checks bind at: in the scratch window, where no Rust object
/// lives and `scratch_write` can fill them.
const VA1: u64 = sys::SCRATCH_BASE;
const VA2: u64 = sys::SCRATCH_BASE + PAGE_SIZE;
/// The notification the manifest grants (slot 1).
const NOTIFICATION: Handle = Handle::new(1, 1);
/// Physical 1 MiB: the kernel's, never a guest's.
const KERNEL_FRAME: u64 = 0x100;
const PATTERN: u64 = 0x5e7a_c0de_0000_0001;

type Check = Result<(), &'static str>;

fn want(r: Result<u64, SysError>, e: SysError) -> Check {
    match r {
        Err(got) if got == e => Ok(()),
        Err(got) => {
            println!("mapper: got {got:?}, wanted {e:?}");
            Err("wrong error")
        }
        Ok(_) => Err("succeeded"),
    }
}

/// `map` with raw rights bits (the typed wrapper cannot express bad ones).
fn map_raw(vaddr: u64, frame: u64, rights: u64) -> Result<u64, SysError> {
    let (rax, rdx) = sys::fuzz_syscall(
        u64::from(Syscall::Map.number()),
        [Handle::NONE.to_raw(), vaddr, frame, rights, 0, 0],
    );
    ilwaco::protocol::error::sys_result(rax, rdx)
}

fn map(vaddr: u64, frame: u64) -> Result<u64, SysError> {
    sys::map(Handle::NONE, vaddr, frame, PageRights::READ_WRITE)
}

/// A check that failed: what, and why.
type Failed = (&'static str, &'static str);

fn step(what: &'static str, r: Check) -> Result<(), Failed> {
    r.map_err(|why| (what, why))?;
    println!("mapper: ok: {what}");
    Ok(())
}

fn run() -> Result<(), Failed> {
    let g = ilwaco::rt::frame_grant().ok_or(("grant page", "unreadable"))?;
    let &[f0, f1, ..] = g.frames() else {
        return Err(("grant page", "fewer than 2 frames"));
    };
    step(
        "map of an own frame",
        (|| {
            map(VA1, f0).map_err(|_| "refused")?;
            sys::scratch_write(VA1, 0, &PATTERN.to_le_bytes()).map_err(|_| "write failed")?;
            match sys::peek(VA1) {
                PATTERN => Ok(()),
                _ => Err("the page does not hold what was written"),
            }
        })(),
    )?;
    step(
        "the same frame at a second address: FrameInUse",
        want(map(VA2, f0), SysError::FrameInUse),
    )?;
    step(
        "a second frame at a bound page: AlreadyMapped",
        want(map(VA1, f1), SysError::AlreadyMapped),
    )?;
    step(
        "the grant page's frame (the supervisor's): FrameNotOwned",
        want(map(VA2, g.page_frame), SysError::FrameNotOwned),
    )?;
    step(
        "a kernel frame: FrameNotOwned",
        want(map(VA2, KERNEL_FRAME), SysError::FrameNotOwned),
    )?;
    step(
        "frames beyond any RAM: FrameNotOwned",
        (|| {
            for f in [1 << 36, 1 << 52, u64::MAX] {
                want(map(VA2, f), SysError::FrameNotOwned)?;
            }
            Ok(())
        })(),
    )?;
    step(
        "unmap of an own code page (the shared image's, no binding): NotMapped",
        want(sys::unmap(Handle::NONE, USER_START), SysError::NotMapped),
    )?;
    step(
        "unmap of the grant page: FrameNotOwned",
        (|| {
            let at = ilwaco::protocol::layout::GRANT_PAGE_ADDR;
            want(sys::unmap(Handle::NONE, at), SysError::FrameNotOwned)?;
            // Still bound: it reads as before.
            match ilwaco::rt::frame_grant() {
                Some(again) if again == g => Ok(()),
                _ => Err("the grant page changed"),
            }
        })(),
    )?;
    step(
        "misaligned or outside USER_START..USER_END: BadArgument / BadPointer",
        (|| {
            want(map(VA2 + 8, f1), SysError::BadArgument)?;
            for va in [
                0,
                IPC_BUFFER_ADDR,
                USER_START - PAGE_SIZE,
                USER_END,
                0xffff_8000_0000_0000,
            ] {
                want(map(va, f1), SysError::BadPointer)?;
                want(sys::unmap(Handle::NONE, va), SysError::BadPointer)?;
            }
            want(sys::unmap(Handle::NONE, VA1 + 8), SysError::BadArgument)
        })(),
    )?;
    step(
        "rights without R or with unknown bits: BadArgument",
        (|| {
            for rights in [0, 2, 4, 6, 8, 1 << 32] {
                want(map_raw(VA2, f1, rights), SysError::BadArgument)?;
            }
            Ok(())
        })(),
    )?;
    step(
        "target handles: wrong kind, stale, forged",
        (|| {
            let rw = PageRights::READ_WRITE;
            want(
                sys::map(NOTIFICATION, VA2, f1, rw),
                SysError::WrongHandleKind,
            )?;
            want(
                sys::map(Handle::new(1, 2), VA2, f1, rw),
                SysError::StaleHandle,
            )?;
            want(
                sys::map(Handle::new(9, 1), VA2, f1, rw),
                SysError::BadHandle,
            )?;
            want(sys::unmap(NOTIFICATION, VA1), SysError::WrongHandleKind)
        })(),
    )?;
    step(
        "nothing refused left a binding behind",
        want(sys::unmap(Handle::NONE, VA2), SysError::NotMapped),
    )?;
    step(
        "unmap returns the frame",
        match sys::unmap(Handle::NONE, VA1) {
            Ok(f) if f == f0 => Ok(()),
            Ok(_) => Err("returned another frame"),
            Err(_) => Err("refused"),
        },
    )?;
    step(
        "unmap again: NotMapped",
        want(sys::unmap(Handle::NONE, VA1), SysError::NotMapped),
    )?;
    step(
        "the unbound frame binds elsewhere, contents kept",
        (|| {
            map(VA2, f0).map_err(|_| "refused")?;
            if sys::peek(VA2) != PATTERN {
                return Err("the frame lost its contents");
            }
            // And now f1 may take VA1.
            map(VA1, f1).map_err(|_| "a second own frame refused")?;
            for va in [VA1, VA2] {
                sys::unmap(Handle::NONE, va).map_err(|_| "unmap failed")?;
            }
            Ok(())
        })(),
    )?;
    Ok(())
}

fn main() -> i32 {
    match run() {
        Ok(()) => {
            println!("TEST map_frames ... ok");
            0
        }
        Err((what, why)) => {
            println!("TEST map_frames ... FAILED: {what}: {why}");
            1
        }
    }
}
