//! The learner's state: how far the log is known chosen, made durable,
//! folded into the session table, handed out, applied and trimmed.
//!
//! The index order, checked after every input and poll in debug builds:
//!
//! ```text
//! trim_index <= emitted_index <= dedup_index <= chosen_index <= last_index
//! trim_index <= applied_index
//! trim_index <= trim_fold_index <= dedup_index
//! durable_chosen_index <= chosen_index
//! ```
//!
//! `applied_index <= chosen_index` does *not* hold: the application may
//! have applied past the chosen index a restarted replica recovers, since a
//! lone chosen index is synced lazily (`chosen_flush_interval_ms`).

use std::collections::BTreeMap;

use paxlog_storage::Index;

use super::holds::Holds;
use super::membership::Membership;
use super::sessions::{Hidden, SessionTable};
use super::snapshot_meta::SnapshotMeta;

#[derive(Debug)]
pub(crate) struct LearnerState {
    /// Never decreases; every index `<=` it holds its chosen value, which
    /// never changes (DESIGN.md 1, 2).
    /// Invariant: `dedup_index <= chosen_index`.
    pub(crate) chosen_index: Index,
    /// Chosen index written by a persisted batch (entries below it are in
    /// the store, where reads find them; synced or not, see `Io`).
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
    /// Last chosen index folded into the session table.
    pub(crate) dedup_index: Index,
    /// The session table after folding every chosen index `<= dedup_index`.
    pub(crate) sessions: SessionTable,
    /// The configuration after folding every chosen index `<= dedup_index`:
    /// the one that governs `dedup_index + 1`.
    pub(crate) membership: Membership,
    /// Every chosen append above the trim point that is not effective:
    /// readers never see them. One per index at most (about 40 bytes each);
    /// they come from retries and pipelines cut by leader changes, a
    /// handful per failover.
    /// Invariant: every key is in `(trim_index, dedup_index]`, and a
    /// duplicate's first index is below it.
    pub(crate) hidden: BTreeMap<Index, Hidden>,
    /// The session table after folding every chosen index `<=
    /// trim_fold_index`: the one written with the next trim, advanced in
    /// bounded steps toward it.
    /// Invariant: `trim_index <= trim_fold_index <= dedup_index`.
    pub(crate) trim_fold_index: Index,
    pub(crate) trim_sessions: SessionTable,
    /// The configuration at `trim_fold_index`.
    pub(crate) trim_membership: Membership,
    /// The encoded `TrimState` at `trim_index` (`None` before any trim):
    /// what a peer behind the trim point is sent.
    pub(crate) trim_state: Option<bytes::Bytes>,
    /// Where chosen trims say to trim to, once `trim_sessions` gets there.
    /// Invariant: `trim_index <= trim_target <= dedup_index`.
    pub(crate) trim_target: Index,
    /// Trim commands chosen at key index, trimming up to the value.
    /// Invariant: every key is in `(applied_index, dedup_index]` (applied
    /// ones are taken at once).
    pub(crate) pending_trims: BTreeMap<Index, Index>,
    /// The newest published snapshot after folding every chosen index
    /// `<= dedup_index` (see `snapshot`).
    /// Invariant: once `dedup_index` passes every Trim that moved the trim
    /// point, `trim_index <= snapshot.index` (a Trim is cut to it).
    pub(crate) snapshot: Option<SnapshotMeta>,
    /// The application skipped a prefix it never applied (this node caught
    /// up below a peer's trim point): nothing is emitted until it installs
    /// the newest snapshot. `emitted_index` and `applied_index` stand at the
    /// trim point meanwhile, though the application has not seen it.
    pub(crate) behind_trim: bool,
    /// The snapshot index `poll_snapshot` last offered (0: none).
    pub(crate) snapshot_offered: Index,
    /// The retention holds after folding every chosen index `<= dedup_index`.
    pub(crate) holds: Holds,
    /// The holds at `trim_fold_index`, written with the next trim.
    pub(crate) trim_holds: Holds,
}

impl LearnerState {
    /// The checks that need only this part.
    pub(crate) fn assert_invariants(&self, full: bool) {
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
        let hidden = self.hidden.first_key_value().into_iter();
        let walk = full.then_some(self.hidden.iter()).into_iter().flatten();
        if let Some((&i, h)) =
            hidden
                .chain(self.hidden.last_key_value())
                .chain(walk)
                .find(|(&i, h)| {
                    i <= trim || i > dedup || matches!(h, Hidden::DuplicateOf(first) if *first >= i)
                })
        {
            panic!(
                "Invariant: every hidden index in (trim_index, dedup_index], \
                 a duplicate above its first index ({i}: {h:?}, trim {trim}, dedup {dedup})"
            );
        }
        assert!(
            trim <= self.trim_fold_index && self.trim_fold_index <= dedup,
            "Invariant: trim_index <= trim_fold_index <= dedup_index ({trim}, {}, {dedup})",
            self.trim_fold_index
        );
        assert!(
            trim <= self.trim_target && self.trim_target <= dedup,
            "Invariant: trim_index <= trim_target <= dedup_index ({trim}, {}, {dedup})",
            self.trim_target
        );
        if let Err(e) = self.membership.check() {
            panic!("Invariant: the configuration is well formed ({e})");
        }
        assert!(
            self.trim_membership.epoch <= self.membership.epoch,
            "Invariant: the trailing configuration is not ahead"
        );
        if full {
            self.sessions.assert_invariants();
        } else {
            self.sessions.assert_bounds();
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
