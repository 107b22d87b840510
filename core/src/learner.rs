//! The learner: advances the chosen index, catches up from peers, folds
//! chosen entries into the session table (answering waiting proposals),
//! hands them to the application in order, and trims.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};

use super::fold::{client_of, fold, fold_membership};
use super::holds::fold_hold;
use super::replica::{Replica, RoleState};
use super::sessions::{Fold, Hidden, TrimState};
use super::snapshot_meta::fold_snapshot;
use super::{Chosen, Command, Message, Mutation, OpError, Reply};

/// Chosen indexes folded into the trailing session table per input, so a
/// trim of a long prefix never stalls the replica.
const TRIM_FOLD_STEP: u64 = 4096;

impl<S: Store> Replica<S> {
    /// Moves the chosen index forward (never back) and stages it.
    pub(crate) fn advance_chosen(&mut self, chosen_index: Index) {
        assert!(
            chosen_index >= self.learner.chosen_index,
            "Invariant: chosen index never goes backwards"
        );
        if chosen_index == self.learner.chosen_index {
            return;
        }
        debug_assert!((self.learner.chosen_index + 1..=chosen_index)
            .all(|i| self.acceptor.entries.contains_key(&i)));
        self.learner.chosen_index = chosen_index;
        self.io.stage_chosen(chosen_index);
        if let RoleState::Leader(ls) = &mut self.role {
            ls.on_chosen(chosen_index, &self.acceptor.entries);
        }
        self.serve_follower_reads();
    }

    /// The leader of `ballot` says `chosen_index` is chosen: every entry we
    /// accepted at that very ballot holds that leader's (unique) value.
    pub(crate) fn learn_chosen_from_leader(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chosen_index: Index,
        now_ms: u64,
    ) {
        let target = chosen_index.min(self.acceptor.last_index);
        let mut c = self.learner.chosen_index;
        while c < target
            && self.acceptor.entries.get(&(c + 1)).is_some_and(|a| {
                a.ballot == ballot || self.config.mutated(Mutation::ChosenAtAnyBallot)
            })
        {
            c += 1;
        }
        self.advance_chosen(c);
        self.maybe_request_catchup(from, chosen_index, now_ms);
    }

