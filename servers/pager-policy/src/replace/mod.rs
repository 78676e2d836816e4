//! Page replacement: which resident pages leave memory, and which whole
//! domains are idle enough to swap out.
//!
//! This is the other half of the swapper's choices. [`Policy`](crate::Policy)
//! decides whether a fault is served at all and which *free frame* backs
//! it; a [`Replacement`] decides which *resident page* gives its frame up
//! when there is none. A swapping `Policy` will own a `Replacement` and ask
//! it for victims when the pool is dry (not wired yet: the swapper still
//! only zero-fills).
//!
//! A replacement policy sees the events the swapper will have, and nothing
//! else:
//!
//! - [`fault`](Replacement::fault): a fault on (domain, page), read or write.
//!   On a page that is not resident the swapper is about to bind a frame to
//!   it; on a resident page it is a protection fault (a write to a page the
//!   swapper made read-only while writing it back).
//! - [`harvest`](Replacement::harvest): the x86 accessed and dirty bits the
//!   kernel collected for a resident page since the last harvest.
//! - [`written`](Replacement::written): a write-back of the page completed.
//! - [`evict`](Replacement::evict): memory pressure, "I need N frames".
//! - [`tick`](Replacement::tick): the clock moved; [`idle_domains`]
//!   (Replacement::idle_domains) then names domains idle long enough to
//!   swap out whole, and [`swap_out`](Replacement::swap_out) gives up all
//!   of one domain's pages.
//!
//! The contract with the swapper:
//!
//! - A [`Victim`] with [`Action::Free`] is clean: its frame may be unbound
//!   and reused now, and the policy has already forgotten it. A victim with
//!   [`Action::WriteBack`] is dirty: it stays resident (the policy marks it
//!   as being written and never names it again until [`written`]
//!   (Replacement::written)); once clean, a later `evict` frees it. No
//!   policy drops a dirty page: the proptests below check this for every
//!   implementation against a model of the hardware bits.
//! - The kernel's dirty bits are the truth, so the swapper harvests before
//!   it asks for victims; a page made read-only for its write-back faults on
//!   the next store, which re-dirties it.
//! - At most [`capacity`](Replacement::capacity) pages are resident: a fault
//!   on a new page when that many are resident is refused with
//!   [`ReplaceError::Full`] (evict first).
//!
//! Memory is bounded by the frame budget and reserved up front with
//! `try_reserve`: per resident page one slot (in `resident.rs`) and two
//! index buckets, per domain with a resident page one small record (a domain
//! with none costs nothing here). [`Replacement::metadata_bytes`] reports
//! what an instance holds; `docs/swap-server.md` has the figures.

use alloc::vec::Vec;
use serac_protocol::DomainId;

mod fifo;
pub(crate) mod index;
mod resident;
mod twoq;
mod wsclock;

#[cfg(test)]
mod tests;

pub use fifo::Fifo;
pub use twoq::TwoQ;
pub use wsclock::WsClock;

/// One page of one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Page {
    /// The domain.
    pub domain: DomainId,
    /// Virtual page number (address / 4096).
    pub vpn: u64,
}

impl Page {
    /// Page `vpn` of `domain`.
    pub const fn new(domain: DomainId, vpn: u64) -> Page {
        Page { domain, vpn }
    }
}

/// What the swapper must do with a victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Clean: unbind and reuse the frame now (the policy forgot the page).
    Free,
    /// Dirty: write it back first; it stays resident until
    /// [`Replacement::written`].
    WriteBack,
}

/// A page chosen to leave memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Victim {
    /// The page.
    pub page: Page,
    /// Free it or write it back.
    pub action: Action,
}

/// Why a fault could not make a page resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaceError {
    /// As many pages as frames are resident: evict first.
    Full,
    /// The tables could not be reserved.
    NoMemory,
}

/// The accessed and dirty bits harvested for one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bits {
    /// Accessed since the last harvest.
    pub referenced: bool,
    /// Written since the last harvest.
    pub dirty: bool,
}

