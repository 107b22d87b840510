//! Election and Phase 1: timeouts, Prepare/Promise, value adoption, and the
//! role changes `become_follower` / `become_leader`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Index, NodeId, ReadLimit, Store};

use super::membership::Membership;
use super::replica::{Replica, RoleState};
use super::{Command, Message, Mutation, OpError, Reply};

/// Phase 1 in progress at one ballot.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// Invariant: `ballot == promised`, and it is this node's own ballot.
    pub(crate) ballot: Ballot,
    pub(crate) from_index: Index,
    /// Acceptor → where its promise continues (`None`: fully reported).
    pub(crate) promises: BTreeMap<NodeId, Option<Index>>,
    /// Per index, the reported entry with the highest ballot.
    pub(crate) adopted: BTreeMap<Index, Accepted>,
    /// Values some acceptor reported as chosen.
    pub(crate) chosen: BTreeMap<Index, Bytes>,
    pub(crate) max_trim: Index,
    /// Every configuration that governs some index this Phase 1 covers, as
    /// far as the promises so far show: ours first, then each one a
    /// reported change makes (`membership`). A quorum of each is needed.
    /// Invariant: at most `CONFIGS_MAX`.
    pub(crate) configs: Vec<Membership>,
    /// Changes reported above our chosen index, `(expected epoch, the
    /// configuration it makes)`.
    /// Invariant: at most `CONFIGS_MAX`.
    pub(crate) reported: Vec<(u64, Membership)>,
    /// Nodes sent a Prepare of this ballot.
    pub(crate) asked: BTreeSet<NodeId>,
}

/// Configurations (and reported changes) one candidacy tracks at most: an
/// honest log holds a few changes in flight, never this many.
const CONFIGS_MAX: usize = 16;

impl Candidate {
    /// Nodes whose promise is complete.
    fn complete(&self) -> impl Iterator<Item = &NodeId> {
        self.promises
            .iter()
            .filter(|(_, n)| n.is_none())
            .map(|(id, _)| id)
    }

    /// Adds every configuration a reported change makes from one we have,
    /// until nothing new appears (a fixpoint; bounded by `CONFIGS_MAX`).
    fn close_configs(&mut self) {
        let mut grew = true;
        while grew && self.configs.len() < CONFIGS_MAX {
            grew = false;
            for (expect_epoch, next) in &self.reported {
                let follows = self.configs.iter().any(|m| m.epoch == *expect_epoch);
                let new = !self.configs.contains(next);
                if follows && new && next.check().is_ok() && self.configs.len() < CONFIGS_MAX {
                    self.configs.push(next.clone());
                    grew = true;
                }
            }
        }
    }

    fn absorb(&mut self, entries: Vec<(Index, Accepted)>, chosen_index: Index, trim_index: Index) {
        self.max_trim = self.max_trim.max(trim_index);
        for (index, accepted) in entries {
            if let Ok(Command::Reconfigure {
                expect_epoch, next, ..
            }) = Command::decode(&accepted.value)
            {
                let known = self
                    .reported
                    .iter()
                    .any(|r| r.0 == expect_epoch && r.1 == next);
                if !known && self.reported.len() < CONFIGS_MAX {
                    self.reported.push((expect_epoch, next));
                }
            }
            if index <= chosen_index {
                // Honest acceptors never disagree on a chosen value; when a
                // misled one does, the first report stands (peers' are
                // checked in peer_input.rs, this catches our own).
                if self
                    .chosen
                    .get(&index)
                    .is_some_and(|v| *v != accepted.value)
                {
                    tracing::debug!(index, "ignoring a conflicting chosen report");
                    continue;
                }
                self.chosen.insert(index, accepted.value.clone());
            }
            let higher = self
                .adopted
                .get(&index)
                .is_none_or(|a| a.ballot < accepted.ballot);
            if higher {
                self.adopted.insert(index, accepted);
            }
        }
    }
}

impl<S: Store> Replica<S> {
    pub(crate) fn on_election_timeout(&mut self, now_ms: u64) {
        if self.not_voting().is_some() {
            self.reset_election_deadline(now_ms);
            return;
        }
        self.start_pre_vote(now_ms);
    }

