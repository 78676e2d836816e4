//! Issue 9's QEMU tests and `bench swap`'s boots: swapping under
//! overcommit, a swapper killed 100 times, injected disk errors, and the
//! benchmark's scenarios. The verdicts are the kernel's lines (halt codes,
//! faults), the supervisor's and the swapper's, never a guest's.

use super::{
    d, net_guests, www_site, Boot, Config, DiskExtent, DiskImage, HostHttp, HttpCheck, NetDevice,
    QemuTest,
};
use crate::pattern::Pattern;
use std::time::Duration;

/// First block of the only extent of a fresh test disk (after the
/// superblock and two 16-block table copies).
pub const FIRST_EXTENT_BLOCK: u64 = 33;

/// A fresh disk with the swapper's swap area of `blocks`.
fn swap_disk(name: &str, mib: u64, blocks: u64) -> DiskImage {
    DiskImage::fresh(name, mib, vec![DiskExtent::Swap("swapper".into(), blocks)])
}

/// `n` patterners: each must halt with 0 (every byte came back), none may
/// fault or find a wrong byte, and the swapper must have paged, with
/// tables built from its grant.
fn patterners_pass(t: QemuTest) -> QemuTest {
    t.forbid(d("swapper", "swapper: no memory for the swap tables*"))
        .forbid(d("swapper", "swapper: growing the heap with frame * failed*"))
        .forbid(d("swapper", "swapper: a first grant of * cannot pay*"))
        .require(d(
            "swapper",
            "swapper: tables for %n frames, %n domain records, %n slots, %n regions: %n KiB of heap, %n frames of the grant",
        ))
        .forbid("[ info] domain %d:%d patterner halted with code 1")
        .forbid("[ info] domain %d:%d patterner halted with code 2")
        .forbid("[ info] domain %d:%d patterner halted with code 3")
        .forbid("[ warn] domain %d:%d patterner faulted*")
        .forbid(d("swapper", "swapper: killing *"))
        .require(d("supervisor", "supervisor: test end: patterner halted with code 0"))
        .require(d(
            "swapper",
            "swapper: resident %d swapped %d page-ins %n page-outs %n swap-outs %n swap-ins %n io-errors 0",
        ))
}

