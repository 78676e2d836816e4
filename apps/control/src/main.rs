//! control: the push service (docs/operating.md, "Pushing a service").
//!
//! Handles (manifest order): 1 = the supervisor (`push = true` gives it
//! the authority to install and start), 2 = the vnic, 3 = the disk server.
//!
//! At start it asks the supervisor for the operator keys, then restores
//! every service stored on the disk by an earlier push: each read-only
//! image holding a push bundle is checked again (signature, limits, ELF)
//! and installed, and its copies started. Then it listens on
//! `serac_protocol::push::PORT`, one upload at a time: it reads the whole
//! bundle (bounded by the prefix's lengths and by timeouts), checks it
//! (`serac_control_core::check`), asks the supervisor whether it would
//! install it, stores it on the disk as a read-only image (staged and
//! committed at once: a crash or an error leaves no part of it), installs
//! it and starts its copies, answering line by line. A refused upload
//! changes nothing: the checks all come before the disk write.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use ilwaco::block::{self, Block, BlockDevice};
use ilwaco::ipc::Endpoint;
use ilwaco::net::{self, Config, Net, NetDuration, TcpStream};
use ilwaco::protocol::client::{ClientError, ServiceError};
use ilwaco::protocol::push::{Prefix, PORT, PREFIX_LEN};
use ilwaco::protocol::supervisor::{Client, ServiceName, ServiceSpec, START_BATCH};
use ilwaco::protocol::DomainId;
use ilwaco::{println, sys};
use serac_control_core::{check, Checked};

ilwaco::entry!(main);

const SUPERVISOR: u32 = 1;
const VNIC: u32 = 2;
const DISK: u32 = 3;
/// Longest wait for the next bytes of an upload.
const READ_TIMEOUT: NetDuration = NetDuration::from_secs(10);
/// After the announced bytes: how long more bytes make it oversized.
const TAIL_WAIT: NetDuration = NetDuration::from_millis(300);
const BLOCK: usize = 4096;

const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

fn supervisor() -> Client<Endpoint> {
    Client::new(Endpoint(ilwaco::rt::granted(SUPERVISOR)))
}

/// The copy's address on the virtual network (the vnic's plan by slot).
fn address(id: DomainId) -> String {
    match serac_vnic_core::assign::addresses(id.index) {
        Ok(a) => {
            let [x, y, z, w] = a.ipv4.0;
            format!("{x}.{y}.{z}.{w}")
        }
        Err(_) => String::from("-"),
    }
}

