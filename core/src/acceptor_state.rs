//! The acceptor's state: what it promised and accepted. Durable through the
//! store; this is the in-memory view, staged writes included.

use std::collections::BTreeMap;

use paxlog_storage::{Accepted, Ballot, Index};

#[derive(Debug)]
pub(crate) struct AcceptorState {
    /// Never decreases, across crashes (DESIGN.md 4); includes staged
    /// writes. Nothing is accepted below it (DESIGN.md 5).
    /// Invariant: every mirrored entry's ballot is `<= promised`.
    pub(crate) promised: Ballot,
    /// Highest ballot seen anywhere, so a new ballot can be above all.
    /// Invariant: `max_seen >= promised`.
    pub(crate) max_seen: Ballot,
    /// Accepted entries above what the store is trusted for, including
    /// writes not yet durable. Lookups fall back to the store.
    /// Invariant: every key is in `(trim_index, last_index]`.
    pub(crate) entries: BTreeMap<Index, Accepted>,
    /// Highest index holding an accepted entry, here or in the store.
    /// Invariant: `chosen_index <= last_index` (see `LearnerState`).
    pub(crate) last_index: Index,
    /// Storage said the voting state may be lost: never promise or accept.
    /// Invariant: a suspect node is a follower (it never runs for leader).
    pub(crate) suspect: bool,
}

impl AcceptorState {
    /// Drops every mirrored entry at or below `index`.
    pub(crate) fn forget_through(&mut self, index: Index) {
        // Called after every input: nothing to drop is the common case.
        if self
            .entries
            .first_key_value()
            .is_none_or(|(&i, _)| i > index)
        {
            return;
        }
        self.entries = match index.checked_add(1) {
            Some(first_kept) => self.entries.split_off(&first_kept),
            None => BTreeMap::new(),
        };
    }

    /// The checks that need only this part; `trim_index` bounds the mirror.
    pub(crate) fn assert_invariants(&self, trim_index: Index, full: bool) {
        let walk = full.then_some(self.entries.iter()).into_iter().flatten();
        if let Some((&i, a)) = walk
            .chain(self.entries.last_key_value())
            .find(|(_, a)| a.ballot > self.promised)
        {
            panic!(
                "Invariant: every accepted entry's ballot <= promised \
                 (index {i} at {} above promise {})",
                a.ballot, self.promised
            );
        }
        assert!(
            self.max_seen >= self.promised,
            "Invariant: max_seen >= promised ({} < {})",
            self.max_seen,
            self.promised
        );
        if let (Some((&first, _)), Some((&last, _))) = (
            self.entries.first_key_value(),
            self.entries.last_key_value(),
        ) {
            assert!(
                first > trim_index && last <= self.last_index,
                "Invariant: mirrored entries in (trim_index, last_index] \
                 ([{first}, {last}] vs ({trim_index}, {}])",
                self.last_index
            );
        }
    }
}
