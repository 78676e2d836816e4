//! The supervisor, the first domain the kernel starts (docs/abi.md section 10).
//!
//! It reads the boot manifest from the boot archive, builds every domain the
//! manifest names (create, bind the image pages, grant handles, set the
//! pager), gives the pagers frames, starts servers before guests, and then
//! serves: exit messages from the kernel (restarting faulted domains marked
//! `restart = true`) and `supervisor::Request`s from domains holding an
//! endpoint to it, authorised by the sender's badge (only `operator = true`
//! domains may act on others; `serac_supervisor_core::authority`). The
//! manifest's rules are `serac_supervisor_core::manifest`'s; its keys are
//! listed in docs/operating.md.
//!
//! Exit codes: 0 (test end, or nothing left to supervise), 1 (invalid clock
//! page), 2 (bad manifest or image), 3 (a domain could not be built),
//! 4 (the kernel refuses to deliver messages).
#![no_std]
#![no_main]

extern crate alloc;

mod console;
mod domains;
mod serve;

use alloc::boxed::Box;
use ilwaco::println;
use serac_protocol::bootarc::Archive;
use serac_supervisor_core::manifest::Manifest;

use domains::Supervisor;

ilwaco::entry!(main);

/// Halt code for a bad manifest or image.
pub const EXIT_MANIFEST: u64 = 2;
/// Halt code for a domain that could not be built.
pub const EXIT_BUILD: u64 = 3;
/// Halt code when the kernel will not deliver messages.
pub const EXIT_IPC: u64 = 4;

fn main() -> u64 {
    println!("supervisor: up");
    match ilwaco::time::clock() {
        Some(c) => println!(
            "supervisor: tsc {} Hz ({} MHz)",
            c.tsc_hz,
            c.tsc_hz / 1_000_000
        ),
        None => {
            println!("supervisor: clock page invalid");
            return 1;
        }
    }
    let Some(bytes) = ilwaco::sys::boot_archive() else {
        println!("supervisor: no boot archive; nothing to supervise");
        return 0;
    };
    let archive = match Archive::parse(bytes) {
        Ok(a) => a,
        Err(e) => {
            println!("supervisor: boot archive rejected: {e:?}");
            return EXIT_MANIFEST;
        }
    };
    let bytes = match archive.find("manifest") {
        Ok(e) => e.data,
        Err(e) => {
            println!("supervisor: manifest: cannot read the archive entry: {e:?}");
            return EXIT_MANIFEST;
        }
    };
    // Postcard, packed by xtask; checked again here (the archive is input).
    let manifest = match Manifest::decode(bytes) {
        Ok(m) => Box::new(m),
        // `manifest line N: ...`, or `manifest: ...` for a global key or
        // an undecodable entry.
        Err(e) if e.line != 0 => {
            println!("supervisor: manifest {e}");
            return EXIT_MANIFEST;
        }
        Err(e) => {
            println!("supervisor: manifest: {e}");
            return EXIT_MANIFEST;
        }
    };
    println!(
        "supervisor: manifest: {} domain(s), {} instance(s)",
        manifest.domains().len(),
        manifest.instance_count()
    );
    if manifest.instance_count() == 0 {
        println!("supervisor: nothing to supervise");
        return 0;
    }
    let mut sup = match Supervisor::new(manifest, &archive, ilwaco::rt::boot_args()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(f) = sup.boot() {
        println!("supervisor: boot failed: {f}");
        return EXIT_BUILD;
    }
    serve::run(&mut sup)
}
