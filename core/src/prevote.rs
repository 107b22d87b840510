//! Pre-vote: before bumping its ballot, a node whose election timer fired
//! asks whether a quorum would promise. Nodes that still hear a live leader
//! say no, so a node that merely lost contact itself (a restarted node, the
//! far end of a chained partition) cannot depose a working leader by raising
//! promises. Nothing here is persisted: a pre-vote promises nothing.

use std::collections::BTreeSet;

use paxlog_storage::{Ballot, NodeId, Store};

use super::replica::{Replica, RoleState};
use super::Message;

/// A pre-vote round for the ballot we would use.
#[derive(Debug)]
pub(crate) struct PreVote {
    pub(crate) ballot: Ballot,
    pub(crate) granted: BTreeSet<NodeId>,
}

impl<S: Store> Replica<S> {
    pub(crate) fn start_pre_vote(&mut self, now_ms: u64) {
        let Some(ballot) = self.next_own_ballot() else {
            return self.reset_election_deadline(now_ms);
        };
        let granted = BTreeSet::from([self.config.node_id]);
        if self.is_quorum_of(&self.learner.membership, &granted) {
            self.pre_vote = None;
            return self.become_candidate(now_ms);
        }
        self.pre_vote = Some(PreVote { ballot, granted });
        // Retry with a fresh round if this one does not gather a quorum.
        self.reset_election_deadline(now_ms);
        for to in self.voter_peers() {
            self.io.send(to, Message::PreVote { ballot });
        }
    }

    /// Would we promise `ballot` now? Same rule as for a real Prepare.
    pub(crate) fn on_pre_vote(&mut self, from: NodeId, ballot: Ballot, now_ms: u64) {
        let leader_live = match &self.role {
            RoleState::Leader(ls) => self.leader_has_quorum_contact(ls, now_ms),
            _ => self.hears_live_leader(now_ms),
        };
        let granted =
            self.ignore_voting().is_none() && ballot > self.acceptor.promised && !leader_live;
        let promised = self.acceptor.promised;
        self.io.send(
            from,
            Message::PreVoteReply {
                ballot,
                granted,
                promised,
            },
        );
    }

    pub(crate) fn on_pre_vote_reply(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
        now_ms: u64,
    ) {
        self.see_ballot(promised);
        let Some(pv) = self.pre_vote.as_mut() else {
            return;
        };
        if pv.ballot != ballot || !granted {
            return;
        }
        pv.granted.insert(from);
        let won = self
            .pre_vote
            .as_ref()
            .is_some_and(|pv| self.is_quorum_of(&self.learner.membership, &pv.granted));
        if won && !matches!(self.role, RoleState::Leader(_)) {
            self.pre_vote = None;
            self.become_candidate(now_ms);
        }
    }
}