/// A failure, as the `error KIND: what` line says it.
struct Failed(&'static str, String);

fn spec(c: &Checked<'_>) -> Result<ServiceSpec, Failed> {
    let name = ServiceName::new(c.fragment.name)
        .ok_or_else(|| Failed("malformed", String::from("name too long")))?;
    Ok(ServiceSpec {
        name,
        image: name,
        elf_offset: u32::try_from(c.prefix.image_offset()).unwrap_or(u32::MAX),
        elf_len: c.prefix.image_len,
        memory_kib: c.fragment.memory_kib,
        net: c.fragment.net,
        disk: c.fragment.disk,
    })
}

/// Installs `c` (already on the disk) and starts its copies: the lines
/// to answer with.
fn install_and_start(c: &Checked<'_>, lines: &mut Vec<String>) -> Result<usize, Failed> {
    let s = spec(c)?;
    supervisor()
        .install(s, false)
        .map_err(|e| Failed("refused", format!("supervisor: install: {e:?}")))?;
    let want = c.fragment.count;
    let mut started = 0u32;
    while started < want {
        let n = (want - started).min(START_BATCH as u32);
        match supervisor().start_service(c.fragment.name, n) {
            Ok(got) => {
                for &id in got.ids() {
                    let addr = if c.fragment.net {
                        address(id)
                    } else {
                        String::from("-")
                    };
                    lines.push(format!("copy {}:{} {addr}", id.index, id.gen));
                }
                started += u32::from(got.count);
                if u32::from(got.count) < n {
                    return Err(Failed(
                        "limits",
                        format!(
                            "{started} of {want} copies started; the host has no room for more"
                        ),
                    ));
                }
            }
            Err(e) => {
                return Err(Failed(
                    "limits",
                    format!("{started} of {want} copies started; then: {e:?}"),
                ))
            }
        }
    }
    Ok(started as usize)
}

/// Writes `bundle` to the disk as read-only image `name`: staged, written,
/// committed (the server checks its CRC), so it exists whole or not at all.
fn store(name: &str, bundle: &[u8]) -> Result<(), Failed> {
    let disk = ilwaco::rt::granted(DISK);
    let crc = CASTAGNOLI.checksum(bundle);
    let mut dev = BlockDevice::create_image(disk, name, bundle.len() as u64, crc)
        .map_err(|e| Failed("disk", format!("stage image {name}: {e:?}")))?;
    let mut buf: Block = [0; BLOCK];
    for (i, chunk) in bundle.chunks(BLOCK).enumerate() {
        buf.fill(0);
        if let Some(dst) = buf.get_mut(..chunk.len()) {
            dst.copy_from_slice(chunk);
        }
        dev.write_block(i as u64, &buf)
            .map_err(|e| Failed("disk", format!("write block {i}: {e:?}")))?;
    }
    dev.commit()
        .map_err(|e| Failed("disk", format!("commit image {name}: {e:?}")))
}

/// Reads image `name` (`len` bytes of content) whole.
fn read_image(name: &str, len: u64) -> Result<Vec<u8>, String> {
    let mut dev =
        BlockDevice::image(ilwaco::rt::granted(DISK), name).map_err(|e| format!("open: {e:?}"))?;
    let len = usize::try_from(len).map_err(|_| String::from("too long"))?;
    let mut out = Vec::new();
    out.try_reserve_exact(len)
        .map_err(|_| String::from("no memory"))?;
    let mut buf: Block = [0; BLOCK];
    let mut n = 0u64;
    while out.len() < len {
        dev.read_block(n, &mut buf)
            .map_err(|e| format!("read block {n}: {e:?}"))?;
        let take = (len - out.len()).min(BLOCK);
        out.extend_from_slice(buf.get(..take).unwrap_or(&[]));
        n += 1;
    }
    let _ = dev.close();
    Ok(out)
}

/// Every stored bundle, checked again and started.
fn restore(keys: &[[u8; 32]]) {
    let images = match block::list_images(ilwaco::rt::granted(DISK)) {
        Ok(v) => v,
        Err(e) => {
            println!("control: cannot list the disk's images: {e:?}; nothing restored");
            return;
        }
    };
    let mut restored = 0;
    for (_, name, len) in images {
        if len < PREFIX_LEN as u64 || len > 2 * 1024 * 1024 {
            continue;
        }
        let bytes = match read_image(&name, len) {
            Ok(b) => b,
            Err(e) => {
                println!("control: image {name}: {e}; not restored");
                continue;
            }
        };
        if Prefix::parse(&bytes).is_err() {
            continue; // Not a push bundle (www, say).
        }
        let c = match check(&bytes, keys) {
            Ok(c) if c.fragment.name == name => c,
            Ok(c) => {
                println!(
                    "control: image {name} holds service {}; not restored",
                    c.fragment.name
                );
                continue;
            }
            Err(r) => {
                println!("control: stored service {name} refused: {r}; not restored");
                continue;
            }
        };
        let mut lines = Vec::new();
        match install_and_start(&c, &mut lines) {
            Ok(n) => {
                restored += 1;
                println!("control: restored {name} from the disk: {n} copies");
            }
            Err(Failed(k, why)) => println!("control: restore {name}: {k}: {why}"),
        }
    }
    println!("control: {restored} stored service(s) restored");
}

/// Reads one upload whole: `Err` is the answer's error line.
async fn receive(net: &Net, s: &mut TcpStream) -> Result<Vec<u8>, Failed> {
    let mut head = [0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        let room = head.get_mut(got..).unwrap_or(&mut []);
        match net.timeout(net.now() + READ_TIMEOUT, s.read(room)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                return Err(Failed(
                    "truncated",
                    format!("upload ended after {got} of the {PREFIX_LEN}-byte prefix"),
                ))
            }
            Ok(Ok(n)) => got += n,
        }
    }
    let prefix = Prefix::parse(&head).map_err(|e| Failed("malformed", format!("{e}")))?;
    let total = prefix.total();
    let mut buf = Vec::new();
    buf.try_reserve_exact(total)
        .map_err(|_| Failed("limits", format!("no memory for {total} bytes")))?;
    buf.extend_from_slice(&head);
    let mut chunk = [0u8; 2048];
    while buf.len() < total {
        let want = (total - buf.len()).min(chunk.len());
        let room = chunk.get_mut(..want).unwrap_or(&mut []);
        match net.timeout(net.now() + READ_TIMEOUT, s.read(room)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                return Err(Failed(
                    "truncated",
                    format!("upload ended after {} of {total} bytes", buf.len()),
                ))
            }
            Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
        }
    }
    // Anything past the announced length is refused, not ignored.
    let mut one = [0u8; 1];
    if let Ok(Ok(n)) = net.timeout(net.now() + TAIL_WAIT, s.read(&mut one)).await {
        if n > 0 {
            return Err(Failed(
                "oversized",
                format!("more than the {total} bytes the prefix announces"),
            ));
        }
    }
    Ok(buf)
}