/// 200 patterners (64 KiB of pattern each, with stack and heap 19 pages,
/// 15 MiB) in a 64 MiB machine, where the swapper is given about 2,400
/// frames (under 10 MiB): they cannot all be resident, so it pages and
/// swaps them out whole; every one checks every byte after being brought
/// back, three times.
pub fn swap_overcommit() -> QemuTest {
    let t = QemuTest::new("swap_overcommit", Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_overcommit"))
        .disk(DiskImage::fresh("swap_overcommit", 104, vec![
            DiskExtent::Swap("swapper".into(), 20_480),
            DiskExtent::Disk("swapper".into(), 256),
        ]))
        .require(d(
            "swapper",
            "swapper: recording its faults to its disk swapper (256 blocks; %d early fault(s) found the first block full)",
        ))
        .qemu_args(["-m", "64M"])
        .timeout(Duration::from_secs(600));
    patterners_pass(t)
}

/// The swapper restarted 100 times by an operator at random moments while
/// 200 patterners page in a 64 MiB machine; every patterner's
/// check still passes. The kills land while the swapper waits, mostly on
/// the disk: inside page-outs and page-ins.
#[allow(dead_code)]
pub fn swap_crash() -> QemuTest {
    let t = QemuTest::new("swap_crash", Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_crash"))
        .disk(swap_disk("swap_crash", 96, 20_480))
        .qemu_args(["-m", "64M"])
        .timeout(Duration::from_secs(600))
        .require(d(
            "supervisor",
            "supervisor: restarted swapper: %d:100 -> %d:101",
        ))
        // Restarts found pages bound in clients and kept them.
        .require(d(
            "swapper",
            "swapper: %n granted frames still bound: resident pages kept",
        ));
    patterners_pass(t)
}

/// Reads of part of the swap area fail (blkdebug EIO): a domain whose page
/// was there is stopped with `PageLost`, nothing wrong is ever mapped (no
/// patterner finds a bad byte), and the neighbour carries on after.
pub fn swap_eio() -> QemuTest {
    let mut disk = swap_disk("swap_eio", 16, 2_048);
    // The area's first data slots: the first domain swapped out lands there.
    for b in 8..40 {
        disk = disk.eio("read_aio", (FIRST_EXTENT_BLOCK + b) * 8);
    }
    QemuTest::new("swap_eio", Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_eio"))
        .disk(disk)
        .timeout(Duration::from_secs(300))
        .allow("* domain * faulted: *")
        .forbid("[ info] domain %d:%d patterner halted with code 2")
        .require_in_order([
            d(
                "swapper",
                "swapper: killing %d:%d at vaddr=%s: swap copy lost (read error)",
            ),
            "[ warn] domain %d:%d patterner faulted: PageLost *".into(),
            super::NEIGHBOUR_TICK.into(),
        ])
}

/// `n` guests that did IPC, then idle for good, swapped out by the
/// swapper's idle rule; the run ends 10 s after the last started, with
/// the supervisor's memory totals and the kernel's stats.
pub fn swap_kernel_bytes(name: &str, n: u32) -> QemuTest {
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_kernel_bytes").count("ipcidler", u64::from(n)))
        .disk(swap_disk(name, 96, 20_480))
        .timeout(Duration::from_secs(300))
        .forbid(d("swapper", "swapper: killing *"))
        .require(d(
            "supervisor",
            &format!("supervisor: memory total: * {n} domain(s) swapped out, *"),
        ))
}

/// `bench swap`'s first-byte scenario: swapbench (an operator) has the
/// supervisor swap one paged httpd out, then times a request to it and a
/// raw read of as many blocks of its own disk.
pub fn swap_web(name: &str) -> QemuTest {
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_web"))
        .disk(DiskImage::fresh(
            name,
            32,
            vec![
                www_site(),
                DiskExtent::Swap("swapper".into(), 4096),
                DiskExtent::Disk("swapbench".into(), 2048),
            ],
        ))
        .net(NetDevice::default())
        .timeout(Duration::from_secs(300))
        .forbid(d("swapper", "swapper: killing *"))
        .require(d(
            "supervisor",
            "supervisor: test end: swapbench halted with code 0",
        ))
}

/// `bench swap`'s load scenario: loadgen, uniform over 50 paged httpd,
/// 2,000 requests one at a time. Their working sets (about 58 pages each,
/// 2,900 in all) exceed the 2,048 pages the swapper keeps resident, so it
/// pages under the load. (50: the vnic holds one notification handle per
/// port and an ordinary domain's handle table holds 60. In 64 MiB the boot
/// itself thrashes and discovery misses some.)
pub fn swap_uniform(name: &str) -> QemuTest {
    let cfg = "targets=50 conns=1 requests=2000 alpha=0 path=/2k.html expect=2048 keepalive=no";
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_uniform"))
        .disk(DiskImage::fresh(name, 104, vec![
            www_site(),
            DiskExtent::Swap("swapper".into(), 16_384),
            DiskExtent::Image("loadgen".into(), format!("{cfg}\n").into_bytes()),
            // The swapper records its faults here: bench swap replays them.
            DiskExtent::Disk("swapper".into(), 1024),
        ]))
        .require(d(
            "swapper",
            "swapper: recording its faults to its disk swapper (1024 blocks; %d early fault(s) found the first block full)",
        ))
        .net(NetDevice::default())
        .timeout(Duration::from_secs(600))
        .forbid(d("swapper", "swapper: killing *"))
        .require(d("loadgen", "loadgen: requests=2000 errors=0 wrong=0 *"))
}

/// A packet wakes a swapped-out domain: two paged httpd go idle and the
/// swapper swaps both out whole (its counters say 2 swap-outs, no
/// swap-in); then host `curl` fetches `/2k.html` from each, byte-exact
/// (the runner's verdict), which swaps them back in.
pub fn swap_wake() -> QemuTest {
    let config = Config::new("swap_wake");
    let guests: Vec<[u8; 4]> = net_guests(&config)
        .unwrap_or_default()
        .into_iter()
        .map(|(_, _, a)| a)
        .collect();
    let out = "swapper: resident %d swapped %d page-ins %d page-outs %d swap-outs 2 swap-ins 0 io-errors 0";
    QemuTest::new("swap_wake", Boot::Pvh, "serac.exit=1")
        .config(config)
        .disk(DiskImage::fresh("swap_wake", 16, vec![
            www_site(),
            DiskExtent::Swap("swapper".into(), 2048),
        ]))
        .net(NetDevice {
            http: Some(HostHttp {
                when: Pattern::new(d("swapper", out)),
                guests,
                check: HttpCheck::Curl {
                    path: "/2k.html".into(),
                    body: include_bytes!("../../../www/2k.html").to_vec(),
                    missing: "/no-such-page.html".into(),
                },
            }),
            ..NetDevice::default()
        })
        .timeout(Duration::from_secs(120))
        .forbid(d("swapper", "swapper: killing *"))
        .require_in_order([
            d("swapper", out),
            d(
                "swapper",
                "swapper: resident %d swapped %d page-ins %n page-outs %d swap-outs %d swap-ins %n io-errors 0",
            ),
        ])
}

/// 600 mini patterners (2 pages of pattern each, two 10 s sleeps; 5
/// pages each with heap and stack, 3,000 in all, more than the swapper's
/// 2,474 frames) in the default machine: more domains swapped out whole at once than the 256
/// records the swapper's tables once held. The swapper says how many are
/// out at once (its records, a scan); every patterner checks every byte
/// after each swap-in and must halt with 0.
/// Not in the suite: it livelocks more often than not (see CAVEATS,
/// "600 idle domains at once"); `cargo xtask test` runs what
/// [`tests`] lists, and this one is kept to reproduce the defect.
#[allow(dead_code)]
pub fn swap_many_records() -> QemuTest {
    let t = QemuTest::new("swap_many_records", Boot::Pvh, "serac.exit=1")
        .config(Config::new("swap_many_records"))
        .disk(swap_disk("swap_many_records", 40, 8192))
        .require(d(
            "swapper",
            "swapper: 500 domains swapped out whole at once",
        ))
        .timeout(Duration::from_secs(400));
    t.forbid("[ info] domain %d:%d minipatterner halted with code 1")
        .forbid("[ info] domain %d:%d minipatterner halted with code 2")
        .forbid("[ info] domain %d:%d minipatterner halted with code 3")
        .forbid("[ warn] domain %d:%d minipatterner faulted*")
        .forbid(d("swapper", "swapper: killing *"))
        .require(d(
            "supervisor",
            "supervisor: test end: minipatterner halted with code 0",
        ))
}

/// The QEMU tests of this file. `swap_crash` is out: its `swapkill` asks
/// the supervisor to restart the swapper, which only the console may now
/// (see CAVEATS); `swap_many_records` is out with it, not re-run since.
pub fn tests() -> Vec<QemuTest> {
    vec![swap_eio(), swap_wake(), swap_overcommit()]
}