    /// Asks `from` for chosen entries if it knows more than we do.
    pub(crate) fn maybe_request_catchup(&mut self, from: NodeId, their_chosen: Index, now_ms: u64) {
        if their_chosen <= self.learner.chosen_index {
            return;
        }
        let interval = 2 * self.config.heartbeat_interval_ms;
        if self
            .catchup_sent_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < interval)
        {
            return;
        }
        self.catchup_sent_ms = Some(now_ms);
        self.catchup_asked.insert(from, now_ms);
        let from_index = self.learner.chosen_index + 1;
        self.io.send(from, Message::CatchupRequest { from_index });
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_catchup(
        &mut self,
        from: NodeId,
        first_index: Index,
        values: Vec<Bytes>,
        chosen_index: Index,
        trim_index: Index,
        trim_state: Option<Bytes>,
        now_ms: u64,
    ) {
        // Progress, after a skip too, asks for more at once.
        let mut got_any = false;
        if trim_index > self.learner.chosen_index {
            // Without the session table at the trim point we would answer
            // retries differently from the others: never skip without it.
            let Some(state) = trim_state else {
                return;
            };
            match TrimState::decode(&state) {
                Ok(state) if state.at == trim_index => {
                    self.skip_to_trim(state);
                    got_any = true;
                }
                Ok(state) => {
                    tracing::warn!(
                        node = self.config.node_id,
                        from,
                        at = state.at,
                        trim_index,
                        "ignoring a trim state that is not at the peer's trim point"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(node = self.config.node_id, from, error = %e,
                        "ignoring an undecodable trim state from a peer");
                    return;
                }
            }
        }
        for (offset, value) in values.into_iter().enumerate() {
            let index = first_index + offset as Index;
            if index > chosen_index || index <= self.learner.chosen_index {
                continue;
            }
            if index != self.learner.chosen_index + 1 {
                break;
            }
            self.learn_chosen_value(index, value);
            got_any = true;
        }
        if got_any {
            self.catchup_sent_ms = None;
            self.maybe_request_catchup(from, chosen_index, now_ms);
        }
    }

    /// Records `value` as chosen at `index == chosen_index + 1`.
    pub(crate) fn learn_chosen_value(&mut self, index: Index, value: Bytes) {
        assert_eq!(index, self.learner.chosen_index + 1);
        let existing = self
            .acceptor
            .entries
            .get(&index)
            .cloned()
            .or_else(|| self.entry(index).ok().flatten());
        let same = existing.as_ref().map(|a| &a.value) == Some(&value);
        if let RoleState::Leader(ls) = &self.role {
            // Another value chosen where we proposed (our value is the
            // mirrored one), or beyond our log: a higher ballot chose it and
            // we are deposed. Stepping down first keeps the leader's log
            // consistent with the mirror about to change.
            if index >= ls.next_index || !same {
                let now = self.now_ms;
                self.become_follower(None, now, "another ballot's value was chosen");
            }
        }
        if !same {
            // Stored at our promise: the ballot at this index never goes down,
            // and the value is chosen, so any phase 1 that picks it is right.
            let ballot = self
                .acceptor
                .promised
                .max(existing.map_or(Ballot::ZERO, |a| a.ballot));
            if self.config.mutated(Mutation::LearnedValueUnsynced) {
                self.acceptor
                    .entries
                    .insert(index, Accepted { ballot, value });
            } else {
                self.store_accept(index, Accepted { ballot, value }, true);
            }
        } else if let Some(a) = existing {
            self.acceptor.entries.entry(index).or_insert(a);
        }
        self.advance_chosen(index);
    }

    /// Peers trimmed past everything we know: the prefix is gone for good,
    /// and `state` is the session table at their trim point. The
    /// application gets the newest snapshot instead (`poll_snapshot`).
    pub(crate) fn skip_to_trim(&mut self, state: TrimState) {
        let trim_index = state.at;
        if trim_index <= self.learner.chosen_index {
            return;
        }
        let limits = &self.config.limits;
        let table = state.table(
            limits.sessions_max,
            limits.session_seqs_max,
            limits.session_window,
        );
        self.learner.chosen_index = trim_index;
        self.io.stage_chosen(trim_index);
        let encoded = state.encode();
        self.trim_to(trim_index, encoded);
        self.learner.trim_target = trim_index;
        self.learner.pending_trims.clear();
        self.learner.sessions = table.clone();
        self.learner.trim_sessions = table;
        self.learner.membership = state.membership.clone();
        self.learner.trim_membership = state.membership;
        self.learner.holds = state.holds.clone();
        self.learner.trim_holds = state.holds;
        self.learner.trim_fold_index = trim_index;
        self.acceptor.last_index = self.acceptor.last_index.max(trim_index);
        // The application never saw the prefix: it waits for the snapshot
        // (its command is above the trim point, see `snapshot`).
        if self.learner.applied_index < trim_index {
            self.learner.behind_trim = true;
        }
        self.learner.emitted_index = self.learner.emitted_index.max(trim_index);
        self.learner.applied_index = self.learner.applied_index.max(trim_index);
        self.learner.dedup_index = trim_index;
        let lost: Vec<Index> = self.waiters.range(..=trim_index).map(|(&i, _)| i).collect();
        for i in lost {
            for id in self.waiters.remove(&i).unwrap_or_default() {
                self.io.reply(Reply {
                    id,
                    result: Err(OpError::Indeterminate),
                });
            }
        }
        if let RoleState::Leader(_) = self.role {
            let now = self.now_ms;
            self.become_follower(None, now, "skipped to a peer's trim point");
        }
    }

    /// Folds newly chosen entries into the session table and answers waiters.
    pub(crate) fn apply_chosen(&mut self) {
        while self.learner.dedup_index < self.learner.chosen_index && !self.failed {
            let index = self.learner.dedup_index + 1;
            let command = match self.command_at(index) {
                Ok(c) => c,
                Err(e) => return self.fail(&e),
            };
            let result = match fold(&mut self.learner.sessions, index, &command) {
                Some(Fold::Hidden(hidden)) => {
                    self.learner.hidden.insert(index, hidden);
                    match hidden {
                        Hidden::DuplicateOf(first)
                            if !self.config.mutated(Mutation::AnswerDuplicateIndex) =>
                        {
                            Ok(first)
                        }
                        Hidden::DuplicateOf(_) => Ok(index),
                        Hidden::Refused(r) => Err(r.to_error(client_of(&command))),
                    }
                }
                _ => match fold_membership(&mut self.learner.membership, &command) {
                    Some(Err(e)) => Err(OpError::ChangeRefused(e)),
                    Some(Ok(())) => {
                        self.on_membership_changed();
                        Ok(index)
                    }
                    None => Ok(index),
                },
            };
            match command {
                Command::Append { client_id, seq, .. } => {
                    if let RoleState::Leader(ls) = &mut self.role {
                        if ls.inflight_keys.get(&(client_id, seq)) == Some(&index) {
                            ls.inflight_keys.remove(&(client_id, seq));
                        }
                    }
                }
                Command::Trim { upto } => {
                    let upto = self.trim_cut(upto);
                    self.learner.pending_trims.insert(index, upto);
                }
                Command::Snapshot { .. } => {
                    fold_snapshot(&mut self.learner.snapshot, index, &command);
                }
                Command::Hold { .. } | Command::Release { .. } => {
                    fold_hold(&mut self.learner.holds, index, &command);
                }
                Command::Noop | Command::Register { .. } | Command::Reconfigure { .. } => {}
            }
            for id in self.waiters.remove(&index).unwrap_or_default() {
                self.io.reply(Reply {
                    id,
                    result: result.clone(),
                });
            }
            self.learner.dedup_index = index;
        }
    }

    pub(crate) fn learner_poll_chosen(&mut self) -> Option<Chosen> {
        if self.learner.behind_trim && !self.config.mutated(Mutation::SkipWithoutSnapshot) {
            return None;
        }
        // Indexes the application already applied (before a restart) are not re-emitted.
        self.learner.emitted_index = self
            .learner
            .emitted_index
            .max(self.learner.applied_index.min(self.learner.dedup_index));
        if self.learner.emitted_index >= self.learner.dedup_index {
            return None;
        }
        let index = self.learner.emitted_index + 1;
        let command = match self.command_at(index) {
            Ok(c) => c,
            Err(e) => {
                self.fail(&e);
                return None;
            }
        };
        self.learner.emitted_index = index;
        let hidden = self.learner.hidden.get(&index).copied();
        self.prune_entries();
        Some(Chosen {
            index,
            command,
            hidden,
        })
    }

    /// Applies chosen trims once the application has applied them: folds the
    /// trailing session table up to the trim point (a bounded step per
    /// input), then writes it with the trim so it survives the entries.
    pub(crate) fn maybe_trim(&mut self) {
        let mut upto = self.learner.trim_index;
        while let Some((&at, &to)) = self.learner.pending_trims.first_key_value() {
            if at > self.learner.applied_index {
                break;
            }
            self.learner.pending_trims.pop_first();
            // A Trim's own index bounds it, the same on every node: leaders
            // refuse a trim above their chosen index, and one from an older
            // leader that did not is cut to just below the Trim itself.
            assert!(at <= self.learner.dedup_index);
            upto = upto.max(to.min(at - 1));
        }
        self.learner.trim_target = self.learner.trim_target.max(upto);
        let target = self.learner.trim_target;
        if target <= self.learner.trim_index {
            return;
        }
        let step_end = target.min(self.learner.trim_fold_index + TRIM_FOLD_STEP);
        while self.learner.trim_fold_index < step_end {
            let index = self.learner.trim_fold_index + 1;
            let command = match self.command_at(index) {
                Ok(c) => c,
                Err(e) => return self.fail(&e),
            };
            fold(&mut self.learner.trim_sessions, index, &command);
            fold_membership(&mut self.learner.trim_membership, &command);
            fold_hold(&mut self.learner.trim_holds, index, &command);
            self.learner.trim_fold_index = index;
        }
        if self.learner.trim_fold_index < target {
            return;
        }
        let state = TrimState::new(
            target,
            &self.learner.trim_sessions,
            &self.learner.trim_membership,
            &self.learner.trim_holds,
        );
        // The trim state is at `target`: the chosen index covering it goes in
        // the same write, so a restart never finds the state ahead of it.
        self.io.stage_chosen(self.learner.chosen_index);
        self.trim_to(target, state.encode());
    }

    /// Moves the trim point up to `upto` (staged) and forgets what lies at
    /// or below it: the mirrored entries and the hidden appends. `state` is
    /// the session table folded through `upto`, persisted with the trim.
    fn trim_to(&mut self, upto: Index, state: Bytes) {
        assert!(upto > self.learner.trim_index, "the trim point only rises");
        self.learner.trim_index = upto;
        self.io.stage_trim(upto, state.clone());
        self.learner.trim_state = Some(state);
        self.learner.hidden = self.learner.hidden.split_off(&(upto + 1));
        self.acceptor.forget_through(upto);
    }
}
