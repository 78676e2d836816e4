//! Writes its disk in a loop while the operator `diskop` restarts the disk
//! server under it (`disk_restart`). A request cut off by the restart
//! fails (`PeerDead` or `ServerRestarted`), never reports success; the
//! writer opens its disk again on the new incarnation and carries on, and
//! at the end every block holds the last write that succeeded, whole.
#![no_std]
#![no_main]

use ilwaco::ipc::Endpoint;
use ilwaco::protocol::client::ClientError;
use ilwaco::protocol::disk::{DiskClient, DiskHandle, ExtentKind, ServiceError, BLOCK_SIZE};
use ilwaco::protocol::SysError;
use ilwaco::{println, time};
use serac_diskclient::{disk, pattern, report};

ilwaco::entry!(main);

/// Rounds after the restart before the check.
const AFTER: u64 = 40;
/// Give up if no restart came within this many rounds.
const MAX_ROUNDS: u64 = 20_000;

/// Whether `e` says the server went away under the request.
fn cut_off(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Sys(SysError::PeerDead | SysError::ServerRestarted)
            | ClientError::Service(ServiceError::ServerRestarted)
    )
}

fn open(c: &mut DiskClient<Endpoint>) -> Result<DiskHandle, &'static str> {
    // The new incarnation may still be coming up: try for a while.
    for _ in 0..200 {
        match c.open(ExtentKind::Disk, "diskwriter") {
            Ok((h, _)) => return Ok(h),
            Err(e) if cut_off(&e) => {
                let _ = time::sleep_ns(5_000_000);
            }
            Err(e) => {
                println!("diskwriter: open failed: {e:?}");
                return Err("cannot open our disk");
            }
        }
    }
    Err("the disk server did not come back")
}

fn run() -> Result<(), &'static str> {
    let mut c = disk();
    let mut h = open(&mut c)?;
    // What each block holds: the round that last wrote it successfully.
    let mut last = [None::<u64>; 4];
    let mut restarts = 0u32;
    let mut after = 0;
    let mut buf = [0u8; BLOCK_SIZE];
    let mut round = 0u64;
    while after < AFTER {
        round += 1;
        if round > MAX_ROUNDS {
            return Err("the disk server was never restarted");
        }
        let blk = round % 4;
        pattern(round, &mut buf);
        match c.write_block(h, blk, &buf) {
            Ok(()) => {
                last[blk as usize] = Some(round);
                if restarts > 0 {
                    after += 1;
                }
            }
            Err(e) if cut_off(&e) => {
                restarts += 1;
                println!("diskwriter: round {round} cut off by a restart ({e:?}); opening again");
                // Half of that block may be new: it is written again below.
                last[blk as usize] = None;
                h = open(&mut c)?;
            }
            Err(e) => {
                println!("diskwriter: round {round}: {e:?}");
                return Err("a write failed for another reason");
            }
        }
    }
    c.flush(h).map_err(|_| "flush failed")?;
    let mut got = [0u8; BLOCK_SIZE];
    for (blk, r) in last.iter().enumerate() {
        let Some(r) = r else { continue };
        pattern(*r, &mut buf);
        c.read_block(h, blk as u64, &mut got)
            .map_err(|_| "read back failed")?;
        if got != buf {
            return Err("a block does not hold its last successful write");
        }
    }
    println!("diskwriter: {round} rounds, {restarts} restart(s) seen");
    Ok(())
}

fn main() -> i32 {
    i32::from(!report("disk_restart", run()))
}
