//! The learner: advances the chosen index, catches up from peers, folds
//! chosen entries into the dedup table (answering waiting proposals) and
//! hands them to the application in order.

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};

use super::replica::{Replica, RoleState, DUPLICATES_MAX};
use super::{Chosen, Command, Message, OpError, Reply};

impl<S: Store> Replica<S> {
    /// Moves the chosen index forward (never back) and stages it.
    pub(crate) fn advance_chosen(&mut self, chosen_index: Index) {
        assert!(
            chosen_index >= self.chosen_index,
            "Invariant: chosen index never goes backwards"
        );
        if chosen_index == self.chosen_index {
            return;
        }
        debug_assert!((self.chosen_index + 1..=chosen_index).all(|i| self.entries.contains_key(&i)));
        self.chosen_index = chosen_index;
        self.io.stage_chosen(chosen_index);
        if let RoleState::Leader(ls) = &mut self.role {
            ls.on_chosen(chosen_index);
        }
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
        let target = chosen_index.min(self.last_index);
        let mut c = self.chosen_index;
        while c < target
            && self
                .entries
                .get(&(c + 1))
                .is_some_and(|a| a.ballot == ballot)
        {
            c += 1;
        }
        self.advance_chosen(c);
        self.maybe_request_catchup(from, chosen_index, now_ms);
    }

    /// Asks `from` for chosen entries if it knows more than we do.
    pub(crate) fn maybe_request_catchup(&mut self, from: NodeId, their_chosen: Index, now_ms: u64) {
        if their_chosen <= self.chosen_index {
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
        let from_index = self.chosen_index + 1;
        self.io.send(from, Message::CatchupRequest { from_index });
    }

    pub(crate) fn on_catchup(
        &mut self,
        from: NodeId,
        first_index: Index,
        values: Vec<Bytes>,
        chosen_index: Index,
        trim_index: Index,
        now_ms: u64,
    ) {
        if trim_index > self.chosen_index {
            self.skip_to_trim(trim_index);
        }
        let mut got_any = false;
        for (offset, value) in values.into_iter().enumerate() {
            let index = first_index + offset as Index;
            if index > chosen_index || index <= self.chosen_index {
                continue;
            }
            if index != self.chosen_index + 1 {
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
        assert_eq!(index, self.chosen_index + 1);
        let existing = self
            .entries
            .get(&index)
            .cloned()
            .or_else(|| self.entry(index).ok().flatten());
        if existing.as_ref().map(|a| &a.value) != Some(&value) {
            // Stored at our promise: the ballot at this index never goes down,
            // and the value is chosen, so any phase 1 that picks it is right.
            let ballot = self
                .promised
                .max(existing.map_or(Ballot::ZERO, |a| a.ballot));
            self.store_accept(
                index,
                Accepted {
                    ballot,
                    value: value.clone(),
                },
            );
        } else if let Some(a) = existing {
            self.entries.entry(index).or_insert(a);
        }
        let mut stale_leader = false;
        if let RoleState::Leader(ls) = &self.role {
            // A value chosen where we proposed another, or beyond our log, was
            // chosen under a higher ballot.
            stale_leader =
                index >= ls.next_index || ls.log.get(&index).is_some_and(|e| e.value != value);
        }
        self.advance_chosen(index);
        if stale_leader {
            // Someone chose another value where we proposed: we are deposed.
            let now = self.now_ms;
            self.become_follower(None, now);
        }
    }

    /// Peers trimmed past everything we know: the prefix is gone for good.
    pub(crate) fn skip_to_trim(&mut self, trim_index: Index) {
        if trim_index <= self.chosen_index {
            return;
        }
        self.chosen_index = trim_index;
        self.io.stage_chosen(trim_index);
        self.io.stage_trim(trim_index);
        self.trim_index = trim_index;
        self.duplicates = self.duplicates.split_off(&(trim_index + 1));
        self.last_index = self.last_index.max(trim_index);
        self.emitted_index = self.emitted_index.max(trim_index);
        self.applied_index = self.applied_index.max(trim_index);
        self.dedup_index = self.dedup_index.max(trim_index);
        while self
            .entries
            .first_key_value()
            .is_some_and(|(&i, _)| i <= trim_index)
        {
            self.entries.pop_first();
        }
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
            self.become_follower(None, now);
        }
    }

    /// Folds newly chosen entries into the dedup table and answers waiters.
    pub(crate) fn apply_chosen(&mut self) {
        while self.dedup_index < self.chosen_index && !self.failed {
            let index = self.dedup_index + 1;
            let command = match self.command_at(index) {
                Ok(c) => c,
                Err(e) => return self.fail(&e),
            };
            let mut result = index;
            match command {
                Command::Append { client_id, seq, .. } => {
                    if let Some(first) = self.dedup.record(client_id, seq, index) {
                        self.note_duplicate(index, first);
                        result = first;
                    }
                    if let RoleState::Leader(ls) = &mut self.role {
                        ls.inflight_keys.remove(&(client_id, seq));
                    }
                }
                Command::Trim { upto } => {
                    self.pending_trims.insert(index, upto);
                }
                Command::Noop => {}
            }
            for id in self.waiters.remove(&index).unwrap_or_default() {
                self.io.reply(Reply {
                    id,
                    result: Ok(result),
                });
            }
            self.dedup_index = index;
        }
    }

    fn note_duplicate(&mut self, index: Index, first: Index) {
        if self.duplicates.len() >= DUPLICATES_MAX {
            self.duplicates.pop_first();
            tracing::warn!(
                node = self.config.node_id,
                "too many retried duplicates to hide; the oldest becomes visible to readers"
            );
        }
        self.duplicates.insert(index, first);
    }

    pub(crate) fn learner_poll_chosen(&mut self) -> Option<Chosen> {
        // Indexes the application already applied (before a restart) are not re-emitted.
        self.emitted_index = self
            .emitted_index
            .max(self.applied_index.min(self.dedup_index));
        if self.emitted_index >= self.dedup_index {
            return None;
        }
        let index = self.emitted_index + 1;
        let command = match self.command_at(index) {
            Ok(c) => c,
            Err(e) => {
                self.fail(&e);
                return None;
            }
        };
        self.emitted_index = index;
        let duplicate_of = self.duplicates.get(&index).copied();
        self.prune_entries();
        Some(Chosen {
            index,
            command,
            duplicate_of,
        })
    }

    /// Applies chosen trims once the application has applied them.
    pub(crate) fn maybe_trim(&mut self) {
        let mut upto = self.trim_index;
        while let Some((&at, &to)) = self.pending_trims.first_key_value() {
            if at > self.applied_index {
                break;
            }
            self.pending_trims.pop_first();
            upto = upto.max(to.min(self.applied_index).min(self.chosen_index));
        }
        if upto > self.trim_index {
            self.trim_index = upto;
            self.io.stage_trim(upto);
            self.duplicates = self.duplicates.split_off(&(upto + 1));
            while self
                .entries
                .first_key_value()
                .is_some_and(|(&i, _)| i <= upto)
            {
                self.entries.pop_first();
            }
        }
    }
}
