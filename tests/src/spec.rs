//! What a QEMU test is, and the list of them.
//!
//! To add a test, add one entry to [`all`]. A test names how Serac boots
//! ([`Boot`]), the kernel command line, extra boot-archive files, the QEMU
//! exit status it expects, and the serial lines that must and must not
//! appear (see [`crate::pattern`] for the syntax).

use std::path::PathBuf;
use std::time::Duration;

use crate::pattern::Pattern;
use crate::qemu::Firmware;
pub use serac_config::Config;

/// QEMU's exit status when the kernel writes 0x10 to isa-debug-exit.
pub const EXIT_SUCCESS: i32 = 33;
/// QEMU's exit status when the kernel writes 0x11 to isa-debug-exit
/// (failed test, panic, CPU exception).
pub const EXIT_FAILURE: i32 = 35;

/// How the test machine boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// `qemu -kernel kernel.elf -initrd archive`: the PVH entry, fast.
    Pvh,
    /// The GRUB ISO (multiboot2 entry) under the given firmware.
    Iso(Firmware),
}

impl Boot {
    /// How this boot path announces itself in the boot line.
    pub fn via(self) -> &'static str {
        match self {
            Boot::Pvh => "pvh",
            Boot::Iso(_) => "multiboot2",
        }
    }

    /// A default wall-clock limit: firmware and GRUB take seconds under TCG.
    pub fn default_timeout(self) -> Duration {
        Duration::from_secs(match self {
            Boot::Pvh => 15,
            Boot::Iso(Firmware::SeaBios) => 30,
            Boot::Iso(Firmware::Ovmf) => 60,
        })
    }
}

/// Where an extra boot-archive file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A boot configuration (`configs/NAME.toml` and its overrides),
    /// packed when the archive is built.
    Config(Config),
    /// A file, relative to `target/serac/` (where xtask puts build outputs).
    File(PathBuf),
}

/// One extent of a test's disk image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskExtent {
    /// A zeroed swap area for the domain of that name, of so many blocks.
    Swap(String, u64),
    /// A zeroed private disk for the domain of that name, of so many blocks.
    Disk(String, u64),
    /// A read-only image of that name holding these bytes.
    Image(String, Vec<u8>),
    /// A read-only image of that name holding a tar archive of these
    /// (path, content) files, packed as `cargo xtask disk add-image` packs.
    Tar(String, Vec<(String, Vec<u8>)>),
}

/// The disk a test boots with: a Serac disk image file attached as a
/// modern virtio-blk device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskImage {
    /// The file, `target/serac/tests/<file>.img`.
    pub file: String,
    /// Formatted afresh before the boot with these extents (`None`: the
    /// file is used as an earlier boot of the same run left it).
    pub fresh: Option<(u64, Vec<DiskExtent>)>,
    /// Byte offsets whose lowest bit is flipped after it is made (bit rot).
    pub flips: Vec<u64>,
    /// I/O errors QEMU's `blkdebug` injects: (event, sector), e.g.
    /// (`read_aio`, 280) fails every read that covers sector 280 with EIO.
    pub eio: Vec<(String, u64)>,
    /// More `-drive` options (`throttling.iops-total=200`, say).
    pub drive_options: Vec<String>,
    /// After the run, `cargo xtask disk fsck` must find it clean.
    pub fsck_after: bool,
}

impl DiskImage {
    /// A new image of `size_mib` MiB with `extents`, made before the boot.
    pub fn fresh(file: impl Into<String>, size_mib: u64, extents: Vec<DiskExtent>) -> Self {
        DiskImage {
            file: file.into(),
            fresh: Some((size_mib, extents)),
            flips: Vec::new(),
            eio: Vec::new(),
            drive_options: Vec::new(),
            fsck_after: false,
        }
    }

    /// Flips the lowest bit of byte `offset` once the image is made.
    pub fn flip(mut self, offset: u64) -> Self {
        self.flips.push(offset);
        self
    }

    /// Requires the image to pass `fsck` after the run.
    pub fn fsck_after(mut self) -> Self {
        self.fsck_after = true;
        self
    }

    /// Adds a `-drive` option.
    pub fn drive_option(mut self, o: &str) -> Self {
        self.drive_options.push(o.into());
        self
    }

    /// Fails every `event` (`read_aio`, `write_aio`) covering `sector`
    /// with EIO.
    pub fn eio(mut self, event: &str, sector: u64) -> Self {
        self.eio.push((event.into(), sector));
        self
    }

    /// The image file an earlier boot used, as it left it.
    pub fn reuse(file: impl Into<String>) -> Self {
        DiskImage {
            file: file.into(),
            fresh: None,
            flips: Vec::new(),
            eio: Vec::new(),
            drive_options: Vec::new(),
            fsck_after: false,
        }
    }
}

/// One QEMU test.
#[derive(Debug, Clone)]
pub struct QemuTest {
    /// Unique name; also names the log file `target/serac/tests/<name>.log`.
    pub name: String,
    /// How it boots.
    pub boot: Boot,
    /// Kernel command line.
    pub cmdline: String,
    /// Files added to (or replacing same-named files in) the standard boot
    /// archive for this test only.
    pub archive_extra: Vec<(String, Source)>,
    /// The QEMU exit status that means "passed".
    pub exit: i32,
    /// If set, the first non-empty serial line must match this. Only
    /// meaningful under PVH: firmware and GRUB print before the kernel.
    pub first_line: Option<Pattern>,
    /// Each must match at least one serial line.
    pub required: Vec<Pattern>,
    /// None may match any serial line.
    pub forbidden: Vec<Pattern>,
    /// Wall-clock limit; QEMU is killed after it.
    pub timeout: Duration,
    /// Extra QEMU arguments (devices, memory size, ...).
    pub qemu_args: Vec<String>,
    /// Each list must match lines in this order (see [`QemuTest::require_in_order`]).
    pub in_order: Vec<Vec<Pattern>>,
    /// QEMU monitor commands, each sent once when a serial line first
    /// matches its pattern (see [`QemuTest::monitor`]).
    pub monitor: Vec<(Pattern, String)>,
    /// Lines typed on the serial line (COM1's input), each once when a
    /// serial line first matches its pattern (see [`QemuTest::type_line`]).
    pub serial_input: Vec<(Pattern, String)>,
    /// Domains (by name) whose `TEST`/`BENCH` lines count, besides the
    /// kernel's and the supervisor's (see [`crate::judge::trusted_for`]).
    pub verdicts_from: Vec<String>,
    /// The disk attached, if any.
    pub disk: Option<DiskImage>,
    /// A second boot run right after this one (same runner, so it can
    /// reuse this one's disk image); its problems are this test's.
    pub then: Option<Box<QemuTest>>,
    /// The virtio-net device for the vnic's uplink, if any.
    pub net: Option<NetDevice>,
}

/// A test's virtio-net device on QEMU's user network ([`net_args`]),
/// and the host's part in it.
#[derive(Debug, Clone, Default)]
pub struct NetDevice {
    /// A UDP echo to check from the host, if any.
    pub udp_echo: Option<UdpEcho>,
    /// Further hostfwd rules, as QEMU writes them (`tcp:127.0.0.1:P-G:P`;
    /// bind them to 127.0.0.1).
    pub hostfwd: Vec<String>,
    /// HTTP from the host (curl or wrk) to guests' port 80, if any.
    pub http: Option<HostHttp>,
    /// Pushes from the host to the push service, if any.
    pub push: Option<crate::host_push::HostPush>,
}

/// The host runs an HTTP client against guests' port 80, each through a
/// hostfwd rule on a free loopback port the runner picks, once a serial
/// line matches `when`; the client's results are the verdict (see
/// [`crate::host_http`]).
#[derive(Debug, Clone)]
pub struct HostHttp {
    /// When to start.
    pub when: Pattern,
    /// The guests' IPv4 addresses.
    pub guests: Vec<[u8; 4]>,
    /// What to run against each.
    pub check: HttpCheck,
}

/// What the host does against each guest of a [`HostHttp`].
#[derive(Debug, Clone)]
pub enum HttpCheck {
    /// `curl` fetches `path` (retrying until the server is up, within a
    /// bound), whose body must be `body` byte for byte with status 200;
    /// then `missing` must get a 404.
    Curl {
        path: String,
        body: Vec<u8>,
        missing: String,
    },
    /// One `wrk -t1 -c<conns> -d<secs>s` per guest, all at once, after a
    /// `curl` of `path` answered on each: no socket error, no non-2xx
    /// answer, and some requests done by each.
    Wrk { path: String, secs: u32, conns: u32 },
}

/// The web host `cargo xtask run` boots (packed as the standard archive's
/// `manifest`): the pager, the disk server and the vnic, a guest the pager
/// serves, `catfile`, and four web servers (`httpd`, each on its own port
/// of the switch, reached from the host through hostfwd rules), paged by
/// the swapper: an httpd idle for 2 s is swapped out whole and comes back
/// at its next request: `configs/web.toml` (docs/operating.md, "The
/// manifest").
pub const WEB_HOST_CONFIG: &str = "web";

/// Every `net = true` instance of `manifest`, in manifest order: its name
/// (`httpd#2`), its domain slot, and IPv4 address (the address plan by
/// slot, as [`guest_ipv4`]).
pub fn net_guests(config: &Config) -> Result<Vec<(String, u32, [u8; 4])>, String> {
    let bytes = config.pack()?;
    let m = serac_supervisor_core::manifest::Manifest::decode(&bytes)
        .map_err(|e| format!("manifest: {e}"))?;
    let mut v = Vec::new();
    for d in m.domains().iter().filter(|d| d.net) {
        for k in 0..d.count {
            let slot = u32::try_from(d.first_instance)
                .unwrap_or(u32::MAX)
                .saturating_add(k + 1);
            let a = serac_vnic_core::assign::addresses(slot)
                .map_err(|e| format!("no address for {}: {e:?}", d.instance_name(k)))?;
            v.push((d.instance_name(k).to_string(), slot, a.ipv4.0));
        }
    }
    Ok(v)
}

/// The host sends `payload` to a guest's UDP port through a hostfwd rule
/// (on a free loopback port the runner picks) once a serial line matches
/// `when`, again every half second until the echo comes back, and the
/// test fails unless it came back byte for byte.
#[derive(Debug, Clone)]
pub struct UdpEcho {
    /// When to start sending.
    pub when: Pattern,
    /// The guest's address and port.
    pub guest: ([u8; 4], u16),
    /// What to send.
    pub payload: Vec<u8>,
}

/// The network the guests share and QEMU's side of it: QEMU's user network
/// on the vnic's address plan (`serac_vnic_core::assign`: 10.0.0.0/12, its
/// gateway 10.0.0.2, guests from 10.0.1.0), `hostfwd` rules (each
/// `tcp:127.0.0.1:PORT-GUEST:PORT` or `udp:...`, loopback only), the
/// virtio-net device (modern only, which virtio-drivers drives), and with
/// `pcap` a `filter-dump` of everything on the uplink.
pub fn net_args(hostfwd: &[String], pcap: Option<&str>) -> Vec<String> {
    let a = serac_vnic_core::assign::NETWORK.0;
    let g = serac_vnic_core::assign::GATEWAY.0;
    let mut netdev = format!(
        "user,id=n0,net={}.{}.{}.{}/{},host={}.{}.{}.{}",
        a[0],
        a[1],
        a[2],
        a[3],
        serac_vnic_core::assign::PREFIX_LEN,
        g[0],
        g[1],
        g[2],
        g[3]
    );
    for r in hostfwd {
        netdev.push_str(",hostfwd=");
        netdev.push_str(r);
    }
    let mut v = vec![
        "-netdev".to_owned(),
        netdev,
        "-device".to_owned(),
        "virtio-net-pci,netdev=n0,disable-legacy=on".to_owned(),
    ];
    if let Some(file) = pcap {
        v.push("-object".to_owned());
        v.push(format!("filter-dump,id=f0,netdev=n0,file={file}"));
    }
    v
}

/// The IPv4 address of `name` (instance 0) under `manifest`: the
/// supervisor is slot 0 and creates every instance in manifest order in
/// the next slot, and the address plan is by slot index.
pub fn guest_ipv4(config: &Config, name: &str) -> Option<[u8; 4]> {
    let bytes = config.pack().ok()?;
    guest_ipv4_in(&bytes, name)
}

