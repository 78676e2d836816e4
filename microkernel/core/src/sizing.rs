//! How big the kernel's per-domain tables are, from the memory map.
//!
//! The domain table, the run queue's links and the timer slots hold one
//! entry per domain slot, and the kernel heap must hold a record per live
//! domain. Their size is a fixed share of RAM ([`RAM_SHARE`]) at the
//! kernel's bytes per domain ([`BYTES_PER_DOMAIN`]), capped by what a
//! domain index can name ([`MAX_INDEX`]); 1 GiB gives 107,546 slots. The
//! heap is sized to match ([`heap_bytes`]), so `Create` fails with
//! `TableFull` at the bound before the heap runs out. That holds for
//! domains that are not running: their handles are packed (a domain
//! created and not started after each `Grant`, one whose page tables were
//! dropped), as 100,000 unstarted domains with a 528-byte handle chunk
//! each ran the heap out at 51,027.
//!
//! Servers hold a handle on many domains (the vnic a notification per
//! port, the supervisor a `DomainCtl` per domain), so their handle space
//! scales with the table ([`server_handle_chunks`]); chunks are allocated
//! on demand, so the limit costs nothing until used.

/// The kernel heap's bytes per domain slot, an upper bound: the record
/// (under 512 bytes, asserted where it is defined), its box's allocator
/// header, the run link, the timer slot, the table's entry and generation,
/// the supervisor's two handles on it and the vnic's one (a 528-byte chunk
/// per 15 handles), and its own handles packed ([`PACKED_HANDLES`]).
pub const BYTES_PER_DOMAIN: u64 = 832;
/// Handles a domain that is not running holds, packed at 32 bytes each
/// (an httpd holds five).
pub const PACKED_HANDLES: u64 = 6;
/// The share of RAM (1/12) the per-domain tables and records may take.
pub const RAM_SHARE: u64 = 12;
/// Largest slot count: a domain index is a `u32` and `u32::MAX` is the
/// tables' nil; 2²⁴ also keeps every server's handle index in range.
pub const MAX_INDEX: u64 = 1 << 24;
/// Slots below which the table is never sized (boot needs a few domains
/// even in a tiny machine).
pub const MIN_DOMAINS: u64 = 64;
/// Slots of one handle chunk (the kernel's `handles::CHUNK`); slot 0 of
/// each is unused.
pub const HANDLE_CHUNK: u64 = 16;
/// Handle chunks an ordinary domain may grow to (60 handles).
pub const GUEST_HANDLE_CHUNKS: u64 = 4;

/// Domain slots for a machine with `ram_bytes` of usable RAM.
pub fn max_domains(ram_bytes: u64) -> usize {
    let n = (ram_bytes / RAM_SHARE / BYTES_PER_DOMAIN).clamp(MIN_DOMAINS, MAX_INDEX);
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Heap bytes for the per-domain tables and records of `max_domains`
/// slots (on top of what the kernel's other tables need).
pub fn heap_bytes(max_domains: usize) -> u64 {
    (max_domains as u64).saturating_mul(BYTES_PER_DOMAIN)
}

/// Handle chunks a server may grow to: a handle on every domain slot, and
/// an ordinary domain's allowance on top.
pub fn server_handle_chunks(max_domains: usize) -> usize {
    let n = (max_domains as u64).div_ceil(HANDLE_CHUNK - 1) + GUEST_HANDLE_CHUNKS;
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Handle chunks the supervisor may grow to: two handles per domain slot
/// (a `DomainCtl` and an endpoint it passes on).
pub fn supervisor_handle_chunks(max_domains: usize) -> usize {
    server_handle_chunks(max_domains.saturating_mul(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn one_gib_holds_100_000_domains() {
        // Usable RAM of a `-m 1G` machine is a little under 1 GiB.
        let n = max_domains(1020 * MIB);
        assert!(n >= 100_000, "{n}");
        assert_eq!(max_domains(1024 * MIB), 107_546);
        // The tables take the share they are given, no more.
        assert!(heap_bytes(n) <= 1020 * MIB / RAM_SHARE);
    }

    #[test]
    fn scales_with_ram_and_is_capped() {
        assert_eq!(max_domains(256 * MIB), 26_886);
        assert_eq!(max_domains(0), MIN_DOMAINS as usize);
        assert_eq!(max_domains(u64::MAX), MAX_INDEX as usize);
        let mut last = 0;
        for mib in (0..64 * 1024).step_by(97) {
            let n = max_domains(mib * MIB);
            assert!(n >= last && n as u64 <= MAX_INDEX);
            last = n;
        }
    }

    #[test]
    fn servers_can_hold_a_handle_per_domain() {
        for n in [64, 1000, 26_886, 107_546, MAX_INDEX as usize] {
            let handles = server_handle_chunks(n) as u64 * (HANDLE_CHUNK - 1);
            assert!(handles >= n as u64 + GUEST_HANDLE_CHUNKS * (HANDLE_CHUNK - 1));
            let sup = supervisor_handle_chunks(n) as u64 * (HANDLE_CHUNK - 1);
            assert!(sup >= 2 * n as u64);
            // Every handle index still fits a u32.
            assert!(supervisor_handle_chunks(n) as u64 * HANDLE_CHUNK < u64::from(u32::MAX));
        }
    }
}