    pub(crate) fn become_candidate(&mut self, now_ms: u64) {
        let Some(ballot) = self.next_own_ballot() else {
            return self.reset_election_deadline(now_ms);
        };
        self.fail_waiters();
        self.raise_promise(ballot);
        let from_index = self.learner.chosen_index + 1;
        self.role = RoleState::Candidate(Candidate {
            ballot,
            from_index,
            promises: BTreeMap::new(),
            adopted: BTreeMap::new(),
            chosen: BTreeMap::new(),
            max_trim: 0,
            configs: vec![self.learner.membership.clone()],
            reported: Vec::new(),
            asked: BTreeSet::new(),
        });
        self.leader = None;
        self.leader_contact_ms = None;
        self.reset_election_deadline(now_ms);
        self.prepare_new_voters();
    }

    /// Sends our Prepare to every voter of the configurations we need that
    /// has not had it. They wait for our own promise to be durable: a
    /// restarted node then never picks this ballot again, so a ballot has
    /// one leader.
    fn prepare_new_voters(&mut self) {
        let me = self.config.node_id;
        let RoleState::Candidate(cs) = &mut self.role else {
            return;
        };
        let (ballot, from_index) = (cs.ballot, cs.from_index);
        let voters: BTreeSet<NodeId> = cs.configs.iter().flat_map(|m| m.voters()).collect();
        let new: Vec<NodeId> = voters
            .into_iter()
            .filter(|&id| id != me && cs.asked.insert(id))
            .collect();
        for to in new {
            self.io
                .send_durable(to, Message::Prepare { ballot, from_index }, false);
        }
    }

    /// Our own promise counts only once it is durable.
    pub(crate) fn candidate_on_own_promise(&mut self, promise: Ballot, now_ms: u64) {
        let RoleState::Candidate(cs) = &self.role else {
            return;
        };
        if cs.ballot != promise || cs.promises.contains_key(&self.config.node_id) {
            return;
        }
        let from_index = cs.from_index;
        let limit = ReadLimit {
            entries_max: usize::MAX,
            bytes_max: usize::MAX,
        };
        let (entries, _) = match self.read_entries(from_index, Index::MAX, limit) {
            Ok(r) => r,
            Err(e) => return self.fail(&e),
        };
        let (chosen_index, trim_index) = (self.learner.chosen_index, self.learner.trim_index);
        let me = self.config.node_id;
        if let RoleState::Candidate(cs) = &mut self.role {
            cs.absorb(entries, chosen_index, trim_index);
            cs.close_configs();
            cs.promises.insert(me, None);
        }
        self.prepare_new_voters();
        self.maybe_become_leader(now_ms);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        entries: Vec<(Index, Accepted)>,
        next_index: Option<Index>,
        chosen_index: Index,
        trim_index: Index,
        now_ms: u64,
    ) {
        let RoleState::Candidate(cs) = &mut self.role else {
            return;
        };
        if cs.ballot != ballot || cs.promises.get(&from).is_some_and(|n| n.is_none()) {
            return;
        }
        let entries = if self.config.mutated(Mutation::AdoptFirstReported) {
            entries
                .into_iter()
                .filter(|(i, _)| !cs.adopted.contains_key(i))
                .collect()
        } else {
            entries
        };
        cs.absorb(entries, chosen_index, trim_index);
        cs.close_configs();
        cs.promises.insert(from, next_index);
        if let Some(from_index) = next_index {
            self.io.send(from, Message::Prepare { ballot, from_index });
            // A promise still arriving is progress: starting over at a new
            // ballot would fetch it all again, and never finish once a
            // promise takes longer than an election timeout to send.
            self.reset_election_deadline(now_ms);
        }
        self.maybe_request_catchup(from, chosen_index, now_ms);
        self.prepare_new_voters();
        self.maybe_become_leader(now_ms);
    }

