//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_SWAPPER_HEAP_MIB` MiB (1 unless set when building). That
//! heap holds only what the swapper needs before its first grant (the
//! region table, buffers); its tables are sized from the grant and grown
//! from its frames. It is an eager domain, so every heap page costs a
//! frame at boot.
const DEFAULT_MIB: u64 = 1;

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
