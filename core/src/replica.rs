//! The replica: one node's acceptor, learner and (when elected) leader,
//! as a sans-IO state machine. Handlers live in the sibling modules.

use std::collections::BTreeMap;

use paxlog_storage::{Accepted, Ballot, Index, NodeId, Store};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::acceptor_state::AcceptorState;
use super::candidate::Candidate;
use super::holds::EXPIRE_REQUEST;
use super::io::Io;
use super::leader_state::Leader;
use super::learner_state::LearnerState;
use super::prevote::PreVote;
use super::read_state::{FollowerReads, ReadOrigin};
use super::{
    Chosen, Config, Envelope, Message, Mutation, Outbound, Persist, Proposal, Reply, RequestId,
    Ticket,
};

#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    Candidate(Candidate),
    Leader(Leader),
}

/// One member of the cluster. See the module docs for the calling protocol.
#[derive(Debug)]
pub struct Replica<S: Store> {
    pub(crate) config: Config,
    pub(crate) store: S,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) now_ms: u64,
    /// When a lone chosen index was last flushed (see `chosen_flush_interval_ms`).
    pub(crate) chosen_flushed_ms: u64,
    pub(crate) failed: bool,
    /// Appends this replica proposed as leader at a new index, and their
    /// encoded bytes, since it started: a retry that joins an append in
    /// flight or already chosen is not counted again (metrics).
    pub(crate) appends_proposed: (u64, u64),
    pub(crate) acceptor: AcceptorState,
    pub(crate) learner: LearnerState,
    /// Proposals waiting for their index to be chosen.
    /// Invariant: only a leader has waiters, each at an index in
    /// `(dedup_index, next_index)` of its log.
    pub(crate) waiters: BTreeMap<Index, Vec<super::RequestId>>,
    pub(crate) io: Io,
    pub(crate) role: RoleState,
    pub(crate) debug_checks: super::debug_checks::DebugChecks,
    pub(crate) leader: Option<NodeId>,
    /// Last message from a leader whose ballot is not below our promise.
    pub(crate) leader_contact_ms: Option<u64>,
    pub(crate) election_deadline_ms: u64,
    pub(crate) peer_contact_ms: BTreeMap<NodeId, u64>,
    pub(crate) catchup_sent_ms: Option<u64>,
    /// Peer → when we last asked it for catch-up; a Catchup is taken only
    /// from one of these (or from our leader). At most one per peer.
    pub(crate) catchup_asked: BTreeMap<NodeId, u64>,
    pub(crate) pre_vote: Option<PreVote>,
    /// Tails this node, not leading, forwarded to its leader.
    pub(crate) follower_reads: FollowerReads,
    /// This data directory's incarnation (`Store::incarnation`).
    pub(crate) incarnation: u64,
    /// Each peer's incarnation and chosen index, as it last told us: what
    /// the leader binds an unbound member to, and a learner's lag.
    /// Invariant: only members of the known configuration (bounded).
    pub(crate) peer_incarnation: BTreeMap<NodeId, u64>,
    pub(crate) peer_chosen: BTreeMap<NodeId, Index>,
}

impl<S: Store> Replica<S> {
    // ---- inputs

