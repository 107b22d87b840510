//! Published snapshots: the application's state at an index, known to
//! every node through the log, and the one thing a trim may not pass.
//!
//! The application writes a snapshot of its state at index `s` (a file
//! outside the core) and proposes `Command::Snapshot` with its size and
//! checksum. Folded in index order, the newest snapshot is the same on
//! every node at every index:
//! - a snapshot at `s` chosen at index `j` takes effect only if `s < j`
//!   (nothing unchosen can be in it) and `s` is above the newest one;
//! - the same snapshot (same index and checksum) published again adds its
//!   holder;
//! - a Trim chosen at `k` trims to at most the newest snapshot at `k`, so
//!   the trim point never passes it. Since `trim <= s < j`, the newest
//!   snapshot's own command is always above the trim point: a restart
//!   replays it, and a node that catches up below the trim point folds it
//!   before it needs it.
//!
//! A node whose application is behind the trim point (it skipped a prefix
//! it never applied, see `learner::skip_to_trim`) emits nothing until the
//! application installed the newest snapshot: `Replica::poll_snapshot`
//! offers it, `Replica::on_snapshot_installed` resumes emission after it.
//! paxlog's own state at the snapshot's index (session table,
//! configuration) needs no transfer: the node holds it at the trim point
//! and folds the log above.

use paxlog_storage::{Index, Store};

use super::holds::lowest_hold;
use super::replica::Replica;
use super::snapshot_meta::{trim_bound, SnapshotMeta};
use super::Mutation;

impl<S: Store> Replica<S> {
    /// Where a chosen `Trim { upto }` trims to, given the snapshots and holds
    /// folded before it: never past the newest snapshot nor a live hold (the
    /// same on every node).
    pub(crate) fn trim_cut(&self, upto: Index) -> Index {
        let mut upto = upto;
        if !self.config.mutated(Mutation::TrimPastSnapshot) {
            upto = upto.min(trim_bound(&self.learner.snapshot));
        }
        if !self.config.mutated(Mutation::TrimPastHold) {
            if let Some((_, hold)) = lowest_hold(&self.learner.holds) {
                upto = upto.min(hold.index);
            }
        }
        upto
    }

    /// The snapshot the application must install before anything more is
    /// emitted: `Some` once while it is behind the trim point and the
    /// newest snapshot (at or above the trim point) is known. Load it,
    /// then call [`Replica::on_snapshot_installed`] with its index.
    pub fn poll_snapshot(&mut self) -> Option<SnapshotMeta> {
        if self.failed || !self.learner.behind_trim {
            return None;
        }
        let newest = self.learner.snapshot.as_ref()?;
        if newest.index < self.learner.trim_index || self.learner.snapshot_offered >= newest.index {
            return None;
        }
        self.learner.snapshot_offered = newest.index;
        Some(newest.clone())
    }

    /// The application loaded the snapshot at `index` (one
    /// [`Replica::poll_snapshot`] offered): emission resumes at `index + 1`.
    /// Any other index is ignored: installing anything else would skip or
    /// repeat entries.
    pub fn on_snapshot_installed(&mut self, index: Index) {
        let offered = self.learner.snapshot.as_ref().map(|s| s.index);
        if !self.learner.behind_trim || offered != Some(index) || index < self.learner.trim_index {
            tracing::warn!(
                node = self.config.node_id,
                index,
                ?offered,
                "ignoring a snapshot install that is not the one offered"
            );
            return;
        }
        // The snapshot's command is above it and folded: `index < dedup`.
        assert!(index < self.learner.dedup_index);
        self.learner.behind_trim = false;
        self.learner.applied_index = self.learner.applied_index.max(index);
        self.learner.emitted_index = self.learner.emitted_index.max(index);
        self.maybe_trim();
        self.prune_entries();
        self.debug_assert_invariants();
    }

    /// The newest published snapshot this node knows (folded to its dedup index).
    pub fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.learner.snapshot.as_ref()
    }
}