    pub(crate) fn on_nack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        promised: Ballot,
        leader: Option<NodeId>,
        now_ms: u64,
    ) {
        self.see_ballot(promised);
        let mine = match &self.role {
            RoleState::Candidate(cs) => cs.ballot == ballot,
            RoleState::Leader(ls) => ls.ballot == ballot,
            RoleState::Follower => false,
        };
        if !mine {
            return;
        }
        if promised > ballot {
            self.become_follower(None, now_ms, "a peer promised a higher ballot");
        } else if let Some(l) = leader.filter(|&l| l != self.config.node_id) {
            // A live leader elsewhere: stand down and learn through `from`.
            if matches!(self.role, RoleState::Candidate(_)) {
                self.become_follower(None, now_ms, "a live leader elsewhere");
                self.leader = Some(l);
                self.catchup_sent_ms = None;
                self.maybe_request_catchup(from, Index::MAX, now_ms);
            }
        }
    }

    /// `why` is logged when a leader steps down: an operator reading a
    /// leader change wants its cause.
    pub(crate) fn become_follower(&mut self, leader: Option<NodeId>, now_ms: u64, why: &str) {
        if let RoleState::Leader(ls) = &self.role {
            tracing::info!(node = self.config.node_id, ballot = %ls.ballot, "stepping down: {why}");
        }
        self.fail_waiters();
        self.fail_reads();
        self.role = RoleState::Follower;
        self.leader = leader;
        self.reset_election_deadline(now_ms);
    }

    /// Leadership lost: anything proposed may or may not get chosen.
    pub(crate) fn fail_waiters(&mut self) {
        for (_, ids) in std::mem::take(&mut self.waiters) {
            for id in ids {
                self.io.reply(Reply {
                    id,
                    result: Err(OpError::Indeterminate),
                });
            }
        }
    }

    fn maybe_become_leader(&mut self, now_ms: u64) {
        let RoleState::Candidate(cs) = &self.role else {
            return;
        };
        let won = cs
            .configs
            .iter()
            .all(|m| self.is_quorum_of(m, cs.complete()));
        if !won {
            return;
        }
        let RoleState::Candidate(cs) = std::mem::replace(&mut self.role, RoleState::Follower)
        else {
            return;
        };
        self.become_leader(cs, now_ms);
    }

    fn become_leader(&mut self, cs: Candidate, now_ms: u64) {
        assert_eq!(
            cs.ballot.node, self.config.node_id,
            "Invariant: a node leads only its own ballots"
        );
        assert_eq!(
            self.acceptor.promised, cs.ballot,
            "a leader holds its own promise"
        );
        if cs.max_trim > self.learner.chosen_index {
            // A peer trimmed past what we know: we lead only once caught up,
            // with the session table at its trim point (the catch-up asked
            // for in `on_promise` brings it).
            tracing::debug!(
                node = self.config.node_id,
                trim = cs.max_trim,
                "behind a peer's trim point; not leading until caught up"
            );
            self.become_follower(None, now_ms, "behind a peer's trim point");
            return;
        }
        let skip_adoption = self.config.mutated(Mutation::SkipValueAdoption);
        // Values reported chosen right after our chosen index are learned directly.
        if !skip_adoption {
            while let Some(value) = cs.chosen.get(&(self.learner.chosen_index + 1)) {
                self.learn_chosen_value(self.learner.chosen_index + 1, value.clone());
            }
        }
        let start = self.learner.chosen_index + 1;
        let end = cs
            .adopted
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.learner.chosen_index);
        let mut log = Vec::new();
        for index in start..=end {
            let value = match (cs.chosen.get(&index), cs.adopted.get(&index)) {
                _ if skip_adoption => Command::Noop.encode(),
                (Some(chosen), adopted) => {
                    if let Some(a) = adopted {
                        assert_eq!(&a.value, chosen, "Invariant: a chosen value never changes");
                    }
                    chosen.clone()
                }
                (None, Some(a)) => a.value.clone(),
                (None, None) => Command::Noop.encode(),
            };
            log.push((index, value));
        }
        tracing::debug!(node = self.config.node_id, ballot = %cs.ballot, start, end, "became leader");
        self.leader = Some(self.config.node_id);
        self.leader_contact_ms = None;
        self.start_leading(cs.ballot, start, log, now_ms);
    }
}
