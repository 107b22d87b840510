//! The acceptor role: promises (Phase 1) and accepts (Phase 2).
//! Every reply that reflects a promise or an accept is queued behind the
//! write that made it durable (`Io::send_durable`).

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, ReadLimit, Store};

use super::replica::{Replica, RoleState};
use super::{Message, Mutation};

impl<S: Store> Replica<S> {
    /// A Prepare is ignored while this node hears a live leader (or is one
    /// with a quorum): a node cut off from the leader cannot depose it.
    fn ignore_prepare(&self, ballot: Ballot, now_ms: u64) -> Option<Option<NodeId>> {
        if ballot < self.acceptor.promised {
            return Some(self.leader);
        }
        if ballot == self.acceptor.promised {
            return None; // a later round of a promise already given
        }
        match &self.role {
            RoleState::Leader(ls) if self.leader_has_quorum_contact(ls, now_ms) => {
                Some(Some(self.config.node_id))
            }
            RoleState::Leader(_) => None,
            _ if self.hears_live_leader(now_ms) && self.leader != Some(ballot.node) => {
                Some(self.leader)
            }
            _ => None,
        }
    }

    /// Refuses `ballot`: tells its sender our promise and whom we follow.
    fn send_nack(&mut self, to: NodeId, ballot: Ballot, leader: Option<NodeId>) {
        let promised = self.acceptor.promised;
        self.io.send(
            to,
            Message::Nack {
                ballot,
                promised,
                leader,
            },
        );
    }

    pub(crate) fn on_prepare(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        from_index: Index,
        now_ms: u64,
    ) {
        self.see_ballot(ballot);
        if self.ignore_voting().is_some() {
            return; // never vote with state that may be lost
        }
        if let Some(leader) = self.ignore_prepare(ballot, now_ms) {
            return self.send_nack(from, ballot, leader);
        }
        if ballot > self.acceptor.promised {
            if !matches!(self.role, RoleState::Follower) {
                self.become_follower(None, now_ms, "a higher ballot's Prepare");
            }
            self.leader = None;
            self.leader_contact_ms = None;
            self.raise_promise(ballot);
        }
        // Serving a candidate's promise, possibly in many chunks: timing out
        // now would depose it with a higher ballot before it could finish.
        self.reset_election_deadline(now_ms);
        let limit = ReadLimit {
            entries_max: self.config.limits.catchup_entries_max,
            bytes_max: self.config.limits.catchup_budget(),
        };
        let (entries, next_index) = match self.read_entries(from_index, Index::MAX, limit) {
            Ok(r) => r,
            Err(e) => return self.fail(&e),
        };
        let message = Message::Promise {
            ballot,
            from_index,
            entries,
            next_index,
            chosen_index: self.learner.chosen_index,
            trim_index: self.learner.trim_index,
        };
        let ungated = self.config.mutated(Mutation::ReplyBeforePersist);
        self.io.send_durable(from, message, ungated);
    }

    /// Contact from the leader of `ballot` (not below our promise).
    fn on_leader_contact(&mut self, from: NodeId, ballot: Ballot, now_ms: u64) {
        if matches!(self.role, RoleState::Leader(_) | RoleState::Candidate(_)) {
            self.become_follower(
                Some(from),
                now_ms,
                "contact from the leader of a higher ballot",
            );
        }
        self.leader = Some(from);
        self.leader_contact_ms = Some(now_ms);
        self.pre_vote = None;
        self.peer_contact_ms.insert(from, now_ms);
        self.see_ballot(ballot);
        self.reset_election_deadline(now_ms);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        first_index: Index,
        values: Vec<Bytes>,
        chosen_index: Index,
        sync: bool,
        now_ms: u64,
    ) {
        self.see_ballot(ballot);
        if self.ignore_voting().is_some() {
            return;
        }
        let below_promise = ballot < self.acceptor.promised;
        if below_promise && !self.config.mutated(Mutation::AcceptBelowPromise) {
            return self.send_nack(from, ballot, self.leader);
        }
        if !below_promise {
            self.on_leader_contact(from, ballot, now_ms);
        }
        // A promise is never written unsynced: one a crash can take back
        // lets this acceptor vote again below it.
        let sync = sync || ballot > self.acceptor.promised;
        if ballot > self.acceptor.promised {
            // An accept implies the promise; both land in one atomic batch.
            self.raise_promise(ballot);
        }
        let mut indexes = Vec::with_capacity(values.len());
        for (offset, value) in values.into_iter().enumerate() {
            let index = first_index + offset as Index;
            if index <= self.learner.trim_index {
                continue;
            }
            if index <= self.learner.chosen_index {
                // A chosen value never changes: only confirm the same value.
                if self.value_at(index).as_ref() == Some(&value) {
                    indexes.push(index);
                }
                continue;
            }
            assert!(
                ballot >= self.acceptor.promised
                    || self.config.mutated(Mutation::AcceptBelowPromise),
                "Invariant: never accept below the promise"
            );
            self.store_accept(index, Accepted { ballot, value }, sync);
            indexes.push(index);
        }
        let message = Message::Accepted {
            ballot,
            indexes,
            chosen_index: self.learner.chosen_index,
            synced: sync,
        };
        let ungated = self.config.mutated(Mutation::ReplyBeforePersist);
        self.io.send_gated(from, message, ungated, sync);
        if !below_promise {
            self.learn_chosen_from_leader(from, ballot, chosen_index, now_ms);
        }
    }

    pub(crate) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chosen_index: Index,
        round: u64,
        now_ms: u64,
    ) {
        self.see_ballot(ballot);
        if ballot < self.acceptor.promised {
            return self.send_nack(from, ballot, self.leader);
        }
        self.on_leader_contact(from, ballot, now_ms);
        self.learn_chosen_from_leader(from, ballot, chosen_index, now_ms);
        let chosen_index = self.learner.chosen_index;
        self.io.send(
            from,
            Message::HeartbeatAck {
                ballot,
                chosen_index,
                round,
            },
        );
    }

    pub(crate) fn on_catchup_request(&mut self, from: NodeId, from_index: Index) {
        if from_index > self.learner.chosen_index && from_index > self.learner.trim_index + 1 {
            return;
        }
        let limit = ReadLimit {
            entries_max: self.config.limits.catchup_entries_max,
            bytes_max: self.config.limits.catchup_budget(),
        };
        if from_index <= self.learner.trim_index {
            // Behind our trim point: the session table at it comes first,
            // alone; the entries after it in the next round.
            let message = Message::Catchup {
                first_index: self.learner.trim_index + 1,
                values: Vec::new(),
                chosen_index: self.learner.chosen_index,
                trim_index: self.learner.trim_index,
                trim_state: self.learner.trim_state.clone(),
            };
            return self.io.send(from, message);
        }
        let first_index = from_index;
        let (entries, _) = match self.read_entries(first_index, self.learner.chosen_index, limit) {
            Ok(r) => r,
            Err(e) => return self.fail(&e),
        };
        // Only a consecutive run is useful to a learner.
        let mut values = Vec::with_capacity(entries.len());
        for (i, a) in entries {
            if i != first_index + values.len() as Index {
                break;
            }
            values.push(a.value);
        }
        let message = Message::Catchup {
            first_index,
            values,
            chosen_index: self.learner.chosen_index,
            trim_index: self.learner.trim_index,
            trim_state: None,
        };
        self.io.send(from, message);
    }
}
