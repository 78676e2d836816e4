//! Links the binaries with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_LOADGEN_HEAP_MIB` MiB (4 unless set when building).
//! loadgen's per-target tables (an address and a sampler entry, 8 bytes)
//! live there beside its sockets: 1 MiB held 10,000 targets, not 40,000;
//! 4 MiB holds a ceiling probe's 100,000. loadgen is an eager domain, so
//! every heap page costs a frame at boot.
#[path = "../../ilwaco/link.rs"]
mod link;

fn main() {
    link::with_heap("SERAC_LOADGEN_HEAP_MIB", 4);
}
