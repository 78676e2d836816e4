//! The Serac microkernel: the whole trusted core.
//!
//! It holds address spaces, the software TLB, the scheduler and interrupt
//! batching, and nothing else; everything else runs in ring 3. `unsafe` is
//! confined to `arch/` (hardware access) and every block there says why it
//! is sound. Pure logic lives in `serac-kcore`, which is tested on the host.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod arch;
mod kernel;
mod ktest;

use core::fmt::Write;
use log::info;

use arch::bootinfo::BootInfo;
use arch::exit::{exit, ExitCode};
use arch::serial::RawWriter;

/// Kernel heap: a fixed part plus room for the per-frame tables (software
/// TLB and frame owners, ~110 bytes a frame) and the per-domain records.
const HEAP_FIXED_BYTES: u64 = 8 << 20;
const HEAP_BYTES_PER_FRAME: u64 = 128;

/// Prints to COM1.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::arch::serial::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Stops with a clear message: a boot stage that cannot proceed.
pub(crate) fn fatal(stage: &str, what: core::fmt::Arguments<'_>) -> ! {
    let _ = write!(RawWriter, "FATAL {stage}: {what}\r\n");
    exit(ExitCode::Failure)
}

/// Rust entry, called by the trampoline on the kernel stack.
/// `magic` and `info` are EAX and EBX as the loader left them.
extern "C" fn kmain(magic: u32, info: u32) -> ! {
    let bi = match BootInfo::parse(magic, info) {
        Ok(bi) => bi,
        Err(e) => fatal(
            "boot",
            format_args!("unrecognised loader: {e:?} (eax={magic:#x})"),
        ),
    };
    arch::serial::init();
    kprintln!(
        "Serac {} booting via {}, {} MiB usable",
        env!("CARGO_PKG_VERSION"),
        bi.protocol.name(),
        bi.usable_bytes() >> 20
    );
    arch::serial::init_logger();
    info!(
        "boot: cmdline \"{}\", {} memory region(s), {} module(s)",
        bi.cmdline(),
        bi.regions().len(),
        bi.modules().len()
    );

    arch::cpu::init();
    info!("cpu: GDT, TSS and IDT loaded; double faults on their own stack");

    let mem = arch::paging::init_frames(&bi)
        .unwrap_or_else(|| fatal("mem", format_args!("no room for the frame bitmap")));
    info!(
        "mem: {} free frames ({} MiB), bitmap {} KiB at {:#x}",
        mem.free_frames,
        mem.free_frames >> 8,
        mem.bitmap_bytes.div_ceil(1024),
        mem.bitmap_at
    );

    // Domain slots from usable RAM; the heap holds their records too.
    let max_domains = serac_kcore::sizing::max_domains(mem.free_frames * 4096);
    let heap_bytes = (HEAP_FIXED_BYTES
        + (mem.top / 4096) * HEAP_BYTES_PER_FRAME
        + serac_kcore::sizing::heap_bytes(max_domains))
    .next_multiple_of(4096);
    let tables = arch::paging::init_kernel_tables(mem.top, heap_bytes)
        .unwrap_or_else(|e| fatal("paging", format_args!("{e:?}")));
    arch::heap::init(arch::paging::HEAP_START, tables.heap_bytes);
    info!(
        "paging: kernel tables live: direct map {} MiB, image {} pages W^X, heap {} KiB, {} frames free",
        tables.physmap_bytes >> 20,
        tables.image_pages,
        tables.heap_bytes >> 10,
        arch::paging::free_frames()
    );
    info!(
        "mem: {max_domains} domain slots (1/{} of RAM at {} bytes each)",
        serac_kcore::sizing::RAM_SHARE,
        serac_kcore::sizing::BYTES_PER_DOMAIN
    );

    let platform =
        arch::acpi::discover(bi.rsdp).unwrap_or_else(|e| fatal("acpi", format_args!("{e:?}")));
    info!(
        "acpi: RSDP {:#x} rev {}, {} cpu(s), local APIC {:#x}, {} I/O APIC(s){}, HPET {}",
        platform.rsdp,
        platform.revision,
        platform.cpus,
        platform.lapic,
        platform.ioapic_count,
        match platform.ioapics[..platform.ioapic_count].first() {
            Some((pa, gsi)) => alloc::format!(" (first at {pa:#x}, GSI {gsi})"),
            None => alloc::string::String::new(),
        },
        match platform.hpet {
            Some(pa) => alloc::format!("at {pa:#x}"),
            None => alloc::string::String::from("absent"),
        }
    );

    let pins = arch::apic::init(platform.lapic, &platform.ioapics[..platform.ioapic_count]);
    info!("apic: local APIC enabled, 8259s masked, {pins} I/O APIC pin(s) masked");
    // Serial input for the supervisor's console (`DomainOp::ConsoleInput`).
    if !arch::apic::route_gsi(arch::serial::COM1_GSI, false) {
        info!("serial: no I/O APIC pin for COM1's IRQ 4; no console input");
    }

    let pci = arch::pci::enumerate(platform.ecam);
    info!(
        "pci: {} function(s), configuration space through {}",
        pci.len(),
        match platform.ecam {
            Some((base, last)) => alloc::format!("ECAM at {base:#x} (buses 0-{last})"),
            None => alloc::string::String::from("ports 0xcf8/0xcfc"),
        }
    );
    for f in &pci {
        let b = f.bdf;
        let mut bars = alloc::string::String::new();
        for (i, bar) in f.bars.iter().enumerate().filter(|(_, b)| b.size != 0) {
            let kind = if bar.io { "io" } else { "mem" };
            bars.push_str(&alloc::format!(
                " bar{i} {kind} {:#x}+{:#x}",
                bar.base,
                bar.size
            ));
        }
        info!(
            "pci:   {:02x}:{:02x}.{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x}{bars}{}",
            b.bus,
            b.dev,
            b.func,
            f.vendor,
            f.device,
            f.class[0],
            f.class[1],
            f.class[2],
            if f.int_pin != 0 {
                alloc::format!(" INT{} line {}", (b'A' + f.int_pin - 1) as char, f.int_line)
            } else {
                alloc::string::String::new()
            }
        );
    }

    let cal = arch::time::calibrate(platform.hpet);
    info!(
        "time: TSC {}.{:03} MHz{}, LAPIC timer {}.{:03} MHz (after /16), against the {:?}",
        cal.tsc_hz / 1_000_000,
        cal.tsc_hz / 1_000 % 1_000,
        if cal.invariant_tsc {
            " (invariant)"
        } else {
            ""
        },
        cal.lapic_hz / 1_000_000,
        cal.lapic_hz / 1_000 % 1_000,
        cal.reference
    );

    let archive = bi.modules().first().map(|m| {
        let len = usize::try_from(m.end - m.start).unwrap_or(0);
        arch::boot_module(m.start, len)
    });
    let archive = archive.map(serac_protocol::bootarc::Archive::parse);
    match &archive {
        Some(Ok(a)) => {
            info!(
                "archive: {} entr{}",
                a.len(),
                if a.len() == 1 { "y" } else { "ies" }
            );
            for e in a.entries() {
                match e {
                    Ok(e) => info!("archive:   {} ({} bytes)", e.name, e.data.len()),
                    Err(err) => log::warn!("archive:   bad entry: {err:?}"),
                }
            }
        }
        Some(Err(e)) => log::warn!("archive: rejected: {e:?}"),
        None => log::warn!("archive: none given (pass one with -initrd or module2)"),
    }

    let test = bi.cmdline_value("serac.test");
    if let Some(name) = test {
        ktest::run(name)
    }
    arch::user::init(arch::boot::kernel_stack_top());
    // The kernel starts exactly one domain; the supervisor starts the rest.
    let first = bi.cmdline_value("serac.init").unwrap_or("supervisor");
    // Its boot image, digested from its ELF at build time (`NAME.boot`).
    let suffix = serac_protocol::bootimg::ARCHIVE_SUFFIX;
    let image = match &archive {
        Some(Ok(a)) => a
            .entries()
            .flatten()
            .find(|e| e.name.strip_suffix(suffix) == Some(first)),
        _ => None,
    };
    let Some(image) = image else {
        fatal(
            "init",
            format_args!("no `{first}{suffix}` in the boot archive"),
        )
    };
    info!("init: starting {first} ({} bytes)", image.data.len());
    let archive_range = bi
        .modules()
        .first()
        .map_or((0, 0), |m| (m.start, m.end - m.start));
    // Usable RAM as frame ranges: no BAR may be mapped over it.
    let ram: alloc::vec::Vec<(u64, u64)> = bi
        .regions()
        .iter()
        .map(|r| (r.start / 4096, r.end.div_ceil(4096)))
        .collect();
    kernel::start(
        first,
        image.data,
        archive_range,
        bi.cmdline_value("serac.exit").is_some(),
        pci,
        &ram,
        max_domains,
    )
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut w = RawWriter;
    let _ = match info.location() {
        Some(l) => write!(
            w,
            "\r\nPANIC at {}:{}:{}: {}\r\n",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        ),
        None => write!(w, "\r\nPANIC at <unknown>: {}\r\n", info.message()),
    };
    exit(ExitCode::Failure)
}
