//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_VNIC_HEAP_MIB` MiB (8 unless set when building): the
//! switch's tables and queues live there, a few hundred bytes a port, so
//! it bounds the ports (1 MiB held about 2,000). The vnic is an eager
//! domain, so every heap page costs a frame at boot.
const DEFAULT_MIB: u64 = 8;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = format!("{dir}/../../ilwaco/user.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-env-changed=SERAC_VNIC_HEAP_MIB");
    let mib = std::env::var("SERAC_VNIC_HEAP_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| (1..=1024).contains(&m))
        .unwrap_or(DEFAULT_MIB);
    // Before the script: its PROVIDE gives way to a symbol defined first.
    println!(
        "cargo:rustc-link-arg-bins=--defsym=__ilwaco_heap_size={:#x}",
        mib << 20
    );
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