/// [`guest_ipv4`] in a packed manifest.
fn guest_ipv4_in(manifest: &[u8], name: &str) -> Option<[u8; 4]> {
    let m = serac_supervisor_core::manifest::Manifest::decode(manifest).ok()?;
    let d = m.find(name)?;
    let slot = u32::try_from(m.domains().get(d)?.first_instance).ok()? + 1;
    Some(serac_vnic_core::assign::addresses(slot).ok()?.ipv4.0)
}

/// The boot line the kernel prints first, for a boot path.
pub fn boot_line(via: &str) -> Pattern {
    Pattern::new(format!("Serac %s booting via {via}, %d MiB usable"))
}

/// Forbidden in every test unless it opts out with [`QemuTest::allow`].
pub const DEFAULT_FORBIDDEN: &[&str] = &[
    "*TEST * ... FAILED*",
    "PANIC at *",
    "EXCEPTION #*",
    "* domain * faulted: *",
    "[%d:%d %s] panic: *",
];

impl QemuTest {
    /// A test that boots `boot` with the kernel command line `cmdline`,
    /// expects the matching boot line, a success exit, and no failed test,
    /// panic or exception line. Under PVH the boot line must be the first
    /// serial line; under an ISO, the firmware and GRUB print first.
    pub fn new(name: impl Into<String>, boot: Boot, cmdline: impl Into<String>) -> Self {
        QemuTest {
            name: name.into(),
            boot,
            cmdline: cmdline.into(),
            archive_extra: Vec::new(),
            exit: EXIT_SUCCESS,
            first_line: (boot == Boot::Pvh).then(|| boot_line(boot.via())),
            required: vec![boot_line(boot.via())],
            forbidden: DEFAULT_FORBIDDEN.iter().map(|&p| Pattern::new(p)).collect(),
            timeout: boot.default_timeout(),
            qemu_args: Vec::new(),
            in_order: Vec::new(),
            monitor: Vec::new(),
            serial_input: Vec::new(),
            verdicts_from: Vec::new(),
            disk: None,
            then: None,
            net: None,
        }
    }

    /// Attaches a virtio-net device on QEMU's user network.
    pub fn net(mut self, net: NetDevice) -> Self {
        self.net = Some(net);
        self
    }

    /// Expects QEMU to exit with `status`.
    pub fn exit(mut self, status: i32) -> Self {
        self.exit = status;
        self
    }

    /// Requires a line matching `p`.
    pub fn require(mut self, p: impl Into<Pattern>) -> Self {
        self.required.push(p.into());
        self
    }

    /// Requires lines matching `steps`, each after the one before: "the
    /// neighbour ran after the attack" is an ordered requirement.
    pub fn require_in_order<P: Into<Pattern>>(
        mut self,
        steps: impl IntoIterator<Item = P>,
    ) -> Self {
        self.in_order
            .push(steps.into_iter().map(Into::into).collect());
        self
    }

    /// Sends `command` to the QEMU monitor once a serial line matches
    /// `when` (hardware events no domain can cause: `nmi`, `mce ...`).
    pub fn monitor(mut self, when: impl Into<Pattern>, command: impl Into<String>) -> Self {
        self.monitor.push((when.into(), command.into()));
        self
    }

    /// Types `line` and Enter (`\r`, as a terminal sends it) on the serial
    /// line once a serial line matches `when`: the operator console.
    pub fn type_line(mut self, when: impl Into<Pattern>, line: impl Into<String>) -> Self {
        self.serial_input.push((when.into(), line.into()));
        self
    }

    /// Lets the domain named `name` (the test domain) give verdicts.
    pub fn verdicts_from(mut self, name: impl Into<String>) -> Self {
        self.verdicts_from.push(name.into());
        self
    }

    /// Forbids lines matching `p`.
    pub fn forbid(mut self, p: impl Into<Pattern>) -> Self {
        self.forbidden.push(p.into());
        self
    }

    /// Removes `p` from the forbidden patterns (e.g. `PANIC at *` for a test
    /// that expects a panic).
    pub fn allow(mut self, p: &str) -> Self {
        self.forbidden.retain(|f| f.as_str() != p);
        self
    }

    /// Stops requiring a particular first line (e.g. for a test whose
    /// kernel output starts differently).
    pub fn any_first_line(mut self) -> Self {
        self.first_line = None;
        self
    }

    /// Adds a file to this test's boot archive.
    pub fn with_file(mut self, name: impl Into<String>, source: Source) -> Self {
        self.archive_extra.push((name.into(), source));
        self
    }

    /// Boots with the manifest of `config` (a `configs/` file).
    pub fn config(self, config: Config) -> Self {
        self.with_file("manifest", Source::Config(config))
    }

    /// Passes extra arguments to QEMU.
    pub fn qemu_args<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.qemu_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the wall-clock limit.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Attaches `disk` (made before the boot if it is fresh).
    pub fn disk(mut self, disk: DiskImage) -> Self {
        self.disk = Some(disk);
        self
    }

    /// Boots `next` after this test passes its own checks (a reboot onto
    /// the same disk, say). `next` runs only if this one passed.
    pub fn then_boot(mut self, next: QemuTest) -> Self {
        self.then = Some(Box::new(next));
        self
    }
}

/// Blocks of each of the disk benchmark's two private disks (4 MiB).
pub const DISK_BENCH_BLOCKS: u64 = 1024;

/// The disk benchmark's boot, shared by `cargo xtask bench disk` and the
/// QEMU test `disk_bench`: the disk server's `bench-disk` binary (its
/// direct batches on the extent `bench-direct`) and the bench client on
/// its own private disk, both 4 MiB of one disk image, with the counts of
/// `params` in the image `bench-params`. `drive` adds `-drive` options.
pub fn disk_bench(name: &str, params: serac_disk_core::bench::Params, drive: &[&str]) -> QemuTest {
    use serac_disk_core::bench::{CLIENT, DIRECT_EXTENT, PARAMS_IMAGE};
    let mut disk = DiskImage::fresh(
        name,
        16,
        vec![
            DiskExtent::Disk(CLIENT.into(), DISK_BENCH_BLOCKS),
            DiskExtent::Disk(DIRECT_EXTENT.into(), DISK_BENCH_BLOCKS),
            DiskExtent::Image(PARAMS_IMAGE.into(), format!("{params}\n").into_bytes()),
        ],
    );
    for o in drive {
        disk = disk.drive_option(o);
    }
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("disk_bench"))
        .disk(disk)
        .verdicts_from("bench-disk")
        .verdicts_from(CLIENT)
        .require(d("bench-disk", "TEST disk_bench_direct_data ... ok"))
        .require(d(CLIENT, "TEST disk_bench_client_data ... ok"))
        .require(d(
            "supervisor",
            &format!("supervisor: test end: {CLIENT} halted with code 0"),
        ))
        .forbid(d("bench-disk", "disk: device error: *"))
        .forbid(d("bench-disk", "disk: cannot *"))
        .forbid(d("bench-disk", "bench-disk: *no measurements"))
        .forbid(d("bench-disk", "bench-disk: direct * failed: *"))
        .require(d(
            "bench-disk",
            &format!(
                "bench-disk: {}, direct on {DIRECT_EXTENT} ({DISK_BENCH_BLOCKS} blocks)",
                params
            ),
        ))
}

/// [`disk_bench`] with one round of 8 random 4 KiB reads and writes and
/// 2 sequential 64 KiB reads.
fn disk_bench_test() -> QemuTest {
    use serac_disk_core::bench::{Params, Workload, CLIENT};
    let p = Params {
        rounds: 1,
        ops: 8,
        seq: 2,
    };
    let mut t = disk_bench("disk_bench", p, &[]).timeout(Duration::from_secs(60));
    for w in Workload::ALL {
        let (n, ops) = (w.name(), w.ops(&p));
        let pieces = u64::from(ops) * w.blocks_per_op() * 2;
        t = t
            .require(d(CLIENT, &format!("BENCH disk_client_{n}_ns_0 %d")))
            .require(d(CLIENT, &format!("BENCH disk_client_{n}_cpu %d")))
            .require(d(CLIENT, &format!("BENCH disk_client_{n}_ops {ops}")))
            .require(d("bench-disk", &format!("BENCH disk_direct_{n}_ns_0 %d")))
            .require(d("bench-disk", &format!("BENCH disk_direct_{n}_cpu %d")))
            .require(d("bench-disk", &format!("BENCH disk_direct_{n}_ops {ops}")))
            .require(d("bench-disk", &format!("BENCH disk_server_{n}_cpu %d")))
            .require(d(
                "bench-disk",
                &format!("BENCH disk_server_{n}_pieces {pieces}"),
            ));
    }
    t.forbid(d(CLIENT, "BENCH %s 0"))
        .forbid(d("bench-disk", "BENCH %s 0"))
}

/// The image `www` the disk tests put on their disks: what
/// `apps/diskclient` expects (`IMAGE_LINE` repeated to `IMAGE_LEN` bytes).
fn www_image() -> Vec<u8> {
    let line = b"serac disk image www\n";
    (0..6000).map(|i| line[i % line.len()]).collect()
}

/// A line printed by domain `name`: the kernel's prefix, then `body`.
fn d(name: &str, body: &str) -> String {
    format!("[%d:%d {name}] {body}")
}

/// The vnic's line for a port it detached (its owner ended): the counters
/// of `tx`/`rx` frames (patterns), queue depth and drops by cause.
fn detached(tx: &str, rx: &str, queued: &str, drops: &str) -> String {
    d(
        "vnic",
        &format!("vnic: port %d:%d detached: tx {tx} frames %d bytes, rx {rx} frames %d bytes, queued {queued}, drops {drops}"),
    )
}

/// Drops of a well-behaved port that reads (none).
const NO_DROPS: &str = "queue_full 0 no_memory 0 bad_size 0 malformed 0 unsupported 0 spoofed_mac 0 spoofed_ip 0 no_destination 0";

/// Both sides of the exchange of `serac_nettest` completed and the vnic
/// counted exactly its frames: HELLO/WELCOME and 100 rounds sent by each,
/// and received. (The pinger's HELLO is a broadcast, so it also goes out
/// of the uplink, and QEMU's user network answers with an ARP broadcast of
/// its own: each side receives 101 and a few more, never the attacker's
/// twenty broadcasts.)
fn exchange_counted(t: QemuTest) -> QemuTest {
    t.require(d("netping", "netping: 100 rounds with 10.0.%d.%d done (0 resent, 0 vnic restart(s) waited out, * other frame(s))"))
        .require(d("netpong", "netpong: answered 101 datagram(s) (0 vnic restart(s) waited out, * other frame(s))"))
}

/// Two guests exchange UDP through the switch; the vnic's counters show
/// each side's 101 frames sent and received (nothing else on their ports).
fn net_exchange() -> QemuTest {
    exchange_counted(
        QemuTest::new("net_exchange", Boot::Pvh, "serac.exit=1")
            .config(Config::new("net_exchange"))
            .net(NetDevice::default()),
    )
    .require(d(
        "vnic",
        "vnic: virtio-net %x:%x.%d, uplink MAC 52:54:00:12:34:56",
    ))
    .require(d(
        "vnic",
        "vnic: port %d:1 is 02:00:00:00:00:02 10.0.1.2/12",
    ))
    .require(d(
        "vnic",
        "vnic: port %d:1 is 02:00:00:00:00:03 10.0.1.3/12",
    ))
    .require(d(
        "netping",
        "netping: port 02:00:00:00:00:03 10.0.1.3/12 gateway 10.0.0.2",
    ))
    .require(detached("101", "10%d", "0", NO_DROPS))
    .require_in_order([
        d(
            "supervisor",
            "supervisor: netping exited: halted with code 0",
        ),
        detached("101", "10%d", "0", NO_DROPS),
        d(
            "supervisor",
            "supervisor: netpong exited: halted with code 0",
        ),
        detached("101", "10%d", "0", NO_DROPS),
    ])
    .forbid(d("vnic", "vnic: refused *"))
    .timeout(Duration::from_secs(60))
}

/// A guest forges its source MAC and IPv4 address (Ethernet, IPv4, ARP)
/// and sends malformed frames and undecodable requests: the vnic refuses
/// every one, counts each cause exactly on the attacker's port, forwards
/// nothing from it (tx 0; the neighbours' ports receive only the
/// exchange's frames), and the exchange runs after the attack.
fn net_spoof() -> QemuTest {
    let attacker = detached(
        "0",
        "%d",
        "%d",
        "queue_full 0 no_memory 0 bad_size 3 malformed 4 unsupported 2 spoofed_mac 10 spoofed_ip 10 no_destination 0",
    );
    exchange_counted(
        QemuTest::new("net_spoof", Boot::Pvh, "serac.exit=1")
            .config(Config::new("net_spoof"))
            .net(NetDevice::default()),
    )
    .require(d(
        "netspoof",
        "netspoof: 29 bad frames refused, 0 not, 2 bad requests refused",
    ))
    .require_in_order([
        d(
            "supervisor",
            "supervisor: netspoof exited: halted with code 0",
        ),
        attacker.clone(),
        d("netping", "netping: 100 rounds with * done *"),
        detached("101", "10%d", "0", NO_DROPS),
    ])
    .require(detached("101", "10%d", "0", NO_DROPS))
    .timeout(Duration::from_secs(60))
}