/// A bounded output list: the policy fills it up to the capacity the
/// swapper reserved, never beyond, so a policy never allocates while it
/// chooses.
#[derive(Debug, Default)]
pub struct Victims {
    items: Vec<Victim>,
}

impl Victims {
    /// Room for `n` victims.
    pub fn with_capacity(n: usize) -> Result<Victims, ReplaceError> {
        let mut items = Vec::new();
        items
            .try_reserve_exact(n)
            .map_err(|_| ReplaceError::NoMemory)?;
        Ok(Victims { items })
    }
    /// Whether another victim fits.
    pub fn has_room(&self) -> bool {
        self.items.len() < self.items.capacity()
    }
    /// Adds `v` if there is room; false otherwise.
    pub fn push(&mut self, v: Victim) -> bool {
        if !self.has_room() {
            return false;
        }
        self.items.push(v);
        true
    }
    /// The victims so far.
    pub fn as_slice(&self) -> &[Victim] {
        &self.items
    }
    /// Empties the list (the room stays).
    pub fn clear(&mut self) {
        self.items.clear();
    }
    /// How many victims.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// How many are to be freed now.
    pub fn freed(&self) -> usize {
        self.items
            .iter()
            .filter(|v| v.action == Action::Free)
            .count()
    }
}

/// A page-replacement policy. See the [module docs](self) for the contract.
pub trait Replacement {
    /// A short name for logs and the simulator (`--policy NAME`).
    fn name(&self) -> &'static str;
    /// The frame budget: most pages resident at once.
    fn capacity(&self) -> usize;
    /// Pages resident now (including those being written back).
    fn resident(&self) -> usize;
    /// Whether `page` is resident.
    fn is_resident(&self, page: Page) -> bool;
    /// Whether `page` is resident and dirty as far as the policy knows.
    fn is_dirty(&self, page: Page) -> bool;

    /// The clock is now `now` (the swapper's unit, e.g. milliseconds; it
    /// never goes back: an earlier `now` is ignored).
    fn tick(&mut self, now: u64);
    /// A fault on `page` (`write` for a store). Not resident: it becomes
    /// resident, or `Full`. Resident: noted as a reference (and a store).
    fn fault(&mut self, page: Page, write: bool) -> Result<(), ReplaceError>;
    /// The bits harvested for `page`; ignored if it is not resident.
    fn harvest(&mut self, page: Page, bits: Bits);
    /// A write-back of `page` completed: it is clean unless it was stored
    /// to meanwhile. Ignored unless the page was being written back.
    fn written(&mut self, page: Page);
    /// Memory pressure: pushes victims into `out` until `need` of them are
    /// [`Action::Free`] or `out` is full. With any page resident that is
    /// not being written back, at least one victim is pushed.
    fn evict(&mut self, need: usize, out: &mut Victims);

    /// Domains with resident pages that have been idle (no fault, no
    /// harvested reference) for the policy's idle period; pushed into `out`
    /// while it has room (never grown). Returns how many were idle in all.
    fn idle_domains(&self, out: &mut Vec<DomainId>) -> usize;
    /// Swaps `domain` out whole: its clean pages as [`Action::Free`] (now
    /// forgotten), its dirty ones as [`Action::WriteBack`]. Call again once
    /// the writes completed, until nothing is left.
    fn swap_out(&mut self, domain: DomainId, out: &mut Victims);
    /// `domain` is gone: forgets its pages without writing them (their
    /// contents died with it). Returns how many.
    fn forget(&mut self, domain: DomainId) -> usize;
    /// The swapper took `page` out of memory itself (written and unbound,
    /// or unbound clean after a write-back the policy scheduled): forget
    /// it without naming it. False if it was not resident.
    fn remove(&mut self, page: Page) -> bool;

    /// Bytes of metadata this instance holds (its tables at capacity).
    fn metadata_bytes(&self) -> usize;
}

/// Settings shared by the policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The frame budget.
    pub frames: usize,
    /// A domain with no activity for this long is idle (clock units; 0:
    /// never).
    pub idle_after: u64,
}
