//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`), with a
//! heap of `HEAP_MIB` MiB: the swapper's tables (frame pool, resident pages,
//! domain records, slot bitmap) are sized from it at start.
const HEAP_MIB: u64 = 24;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = format!("{dir}/../../ilwaco/user.ld");
    println!("cargo:rerun-if-changed={script}");
    println!(
        "cargo:rustc-link-arg-bins=--defsym=__ilwaco_heap_size={:#x}",
        HEAP_MIB << 20
    );
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
