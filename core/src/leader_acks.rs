//! The leader's acknowledgements: Accepted and HeartbeatAck from peers, its
//! own durable accepts, and the chosen index they make, each index counted
//! against the configuration that governs it (`membership`).

use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};

use super::replica::{Replica, RoleState};
use super::{Command, Mutation};

impl<S: Store> Replica<S> {
    pub(crate) fn on_accepted(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        indexes: &[Index],
        chosen_index: Index,
        synced: bool,
        now_ms: u64,
    ) {
        self.see_ballot(ballot);
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        let stale_ok = ballot < ls.ballot && self.config.mutated(Mutation::CountStaleAccepted);
        if ls.ballot != ballot && !stale_ok {
            return;
        }
        // Only an accept at our ballot shows the peer follows this leader.
        self.peer_contact_ms.insert(from, now_ms);
        self.note_peer_chosen(from, chosen_index);
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        // An unsynced answer from a peer asked to sync again is stale: it
        // must not skip the synced resend (`Progress::make_eager`).
        if let Some(p) = ls.peers.get_mut(&from).filter(|p| synced || p.lazy) {
            let before = p.match_index;
            for &i in indexes {
                if i == p.match_index + 1 {
                    p.match_index = i;
                }
            }
            if p.match_index > before {
                p.on_match(now_ms);
            }
        }
        // Only a durable accept is a vote: an unsynced one may be gone
        // after a crash of its acceptor.
        if synced || self.config.mutated(Mutation::CountUnsyncedAccepted) {
            for &i in indexes {
                if let Some(e) = ls.log.get_mut(&i) {
                    e.acks.insert(from);
                }
            }
        }
        self.maybe_advance_leader_chosen();
        self.maybe_request_catchup(from, chosen_index, now_ms);
    }

    pub(crate) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chosen_index: Index,
        round: u64,
        now_ms: u64,
    ) {
        self.see_ballot(ballot);
        let RoleState::Leader(ls) = &self.role else {
            return;
        };
        if ls.ballot != ballot {
            return;
        }
        self.peer_contact_ms.insert(from, now_ms);
        self.note_peer_chosen(from, chosen_index);
        self.on_read_round_ack(from, round, now_ms);
        self.maybe_request_catchup(from, chosen_index, now_ms);
    }

    pub(crate) fn leader_on_own_persisted(&mut self, accepts: &[(Index, Accepted)]) {
        let me = self.config.node_id;
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        for (index, accepted) in accepts {
            if accepted.ballot != ls.ballot {
                continue;
            }
            // The mirror holds the value this leader proposed at `index`.
            let ours = self.acceptor.entries.get(index);
            if let Some(e) = ls.log.get_mut(index) {
                if ours.is_some_and(|a| a.value == accepted.value) {
                    e.acks.insert(me);
                }
            }
        }
        self.maybe_advance_leader_chosen();
    }

    /// Advances the chosen index through consecutive indexes, each counted
    /// against the configuration of the chosen prefix below it: after a
    /// change, the configuration is refolded before the next index counts.
    fn maybe_advance_leader_chosen(&mut self) {
        loop {
            self.apply_chosen();
            let m = &self.learner.membership;
            let RoleState::Leader(ls) = &self.role else {
                return;
            };
            let start = self.learner.chosen_index;
            let mut c = start;
            let mut after_change = false;
            while let Some(e) = ls.log.get(&(c + 1)) {
                let quorum = if e.change && self.config.mutated(Mutation::ChangeCountedByNewConfig)
                {
                    self.membership_after(c + 1)
                        .is_some_and(|next| self.is_quorum_of(&next, &e.acks))
                } else {
                    self.is_quorum_of(m, &e.acks)
                };
                if !quorum {
                    break;
                }
                c += 1;
                if e.change {
                    after_change = true;
                    break;
                }
            }
            if c == start {
                break;
            }
            self.advance_chosen(c);
            if !after_change {
                break;
            }
        }
        let now = self.now_ms;
        self.serve_reads(now);
    }

    /// What the change at `index` (mirrored) makes of the configuration (for
    /// the mutation that uses it too early).
    fn membership_after(&self, index: Index) -> Option<super::Membership> {
        let value = &self.acceptor.entries.get(&index)?.value;
        match Command::decode(value) {
            Ok(Command::Reconfigure { next, .. }) => Some(next),
            _ => None,
        }
    }

    /// A peer's chosen index as it reports it (a learner's catch-up lag).
    fn note_peer_chosen(&mut self, from: NodeId, chosen_index: Index) {
        if self.learner.membership.is_member(from) {
            let c = self.peer_chosen.entry(from).or_default();
            *c = (*c).max(chosen_index);
        }
    }
}
