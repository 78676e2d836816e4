use super::*;
use proptest::prelude::*;
use serac_protocol::push::{MAX_IMAGE, SIGNATURE_AT};
use std::vec::Vec;

extern crate std;

const SEED: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [9; 32];

/// A loadable ELF: one RX page of code at 0x40_0000 and 64 KiB of .bss.
fn elf() -> Vec<u8> {
    let segs: [(u32, u64, u64, u64); 2] = [(5, 0x40_0000, 100, 100), (6, 0x40_1000, 0, 65536)];
    let mut b = std::vec![0u8; 64 + 56 * segs.len()];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    b[58..60].copy_from_slice(&64u16.to_le_bytes());
    let off = b.len() as u64;
    for (i, (fl, vaddr, filesz, memsz)) in segs.iter().enumerate() {
        let ph = 64 + i * 56;
        b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&fl.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    b.extend_from_slice(&[0x90u8; 100]);
    b
}

fn frag(name: &str, count: u32, memory_kib: u32) -> Fragment<'_> {
    Fragment {
        name,
        count,
        memory_kib,
        net: true,
        disk: true,
    }
}

fn keys() -> [[u8; 32]; 2] {
    [public_key(&OTHER), public_key(&SEED)]
}

#[test]
fn a_signed_bundle_is_accepted_with_what_it_says() {
    let e = elf();
    let b = bundle(&frag("web2", 50, 1024), &e, &SEED).unwrap();
    let c = check(&b, &keys()).unwrap();
    assert_eq!(c.fragment, frag("web2", 50, 1024));
    assert_eq!(c.elf, &e[..]);
    assert_eq!(c.prefix.image_offset() + e.len(), b.len());
    // One page of code and the 16 pages of memsz beyond it (.bss).
    assert!(c.need_kib >= 64 && c.need_kib <= 80, "{}", c.need_kib);
}

#[test]
fn a_wrong_key_tampered_or_cut_bundle_is_refused() {
    let b = bundle(&frag("web2", 5, 1024), &elf(), &SEED).unwrap();
    assert_eq!(check(&b, &[public_key(&OTHER)]), Err(Refusal::BadSignature));
    assert_eq!(check(&b, &[]), Err(Refusal::NoKeys));
    // Any byte the signature covers, flipped, breaks it; so does the signature's.
    for at in [0usize, 9, 12, 16, SIGNATURE_AT, 83, PREFIX_LEN, b.len() - 1] {
        let mut t = b.clone();
        t[at] ^= 1;
        let r = check(&t, &keys());
        assert!(r.is_err(), "byte {at} flipped accepted");
    }
    let mut t = b.clone();
    let last = t.len() - 10;
    t[last] ^= 0x40;
    assert_eq!(check(&t, &keys()), Err(Refusal::BadSignature));
    assert_eq!(
        check(&b[..b.len() - 1], &keys()),
        Err(Refusal::Truncated {
            got: b.len() - 1,
            want: b.len()
        })
    );
    let mut long = b.clone();
    long.push(0);
    assert!(matches!(
        check(&long, &keys()),
        Err(Refusal::Oversized { .. })
    ));
}

#[test]
fn limits_and_a_bad_image_are_refused_after_the_signature() {
    let e = elf();
    let k = keys();
    let r = |f: Fragment<'_>, img: &[u8]| check(&bundle(&f, img, &SEED).unwrap(), &k).map(|_| ());
    assert_eq!(r(frag("web2", 1, 1024), &e), Ok(()));
    assert_eq!(r(frag("web2", 0, 1024), &e), Err(Refusal::BadCount(0)));
    assert_eq!(
        r(frag("web2", MAX_COUNT + 1, 1024), &e),
        Err(Refusal::BadCount(MAX_COUNT + 1))
    );
    assert_eq!(
        r(frag("web2", 1, MAX_MEMORY_KIB + 1), &e),
        Err(Refusal::BadMemory(MAX_MEMORY_KIB + 1))
    );
    assert!(matches!(
        r(frag("web2", 1, 8), &e),
        Err(Refusal::TooSmall { asked_kib: 8, .. })
    ));
    assert_eq!(r(frag("bad name", 1, 1024), &e), Err(Refusal::BadName));
    assert_eq!(r(frag("supervisor", 1, 1024), &e), Err(Refusal::BadName));
    assert!(matches!(
        r(frag("web2", 1, 1024), b"not an elf"),
        Err(Refusal::BadImage(_))
    ));
    assert_eq!(
        bundle(
            &frag("web2", 1, 1),
            &std::vec![0u8; MAX_IMAGE as usize + 1],
            &SEED
        ),
        Err(BundleError::Image(MAX_IMAGE as usize + 1))
    );
}

proptest! {
    #[test]
    fn no_input_panics_and_only_the_signed_bundle_passes(
        cut in 0usize..400,
        flip in 0usize..400,
        junk in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let b = bundle(&frag("svc", 3, 1024), &elf(), &SEED).unwrap();
        let k = keys();
        let _ = check(&junk, &k);
        let cut = cut.min(b.len());
        if cut < b.len() {
            prop_assert!(check(&b[..cut], &k).is_err());
        }
        let mut t = b.clone();
        let at = flip % t.len();
        t[at] ^= 0x80;
        prop_assert!(check(&t, &k).is_err());
        prop_assert!(check(&b, &k).is_ok());
    }
}
