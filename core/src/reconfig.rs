//! The replica's side of membership (`membership.rs` holds the rules and
//! why they are safe): whom we take messages from, whether we vote, and
//! the leader's changes, bindings and peer set.

use paxlog_storage::{Index, NodeId, Store};

use super::leader_state::Progress;
use super::membership::{Change, Membership};
use super::replica::{Replica, RoleState};
use super::{Envelope, Message, Mutation, OpError, Proposal, ProposalCommand};

/// A learner is promoted only this close behind the leader's chosen index,
/// so a new voter does not hold up the indexes it must now acknowledge.
pub const PROMOTE_LAG_ENTRIES_MAX: Index = 10_000;

/// Request id of the leader's own binding proposals (no one waits on them).
pub(crate) const BIND_REQUEST: u64 = u64::MAX;

impl<S: Store> Replica<S> {
    /// The configuration this node knows: the one that governs the index
    /// after its applied prefix.
    pub fn membership(&self) -> &Membership {
        &self.learner.membership
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub(crate) fn quorum_of(&self, m: &Membership) -> usize {
        if self.config.mutated(Mutation::WrongQuorum) {
            return m.voters_len() / 2;
        }
        m.quorum()
    }

    /// Whether the voters of `m` among `votes` are a quorum of `m`.
    pub(crate) fn is_quorum_of<'a>(
        &self,
        m: &Membership,
        votes: impl IntoIterator<Item = &'a NodeId>,
    ) -> bool {
        let learners_count = self.config.mutated(Mutation::LearnerAcksCounted);
        let n = votes
            .into_iter()
            .filter(|&&id| m.is_voter(id) || (learners_count && m.is_member(id)))
            .count();
        n >= self.quorum_of(m)
    }

    /// Voters of the known configuration, us excluded.
    pub(crate) fn voter_peers(&self) -> Vec<NodeId> {
        let me = self.config.node_id;
        self.learner
            .membership
            .voters()
            .filter(|&id| id != me)
            .collect()
    }

    /// Every member but us: whom a leader sends the log.
    pub(crate) fn member_peers(&self) -> Vec<NodeId> {
        let me = self.config.node_id;
        let m = &self.learner.membership;
        m.members
            .iter()
            .map(|m| m.id)
            .filter(|&id| id != me)
            .collect()
    }

    /// Why this node must neither promise nor accept, if so: its state may
    /// be lost, or the configuration names another incarnation of its id
    /// (it was wiped or replaced; its old promises are gone).
    pub(crate) fn ignore_voting(&self) -> Option<String> {
        if self.acceptor.suspect {
            return Some("its storage is suspect (voting state may be lost)".into());
        }
        let m = &self.learner.membership;
        match m.member(self.config.node_id) {
            Some(me) if !m.matches(me.id, self.incarnation) => Some(format!(
                "configuration epoch {} names incarnation {:x} for node {}, and this data \
                 directory is incarnation {:x}: it was wiped or replaced; replace the node \
                 (`paxlog members replace {}`)",
                m.epoch, me.incarnation, me.id, self.incarnation, me.id
            )),
            _ => None,
        }
    }

    /// Why this node does not vote or campaign, if it does not.
    pub fn not_voting(&self) -> Option<String> {
        if let Some(why) = self.ignore_voting() {
            return Some(why);
        }
        let m = &self.learner.membership;
        match m.member(self.config.node_id) {
            None => Some(format!("not a member at epoch {}", m.epoch)),
            Some(me) if !me.voter => Some(format!("a learner at epoch {}", m.epoch)),
            Some(_) => None,
        }
    }

