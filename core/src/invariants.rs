//! The replica's state invariants, checked as a whole. Each part checks its
//! own fields (`AcceptorState`, `LearnerState`, `Leader`, `Io`); what spans
//! parts is checked here. Debug builds (tests, the `ci` profile) run this
//! after every input and every poll; release builds do not pay for it.
//!
//! Two depths: the bounds and relations between indexes are checked every
//! time; the walks over whole maps (every mirrored entry's ballot, every
//! leader log index's mirror, the session table) as often as
//! `debug_checks.rs` allows (every 16th check, or once per 4 mirrored
//! entries if that is rarer) and whenever asked from outside. What
//! a walk checks holds by induction from asserts at each change (an accept
//! is stored only at or below the promise, which never falls), so a break
//! is still found, a few steps late, while the cost per check stays bounded:
//! a catch-up that mirrors thousands of entries and polls each one out
//! would otherwise walk them all every 16 polls, quadratic in the reply
//! (seen: a `ci`-profile follower spent 73 % of its CPU in these walks and
//! never caught up with a leader taking 40k appends/s).

use paxlog_storage::Store;

use super::replica::{Replica, RoleState};

impl<S: Store> Replica<S> {
    /// Panics, naming the invariant, if the state is inconsistent.
    ///
    /// A failed replica is not checked: it stopped mid-input and will never
    /// act again. Nor is one running a sim mutation, which breaks a rule on
    /// purpose so the simulation's own checkers must catch it.
    pub fn assert_invariants(&self) {
        self.assert_invariants_to(true);
    }

    fn assert_invariants_to(&self, full: bool) {
        if self.failed || self.config.any_mutation() {
            return;
        }
        let (a, l) = (&self.acceptor, &self.learner);
        l.assert_invariants(full);
        a.assert_invariants(l.trim_index, full);
        self.io.assert_invariants(&a.entries, full);
        self.follower_reads.assert_invariants();
        assert!(
            l.chosen_index <= a.last_index,
            "Invariant: chosen_index <= last_index ({} > {})",
            l.chosen_index,
            a.last_index
        );
        let unsynced = l.durable_chosen_index.max(l.trim_index) + 1..=l.chosen_index;
        let ends = [*unsynced.start(), *unsynced.end()];
        let missing = if full {
            unsynced.clone().find(|i| !a.entries.contains_key(i))
        } else {
            ends.into_iter()
                .find(|i| unsynced.contains(i) && !a.entries.contains_key(i))
        };
        if let Some(i) = missing {
            panic!(
                "Invariant: every chosen index above durable_chosen_index is mirrored \
                 ({i} of {unsynced:?})"
            );
        }
        let me = self.config.node_id;
        match &self.role {
            RoleState::Leader(ls) => {
                ls.assert_invariants(me, a.promised, l.chosen_index, &a.entries, full);
            }
            RoleState::Candidate(cs) => {
                assert!(
                    cs.ballot == a.promised && cs.ballot.node == me,
                    "Invariant: candidate ballot == promised and is our own ({} vs {}, node {me})",
                    cs.ballot,
                    a.promised
                );
            }
            RoleState::Follower => {}
        }
        assert!(
            !a.suspect || matches!(self.role, RoleState::Follower),
            "Invariant: a suspect node is a follower"
        );
        if let (Some((&first, _)), Some((&last, _))) = (
            self.waiters.first_key_value(),
            self.waiters.last_key_value(),
        ) {
            let next_index = match &self.role {
                RoleState::Leader(ls) => ls.next_index,
                RoleState::Candidate(_) | RoleState::Follower => 0,
            };
            assert!(
                first > l.dedup_index && last < next_index,
                "Invariant: only a leader has waiters, in (dedup_index, next_index) \
                 ([{first}, {last}], dedup {}, next {next_index})",
                l.dedup_index
            );
        }
    }

    /// `assert_invariants` in debug builds only.
    pub(crate) fn debug_assert_invariants(&self) {
        if cfg!(debug_assertions) {
            let walk = self.debug_checks.count(self.acceptor.entries.len() as u64);
            self.assert_invariants_to(walk);
        }
    }
}