/// A guest floods the switch with broadcasts and another never reads:
/// the deaf guest's queue fills and its own drops rise, the flooder's
/// frames are forwarded (it is well formed), and the exchange between two
/// neighbours still completes (resending what the flood pushed out of
/// their queues) while the flood runs and after it.
fn net_flood() -> QemuTest {
    QemuTest::new("net_flood", Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_flood"))
        .net(NetDevice::default())
        .require(d("netflood", "netflood: %n frames forwarded, 0 dropped"))
        .require(d("netping-retry", "netping-retry: %n rounds with 10.0.%d.%d done *"))
        .require(d("netpong", "netpong: answered %n datagram(s) *"))
        // The deaf guest: its queue full (64 frames) at the end, and the
        // overflow counted as its own loss.
        .require(detached("0", "%n", "64", "queue_full %n no_memory 0 bad_size 0 malformed 0 unsupported 0 spoofed_mac 0 spoofed_ip 0 no_destination 0"))
        // The flooder: everything it sent was forwarded.
        .require(detached("%n", "%d", "%d", "queue_full %d no_memory 0 bad_size 0 malformed 0 unsupported 0 spoofed_mac 0 spoofed_ip 0 no_destination 0"))
        .require_in_order([
            d("netflood", "netflood: %n frames forwarded, 0 dropped"),
            d("netping-retry", "netping-retry: round %d"),
            d("netping-retry", "netping-retry: %n rounds with * done *"),
        ])
        .timeout(Duration::from_secs(90))
}

/// The host reaches a guest through the uplink: QEMU's hostfwd carries a
/// UDP datagram from 127.0.0.1 to `netecho`, which answers ARP and echoes
/// it; the runner checks the echo byte for byte.
fn net_uplink() -> QemuTest {
    let config = Config::new("net_uplink");
    let guest = guest_ipv4(&config, "netecho").unwrap_or([0; 4]);
    QemuTest::new("net_uplink", Boot::Pvh, "serac.exit=1")
        .config(config)
        .net(NetDevice {
            udp_echo: Some(UdpEcho {
                when: Pattern::new(d("netecho", "netecho: ready on udp port 5555")),
                guest: (guest, 5555),
                payload: b"serac uplink probe: 0123456789 abcdefghijklmnopqrstuvwxyz".to_vec(),
            }),
            ..NetDevice::default()
        })
        .require(d(
            "netecho",
            "netecho: echoed %n datagram(s), answered * ARP request(s)",
        ))
        // The vnic waits for its own interrupt beside its requests, and
        // took some (netecho sleeps until notified: only the interrupt
        // brings the host's datagram in).
        .require(d(
            "vnic",
            "vnic: serving up to %d ports, %d table bytes each, uplink woken by its interrupt",
        ))
        .require(d("vnic", "vnic: uplink: * %n interrupt(s)"))
        .timeout(Duration::from_secs(60))
}

/// The vnic is restarted from the console (when the operator guest,
/// refused, says so) while two guests exchange: the
/// supervisor restarts it and configures both ports again, and the
/// exchange resumes and completes (the guests wait out `ServerRestarted`
/// and resend what was lost).
fn net_restart() -> QemuTest {
    QemuTest::new("net_restart", Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_restart"))
        .net(NetDevice::default())
        // netop may not restart the vnic (only the console may): the
        // console does, when netop says the time has come.
        .type_line(d("netop", "netop: Restart refused (*); console: restart the vnic now"), "restart vnic")
        .require(d("supervisor", "supervisor: refused Restart of vnic %d:1 from netop %d:%d: only the console may"))
        .require(d("supervisor", "console: restart %d:1: done"))
        .require_in_order([
            d("vnic", "vnic: port %d:1 is 02:00:00:00:00:03 10.0.1.3/12"),
            d("netping-retry", "netping-retry: round %d"),
            d("supervisor", "supervisor: restarting vnic %d:1 on request from the console"),
            d("vnic", "vnic: virtio-net %x:%x.%d, uplink MAC 52:54:00:12:34:56"),
            d("vnic", "vnic: port %d:1 is 02:00:00:00:00:02 10.0.1.2/12"),
            d("vnic", "vnic: port %d:1 is 02:00:00:00:00:03 10.0.1.3/12"),
            d("netping-retry", "netping-retry: round %d"),
            d("netping-retry", "netping-retry: %n rounds with 10.0.1.2 done (%d resent, %n vnic restart(s) waited out, * other frame(s))"),
        ])
        .require(detached("%n", "%n", "0", NO_DROPS))
        .forbid(d("vnic", "vnic: no Device handle*"))
        .forbid(d("vnic", "vnic: cannot bring up the device*"))
        .timeout(Duration::from_secs(90))
}

/// The innocent neighbour's progress line (`apps/neighbour`).
const NEIGHBOUR_TICK: &str = "[%d:%d neighbour] neighbour: tick %d, %d pages intact";

/// The operator console driven through the serial line (see `all`).
fn console() -> QemuTest {
    let sup = |body: &str| d("supervisor", body);
    // The killed victim's slot is the next one created: neighbour#1 is 2:2.
    QemuTest::new("console", Boot::Pvh, "serac.exit=1")
        .config(Config::new("console"))
        .type_line(
            sup("supervisor: console on the serial line; type help"),
            "ps",
        )
        .type_line(sup("2:1 *victim *server *idle *"), "kill victim")
        .type_line(sup("console: kill 2:1: done"), "ps")
        .type_line(sup("2:1 *victim *server *dead *"), "start neighbour")
        .type_line(sup("console: started neighbour#1 as 2:2"), "frobnicate now")
        .type_line(
            sup("console: error: unknown command \"frobnicate\" (try help)"),
            "ps all",
        )
        .type_line(
            "[2:2 neighbour] neighbour: tick 2, %d pages intact",
            "log neighbour#1",
        )
        .type_line(
            sup("log: [2:2 neighbour] neighbour: tick %d, %d pages intact"),
            "help",
        )
        .require_in_order([
            sup("ID *NAME *CLASS *STATE *CPU% *RES *SWAP *NET rx/tx *DISK *UPCALLS *EVENTS *BATCH"),
            sup("1:1 *neighbour *guest *"),
            sup("2:1 *victim *server *idle *"),
            sup("supervisor: killing victim 2:1 on request from the console"),
            sup("supervisor: victim exited: killed"),
            sup("2:1 *victim *server *dead *"),
            sup("console: started neighbour#1 as 2:2"),
            sup("console: error: unknown command \"frobnicate\" (try help)"),
            sup("2:2 *neighbour#1 *guest *"),
            sup("log 2:2: %n line(s) in the last %n bytes of output"),
            sup("log: [2:2 neighbour] neighbour: tick %d, %d pages intact"),
            sup("kill DOMAIN *"),
            sup("supervisor: test end: %d domain(s) running after 30000 ms"),
        ])
        // The started one runs: its own lines, through the kernel's prefix.
        .require("[2:2 neighbour] neighbour: tick 2, %d pages intact")
        .forbid(sup("supervisor: neighbour exited: *"))
        .timeout(Duration::from_secs(90))
}

/// The operator key the push tests sign with (a fixed seed: a test key).
pub const PUSH_TEST_SEED: [u8; 32] = *b"serac push test operator key 01.";
/// A key no operator of the test host holds.
const PUSH_OTHER_SEED: [u8; 32] = *b"serac push test: not an operator";
/// httpd's built-in page (`/about.txt`), and the pushed variant's.
const ABOUT_STOCK: &[u8; 64] = b"serac httpd: stock build, page from the image itself.          \n";
const ABOUT_PUSHED: &[u8; 64] =
    b"serac httpd: PUSHED variant web2, signed by the test operator. \n";

/// `configs/push.toml` with the test's operator key.
fn push_config() -> Config {
    let pk = serac_control_core::public_key(&PUSH_TEST_SEED);
    let hex: String = pk.iter().map(|b| format!("{b:02x}")).collect();
    Config::new("push").operator_key(&hex)
}

/// A push of httpd (`name`, `count` copies) signed with `seed`, spoiled by `damage`.
fn push_step(
    label: &str,
    name: &str,
    count: u32,
    seed: [u8; 32],
    damage: crate::host_push::Damage,
    expect: crate::host_push::Expect,
) -> crate::host_push::PushStep {
    crate::host_push::PushStep {
        label: label.into(),
        elf: "httpd.elf".into(),
        patch: Some((ABOUT_STOCK.to_vec(), ABOUT_PUSHED.to_vec())),
        name: name.into(),
        count,
        seed,
        damage,
        expect,
    }
}

/// Push (issue 11): the host uploads a tampered image, one signed with a
/// wrong key, a truncated one and one asking for more copies than the
/// host allows, each refused with its error and leaving nothing (the
/// supervisor installs none of them); then an httpd variant with another
/// built-in page, 50 copies. The host reaches three of them (the
/// supervisor's lines say which slots they are in) through hostfwd rules
/// it adds on QEMU's monitor, and gets the new page; the console's `ps`
/// counts the host's domains plus the 50. Then the same disk boots again:
/// the push service finds the stored service, checks it again, and its
/// copies answer with the new page.
fn push_tests() -> QemuTest {
    use crate::host_push::{Damage, Expect, HostPush};
    let sup = |body: &str| d("supervisor", body);
    let config = push_config();
    let control = guest_ipv4(&config, "control").unwrap_or([0; 4]);
    let fetch = Some((
        "web2".to_owned(),
        3,
        "/about.txt".to_owned(),
        ABOUT_PUSHED.to_vec(),
    ));
    let first = HostPush {
        when: Pattern::new(d(
            "control",
            "control: push service on %s, 1 operator key(s)",
        )),
        control,
        steps: vec![
            push_step(
                "tampered image",
                "evil1",
                2,
                PUSH_TEST_SEED,
                Damage::FlipImageByte,
                Expect::Error("signature"),
            ),
            push_step(
                "wrong key",
                "evil2",
                2,
                PUSH_OTHER_SEED,
                Damage::None,
                Expect::Error("signature"),
            ),
            push_step(
                "truncated",
                "evil3",
                2,
                PUSH_TEST_SEED,
                Damage::Truncate(5000),
                Expect::Error("truncated"),
            ),
            push_step(
                "too many copies",
                "evil4",
                100_000,
                PUSH_TEST_SEED,
                Damage::None,
                Expect::Error("limits"),
            ),
            push_step(
                "httpd variant",
                "web2",
                50,
                PUSH_TEST_SEED,
                Damage::None,
                Expect::Ok(50),
            ),
        ],
        fetch: fetch.clone(),
    };
    let again = HostPush {
        when: Pattern::new(sup(
            "supervisor: started web2#49 as %d:%d (%d pages) for the push service",
        )),
        control,
        steps: Vec::new(),
        fetch,
    };
    let no_evil = |t: QemuTest| {
        t.forbid(sup("supervisor: installing service evil*"))
            .forbid(sup("supervisor: installed service evil*"))
            .forbid(d("control", "control: stored service evil*"))
            .forbid(sup("supervisor: control exited: *"))
    };
    let host_domains = 6;
    let reboot = QemuTest::new("push.reboot", Boot::Pvh, "serac.exit=1")
        .config(config.clone().test_end_after_ms(150_000))
        .disk(DiskImage::reuse("push").fsck_after())
        .net(NetDevice {
            push: Some(again),
            ..NetDevice::default()
        })
        .type_line(
            sup("supervisor: started web2#49 as %d:%d (%d pages) for the push service"),
            "ps web2#49",
        )
        .require_in_order([
            sup("supervisor: installing service web2 on request from control %d:%d"),
            sup("supervisor: installed service web2 as domain #5: %d bytes of ELF from disk image web2, %d page(s), %d KiB per copy"),
            sup("supervisor: started web2#0 as %d:%d (%d pages) for the push service"),
            sup("supervisor: started web2#49 as %d:%d (%d pages) for the push service"),
            sup("%d:%d *web2#49 *guest *"),
        ])
        .timeout(Duration::from_secs(480));
    no_evil(
        QemuTest::new("push", Boot::Pvh, "serac.exit=1")
            .config(config.test_end_after_ms(150_000))
            .disk(DiskImage::fresh(
                "push",
                64,
                vec![www_site(), DiskExtent::Swap("swapper".into(), 8192)],
            ))
            .net(NetDevice {
                push: Some(first),
                ..NetDevice::default()
            })
            .type_line(
                sup("supervisor: started web2#49 as %d:%d (%d pages) for the push service"),
                "ps",
            )
            .require_in_order([
                sup("supervisor: installing service web2 on request from control %d:%d"),
                sup("supervisor: installed service web2 as domain #5: %d bytes of ELF from disk image web2, %d page(s), %d KiB per copy"),
                sup("supervisor: started web2#0 as %d:%d (%d pages) for the push service"),
                sup("supervisor: started web2#49 as %d:%d (%d pages) for the push service"),
                sup(&format!("ps: {} domain(s); `ps all` or `ps NAME` for rows", host_domains + 50)),
            ])
            .require(d("httpd", "httpd: 2 files, 3334 bytes cached from www"))
            // About 210 s here; room for a slower machine.
            .timeout(Duration::from_secs(480))
            .then_boot(no_evil(reboot)),
    )
}

/// The console on a host of 1,000 idlers: `ps` is a summary, `ps NAME`
/// one row, `top` refreshes until a key, and the timed end still comes.
fn console_many() -> QemuTest {
    let sup = |body: &str| d("supervisor", body);
    QemuTest::new("console_many", Boot::Pvh, "serac.exit=1")
        .config(Config::new("console_many"))
        .type_line(
            sup("supervisor: console on the serial line; type help"),
            "ps",
        )
        .type_line(sup("ps: guest: 1000 domain(s): *"), "ps idler#999")
        .type_line(sup("1001:1 *idler#999 *guest *"), "top idler#7")
        .type_line(sup("(top: every 2 s; press a key to stop)"), "q")
        .type_line(sup("console: top stopped"), "help")
        .require_in_order([
            sup("ps: 1001 domain(s); `ps all` or `ps NAME` for rows"),
            sup("ps: server: 1 domain(s): 1 idle"),
            // Just booted, some idlers may not have run yet (running):
            // the states themselves are `console`'s to check.
            sup("ps: guest: 1000 domain(s): *"),
            sup("1001:1 *idler#999 *guest *"),
            sup("9:1 *idler#7 *guest *"),
            sup("(top: every 2 s; press a key to stop)"),
            sup("console: top stopped"),
            sup("kill DOMAIN *"),
            sup("supervisor: test end: 1001 domain(s) running after 20000 ms"),
        ])
        .timeout(Duration::from_secs(150))
}

/// The swapper's swap area on a test disk: 512 blocks (2 MiB, 507 slots).
fn swapper_area() -> DiskExtent {
    DiskExtent::Swap("swapper".into(), 512)
}

/// The site httpd serves in the tests: the repository's `www/`.
fn www_site() -> DiskExtent {
    DiskExtent::Tar(
        "www".into(),
        vec![
            (
                "index.html".into(),
                include_bytes!("../../www/index.html").to_vec(),
            ),
            (
                "2k.html".into(),
                include_bytes!("../../www/2k.html").to_vec(),
            ),
        ],
    )
}

/// Guest to guest TCP through the switch: 1 MiB from xfer-source to
/// net-judge (Ilwaco's smoltcp on both), checked byte for byte by the
/// judge, the test domain.
fn net_tcp_1mib() -> QemuTest {
    QemuTest::new("net_tcp_1mib", Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_tcp_1mib"))
        .net(NetDevice::default())
        .verdicts_from("net-judge")
        .require(d(
            "net-judge",
            "TEST tcp_1mib ... ok (1048576 bytes byte-exact)",
        ))
        .require(d(
            "xfer-source",
            "xfer-source: 1048576 bytes sent and acknowledged; *",
        ))
        .require(d(
            "supervisor",
            "supervisor: test end: net-judge halted with code 0",
        ))
        .forbid(d("net-judge", "TEST tcp_1mib ... FAILED*"))
        .timeout(Duration::from_secs(120))
}

/// The vnic is restarted (by `netop`, through the supervisor, when
/// xfer-paced notifies it half way through its 1 MiB): the stacks re-attach after
/// `ServerRestarted`, TCP retransmits what the old vnic lost, and the
/// judge still gets every byte right.
fn net_tcp_restart() -> QemuTest {
    QemuTest::new("net_tcp_restart", Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_tcp_restart"))
        .net(NetDevice::default())
        .verdicts_from("net-judge")
        .type_line(d("netop", "netop: Restart refused (*); console: restart the vnic now"), "restart vnic")
        .require_in_order([
            d("net-judge", "net-judge: 262144 bytes checked"),
            d("supervisor", "supervisor: restarting vnic %d:1 on request from the console"),
            d("vnic", "vnic: virtio-net %x:%x.%d, uplink MAC 52:54:00:12:34:56"),
            d("net-judge", "net-judge: 1048576 bytes in %d ms; NetStats { device: DeviceStats { * reattached: %n, *"),
            d("net-judge", "TEST tcp_1mib ... ok (1048576 bytes byte-exact)"),
        ])
        .require(d("xfer-paced", "xfer-paced: 1048576 bytes sent and acknowledged; NetStats { device: DeviceStats { * reattached: %n, *"))
        .timeout(Duration::from_secs(120))
}

/// udp-echo's game protocol: udp-ping's 200 checked round trips of 16
/// bytes through the switch (also `bench net`'s `udp_rtt` boot).
pub fn net_udp_echo(name: &str) -> QemuTest {
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_udp_echo"))
        .net(NetDevice::default())
        .verdicts_from("udp-ping")
        .require(d(
            "udp-ping",
            "udp-ping: 200 round trips of 16 bytes checked",
        ))
        .require(d("udp-ping", "BENCH udp_rtt_ticks %d"))
        .require(d("udp-ping", "TEST udp_echo ... ok"))
        .timeout(Duration::from_secs(60))
}

/// 200 udp-echo guests, paged by the swapper, each get a vnic port (past
/// the old bound of ~59 a server's handle table held) and answer the test
/// domain, udp-census, from their own address of the plan (more do not
/// fit the swapper's 48 MiB pool without swap).
fn many_net_guests() -> QemuTest {
    QemuTest::new("many_net_guests", Boot::Pvh, "serac.exit=1")
        .config(Config::new("many_net_guests"))
        .net(NetDevice::default())
        .verdicts_from("udp-census")
        .require(d(
            "udp-census",
            "udp-census: 200 distinct guests answered a datagram each",
        ))
        .require(d("udp-census", "TEST many_net_guests ... ok"))
        .timeout(Duration::from_secs(400))
}

/// loadgen against two httpd domains, Zipf(0.8), new connection per
/// request: every answer a 200 with the same 2048 bytes, the test domain
/// (loadgen) says so, with its figures.
fn net_http_load() -> QemuTest {
    http_load(
        "net_http_load",
        2,
        "targets=2 conns=4 requests=200 alpha=0.8 path=/2k.html expect=2048 keepalive=no",
    )
}

/// loadgen against `httpd` instances of httpd with the config `cfg`
/// (`targets=` must be `httpd`; also `bench net`'s `http_request` boot).
pub fn http_load(name: &str, httpd_count: u32, cfg: &str) -> QemuTest {
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_http_load").count("httpd", u64::from(httpd_count)))
        .disk(DiskImage::fresh(name, 8, vec![
            www_site(),
            DiskExtent::Image("loadgen".into(), format!("{cfg}\n").into_bytes()),
        ]))
        .net(NetDevice::default())
        .verdicts_from("loadgen")
        .require(d("httpd", "httpd: 2 files, %d bytes cached from www"))
        .require(d("loadgen", &format!("loadgen: requests=%d errors=0 wrong=0 rps=%d p50_us=%d p99_us=%d mean_ticks=%d targets={httpd_count} *")))
        .require(d("loadgen", "BENCH loadgen_rps %d"))
        .require(d("loadgen", "TEST loadgen ... ok"))
        .forbid(d("loadgen", "TEST loadgen ... FAILED*"))
        .forbid("*panic*")
        .timeout(Duration::from_secs(120))
}

/// Malformed HTTP (garbage, junk bytes, an oversized header, a stalled
/// head) is answered 400/413/408, an unknown page 404, pipelined requests
/// in order; httpd then still serves the page (httpprobe, the test domain).
fn net_http_malformed() -> QemuTest {
    QemuTest::new("net_http_malformed", Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_http_malformed"))
        .disk(DiskImage::fresh("net_http_malformed", 8, vec![www_site()]))
        .net(NetDevice::default())
        .verdicts_from("httpprobe")
        .require(d("httpprobe", "httpprobe: garbage: [400], closed true"))
        .require(d(
            "httpprobe",
            "httpprobe: oversized header: [413], closed true",
        ))
        .require(d(
            "httpprobe",
            "httpprobe: stalled head: [408], closed true",
        ))
        .require(d(
            "httpprobe",
            "httpprobe: httpd alive after the probes: 200, 2048 bytes",
        ))
        .require(d("httpprobe", "TEST http_malformed ... ok"))
        .forbid("*panic*")
        .timeout(Duration::from_secs(120))
}

/// The web host of `cargo xtask run` ([`WEB_HOST_CONFIG`], its four
/// httpd on a fresh disk with the repository's `www/`), ended by the
/// supervisor `after_ms` after every domain started. The httpd instances'
/// slots and addresses come with it, in order.
pub fn web_host(name: &str, after_ms: u64) -> (QemuTest, Vec<(u32, [u8; 4])>) {
    let (t, h) = web_host_and(
        name,
        Config::new(WEB_HOST_CONFIG).test_end_after_ms(after_ms),
    );
    let end = format!("supervisor: test end: %d domain(s) running after {after_ms} ms");
    (t.require(d("supervisor", &end)), h)
}

/// [`web_host`] under `config`, the web host's domains and more.
fn web_host_and(name: &str, config: Config) -> (QemuTest, Vec<(u32, [u8; 4])>) {
    let httpd: Vec<(u32, [u8; 4])> = net_guests(&config)
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _, _)| n.starts_with("httpd"))
        .map(|(_, s, a)| (s, a))
        .collect();
    let mut t = QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(config)
        .disk(DiskImage::fresh(name, 8, vec![www_site(), swapper_area()]))
        .net(NetDevice::default())
        .forbid("*panic*");
    // The kernel names every instance `httpd`; the slot tells them apart.
    for (slot, _) in &httpd {
        t = t
            .require(format!(
                "[{slot}:1 httpd] httpd: 2 files, 3334 bytes cached from www"
            ))
            // Still there at the end: none faulted or exited.
            .require(format!("[ info] domain {slot}:1 httpd Idle after *"));
    }
    (t, httpd)
}

/// When the web host's last httpd has been started (the supervisor says so).
fn web_host_up() -> Pattern {
    Pattern::new(d(
        "supervisor",
        "supervisor: started httpd#3 as %d:%d (%d pages)",
    ))
}

/// Host `curl` fetches `/2k.html` from each of the four httpd of the web
/// host through its own hostfwd rule, byte-exact against `www/2k.html`,
/// and a missing page gets 404 (the runner's verdict).
fn net_curl() -> QemuTest {
    let (t, httpd) = web_host("net_curl", 12_000);
    t.net(NetDevice {
        http: Some(HostHttp {
            when: web_host_up(),
            guests: httpd.iter().map(|h| h.1).collect(),
            check: HttpCheck::Curl {
                path: "/2k.html".into(),
                body: include_bytes!("../../www/2k.html").to_vec(),
                missing: "/no-such-page.html".into(),
            },
        }),
        ..NetDevice::default()
    })
    .timeout(Duration::from_secs(60))
}

/// Host `wrk` against the four httpd at once for 10 s, four connections
/// each (16 in all): no socket error, no non-2xx answer, and requests
/// done by every server (the runner's verdict, from wrk's reports).
pub fn net_wrk(name: &str) -> QemuTest {
    let (t, httpd) = web_host(name, 25_000);
    t.net(NetDevice {
        http: Some(HostHttp {
            when: web_host_up(),
            guests: httpd.iter().map(|h| h.1).collect(),
            check: HttpCheck::Wrk {
                path: "/2k.html".into(),
                secs: 10,
                conns: 4,
            },
        }),
        ..NetDevice::default()
    })
    .timeout(Duration::from_secs(90))
}

/// connhold opens 16 idle connections to httpd, one at a time: both print
/// their heap in use at 8 and 16 (`bench net`'s `bytes_per_connection`).
pub fn net_conn_cost(name: &str) -> QemuTest {
    QemuTest::new(name, Boot::Pvh, "serac.exit=1")
        .config(Config::new("net_conn_cost"))
        .disk(DiskImage::fresh(name, 8, vec![www_site()]))
        .net(NetDevice::default())
        .verdicts_from("connhold")
        .require(d("connhold", "BENCH conn_client_heap_8 %n"))
        .require(d("connhold", "BENCH conn_client_heap_16 %n"))
        .require(d("connhold", "BENCH conn_open 16"))
        .require(d(
            "httpd",
            "httpd: 8 connection(s) open, heap in use %n bytes",
        ))
        .require(d(
            "httpd",
            "httpd: 16 connection(s) open, heap in use %n bytes",
        ))
        .require(d(
            "supervisor",
            "supervisor: test end: connhold halted with code 0",
        ))
        .forbid("*panic*")
        .timeout(Duration::from_secs(60))
}

/// The web host with no client and netwatch, an operator that reads
/// every domain's upcall count 2 s after its start and again 6 s later
/// (`BENCH idle_upcalls_<slot> <n>`; also `bench net`'s
/// `idle_httpd_upcalls_per_s` boot). The httpd slots come with it.
pub fn net_idle_watch(name: &str) -> (QemuTest, Vec<u32>) {
    // `configs/net_idle_watch.toml`: the web host and netwatch.
    let (t, httpd) = web_host_and(name, Config::new("net_idle_watch"));
    let slots: Vec<u32> = httpd.iter().map(|h| h.0).collect();
    let mut t = t
        .verdicts_from("netwatch")
        .require(d("netwatch", "BENCH idle_window_ms 6000"))
        .require(d(
            "supervisor",
            "supervisor: test end: netwatch halted with code 0",
        ))
        .timeout(Duration::from_secs(60));
    for s in &slots {
        t = t.require(d("netwatch", &format!("BENCH idle_upcalls_{s} %d")));
    }
    (t, slots)
}

/// netfuzz sends httpd malformed IPv4 and TCP from its own addresses, so
/// the vnic forwards them (its counters for netfuzz's port: everything
/// sent went out, nothing refused); then the host's curl still gets the
/// page byte-exact and a 404, and httpd is still there at the end.
fn net_fuzz() -> QemuTest {
    let config = Config::new("net_fuzz");
    let ip = guest_ipv4(&config, "httpd").unwrap_or([0; 4]);
    let done = d(
        "netfuzz",
        "netfuzz: 332 frame(s) sent, 332 forwarded, 0 refused by the vnic",
    );
    QemuTest::new("net_fuzz", Boot::Pvh, "serac.exit=1")
        .config(config)
        .disk(DiskImage::fresh("net_fuzz", 8, vec![www_site()]))
        .net(NetDevice {
            http: Some(HostHttp {
                when: Pattern::new(done.clone()),
                guests: vec![ip],
                check: HttpCheck::Curl {
                    path: "/2k.html".into(),
                    body: include_bytes!("../../www/2k.html").to_vec(),
                    missing: "/no-such-page.html".into(),
                },
            }),
            ..NetDevice::default()
        })
        .require(done)
        .require(d("netfuzz", "netfuzz: target 10.0.1.3:80"))
        // The vnic forwarded the whole attack: nothing refused at the switch.
        .require(detached("332", "%d", "%d", NO_DROPS))
        .require("[ info] domain 3:1 httpd Idle after *")
        .require(d(
            "supervisor",
            "supervisor: test end: %d domain(s) running after 8000 ms",
        ))
        .forbid("*panic*")
        .timeout(Duration::from_secs(60))
}

/// netsynflood sends httpd 200 SYNs from its own addresses and distinct
/// source ports, and never completes a handshake: every listening socket
/// they reach is left half-open. The vnic's counters for its port say all
/// 200 went out; then the host's curl must still get the page byte-exact
/// before the test ends (12 s after the flood at most), so half-open
/// sockets are freed and the listener re-armed.
fn net_synflood() -> QemuTest {
    let config = Config::new("net_synflood");
    let ip = guest_ipv4(&config, "httpd").unwrap_or([0; 4]);
    let done = d(
        "netsynflood",
        "netsynflood: 200 SYN(s) sent, 200 forwarded, 0 refused by the vnic, %d answer(s) dropped",
    );
    QemuTest::new("net_synflood", Boot::Pvh, "serac.exit=1")
        .config(config)
        .disk(DiskImage::fresh("net_synflood", 8, vec![www_site()]))
        .net(NetDevice {
            http: Some(HostHttp {
                when: Pattern::new(done.clone()),
                guests: vec![ip],
                check: HttpCheck::Curl {
                    path: "/2k.html".into(),
                    body: include_bytes!("../../www/2k.html").to_vec(),
                    missing: "/no-such-page.html".into(),
                },
            }),
            ..NetDevice::default()
        })
        .require(done)
        .require(d("netsynflood", "netsynflood: target 10.0.1.3:80"))
        // The switch forwarded every SYN: the flood reached httpd.
        .require(detached("200", "%d", "%d", NO_DROPS))
        .require("[ info] domain 3:1 httpd Idle after *")
        .require(d(
            "supervisor",
            "supervisor: test end: %d domain(s) running after 15000 ms",
        ))
        .forbid("*panic*")
        .timeout(Duration::from_secs(90))
}

/// An idle httpd takes no upcalls: at most 5 over netwatch's 6 s window
/// after its start-up (none measured; a timer of 1 Hz would exceed it).
fn net_httpd_idle() -> QemuTest {
    let (mut t, slots) = net_idle_watch("net_httpd_idle");
    for s in slots {
        for bad in ["%d%d", "6", "7", "8", "9"] {
            t = t.forbid(d("netwatch", &format!("BENCH idle_upcalls_{s} {bad}")));
        }
    }
    t
}

pub mod swap;
pub mod web;

/// Every QEMU test, in the order `cargo xtask test` runs them.
pub fn all() -> Vec<QemuTest> {
    let mut v = all_but_swap();
    v.extend(swap::tests());
    v.extend(web::tests());
    v
}

/// Every QEMU test but [`swap`]'s.
fn all_but_swap() -> Vec<QemuTest> {
    vec![
        QemuTest::new("boot_pvh", Boot::Pvh, "serac.test=boot").require("TEST boot ... ok"),
        QemuTest::new(
            "boot_iso_seabios",
            Boot::Iso(Firmware::SeaBios),
            "serac.test=boot",
        )
        .require("TEST boot ... ok"),
        QemuTest::new(
            "boot_iso_ovmf",
            Boot::Iso(Firmware::Ovmf),
            "serac.test=boot",
        )
        .require("TEST boot ... ok"),
        QemuTest::new("panic_reported", Boot::Pvh, "serac.test=panic")
            .exit(EXIT_FAILURE)
            .allow("PANIC at *")
            .require("PANIC at %s:%d:%d: *deliberate panic*"),
        QemuTest::new("exception_reported", Boot::Pvh, "serac.test=exception")
            .exit(EXIT_FAILURE)
            .allow("EXCEPTION #*")
            .require("EXCEPTION #14 page fault error=0x%x rip=0x%x cr2=0xdeadbeef000"),
        // Ring 3: the kernel starts the supervisor from the boot archive; it
        // prints, reads the clock page and halts.
        // The kernel starts the supervisor, which reads the manifest,
        // starts the pager and a guest, and ends the run when it halts.
        QemuTest::new("domain_supervisor_runs", Boot::Pvh, "serac.exit=1")
            .config(Config::new("domain_supervisor_runs"))
            .require("[ info] domain: supervisor started as 0:1; the kernel starts no other domain")
            .require(d("supervisor", "supervisor: up"))
            .require(d("supervisor", "supervisor: tsc %d Hz (%d MHz)"))
            .require(d("swapper", "swapper: up, %d frames"))
            .require(d("hello", "hello from domain"))
            // The kernel's own log knows each domain by its manifest name.
            .require("[ info] domain 2:1 hello halted with code 0")
            .require(d("supervisor", "supervisor: test end: hello halted with code 0"))
            .require("KERNEL supervisor ended; %d domain(s) alive"),
        // The same from the GRUB ISO (multiboot2 module path, SeaBIOS).
        QemuTest::new(
            "domain_supervisor_runs_iso",
            Boot::Iso(Firmware::SeaBios),
            "serac.exit=1",
        )
        .config(Config::new("domain_supervisor_runs"))
        .require(d("supervisor", "supervisor: up"))
        .require(d("hello", "hello from domain"))
        .require(d("supervisor", "supervisor: test end: hello halted with code 0"))
        .require("KERNEL supervisor ended; %d domain(s) alive"),
        QemuTest::new("ipc_pingpong", Boot::Pvh, "serac.exit=1")
            .config(Config::new("ipc_pingpong"))
            .require(d("pong", "pong: up"))
            .require(d("ping", "TEST ipc_pingpong ... ok"))
            .verdicts_from("ping")
            .require(d("ping", "ping: 1000 round trips in %d us")),
        QemuTest::new("preempt_spinner", Boot::Pvh, "serac.exit=1")
            .config(Config::new("preempt_spinner"))
            .require(d("ticker", "TEST preempt_spinner ... ok"))
            .verdicts_from("ticker"),
        // A fault stops only the faulting domain: the neighbour writes and
        // checks its memory after the kernel has stopped the faulter.
        QemuTest::new("fault_isolated", Boot::Pvh, "serac.exit=1")
            .config(Config::new("fault_isolated"))
            .allow("* domain * faulted: *")
            .require(d("supervisor", "supervisor: faulter exited: *"))
            .require_in_order([
                d("faulter", "faulter: about to fault"),
                "[ warn] domain 1:1 faulter faulted: PageFault addr=0x700000000000 rip=0x%x error=0x%x".into(),
                NEIGHBOUR_TICK.into(),
            ]),
        // Code is shared read-only by the domains of one image: a write to
        // it faults the writer alone, its neighbours of the same image keep
        // intact code and run on, and the supervisor finds through the
        // kernel's Translate one frame per page in all of them, never
        // writable, and no frame in two images.
        QemuTest::new("share_code", Boot::Pvh, "serac.exit=1")
            .config(Config::new("share_code"))
            .allow("* domain * faulted: *")
            .require_in_order([
                d("cs-writer", "attack-code: writing to my own code at 0x%x"),
                "[ warn] domain %d:1 cs-writer faulted: Protection addr=0x%x *".into(),
                "[1:%d cs] attack-code: tick %d, code intact".into(),
                d("supervisor", "supervisor: code image attack-code: %d shared page(s), one frame each in 2 domain(s)"),
            ])
            .require_in_order([
                "[ warn] domain %d:1 cs-writer faulted: Protection addr=0x%x *".into(),
                "[2:%d cs] attack-code: tick %d, code intact".into(),
                NEIGHBOUR_TICK.into(),
                d("supervisor", "supervisor: code image neighbour: %d shared page(s), one frame each in 1 domain(s)"),
                d("supervisor", "supervisor: code check: %d frame(s) in shared images, none in two, * bytes saved by sharing"),
            ])
            .forbid(d("supervisor", "supervisor: code check failed*"))
            .forbid("*went through*")
            .forbid("*CHANGED*")
            .require(d("supervisor", "supervisor: test end: 3 domain(s) running after 1500 ms")),
        // The map/unmap rules on frames the mapper owns (frames=) and on
        // frames it does not: each refusal with its documented error.
        QemuTest::new("map_frames", Boot::Pvh, "serac.exit=1")
            .config(Config::new("map_frames"))
            .require(d("mapper", "mapper: ok: the same frame at a second address: FrameInUse"))
            .require(d("mapper", "mapper: ok: the grant page's frame (the supervisor's): FrameNotOwned"))
            .require(d("mapper", "TEST map_frames ... ok"))
            .verdicts_from("mapper")
            .require(d("supervisor", "supervisor: test end: mapper halted with code 0")),
        // Frames given with frames= come back to the supervisor when the
        // domain dies and go to its next generation again, zeroed.
        QemuTest::new("frames_after_restart", Boot::Pvh, "serac.exit=1")
            .config(Config::new("frames_after_restart"))
            .allow("* domain * faulted: *")
            .require_in_order([
                d("regrant", "regrant: generation 1 filled its frames; faulting on purpose"),
                "[ warn] domain %d:1 regrant faulted: PageFault addr=0x700000000000 *".into(),
                d("supervisor", "supervisor: restarted regrant: %d:1 -> %d:2 *"),
                d("regrant", "TEST frames_after_restart ... ok"),
            ])
            .verdicts_from("regrant")
            .require(d("supervisor", "supervisor: every domain has ended")),
        QemuTest::new("pager_zero_fill", Boot::Pvh, "serac.exit=1")
            .config(Config::new("pager_zero_fill"))
            .require(d("swapper", "swapper: fault #1 domain *"))
            .require(d("toucher", "TEST pager_zero_fill ... ok"))
            .verdicts_from("toucher"),
        // The pager runs dry on the hog; the neighbour, served by the same
        // pager, still gets fresh pages after the hog is gone.
        QemuTest::new("pager_out_of_frames", Boot::Pvh, "serac.exit=1")
            .config(Config::new("pager_out_of_frames"))
            .allow("* domain * faulted: *")
            .forbid(d("supervisor", "supervisor: neighbour exited: *"))
            .require_in_order([
                d("swapper", "swapper: out of frames, killing *"),
                d("supervisor", "supervisor: test end: hog *"),
                NEIGHBOUR_TICK.into(),
            ])
            .timeout(Duration::from_secs(60)),
        // Issue 9: the swapper swaps idle domains out whole to its swap
        // area (written, unbound, shrunk); the neighbour, paged by the same
        // swapper and busy, keeps every page intact meanwhile.
        QemuTest::new("swap_idle", Boot::Pvh, "serac.exit=1")
            .config(Config::new("swap_idle"))
            .disk(DiskImage::fresh("swap_idle", 8, vec![swapper_area()]))
            .forbid(d("swapper", "swapper: killing *"))
            .forbid(d("supervisor", "supervisor: neighbour exited: *"))
            .require_in_order([
                d("swapper", "swapper: swap area swapper open, 512 blocks"),
                d("swapper", "swapper: resident %d swapped %d page-ins %d page-outs %d swap-outs %d swap-ins 0 io-errors 0"),
                NEIGHBOUR_TICK.into(),
                d("supervisor", "supervisor: test end: * running after 6000 ms"),
            ])
            .timeout(Duration::from_secs(120)),
        // Issue 9: with a swap area the hog is paged out until the area is
        // full too, and only then killed; the neighbour, on the same
        // swapper, keeps every page.
        QemuTest::new("swap_pressure", Boot::Pvh, "serac.exit=1")
            .config(Config::new("swap_pressure"))
            .disk(DiskImage::fresh("swap_pressure", 8, vec![swapper_area()]))
            .allow("* domain * faulted: *")
            .forbid(d("supervisor", "supervisor: neighbour exited: *"))
            .forbid(d("swapper", "swapper: resident * io-errors 1*"))
            .require_in_order([
                d("swapper", "swapper: swap area swapper open, 512 blocks"),
                d("swapper", "swapper: out of frames, killing *"),
                d("supervisor", "supervisor: test end: hog *"),
                NEIGHBOUR_TICK.into(),
            ])
            .timeout(Duration::from_secs(120)),
        QemuTest::new("server_restart", Boot::Pvh, "serac.exit=1")
            .config(Config::new("server_restart"))
            .allow("* domain * faulted: *")
            .require(d("crashy", "crashy: up (generation 1)"))
            .require(d("crashclient", "crashclient: crash call failed with PeerDead"))
            .require(d("crashy", "crashy: up (generation 2)"))
            .require(d("crashclient", "crashclient: call failed with ServerRestarted"))
            .require(d("crashclient", "TEST server_restart_seen ... ok"))
            .verdicts_from("crashclient"),
        QemuTest::new("alarms_on_time", Boot::Pvh, "serac.exit=1")
            .config(Config::new("alarms_on_time"))
            .require(d("alarm", "TEST alarms_on_time ... ok"))
            .verdicts_from("alarm")
            .timeout(Duration::from_secs(60)),
        // Batched virtual interrupts: a self-notification is delivered as an
        // upcall on the way back to the domain; a 1000-notification storm
        // against an idle domain reaches it in (at most) two batches; the
        // switch partner really ran between the switch samples.
        QemuTest::new("upcall_batching", Boot::Pvh, "serac.exit=1")
            .config(Config::new("upcall_batching"))
            .require(d("bench-core", "BENCH upcall %d"))
            .verdicts_from("bench-core")
            .require(d("bench-core", "bench: the yielder yielded %d times during 512 switch samples"))
            .require(d("bench-core", "BENCH switch %d"))
            .require(d("bench-sleeper", "BENCH storm_events 1000"))
            .require(d("bench-sleeper", "BENCH storm_deliveries 2"))
            .verdicts_from("bench-sleeper")
            .require(d("bench-core", "bench: done"))
            .require(d("supervisor", "supervisor: test end: bench-core halted with code 0")),
        // Batching where it can fail: a busy target, runnable behind three
        // spinners of its class, gets a notification every 100 us from a
        // server; its handler must run once per upcall the kernel counts,
        // every notification bit must arrive, and some upcall must carry
        // more than one event.
        QemuTest::new("batching_under_load", Boot::Pvh, "serac.exit=1")
            .config(Config::new("batching_under_load"))
            .require(d("bench-target", "TEST batching_under_load ... ok"))
            .verdicts_from("bench-target")
            .require(d("bench-target", "BENCH batch_events %d"))
            .require(d("bench-target", "BENCH batch_upcalls %d"))
            .require(d("supervisor", "supervisor: test end: bench-target halted with code 0")),
        // A handle moves in a message: it leaves the sender's table and works
        // in the receiver's.
        QemuTest::new("handle_transfer", Boot::Pvh, "serac.exit=1")
            .config(Config::new("handle_transfer"))
            .require(d("relay", "relay: received handle %d:%d"))
            .require(d("xferclient", "TEST handle_transfer ... ok"))
            .verdicts_from("xferclient"),
        // `reply_recv` with RECV_WAKE_ON_EVENT: a notify ends the wait, a
        // waiting message comes first, a deadline still times out, bad
        // flag bits are refused, and a stream of calls answered with the
        // flag (the fast path) all arrive (apps/waketest).
        QemuTest::new("wake_on_event", Boot::Pvh, "serac.exit=1")
            .config(Config::new("wake_on_event"))
            .require(d("waketest", "TEST wake_on_event ... ok"))
            .verdicts_from("waketest")
            .require(d("supervisor", "supervisor: test end: waketest halted with code 0")),
        // Adversarial: four chaos domains, each owning frames and holding
        // endpoints to pong and the supervisor and notifications to chaos#0
        // and the neighbour, make 10,000 syscalls each with hostile arguments
        // (map/unmap anywhere in their own space, upcall entries anywhere,
        // random headers). Two of them enable upcalls and are usually
        // hijacked and killed by their own SetUpcall. The kernel, pong, the
        // supervisor and the neighbour must carry on: the neighbour ticks
        // after the last attacker has ended. The attackers print no verdict.
        QemuTest::new("chaos_syscalls", Boot::Pvh, "serac.exit=1")
            .config(Config::new("chaos_syscalls"))
            // The attackers may fault; nobody else may.
            .allow("* domain * faulted: *")
            .forbid("* domain %d:%d neighbour faulted: *")
            .forbid("* domain %d:%d pong faulted: *")
            .forbid("* domain %d:%d swapper faulted: *")
            .forbid(d("supervisor", "supervisor: neighbour exited: *"))
            .forbid(d("supervisor", "supervisor: pong exited: *"))
            .forbid(d("supervisor", "supervisor: swapper exited: *"))
            .forbid(d("chaos", "chaos: syscall * not a SysError code"))
            // At least one attacker (one that never enables upcalls) made
            // every call; the summary is information, not a verdict.
            .require(d("chaos", "chaos: 10000 syscalls done: *"))
            .require_in_order([
                d("supervisor", "supervisor: test end: chaos *"),
                NEIGHBOUR_TICK.into(),
            ])
            .timeout(Duration::from_secs(60)),
        // Supervisor authority: a guest holding endpoint=supervisor but not
        // an operator lists (it sees only itself), then guesses ids and is
        // refused Stat, Restart and Kill of each, its neighbour's first; the
        // neighbour ticks on after the attack. An operator inspects a third
        // domain and is refused its Restart and Kill (only the console may
        // end domains). The verdict is the supervisor's log.
        QemuTest::new("supervisor_authority", Boot::Pvh, "serac.exit=1")
            .config(Config::new("supervisor_authority"))
            .require(d("supervisor", "supervisor: started neighbour as 1:1 (%d pages)"))
            .require(d("supervisor", "supervisor: started attacker as 3:1 (%d pages)"))
            .require_in_order([
                d("supervisor", "supervisor: limited List from attacker 3:1 to itself: not an operator"),
                d("supervisor", "supervisor: refused Kill of 0:1 from attacker 3:1: not an operator"),
                d("supervisor", "supervisor: refused Stat of neighbour 1:1 from attacker 3:1: not an operator"),
                d("supervisor", "supervisor: refused Restart of neighbour 1:1 from attacker 3:1: not an operator"),
                d("supervisor", "supervisor: refused Kill of neighbour 1:1 from attacker 3:1: not an operator"),
                d("supervisor", "supervisor: further refusals of attacker 3:1 are only counted"),
                d("supervisor", "supervisor: test end: attacker halted with code 0"),
                NEIGHBOUR_TICK.into(),
            ])
            // An operator inspects but may not restart or kill: only the
            // console may.
            .require_in_order([
                d("supervisor", "supervisor: refused Restart of victim 2:1 from operator 4:1: only the console may"),
                d("supervisor", "supervisor: refused Kill of victim 2:1 from operator 4:1: only the console may"),
            ])
            // What each saw, in its own words (checked for function, not
            // as the verdict; the attacker may end before the operator lists).
            .require(d("attacker", "intruder: List shows 3:1"))
            .require(d("attacker", "intruder: 21 request(s) about other domains, 21 refused"))
            .require(d("attacker", "intruder: Stat of itself: Guest Runnable"))
            .require(d("operator", "prober: List shows 1:1 2:1 *4:1"))
            .require(d("operator", "prober: Stat 2:1: Server Runnable, 0 restart(s)"))
            .require(d("operator", "prober: Restart 2:1 failed: Service(NotPermitted)"))
            .require(d("operator", "prober: Kill 2:1 failed: Service(NotPermitted)"))
            .forbid(d("supervisor", "supervisor: neighbour exited: *"))
            .forbid(d("supervisor", "supervisor: victim exited: *"))
            .forbid(d("supervisor", "supervisor: * on request from attacker*"))
            .forbid(d("supervisor", "supervisor: * on request from operator*")),
        // The operator console (issue 11), typed on the serial line: `ps`
        // lists the booted domains with their states; `kill` ends one
        // (`ps` shows it dead); `start` runs another neighbour, which
        // ticks; `log` shows its lines; a garbage line gets a one-line
        // error and `ps` still answers. The verdicts are the supervisor's
        // lines, which no guest can forge.
        console(),
        console_many(),
        push_tests(),
        // Authority: an operator guest holding a supervisor endpoint tries
        // Restart and Kill of the swapper and is refused (only the console
        // may); the swapper serves the neighbour's faults after the attack.
        QemuTest::new("authority_swapper", Boot::Pvh, "serac.exit=1")
            .config(Config::new("authority_swapper"))
            .require(d("operator", "prober: target is 1:1"))
            .require(d("operator", "prober: Kill 1:1 failed: Service(NotPermitted)"))
            .require_in_order([
                d("supervisor", "supervisor: refused Restart of swapper 1:1 from operator 3:1: only the console may"),
                d("supervisor", "supervisor: refused Kill of swapper 1:1 from operator 3:1: only the console may"),
                d("supervisor", "supervisor: test end: operator halted with code 0"),
                NEIGHBOUR_TICK.into(),
            ])
            .forbid(d("supervisor", "supervisor: swapper exited: *"))
            .forbid(d("supervisor", "supervisor: * on request from operator*")),
        // Item 1: RFLAGS from ring 3 (NT, IOPL, AC, ID held, DF around
        // syscalls) never reach ring 0; the spinner's frame returns with iretq.
        QemuTest::new("attack_rflags", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_rflags"))
            .require(d("attack-flags", "attack-flags: 100 yields with NT|IOPL|AC|ID set, %d syscalls with DF; rflags now 0x%x"))
            .require_in_order([
                "[ info] domain %d:%d attack-flags halted with code 0",
                NEIGHBOUR_TICK,
            ]),
        // Item 3: x87, MMX and SSE trap, so their state is no channel.
        QemuTest::new("attack_fpu", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_fpu"))
            .allow("* domain * faulted: *")
            .forbid("*the * unit worked*")
            .require_in_order(["[ warn] domain %d:%d attack-x87 faulted: Other(7) *", NEIGHBOUR_TICK])
            .require_in_order(["[ warn] domain %d:%d attack-mmx faulted: InvalidOpcode *", NEIGHBOUR_TICK])
            .require_in_order(["[ warn] domain %d:%d attack-sse faulted: InvalidOpcode *", NEIGHBOUR_TICK]),
        // Item 4: map/unmap at fresh strides stays within the table budget;
        // the neighbour, whose tables are dropped at every tick, resumes.
        QemuTest::new("attack_page_tables", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_page_tables"))
            .allow("* domain * faulted: *")
            .require(d("attack-tables", "attack-tables: 20000 steps, 0 failed"))
            .require_in_order([
                "[ info] domain %d:%d attack-tables: page tables over budget; dropped, refilled on demand *",
                "[ info] domain %d:%d attack-tables halted with code 0",
                NEIGHBOUR_TICK,
            ])
            .timeout(Duration::from_secs(60)),
        // Item 5: a handle moves only into a receiver that opted in; a
        // domain can close its handles; pong serves on after the pushes.
        QemuTest::new("attack_handles", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_handles"))
            .verdicts_from("attack-handles")
            .require(d("attack-handles", "TEST handle_consent ... ok"))
            .require(d("attack-handles", "TEST handle_close ... ok"))
            .require_in_order([
                "[ info] domain %d:%d attack-handles halted with code 0",
                NEIGHBOUR_TICK,
            ]),
        // Item 6: a reply with a kernel label is refused on both paths.
        QemuTest::new("attack_reply_labels", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_reply_labels"))
            .verdicts_from("label-client")
            .require(d("attack-label", "attack-label: forged reply #20 refused"))
            .require_in_order([
                d("label-client", "TEST reply_labels ... ok: 20 answers, none with a kernel label"),
                NEIGHBOUR_TICK.into(),
            ]),
        // Item 7: the kernel labels every line, bounds each write and each
        // domain's output, and counts what it drops.
        QemuTest::new("attack_console", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_console"))
            .require(d("attack-console", "[0:1 supervisor] TEST forged ... ok"))
            .require(d("attack-console", "[ info] domain: forged kernel line"))
            .require(d("attack-console", "attack-console: a write of 257 bytes: Err(MessageTooLarge)"))
            .require(d("attack-console", "attack-console: flood wrote %d of 102400 bytes"))
            .forbid("[%d:%d supervisor] TEST forged*")
            .forbid("[ info] domain: forged kernel line")
            .forbid("[%d:%d supervisor] supervisor: test end: forged")
            .require_in_order([
                "[ warn] domain %d:%d attack-console: console output over its budget; dropping the rest (%d bytes dropped so far)",
                "[ info] domain %d:%d attack-console halted with code 0",
                NEIGHBOUR_TICK,
            ])
            .require("[ info] domain %d:%d neighbour * 0 console bytes dropped, *"),
        // Item 9: a dying pager's frames stay bound in its client (no page
        // is lost) and go to the supervisor; a new fault waits for the pager
        // and ends the client when the dead pager is reaped, not restarted.
        QemuTest::new("attack_teardown", Boot::Pvh, "serac.exit=1")
            .config(Config::new("attack_teardown"))
            .allow("* domain * faulted: *")
            .forbid(d("pager-victim", "pager-victim: served a new page*"))
            .require_in_order([
                d("pager-victim", "pager-victim: wrote 16 pages"),
                "[ info] domain %d:%d attack-pager: %d of its frames still bound in other domains, %d returned to the supervisor".into(),
                d("pager-victim", "pager-victim: 65536 of 65536 bytes intact after the pager died"),
                "[ warn] domain %d:%d pager-victim faulted: PageFault *".into(),
                NEIGHBOUR_TICK.into(),
            ]),
        // Issue 9: the pager's view of its frames. `revoke-pager` checks
        // what Frames, CopyFrame and Shrink report and do, and that every
        // revoked page faults again (no stale translation); the kernel
        // reports the FAULT_KILL_LOST kill as PageLost; the neighbour
        // ticks after it.
        QemuTest::new("revoke_complete", Boot::Pvh, "serac.exit=1")
            .config(Config::new("revoke_complete"))
            .allow("* domain * faulted: *")
            .forbid(d("revoke-pager", "revoke-pager: FAIL*"))
            .forbid(d("revoke-client", "revoke-client: a fault answered*"))
            .require_in_order([
                d("revoke-pager", "revoke-pager: step 1 ok"),
                d("revoke-pager", "revoke-pager: step 2 ok"),
                d("revoke-pager", "revoke-pager: step 3 ok"),
                d("revoke-pager", "revoke-pager: step 4 ok"),
                d("revoke-pager", "revoke-pager: shrank the idle client"),
                d("revoke-pager", "revoke-pager: step 5 ok"),
                "[ warn] domain %d:%d revoke-client faulted: PageLost *".into(),
                d("revoke-pager", "revoke-pager: all checks passed"),
                NEIGHBOUR_TICK.into(),
            ]),
        // Item 8: an NMI and a recoverable machine check taken while guests
        // run in ring 3 are kernel events; nobody dies of them.
        QemuTest::new("hw_events_not_domain_faults", Boot::Pvh, "serac.exit=1")
            .config(Config::new("hw_events_not_domain_faults"))
            .monitor("[%d:%d neighbour] neighbour: tick 2, *", "nmi")
            .monitor("[%d:%d neighbour] neighbour: tick 4, *", "mce 0 1 0xb000000000000000 0x5 0 0")
            .require_in_order([
                "[ warn] kernel: NMI x%d (%d since boot); a kernel event, no domain's fault: the interrupted context resumed",
                NEIGHBOUR_TICK,
            ])
            .require_in_order([
                "[ warn] kernel: machine check (recoverable) x%d (%d since boot); *",
                NEIGHBOUR_TICK,
            ])
            .require("[ info] domain %d:%d spinner Runnable *")
            .timeout(Duration::from_secs(30)),
        // Devices for driver domains: the supervisor grants the virtio-blk
        // function (found by kind) to one domain; its handle reads the
        // function's config and maps its BAR, and nothing else reaches it.
        QemuTest::new("device_grant", Boot::Pvh, "serac.exit=1")
            .config(Config::new("device_grant"))
            .qemu_args([
                "-blockdev", "driver=null-co,node-name=disk0,size=8388608",
                "-device", "virtio-blk-pci,drive=disk0,disable-legacy=on",
            ])
            .verdicts_from("devprobe")
            .verdicts_from("device-denied")
            .require("[ info] pci:   00:%x.0 1af4:1042 class 01.00.00 *")
            .require(d("supervisor", "supervisor: devprobe holds PCI 00:%x.0 (1af4:1042): a driver domain, trusted with DMA (no IOMMU)"))
            .require(d("devprobe", "TEST device_config ... ok"))
            .require(d("devprobe", "devprobe: common config at BAR %d + 0x%x: features 0x%x, %d queue(s)"))
            .require(d("devprobe", "TEST device_bar ... ok"))
            .require(d("supervisor", "supervisor: devprobe: INTA of 00:%x.0 is GSI %d (Q35 routing, level-triggered), its IRQ(0)"))
            .require(d("devprobe", "TEST device_irq_and_dma ... ok"))
            .require(d("device-denied", "TEST device_denied ... ok")),
        // The same on i440fx: configuration space through ports 0xcf8/0xcfc,
        // INTx routed to the ISA line firmware chose.
        QemuTest::new("device_grant_pc", Boot::Pvh, "serac.exit=1")
            .config(Config::new("device_grant"))
            .qemu_args([
                "-M", "pc",
                "-blockdev", "driver=null-co,node-name=disk0,size=8388608",
                "-device", "virtio-blk-pci,drive=disk0,disable-legacy=on",
            ])
            .verdicts_from("devprobe")
            .verdicts_from("device-denied")
            .require("[ info] pci: %d function(s), configuration space through ports 0xcf8/0xcfc")
            .require(d("supervisor", "supervisor: devprobe: INTA of 00:%x.0 is GSI %d (Piix routing, level-triggered), its IRQ(0)"))
            .require(d("devprobe", "TEST device_config ... ok"))
            .require(d("devprobe", "TEST device_bar ... ok"))
            .require(d("devprobe", "TEST device_irq_and_dma ... ok"))
            .require(d("device-denied", "TEST device_denied ... ok")),
        // Ilwaco's block and file API end to end: a guest mounts the tar
        // image `www` through the disk server and reads a file of it.
        QemuTest::new("catfile", Boot::Pvh, "serac.exit=1")
            .config(Config::new("catfile"))
            .disk(DiskImage::fresh("catfile", 8, vec![DiskExtent::Tar(
                "www".into(),
                vec![(
                    "index.html".into(),
                    b"<!doctype html>\n<title>serac</title>\n<p>served from a disk image</p>\n".to_vec(),
                )],
            )]))
            .verdicts_from("catfile")
            .require(d("catfile", "catfile: index.html: 69 bytes"))
            .require(d("catfile", "catfile: index.html: first line: <!doctype html>"))
            .require(d("catfile", "catfile: missing.html: NotFound"))
            .require(d("catfile", "TEST catfile ... ok"))
            .timeout(Duration::from_secs(60)),
        // Bit rot in an image's content between boots: the disk server
        // checks every image against its recorded CRC-32C at start and
        // refuses the rotten one with Corrupt; the mount fails typed.
        QemuTest::new("disk_image_rot", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_image_rot"))
            .disk(
                DiskImage::fresh("disk_image_rot", 8, vec![DiskExtent::Tar(
                    "www".into(),
                    vec![("index.html".into(), b"<!doctype html>\n<p>rot</p>\n".to_vec())],
                )])
                // The image is the first extent, at block 33; its tar data
                // (after one 512-byte header) starts at byte 512.
                .flip(33 * 4096 + 512 + 3),
            )
            .require(d("disk", "disk: image www does not match its checksum: refused (Corrupt)"))
            .allow("*TEST * ... FAILED*")
            .verdicts_from("catfile")
            .require(d("catfile", "catfile: mount www: *Corrupt*"))
            .require(d("catfile", "TEST catfile ... FAILED: cannot mount www"))
            .forbid(d("catfile", "TEST catfile ... ok"))
            .timeout(Duration::from_secs(60)),
        // The disk server on a real disk file: a client writes and reads
        // its disk and meets every refusal, another domain fails to reach
        // that disk, and a second boot of the same file finds the data.
        QemuTest::new("disk_io", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_io"))
            // attack-disk, a server, runs before diskclient and tries to
            // take its disk: the disk server knows the names from the
            // supervisor, not from who asks first.
            .require_in_order([
                d("disk", "disk: refused Name from %d:%d: not the supervisor"),
                d("attack-disk", "attack-disk: open Disk diskclient: Err(Service(NotPermitted))"),
                d("diskclient", "TEST disk_rw ... ok"),
            ])
            .require(d("attack-disk", "attack-disk: Name as diskclient: Err(Service(NotPermitted))"))
            .disk(DiskImage::fresh("disk_io", 8, vec![
                DiskExtent::Disk("diskclient".into(), 4),
                DiskExtent::Disk("diskthief".into(), 4),
                DiskExtent::Image("www".into(), www_image()),
            ]))
            .verdicts_from("diskclient")
            .verdicts_from("diskthief")
            .require(d("disk", "disk: virtio-blk 00:%x.0, 16384 sectors"))
            .require(d("disk", "disk: table copy %d current, sequence %d, 3 extent(s), %d free blocks"))
            .require(d("disk", "disk: %d:%d opened Disk diskclient (4 blocks)"))
            .require(d("disk", "disk: refused %d:%d to open Disk diskclient: NotPermitted"))
            .require(d("diskclient", "TEST disk_rw ... ok"))
            .require(d("diskclient", "TEST disk_errors ... ok"))
            .require(d("diskthief", "TEST disk_foreign ... ok"))
            .require(d("supervisor", "supervisor: test end: diskclient halted with code 0"))
            .forbid(d("disk", "disk: device error: *"))
            .forbid(d("disk", "disk: cannot *"))
            .timeout(Duration::from_secs(60))
            .then_boot(
                QemuTest::new("disk_io.reboot", Boot::Pvh, "serac.exit=1")
                    .config(Config::new("disk_io_reboot"))
                    .disk(DiskImage::reuse("disk_io"))
                    .verdicts_from("diskclient")
                    .require(d("diskclient", "TEST disk_persist ... ok"))
                    .forbid(d("disk", "disk: cannot *"))
                    .timeout(Duration::from_secs(60)),
            ),
        // Bit rot in both table copies: the server stays up and answers
        // every request with Corrupt.
        QemuTest::new("disk_corrupt", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_corrupt"))
            .disk(
                DiskImage::fresh("disk_corrupt", 8, vec![DiskExtent::Disk("diskclient".into(), 4)])
                    // The sequence number in the header of each copy
                    // (blocks 1 and 17 with the default 16-block copies).
                    .flip(4096 + 24)
                    .flip(17 * 4096 + 24),
            )
            .verdicts_from("diskclient")
            .require(d("disk", "disk: cannot open the disk: Corrupt; every request fails with Corrupt"))
            .require(d("diskclient", "TEST disk_corrupt ... ok"))
            .timeout(Duration::from_secs(60)),
        // The device fails some requests (QEMU's blkdebug injects EIO):
        // the client gets Io for exactly those, never success, and the
        // server carries on. The client's disk is the first extent, at
        // block 33 (after the superblock and two 16-block table copies).
        QemuTest::new("disk_eio", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_eio"))
            .disk(
                DiskImage::fresh("disk_eio", 8, vec![DiskExtent::Disk("diskclient".into(), 4)])
                    .eio("read_aio", 35 * 8)
                    .eio("write_aio", 34 * 8 + 4),
            )
            .verdicts_from("diskclient")
            .require(d("disk", "disk: device error: IoError"))
            .require(d("diskclient", "TEST disk_eio ... ok"))
            .timeout(Duration::from_secs(60)),
        // The disk server restarted under a writer (from the console, in
        // the middle of its stream of writes): the cut-off request fails, the
        // new incarnation reads the table again, the writer opens its disk
        // again and every block holds its last successful write.
        QemuTest::new("disk_restart", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_restart"))
            .disk(DiskImage::fresh("disk_restart", 8, vec![
                DiskExtent::Disk("diskwriter".into(), 4),
            ]).fsck_after())
            .verdicts_from("diskwriter")
            // diskop may not restart it (only the console may): the
            // console does, when diskop says the time has come.
            .type_line(d("diskop", "diskop: Restart refused (*); console: restart the disk server now"), "restart disk")
            .require(d("supervisor", "supervisor: refused Restart of disk %d:1 from diskop %d:%d: only the console may"))
            .require(d("supervisor", "supervisor: restarting disk %d:1 on request from the console"))
            .require(d("diskwriter", "diskwriter: round %d cut off by a restart *"))
            .require_in_order([
                d("disk", "disk: table copy %d current, sequence %d, 1 extent(s), %d free blocks"),
                d("supervisor", "supervisor: restarting disk *"),
                d("disk", "disk: table copy %d current, sequence %d, 1 extent(s), %d free blocks"),
                d("diskwriter", "TEST disk_restart ... ok"),
            ])
            .timeout(Duration::from_secs(60)),
        // Several clients at once: the server keeps more than one request
        // in flight and answers each when the device's interrupt says so.
        QemuTest::new("disk_load", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_load"))
            // A slow device (QEMU's throttling: 500 requests a second), so
            // the clients call while earlier requests are still in flight
            // (a request served from the host's cache can finish before the
            // next client runs).
            .disk(
                DiskImage::fresh("disk_load", 8, vec![DiskExtent::Image("www".into(), www_image())])
                    .drive_option("throttling.iops-total=500"),
            )
            .require(d("disk", "disk: 2 requests in flight at once"))
            // The kernel calls every instance `diskload`; the supervisor
            // tells them apart, and each halts with 0 only after checking.
            .require(d("diskload", "diskload: 120 pieces read and checked"))
            .require(d("supervisor", "supervisor: diskload#0 exited: halted with code 0"))
            .require(d("supervisor", "supervisor: diskload#1 exited: halted with code 0"))
            .require(d("supervisor", "supervisor: diskload#2 exited: halted with code 0"))
            .forbid(d("diskload", "diskload: * failed"))
            .forbid(d("diskload", "diskload: the image read back wrong"))
            .require(d("supervisor", "supervisor: test end: diskload halted with code 0"))
            .forbid(d("disk", "disk: device error: *"))
            .timeout(Duration::from_secs(60)),
        // A flush is a device request like a read: it goes to the device
        // while other clients' reads are in flight there (the old blocking
        // flush waited for the queue to drain and then spun), and every
        // flush succeeds with the data read back. Reads and writes are
        // throttled as in `disk_load` (flushes are not), so a reader's
        // request is nearly always in flight when a flush comes.
        QemuTest::new("disk_flush", Boot::Pvh, "serac.exit=1")
            .config(Config::new("disk_flush"))
            .disk(
                DiskImage::fresh("disk_flush", 8, vec![
                    DiskExtent::Disk("diskflush".into(), 4),
                    DiskExtent::Image("www".into(), www_image()),
                ])
                .drive_option("throttling.iops-total=500"),
            )
            .require(d("disk", "disk: a flush went to the device with %d other request(s) in flight"))
            .require(d("diskflush", "diskflush: 50 writes flushed and read back"))
            .require(d("supervisor", "supervisor: test end: diskflush halted with code 0"))
            .forbid(d("diskload", "diskload: * failed"))
            .forbid(d("diskload", "diskload: the image read back wrong"))
            .forbid(d("disk", "disk: device error: *"))
            .timeout(Duration::from_secs(60)),
        // The disk benchmark once with small counts, so it keeps working:
        // every figure is printed, nonzero, and the requests counted are
        // the batches' (a 4 KiB request is two pieces at the server).
        disk_bench_test(),
        net_exchange(),
        net_spoof(),
        net_flood(),
        net_uplink(),
        net_restart(),
        net_tcp_1mib(),
        net_tcp_restart(),
        net_udp_echo("net_udp_echo"),
        many_net_guests(),
        net_http_load(),
        net_http_malformed(),
        net_curl(),
        net_wrk("net_wrk"),
        net_httpd_idle(),
        net_conn_cost("net_conn_cost"),
        net_fuzz(),
        net_synflood(),
        // A device interrupt line bound to a driver domain arrives as its
        // IRQ pending bit and stays masked until irq_ack.
        QemuTest::new("irq_delivery", Boot::Pvh, "serac.exit=1 serac.init=irqtest")
            .require(d("irqtest", "irqtest: interrupt 2 after %d ms"))
            .require(d("irqtest", "TEST irq_delivery ... ok"))
            .verdicts_from("irqtest"),
        // A thousand idlers each report in once to a collector, which
        // counts the notifications the kernel raised for it: the count is
        // the domains that ran, not the supervisor's bookkeeping.
        QemuTest::new("domains_1000_idle", Boot::Pvh, "serac.exit=1")
            .config(Config::new("domains_1000_idle"))
            .require(d("collector", "collector: 1000 domain(s) reported in"))
            .require(d("supervisor", "supervisor: test end: 1002 domain(s) running after 1500 ms"))
            .timeout(Duration::from_secs(120)),
        // 30,000 instances (the manifest held 2,048): the supervisor's
        // bookkeeping outgrows Ilwaco's static heap and grows it from the
        // frame pool; it builds idlers until its pool runs out. (The
        // swapper's frames may run out first for the idlers that get to
        // run, and it kills those: that is allowed here.)
        QemuTest::new("supervisor_30000_instances", Boot::Pvh, "serac.exit=1")
            .config(Config::new("supervisor_30000_instances"))
            .allow("* domain * faulted: *")
            .require(d("supervisor", "supervisor: bookkeeping for 30002 instance(s): 32 bytes each and 4 per image page, %d KiB of heap in use"))
            .require(d("supervisor", "supervisor: heap grown by %d KiB from the pool (past Ilwaco's 1024 KiB)"))
            .require(d("supervisor", "supervisor: until-full: built %d of 30000 x idler; the next failed: *"))
            .require(d("supervisor", "supervisor: test end: %d domain(s) running after 1500 ms"))
            .timeout(Duration::from_secs(240)),
        // Ring 3 against the syscall checks, then a deliberate fault that
        // must stop only that domain, with the details reported.
        QemuTest::new("domain_selftest", Boot::Pvh, "serac.exit=1 serac.init=selftest")
            .allow("* domain * faulted: *")
            .require(d("selftest", "TEST user_bad_syscall ... ok"))
            .verdicts_from("selftest")
            .require(d("selftest", "TEST user_bad_pointer ... ok"))
            .require(d("selftest", "selftest: a good pointer still works"))
            .require(d("selftest", "TEST user_bound_buffer ... ok"))
            // What the kernel copied from the bound buffers, byte for byte.
            .require(d("selftest", "selftest: this line straddles two bound pages"))
            .require(d("selftest", &format!("selftest: 256 bytes at a page end {}", ".".repeat(221))))
            .require(d("selftest", "selftest: tail."))
            .require(d("selftest", "selftest: written from the IPC buffer"))
            .require(d("selftest", "TEST user_alarm ... ok"))
            .require(d("selftest", "TEST user_recv_timeout ... ok"))
            .require(d("selftest", "TEST user_domain_names ... ok"))
            .require("[ info] domain 1:1 probe-1.x_Z killed")
            .require("[ warn] domain 0:1 selftest faulted: PageFault addr=0x700000000000 rip=0x%x error=0x%x")
            .require("KERNEL supervisor ended; 0 domain(s) alive"),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_file_safe() {
        let tests = all();
        let names: HashSet<_> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), tests.len());
        for n in names {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }

    #[test]
    fn every_test_manifest_packs() {
        fn check(t: &QemuTest) {
            for (name, src) in &t.archive_extra {
                if let Source::Config(c) = src {
                    assert_eq!(name, "manifest");
                    c.pack().unwrap_or_else(|e| panic!("{}: {e}", t.name));
                }
            }
            if let Some(next) = &t.then {
                check(next);
            }
        }
        let mut all = all();
        all.push(swap::swap_web("swap_web"));
        all.push(swap::swap_uniform("swap_uniform"));
        all.push(swap::swap_kernel_bytes("swap_kernel_bytes", 3));
        all.push(swap::swap_many_records());
        for t in &all {
            check(t);
        }
    }

    #[test]
    fn guest_addresses_follow_the_slots() {
        let m = serac_config::pack(
            "t.toml",
            "[[domain]]\nname = \"v\"\nimage = \"v\"\nclass = \"server\"\neager = true\ndevice = \"virtio-net\"\n\
             [[domain]]\nname = \"a\"\nimage = \"a\"\nclass = \"guest\"\neager = true\nendpoint = [\"v\"]\nnet = true\ncount = 3\n\
             [[domain]]\nname = \"b\"\nimage = \"b\"\nclass = \"guest\"\neager = true\nendpoint = [\"v\"]\nnet = true\n",
            &[],
        )
        .unwrap();
        // The supervisor is slot 0, v slot 1, a#0..a#2 slots 2..4, b slot 5.
        assert_eq!(guest_ipv4_in(&m, "a"), Some([10, 0, 1, 2]));
        assert_eq!(guest_ipv4_in(&m, "b"), Some([10, 0, 1, 5]));
        assert_eq!(guest_ipv4_in(&m, "nobody"), None);
        assert_eq!(guest_ipv4_in(b"not a manifest", "a"), None);
        let web = guest_ipv4(&Config::new(WEB_HOST_CONFIG), "httpd");
        assert_eq!(web, Some([10, 0, 1, 6]));
    }

    #[test]
    fn net_args_bind_loopback_and_dump_on_request() {
        let v = net_args(&["udp:127.0.0.1:5000-10.0.1.2:5555".into()], Some("x.pcap"));
        assert_eq!(v[0], "-netdev");
        assert_eq!(
            v[1],
            "user,id=n0,net=10.0.0.0/12,host=10.0.0.2,hostfwd=udp:127.0.0.1:5000-10.0.1.2:5555"
        );
        assert_eq!(v[3], "virtio-net-pci,netdev=n0,disable-legacy=on");
        assert_eq!(v[5], "filter-dump,id=f0,netdev=n0,file=x.pcap");
        assert_eq!(net_args(&[], None).len(), 4);
    }

    #[test]
    fn allow_removes_default() {
        let t = QemuTest::new("x", Boot::Pvh, "").allow("PANIC at *");
        assert!(!t.forbidden.iter().any(|p| p.as_str() == "PANIC at *"));
        assert_eq!(t.forbidden.len(), DEFAULT_FORBIDDEN.len() - 1);
    }
}