    pub fn on_message(&mut self, from: NodeId, envelope: impl Into<Envelope>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let envelope = envelope.into();
        if self.failed || from == self.config.node_id {
            return;
        }
        if let Some(why) = self.ignore_sender(from, &envelope) {
            tracing::debug!(node = self.config.node_id, from, %why, "ignoring peer message");
            self.after_input();
            return;
        }
        let message = envelope.message;
        if let Some(why) = self.ignore_peer_message(from, &message) {
            tracing::debug!(node = self.config.node_id, from, %why, "ignoring peer message");
            return;
        }
        if let Message::Catchup { .. } = message {
            self.catchup_asked.remove(&from);
        }
        let now = self.now_ms;
        match message {
            Message::Prepare { ballot, from_index } => {
                self.on_prepare(from, ballot, from_index, now)
            }
            Message::Promise {
                ballot,
                from_index: _,
                entries,
                next_index,
                chosen_index,
                trim_index,
            } => self.on_promise(
                from,
                ballot,
                entries,
                next_index,
                chosen_index,
                trim_index,
                now,
            ),
            Message::Nack {
                ballot,
                promised,
                leader,
            } => self.on_nack(from, ballot, promised, leader, now),
            Message::Accept {
                ballot,
                first_index,
                values,
                chosen_index,
                sync,
            } => self.on_accept(from, ballot, first_index, values, chosen_index, sync, now),
            Message::Accepted {
                ballot,
                indexes,
                chosen_index,
                synced,
            } => self.on_accepted(from, ballot, &indexes, chosen_index, synced, now),
            Message::Heartbeat {
                ballot,
                chosen_index,
                round,
            } => self.on_heartbeat(from, ballot, chosen_index, round, now),
            Message::HeartbeatAck {
                ballot,
                chosen_index,
                round,
            } => self.on_heartbeat_ack(from, ballot, chosen_index, round, now),
            Message::CatchupRequest { from_index } => self.on_catchup_request(from, from_index),
            Message::ReadIndexRequest { id } => {
                self.leader_read_index(ReadOrigin::Peer(from, id), now)
            }
            Message::ReadIndexReply { id, index } => self.on_read_index_reply(from, id, index),
            Message::PreVote { ballot } => self.on_pre_vote(from, ballot, now),
            Message::PreVoteReply {
                ballot,
                granted,
                promised,
            } => self.on_pre_vote_reply(from, ballot, granted, promised, now),
            Message::Catchup {
                first_index,
                values,
                chosen_index,
                trim_index,
                trim_state,
            } => self.on_catchup(
                from,
                first_index,
                values,
                chosen_index,
                trim_index,
                trim_state,
                now,
            ),
        }
        self.after_input();
    }

    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.failed {
            return;
        }
        let now = self.now_ms;
        if matches!(self.role, RoleState::Leader(_)) {
            self.leader_tick(now);
        } else if now >= self.election_deadline_ms {
            self.on_election_timeout(now);
        }
        self.expire_follower_reads(now);
        if now >= self.chosen_flushed_ms + self.config.chosen_flush_interval_ms {
            self.io.flush_chosen(&self.acceptor.entries);
            self.chosen_flushed_ms = now;
        }
        self.after_input();
    }

    pub fn propose(&mut self, proposal: Proposal, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        self.leader_propose(proposal, now);
        self.after_input();
    }

    /// A linearizable tail (see `read_index`): answered through
    /// [`Replica::poll_reply`] with a chosen index at or above every index
    /// acknowledged before this call, or with an error (`NotLeader`, …).
    pub fn read_index(&mut self, id: RequestId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        match self.role {
            RoleState::Leader(_) => self.leader_read_index(ReadOrigin::Local(id), now),
            _ => self.follower_read_index(id, now),
        }
        self.after_input();
    }

    pub fn on_persisted(&mut self, ticket: Ticket, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.failed {
            return;
        }
        let (batch, synced) = self.io.persisted(ticket);
        if let Some(c) = batch.chosen_index {
            self.learner.durable_chosen_index = self.learner.durable_chosen_index.max(c);
        }
        if let Some(t) = batch.trim_index {
            self.learner.durable_chosen_index = self.learner.durable_chosen_index.max(t);
        }
        if synced {
            self.leader_on_own_persisted(&batch.accepts);
        }
        let now = self.now_ms;
        if let Some(p) = batch.promise {
            assert!(synced, "Invariant: a promise is always synced");
            self.candidate_on_own_promise(p, now);
        }
        self.after_input();
    }

    pub fn set_applied(&mut self, index: Index) {
        // An application restarted behind the trim point needs a snapshot.
        if index < self.learner.trim_index {
            self.learner.behind_trim = true;
        }
        self.learner.applied_index = self.learner.applied_index.max(index);
        self.learner.emitted_index = self
            .learner
            .emitted_index
            .max(index.min(self.learner.dedup_index));
        self.maybe_trim();
        self.prune_entries();
        self.debug_assert_invariants();
    }

    /// Fail-stop after a storage error: nothing is acknowledged after this.
    pub fn on_storage_failed(&mut self) {
        self.failed = true;
    }

    // ---- outputs

    pub fn poll_write(&mut self) -> Option<Persist> {
        if self.failed {
            return None;
        }
        let out = self.io.poll_write(&self.acceptor.entries);
        self.debug_assert_invariants();
        out
    }

    pub fn poll_message(&mut self) -> Option<Outbound> {
        if self.failed {
            return None;
        }
        if let Some(out) = self.io.poll_message() {
            return Some(self.seal(out));
        }
        let now = self.now_ms;
        self.leader_send_accepts(now);
        let out = self.io.poll_message();
        self.debug_assert_invariants();
        out.map(|o| self.seal(o))
    }

    /// Names our epoch and incarnation on an outgoing message.
    fn seal(&self, mut out: Outbound) -> Outbound {
        out.epoch = self.learner.membership.epoch;
        out.incarnation = self.incarnation;
        out
    }

    pub fn poll_chosen(&mut self) -> Option<Chosen> {
        if self.failed {
            return None;
        }
        let out = self.learner_poll_chosen();
        self.debug_assert_invariants();
        out
    }

    pub fn poll_reply(&mut self) -> Option<Reply> {
        if self.failed {
            return None;
        }
        let mut out = self.io.poll_reply();
        // The leader's own binding proposals have no one to answer.
        while out
            .as_ref()
            .is_some_and(|r| r.id == super::reconfig::BIND_REQUEST || r.id == EXPIRE_REQUEST)
        {
            out = self.io.poll_reply();
        }
        self.debug_assert_invariants();
        out
    }

    // ---- shared helpers

    /// Work every input ends with.
    pub(crate) fn after_input(&mut self) {
        self.apply_chosen();
        self.maybe_trim();
        self.prune_entries();
        let (n, bytes) = self.io.staged_len();
        if n >= self.config.limits.batch_entries_max || bytes >= self.config.limits.batch_bytes_max
        {
            self.io.flush(&self.acceptor.entries);
        }
        self.debug_assert_invariants();
    }

    pub(crate) fn fail(&mut self, why: &dyn std::fmt::Display) {
        tracing::error!(node = self.config.node_id, "replica failed: {why}");
        self.failed = true;
    }

    pub(crate) fn reset_election_deadline(&mut self, now_ms: u64) {
        let (lo, hi) = (
            self.config.election_timeout_min_ms,
            self.config.election_timeout_max_ms,
        );
        self.election_deadline_ms = now_ms + self.rng.gen_range(lo..=hi.max(lo));
    }

    pub(crate) fn hears_live_leader(&self, now_ms: u64) -> bool {
        self.leader_contact_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < self.config.election_timeout_min_ms)
    }

    pub(crate) fn see_ballot(&mut self, ballot: Ballot) {
        self.acceptor.max_seen = self.acceptor.max_seen.max(ballot);
    }

    /// Raises the promise (staged; durable with the next batch).
    pub(crate) fn raise_promise(&mut self, ballot: Ballot) {
        assert!(
            ballot >= self.acceptor.promised,
            "Invariant: promised never decreases"
        );
        if ballot > self.acceptor.promised {
            let unsynced = self.config.mutated(Mutation::UnsyncedNodeIdPromise)
                && ballot.counter == self.acceptor.promised.counter;
            self.acceptor.promised = ballot;
            if !unsynced {
                self.io.stage_promise(ballot);
            }
        }
        self.see_ballot(ballot);
    }

    /// Stages an accepted entry (synced unless `sync` is false, see
    /// `Io::stage_accept`) and mirrors it in memory.
    pub(crate) fn store_accept(&mut self, index: Index, accepted: Accepted, sync: bool) {
        assert!(index > self.learner.trim_index);
        assert!(
            index > self.learner.chosen_index,
            "Invariant: a chosen value never changes"
        );
        self.acceptor.last_index = self.acceptor.last_index.max(index);
        self.io.stage_accept(index, accepted.value.len(), sync);
        self.acceptor.entries.insert(index, accepted);
    }

    /// Drops mirrored entries the store holds durably and nobody needs.
    pub(crate) fn prune_entries(&mut self) {
        let floor = self
            .learner
            .emitted_index
            .min(self.learner.dedup_index)
            .min(self.learner.durable_chosen_index);
        self.acceptor.forget_through(floor);
    }
}
