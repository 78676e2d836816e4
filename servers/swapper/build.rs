//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_SWAPPER_HEAP_MIB` MiB (2 unless set when building): the
//! swapper sizes its tables (frame pool, resident pages, domain records,
//! slot map) from it at start. It is an eager domain, so every heap page
//! costs a frame at boot: 2 MiB keep the 64 MiB test machines and the
//! benches' pressure as they were; a machine for 100,000 domains builds
//! it with 24.
const DEFAULT_MIB: u64 = 2;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = format!("{dir}/../../ilwaco/user.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-env-changed=SERAC_SWAPPER_HEAP_MIB");
    let mib = std::env::var("SERAC_SWAPPER_HEAP_MIB")
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
