//! Shared by the build scripts of domains that link with Ilwaco's layout
//! (`user.ld`) and size their heap (`#[path]`-included, so no crate).

/// Links the binary with `ilwaco/user.ld` (from the crate at
/// `CARGO_MANIFEST_DIR`, two levels below the workspace) and a heap of
/// `$env` MiB, 1 to 1024, else `default_mib`.
pub fn with_heap(env: &str, default_mib: u64) {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = format!("{dir}/../../ilwaco/user.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-env-changed={env}");
    let mib = std::env::var(env)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| (1..=1024).contains(&m))
        .unwrap_or(default_mib);
    // Before the script: its PROVIDE gives way to a symbol defined first.
    println!(
        "cargo:rustc-link-arg-bins=--defsym=__ilwaco_heap_size={:#x}",
        mib << 20
    );
    println!("cargo:rustc-link-arg-bins=-T{script}");
}
