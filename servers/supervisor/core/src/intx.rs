//! Which interrupt-controller input a PCI function's INTx pin reaches.
//!
//! ACPI describes it in `_PRT`, which is AML; Serac reads no AML yet, so
//! this knows the fixed routing of the two chipsets QEMU offers instead:
//! q35's ICH9 (slots 0..0x17 rotate through PIRQ E..H, which the I/O APIC
//! sees at GSIs 20..23; 0x18 and 0x1e start at E; the rest at A, GSI 16)
//! and i440fx's PIIX (the PIRQ links go to the ISA IRQ firmware chose and
//! wrote into the function's interrupt line, which is also its GSI). Both
//! signal level-triggered, active high. Anything else: no binding (the
//! caveat is in docs/CAVEATS.md).

/// The chipsets whose routing is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chipset {
    /// Q35 / ICH9 (its LPC bridge is 8086:2918).
    Q35,
    /// i440fx / PIIX3 (its ISA bridge is 8086:7000).
    Piix,
    /// Neither was found.
    Unknown,
}

impl Chipset {
    /// The chipset, from the (vendor, device) ids of the PCI functions.
    pub fn detect(ids: impl IntoIterator<Item = (u16, u16)>) -> Chipset {
        let mut c = Chipset::Unknown;
        for id in ids {
            match id {
                (0x8086, 0x2918) => return Chipset::Q35,
                (0x8086, 0x7000) => c = Chipset::Piix,
                _ => {}
            }
        }
        c
    }
}

/// Where an INTx pin goes: a GSI and how it signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxRoute {
    /// The global system interrupt.
    pub gsi: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
}

/// The route of `pin` (1 = INTA .. 4 = INTD) of the function at `bdf`
/// (`bus << 8 | dev << 3 | func`), whose interrupt line register reads
/// `line`; `None` when the pin is absent or the routing unknown.
pub fn route(chipset: Chipset, bdf: u16, pin: u8, line: u8) -> Option<IntxRoute> {
    if !(1..=4).contains(&pin) {
        return None;
    }
    let p = u32::from(pin - 1);
    let slot = u32::from(bdf >> 3 & 0x1f);
    let bus = bdf >> 8;
    let gsi = match chipset {
        // Functions behind bridges would need the bridge's swizzle.
        Chipset::Q35 if bus == 0 => match slot {
            0..=0x17 => 20 + ((slot + p) & 3),
            0x18 | 0x1e => 20 + p,
            _ => 16 + p,
        },
        Chipset::Piix if (1..16).contains(&line) && line != 2 => u32::from(line),
        _ => return None,
    };
    Some(IntxRoute {
        gsi,
        level: true,
        active_low: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf(bus: u16, dev: u16, func: u16) -> u16 {
        bus << 8 | dev << 3 | func
    }

    #[test]
    fn detects_the_chipsets() {
        assert_eq!(
            Chipset::detect([(0x1af4, 0x1042), (0x8086, 0x2918)]),
            Chipset::Q35
        );
        assert_eq!(Chipset::detect([(0x8086, 0x7000)]), Chipset::Piix);
        assert_eq!(Chipset::detect([(0x1af4, 0x1042)]), Chipset::Unknown);
    }

    #[test]
    fn q35_rotates_through_pirq_e_to_h() {
        // Slot 2, INTA: PIRQ G = GSI 22; INTB: H = 23; INTC wraps to E = 20.
        let r = |dev, pin| route(Chipset::Q35, bdf(0, dev, 0), pin, 11).map(|r| r.gsi);
        assert_eq!(r(2, 1), Some(22));
        assert_eq!(r(2, 2), Some(23));
        assert_eq!(r(2, 3), Some(20));
        assert_eq!(r(4, 1), Some(20));
        assert_eq!(r(0x18, 2), Some(21));
        assert_eq!(r(0x1f, 1), Some(16));
        assert_eq!(r(2, 0), None);
        assert_eq!(r(2, 5), None);
        assert_eq!(route(Chipset::Q35, bdf(1, 0, 0), 1, 11), None);
    }

    #[test]
    fn piix_uses_the_line_firmware_chose() {
        let r = route(Chipset::Piix, bdf(0, 3, 0), 1, 11).unwrap();
        assert_eq!((r.gsi, r.level, r.active_low), (11, true, false));
        assert_eq!(route(Chipset::Piix, bdf(0, 3, 0), 1, 0), None);
        assert_eq!(route(Chipset::Piix, bdf(0, 3, 0), 1, 255), None);
        assert_eq!(route(Chipset::Unknown, bdf(0, 3, 0), 1, 11), None);
    }
}
