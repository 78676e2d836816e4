//! `cargo xtask push`: signs a service and uploads it to a running
//! Serac host's push service (docs/operating.md, "Pushing a service").

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serac_tests::host_push::{self, Answer};

use crate::util::{out_dir, Failure, Result};

pub const HELP: &str = "\
cargo xtask push: sign a service and push it to a running Serac host.

Usage: cargo xtask push IMAGE [OPTIONS]

IMAGE is an ELF file, or the name of a built program (`httpd` for
target/serac/httpd.elf).

Options:
  --count N       Copies to start (default 1, at most 1000)
  --key FILE      The operator key: a file holding a 32-byte ed25519 seed as
                  64 hex digits (default target/serac/operator.key, which
                  `cargo xtask run` makes and whose public key it gives the
                  host at boot)
  --name NAME     The service's name (default: IMAGE's file name)
  --memory KIB    Memory per copy (default: what the image needs, plus 64 KiB)
  --no-net        No network port for the copies
  --no-disk       No endpoint to the disk server
  --to HOST:PORT  The push service (default 127.0.0.1:7070, which `cargo
                  xtask run` forwards)

When `cargo xtask run` is up, each copy's port 80 is forwarded from a
free port of 127.0.0.1 (through QEMU's monitor), and the URLs printed.
";

/// `push`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opts {
    image: String,
    count: u32,
    key: Option<PathBuf>,
    name: Option<String>,
    memory: Option<u32>,
    net: bool,
    disk: bool,
    to: String,
}

fn num<T: std::str::FromStr>(opt: &str, v: Option<&String>) -> std::result::Result<T, String> {
    v.ok_or(format!("{opt} needs a value"))?
        .parse()
        .map_err(|_| format!("{opt}: expected a number"))
}

/// Parses `push`'s arguments.
pub fn parse(rest: &[String]) -> std::result::Result<Opts, String> {
    let mut o = Opts {
        image: String::new(),
        count: 1,
        key: None,
        name: None,
        memory: None,
        net: true,
        disk: true,
        to: format!("127.0.0.1:{}", serac_protocol::push::PORT),
    };
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--count" => o.count = num("--count", it.next())?,
            "--memory" => o.memory = Some(num("--memory", it.next())?),
            "--key" => o.key = Some(it.next().ok_or("--key needs a file")?.into()),
            "--name" => o.name = Some(it.next().ok_or("--name needs a name")?.clone()),
            "--to" => o.to = it.next().ok_or("--to needs HOST:PORT")?.clone(),
            "--no-net" => o.net = false,
            "--no-disk" => o.disk = false,
            s if s.starts_with('-') => return Err(format!("`push`: unknown option `{s}`")),
            s if o.image.is_empty() => o.image = s.to_owned(),
            s => return Err(format!("`push`: one IMAGE only (got `{s}` too)")),
        }
    }
    if o.image.is_empty() {
        return Err("`push` needs an IMAGE (try `cargo xtask push --help`)".into());
    }
    Ok(o)
}

/// The default operator key file.
pub fn default_key_path() -> PathBuf {
    out_dir().join("operator.key")
}

/// Reads a key file: 64 hex digits (whitespace around them ignored).
pub fn read_key(path: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure(format!("read the key {}: {e}", path.display())))?;
    let t = text.trim();
    let bad = || {
        Failure(format!(
            "{}: expected 64 hex digits (a 32-byte ed25519 seed)",
            path.display()
        ))
    };
    if t.len() != 64 {
        return Err(bad());
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(t.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(k)
}

/// The default key, made from the system's randomness when missing;
/// returns its public key as hex.
pub fn ensure_default_key() -> Result<String> {
    let path = default_key_path();
    if !path.exists() {
        let mut seed = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| Failure(format!("read /dev/urandom for a new key: {e}")))?;
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&path, hex + "\n")
            .map_err(|e| Failure(format!("write {}: {e}", path.display())))?;
        println!("xtask: made a new operator key, {}", path.display());
    }
    let pk = serac_control_core::public_key(&read_key(&path)?);
    Ok(pk.iter().map(|b| format!("{b:02x}")).collect())
}

/// QEMU's monitor socket of `cargo xtask run`.
pub fn monitor_path() -> PathBuf {
    out_dir().join("run-monitor.sock")
}

/// `cargo xtask push`.
pub fn push(o: &Opts) -> Result<ExitCode> {
    let path = if Path::new(&o.image).exists() {
        PathBuf::from(&o.image)
    } else {
        out_dir().join(format!("{}.elf", o.image))
    };
    let elf = std::fs::read(&path).map_err(|e| {
        Failure(format!(
            "read {}: {e} (an ELF file, or a built program's name after `cargo xtask build`)",
            path.display()
        ))
    })?;
    let name = o.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let need = serac_control_core::memory_kib(&elf).map_err(|e| {
        Failure(format!(
            "{}: not a loadable Serac program: {e:?}",
            path.display()
        ))
    })?;
    let memory = o.memory.unwrap_or(need + 64);
    let key_path = o.key.clone().unwrap_or_else(default_key_path);
    let seed = read_key(&key_path)?;
    let fragment = serac_protocol::push::Fragment {
        name: &name,
        count: o.count,
        memory_kib: memory,
        net: o.net,
        disk: o.disk,
    };
    let bundle = serac_control_core::bundle(&fragment, &elf, &seed)
        .map_err(|e| Failure(format!("cannot make the bundle: {e:?}")))?;
    println!(
        "xtask: pushing {name}: {} copies of {} ({} bytes, {memory} KiB each), signed with {}, to {}",
        o.count,
        path.display(),
        bundle.len(),
        key_path.display(),
        o.to
    );
    let total = bundle.len();
    let mut shown = 0;
    let answer: Answer = host_push::upload(&o.to, &bundle, Duration::from_secs(30), |sent| {
        let pct = sent * 100 / total.max(1);
        if pct >= shown + 25 || sent == total {
            println!("xtask: sent {sent} of {total} bytes ({pct}%)");
            shown = pct;
        }
    })
    .map_err(Failure)?;
    for l in &answer.lines {
        if let Some(p) = l.strip_prefix("progress ") {
            println!("host: {p}");
        }
    }
    if let Some((kind, what)) = &answer.error {
        return Err(Failure(format!(
            "the host refused the push ({kind}): {what}"
        )));
    }
    let Some((svc, n)) = &answer.ok else {
        return Err(Failure(format!(
            "unexpected answer: {}",
            answer.lines.join(" | ")
        )));
    };
    println!("xtask: {svc}: {n} copies started");
    let monitor = monitor_path();
    let forward = o.net && monitor.exists();
    for (k, (id, addr)) in answer.copies.iter().enumerate() {
        if !forward || addr == "-" {
            println!("xtask: {svc}#{k} ({id}) at {addr}");
            continue;
        }
        let port = host_push::free_port().map_err(Failure)?;
        host_push::hostfwd_add(&monitor, &format!("tcp:127.0.0.1:{port}-{addr}:80"))
            .map_err(Failure)?;
        println!("xtask: {svc}#{k} ({id}, {addr}): http://127.0.0.1:{port}/");
    }
    if o.net && !forward {
        println!(
            "xtask: no {} (is `cargo xtask run` up?): no forwards added",
            monitor.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
