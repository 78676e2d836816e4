//! The push service's pure logic (docs/operating.md, "Pushing a service"):
//! [`check`] takes a whole bundle (`serac_protocol::push`) and the
//! operator keys, and says whether the host may install it; [`bundle`]
//! makes one on the host (`cargo xtask push`, the tests).
//!
//! What is checked, in order, so that the cheapest refusal comes first and
//! nothing a forger controls is trusted before the signature is:
//! the prefix (magic, version, lengths within the limits), the length
//! (exactly the prefix's total: shorter is truncated, longer oversized),
//! the signature against each operator key, then the fragment (postcard,
//! the name, the count, the memory) and the ELF (loadable, and fitting the
//! memory it asks for).
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use serac_protocol::push::{
    signed_parts, Fragment, Prefix, PrefixError, MAX_COUNT, MAX_MEMORY_KIB, PREFIX_LEN,
};
use serac_supervisor_core::plan::{Plan, PlanError};

/// Why a bundle is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The prefix is wrong.
    Prefix(PrefixError),
    /// Fewer bytes than the prefix announces.
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// More bytes than the prefix announces.
    Oversized {
        /// Bytes received (at least).
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// The host has no operator key.
    NoKeys,
    /// No operator key verifies the signature.
    BadSignature,
    /// The fragment does not decode.
    BadFragment,
    /// The name is not a domain name.
    BadName,
    /// `count` is 0 or above [`MAX_COUNT`].
    BadCount(u32),
    /// `memory_kib` is 0 or above [`MAX_MEMORY_KIB`].
    BadMemory(u32),
    /// The ELF cannot be loaded.
    BadImage(PlanError),
    /// The ELF needs more memory than the fragment asks for.
    TooSmall {
        /// KiB its pages, `.bss` and stack take.
        need_kib: u32,
        /// KiB the fragment asks for.
        asked_kib: u32,
    },
}

impl Refusal {
    /// A short word for the `error KIND: ...` line.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Prefix(_) => "malformed",
            Refusal::Truncated { .. } => "truncated",
            Refusal::Oversized { .. } => "oversized",
            Refusal::NoKeys | Refusal::BadSignature => "signature",
            Refusal::BadFragment | Refusal::BadName | Refusal::BadImage(_) => "malformed",
            Refusal::BadCount(_) | Refusal::BadMemory(_) | Refusal::TooSmall { .. } => "limits",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::Prefix(e) => e.fmt(f),
            Refusal::Truncated { got, want } => {
                write!(f, "upload ended after {got} of {want} bytes")
            }
            Refusal::Oversized { got, want } => {
                write!(f, "{got} bytes or more sent, the prefix says {want}")
            }
            Refusal::NoKeys => f.write_str("this host has no operator key; every push is refused"),
            Refusal::BadSignature => f.write_str("no operator key verifies the signature"),
            Refusal::BadFragment => f.write_str("the manifest fragment does not decode"),
            Refusal::BadName => f.write_str(
                "the name is not 1 to 16 bytes of A-Z a-z 0-9 _ . - (or is \"supervisor\")",
            ),
            Refusal::BadCount(n) => write!(f, "count {n}, expected 1 to {MAX_COUNT}"),
            Refusal::BadMemory(n) => {
                write!(f, "memory {n} KiB, expected 1 to {MAX_MEMORY_KIB} KiB")
            }
            Refusal::BadImage(e) => write!(f, "the image is not a loadable ELF: {e:?}"),
            Refusal::TooSmall {
                need_kib,
                asked_kib,
            } => write!(
                f,
                "the image needs {need_kib} KiB (pages, .bss and stack), the fragment allows {asked_kib} KiB"
            ),
        }
    }
}

/// A bundle [`check`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<'b> {
    /// Its prefix.
    pub prefix: Prefix,
    /// Its fragment.
    pub fragment: Fragment<'b>,
    /// The ELF.
    pub elf: &'b [u8],
    /// KiB the ELF needs per copy.
    pub need_kib: u32,
}

/// KiB an ELF's copy needs: its loaded pages and its zero-filled ranges
/// (`.bss`, the stack), as the supervisor and the pager will give them.
pub fn memory_kib(elf: &[u8]) -> Result<u32, PlanError> {
    let plan = Plan::new(elf, false)?;
    let zero: u64 = plan
        .zero_ranges()
        .map(|(s, e)| e.saturating_sub(s).div_ceil(4096))
        .sum();
    let pages = plan.page_count().saturating_add(zero);
    Ok(u32::try_from(pages.saturating_mul(4)).unwrap_or(u32::MAX))
}