/// Serves one upload; returns the answer's lines.
async fn serve(net: &Net, s: &mut TcpStream, keys: &[[u8; 32]]) -> Result<Vec<String>, Failed> {
    let bundle = receive(net, s).await?;
    let c = check(&bundle, keys).map_err(|r| Failed(r.kind(), format!("{r}")))?;
    let name = c.fragment.name;
    let _ = s
        .write_all(
            format!(
                "progress verified {name}: {} bytes signed by an operator key, {} copies of {} KiB\n",
                bundle.len(),
                c.fragment.count,
                c.fragment.memory_kib
            )
            .as_bytes(),
        )
        .await;
    supervisor().install(spec(&c)?, true).map_err(|e| match e {
        ClientError::Service(ServiceError::Exists) => Failed(
            "exists",
            format!("this host runs a service named {name} already (push under another name)"),
        ),
        e => Failed("refused", format!("supervisor: {e:?}")),
    })?;
    // The copies' total memory against what the host may give.
    store(name, &bundle)?;
    println!(
        "control: stored service {name} ({} bytes) on the disk",
        bundle.len()
    );
    let _ = s
        .write_all(format!("progress stored {name} on the disk\n").as_bytes())
        .await;
    let mut lines = Vec::new();
    let n = install_and_start(&c, &mut lines)?;
    println!("control: pushed service {name}: {n} copies started");
    lines.insert(0, format!("ok {name} {n}"));
    lines.push(String::from("end"));
    Ok(lines)
}

fn main() -> i32 {
    // The grant's frames make room for a whole bundle in the heap.
    if let Some(g) = ilwaco::rt::frame_grant() {
        for &f in g.frames() {
            if sys::grow_heap(f).is_err() {
                break;
            }
        }
    }
    let keys: Vec<[u8; 32]> = match supervisor().operator_keys() {
        Ok(k) => k.keys().to_vec(),
        Err(e) => {
            println!("control: the supervisor gives no operator keys: {e:?}");
            return 1;
        }
    };
    if keys.is_empty() {
        println!("control: no operator keys (operator-keys); every push will be refused");
    }
    restore(&keys);
    let net = match net::attach(ilwaco::rt::granted(VNIC), Config::default()) {
        Ok(n) => n,
        Err(e) => {
            println!("control: no network: {e:?}");
            return 1;
        }
    };
    let listener = match net.listen(PORT, 1) {
        Ok(l) => l,
        Err(e) => {
            println!("control: listen: {e:?}");
            return 1;
        }
    };
    let [a, b, c, d] = net.addresses().ipv4.0;
    println!(
        "control: push service on {a}.{b}.{c}.{d}:{PORT}, {} operator key(s)",
        keys.len()
    );
    let n2 = net.clone();
    net::run(&net, async move {
        loop {
            let mut s = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    println!("control: accept: {e:?}");
                    return 1;
                }
            };
            let lines = match serve(&n2, &mut s, &keys).await {
                Ok(lines) => lines,
                Err(Failed(kind, why)) => {
                    println!("control: push refused: {kind}: {why}");
                    alloc::vec![format!("error {kind}: {why}")]
                }
            };
            for l in lines {
                if s.write_all(l.as_bytes()).await.is_err() || s.write_all(b"\n").await.is_err() {
                    break;
                }
            }
            s.shutdown();
            let _ = n2
                .timeout(n2.now() + TAIL_WAIT, s.read(&mut [0u8; 16]))
                .await;
            s.close();
        }
    })
}
