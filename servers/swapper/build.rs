//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_SWAPPER_HEAP_MIB` MiB (1 unless set when building). That
//! heap holds only what the swapper needs before its first grant (the
//! region table, buffers); its tables are sized from the grant and grown
//! from its frames. It is an eager domain, so every heap page costs a
//! frame at boot.
#[path = "../../ilwaco/link.rs"]
mod link;

fn main() {
    link::with_heap("SERAC_SWAPPER_HEAP_MIB", 1);
}