/// Whether the host may install `bundle` (every byte that arrived).
pub fn check<'b>(bundle: &'b [u8], keys: &[[u8; 32]]) -> Result<Checked<'b>, Refusal> {
    let prefix = Prefix::parse(bundle).map_err(Refusal::Prefix)?;
    let want = prefix.total();
    if bundle.len() < want {
        return Err(Refusal::Truncated {
            got: bundle.len(),
            want,
        });
    }
    if bundle.len() > want {
        return Err(Refusal::Oversized {
            got: bundle.len(),
            want,
        });
    }
    if keys.is_empty() {
        return Err(Refusal::NoKeys);
    }
    let sig = Signature::new(prefix.signature);
    let verified = keys.iter().any(|k| {
        let pk = PublicKey::new(*k);
        pk.verify_incremental(&sig).is_ok_and(|mut st| {
            for part in signed_parts(bundle) {
                st.absorb(part);
            }
            st.verify().is_ok()
        })
    });
    if !verified {
        return Err(Refusal::BadSignature);
    }
    let frag_bytes = bundle
        .get(PREFIX_LEN..prefix.image_offset())
        .ok_or(Refusal::BadFragment)?;
    let fragment: Fragment<'b> =
        serac_protocol::codec::decode_borrowed(frag_bytes).map_err(|_| Refusal::BadFragment)?;
    let name_ok = !fragment.name.is_empty()
        && fragment.name != "supervisor"
        && serac_protocol::syscall::valid_domain_name(fragment.name.as_bytes());
    if !name_ok {
        return Err(Refusal::BadName);
    }
    if fragment.count == 0 || fragment.count > MAX_COUNT {
        return Err(Refusal::BadCount(fragment.count));
    }
    if fragment.memory_kib == 0 || fragment.memory_kib > MAX_MEMORY_KIB {
        return Err(Refusal::BadMemory(fragment.memory_kib));
    }
    let elf = bundle.get(prefix.image_offset()..).unwrap_or(&[]);
    let need_kib = memory_kib(elf).map_err(Refusal::BadImage)?;
    if need_kib > fragment.memory_kib {
        return Err(Refusal::TooSmall {
            need_kib,
            asked_kib: fragment.memory_kib,
        });
    }
    Ok(Checked {
        prefix,
        fragment,
        elf,
        need_kib,
    })
}

/// The public key of the key pair with this 32-byte seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    *KeyPair::from_seed(Seed::new(*seed)).pk
}

/// Why [`bundle`] cannot make a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// The fragment does not encode within `MAX_FRAGMENT` bytes.
    Fragment,
    /// The image is empty or over `MAX_IMAGE` bytes.
    Image(usize),
}

/// A bundle of `fragment` and `elf`, signed with the key of `seed`.
pub fn bundle(
    fragment: &Fragment<'_>,
    elf: &[u8],
    seed: &[u8; 32],
) -> Result<Vec<u8>, BundleError> {
    let mut fbuf = [0u8; serac_protocol::push::MAX_FRAGMENT as usize];
    let frag = postcard::to_slice(fragment, &mut fbuf).map_err(|_| BundleError::Fragment)?;
    let fragment_len = u32::try_from(frag.len()).map_err(|_| BundleError::Fragment)?;
    if fragment_len == 0 || fragment_len > serac_protocol::push::MAX_FRAGMENT {
        return Err(BundleError::Fragment);
    }
    let image_len = u32::try_from(elf.len())
        .ok()
        .filter(|&n| n > 0 && n <= serac_protocol::push::MAX_IMAGE)
        .ok_or(BundleError::Image(elf.len()))?;
    let mut prefix = Prefix {
        fragment_len,
        image_len,
        signature: [0; 64],
    };
    let mut out = Vec::with_capacity(prefix.total());
    out.extend_from_slice(&prefix.encode());
    out.extend_from_slice(frag);
    out.extend_from_slice(elf);
    let mut msg = Vec::with_capacity(out.len());
    for part in signed_parts(&out) {
        msg.extend_from_slice(part);
    }
    let kp = KeyPair::from_seed(Seed::new(*seed));
    prefix.signature = *kp.sk.sign(&msg, None);
    if let Some(dst) = out.get_mut(..PREFIX_LEN) {
        dst.copy_from_slice(&prefix.encode());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