    /// Why a message from `from` must be dropped before it is read: the
    /// sender is not a member of the configuration we know (nor of one a
    /// candidacy of ours needs), or is another incarnation of one. A sender
    /// ahead of us makes us catch up, which is how we learn of new members.
    pub(crate) fn ignore_sender(&mut self, from: NodeId, envelope: &Envelope) -> Option<String> {
        let epoch = self.learner.membership.epoch;
        if envelope.epoch > epoch {
            let now = self.now_ms;
            let ahead = self.learner.chosen_index + 1;
            if self.catchup_asked.len() < super::MEMBERS_MAX
                || self.catchup_asked.contains_key(&from)
            {
                self.maybe_request_catchup(from, ahead, now);
            }
        }
        if matches!(envelope.message, Message::CatchupRequest { .. }) {
            // Chosen entries are for any node of the cluster's CA: a wiped
            // node learns this way that it was replaced, a removed one that
            // it was removed. Serving them changes nothing here.
            return None;
        }
        let mut configs = vec![&self.learner.membership];
        if let RoleState::Candidate(cs) = &self.role {
            configs.extend(cs.configs.iter());
        }
        if !configs.iter().any(|m| m.is_member(from)) {
            let asked = self.catchup_asked.contains_key(&from);
            if asked && matches!(envelope.message, Message::Catchup { .. }) {
                return None; // chosen values are chosen, whoever sends them
            }
            return Some(format!("node {from} is not a member at epoch {epoch}"));
        }
        let other = |m: &&Membership| m.is_member(from) && !m.matches(from, envelope.incarnation);
        if configs.iter().any(other) {
            return Some(format!(
                "node {from} is incarnation {:x}, not the member's (epoch {epoch})",
                envelope.incarnation
            ));
        }
        let proposes = matches!(
            envelope.message,
            Message::Prepare { .. }
                | Message::Accept { .. }
                | Message::Heartbeat { .. }
                | Message::PreVote { .. }
        );
        if proposes && !configs.iter().any(|m| m.is_voter(from)) {
            return Some(format!("node {from} is not a voter at epoch {epoch}"));
        }
        self.peer_incarnation.insert(from, envelope.incarnation);
        None
    }

    /// Checks a change proposal against the configuration now; the
    /// configuration it makes.
    pub(crate) fn check_change(
        &self,
        expect_epoch: u64,
        change: &Change,
    ) -> Result<Membership, OpError> {
        let m = &self.learner.membership;
        if expect_epoch != m.epoch {
            return Err(OpError::ChangeRefused(super::ChangeError::Stale {
                expected: expect_epoch,
                current: m.epoch,
            }));
        }
        let next = m.apply(change).map_err(OpError::ChangeRefused)?;
        if let Change::Promote { id } = change {
            let behind = self
                .learner
                .chosen_index
                .saturating_sub(self.peer_chosen.get(id).copied().unwrap_or(0));
            if *id != self.config.node_id && behind > PROMOTE_LAG_ENTRIES_MAX {
                return Err(OpError::Busy);
            }
        }
        Ok(next)
    }

    /// Proposes binding one unbound member to the incarnation we heard it
    /// with (ourselves included), when no change is in flight.
    pub(crate) fn maybe_bind(&mut self, now_ms: u64) {
        let RoleState::Leader(ls) = &self.role else {
            return;
        };
        if !self.config.bind_members {
            return;
        }
        if ls.change_index > self.learner.chosen_index {
            return;
        }
        let me = self.config.node_id;
        let m = &self.learner.membership;
        let heard = m
            .members
            .iter()
            .filter(|m| m.incarnation == 0)
            .find_map(|u| {
                let inc = if u.id == me {
                    Some(self.incarnation)
                } else {
                    self.peer_incarnation.get(&u.id).copied()
                };
                inc.map(|incarnation| (u.id, incarnation))
            });
        let Some((id, incarnation)) = heard else {
            return;
        };
        let expect_epoch = m.epoch;
        tracing::info!(
            node = me,
            member = id,
            incarnation,
            expect_epoch,
            "binding a member to its incarnation"
        );
        self.leader_propose(
            Proposal {
                id: BIND_REQUEST,
                client_id: 0,
                seq: 0,
                floor: 0,
                command: ProposalCommand::Reconfigure {
                    expect_epoch,
                    change: Change::Bind { id, incarnation },
                },
                expected_ballot: None,
            },
            now_ms,
        );
    }

    /// A change took effect: the leader feeds the new members and stops
    /// feeding departed ones, and steps down if it no longer votes.
    pub(crate) fn on_membership_changed(&mut self) {
        let now = self.now_ms;
        let members = self.member_peers();
        let me = self.config.node_id;
        tracing::info!(node = me, membership = %self.learner.membership, "configuration changed");
        self.peer_incarnation.retain(|id, _| members.contains(id));
        self.peer_chosen.retain(|id, _| members.contains(id));
        self.peer_contact_ms.retain(|id, _| members.contains(id));
        if let RoleState::Leader(ls) = &mut self.role {
            ls.peers.retain(|id, _| members.contains(id));
            let start = ls.next_index;
            for id in members {
                ls.peers
                    .entry(id)
                    .or_insert_with(|| Progress::new(start, now));
            }
            if !self.learner.membership.is_voter(me) {
                self.become_follower(None, now, "no longer a voter");
            }
        }
    }
}
