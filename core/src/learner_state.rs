//! The learner's state: how far the log is known chosen, made durable,
//! folded into the dedup table, handed out, applied and trimmed.
//!
//! The index order, checked after every input and poll in debug builds:
//!
//! ```text
//! trim_index <= emitted_index <= dedup_index <= chosen_index <= last_index
//! trim_index <= applied_index
//! durable_chosen_index <= chosen_index
//! ```
//!
//! `applied_index <= chosen_index` does *not* hold: the application may
//! have applied past the chosen index a restarted replica recovers, since a
//! lone chosen index is synced lazily (`chosen_flush_interval_ms`).

use std::collections::BTreeMap;

use paxlog_storage::Index;

use super::dedup::DedupTable;

/// Retried appends chosen a second time, remembered so readers never see
/// them. They come only from retries across leader changes, a handful per
/// failover; the cap guards memory against a pathological client.
pub(crate) const DUPLICATES_MAX: usize = 1 << 16;

#[derive(Debug)]
pub(crate) struct LearnerState {
    /// Never decreases; every index `<=` it holds its chosen value, which
    /// never changes (DESIGN.md 1, 2).
    /// Invariant: `dedup_index <= chosen_index`.
    pub(crate) chosen_index: Index,
    /// Chosen index written by a persisted batch (entries below it are durable).
    /// Invariant: `durable_chosen_index <= chosen_index`.
    /// Invariant: every index in `(max(durable_chosen_index, trim_index),
    /// chosen_index]` is mirrored (it is not durable yet).
    pub(crate) durable_chosen_index: Index,
    /// Invariant: `trim_index <= applied_index`.
    pub(crate) trim_index: Index,
    /// Last index handed out by `poll_chosen` (or skipped by `set_applied`).
    /// Invariant: `trim_index <= emitted_index`.
    /// Invariant: `emitted_index <= dedup_index`.
    pub(crate) emitted_index: Index,
    /// What the application said it applied (may exceed `chosen_index`
    /// after a restart, see the module docs).
    pub(crate) applied_index: Index,
    /// Last chosen index folded into the dedup table.
    pub(crate) dedup_index: Index,
    pub(crate) dedup: DedupTable,
    /// Duplicate index → first index, for every duplicate above the trim
    /// point (at most `DUPLICATES_MAX`): readers never see them.
    /// Invariant: every key is in `(trim_index, dedup_index]`, and its first
    /// index is below it.
    pub(crate) duplicates: BTreeMap<Index, Index>,
    /// Trim commands chosen at key index, trimming up to the value.
    /// Invariant: every key is in `(applied_index, dedup_index]` (applied
    /// ones are taken at once).
    pub(crate) pending_trims: BTreeMap<Index, Index>,
}

impl LearnerState {
    /// The checks that need only this part.
    pub(crate) fn assert_invariants(&self) {
        let (trim, emitted, dedup, chosen) = (
            self.trim_index,
            self.emitted_index,
            self.dedup_index,
            self.chosen_index,
        );
        assert!(
            trim <= self.applied_index,
            "Invariant: trim_index <= applied_index ({trim} > {})",
            self.applied_index
        );
        assert!(
            trim <= emitted,
            "Invariant: trim_index <= emitted_index ({trim} > {emitted})"
        );
        assert!(
            emitted <= dedup,
            "Invariant: emitted_index <= dedup_index ({emitted} > {dedup})"
        );
        assert!(
            dedup <= chosen,
            "Invariant: dedup_index <= chosen_index ({dedup} > {chosen})"
        );
        assert!(
            self.durable_chosen_index <= chosen,
            "Invariant: durable_chosen_index <= chosen_index ({} > {chosen})",
            self.durable_chosen_index
        );
        if let Some((&i, &first)) = self
            .duplicates
            .iter()
            .find(|(&i, &first)| i <= trim || i > dedup || first >= i)
        {
            panic!(
                "Invariant: every duplicates key in (trim_index, dedup_index] \
                 above its first index ({i} -> {first}, trim {trim}, dedup {dedup})"
            );
        }
        if let Some((&i, _)) = self
            .pending_trims
            .iter()
            .find(|(&i, _)| i <= self.applied_index || i > dedup)
        {
            panic!(
                "Invariant: every pending_trims key in (applied_index, dedup_index] \
                 ({i}, applied {}, dedup {dedup})",
                self.applied_index
            );
        }
    }
}
