//! Links the binary with Ilwaco's domain layout (`ilwaco/user.ld`) and a
//! heap of `SERAC_VNIC_HEAP_MIB` MiB (8 unless set when building): the
//! switch's tables and queues live there, a few hundred bytes a port, so
//! it bounds the ports (1 MiB held about 2,000). The vnic is an eager
//! domain, so every heap page costs a frame at boot.
#[path = "../../ilwaco/link.rs"]
mod link;

fn main() {
    link::with_heap("SERAC_VNIC_HEAP_MIB", 8);
}
