//! The replica: one node's acceptor, learner and (when elected) leader,
//! as a sans-IO state machine. Handlers live in the sibling modules.

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog_storage::{Accepted, Ballot, Health, Index, NodeId, ReadLimit, Store};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::acceptor_state::AcceptorState;
use super::candidate::Candidate;
use super::dedup::DedupTable;
use super::io::Io;
use super::leader_state::Leader;
use super::learner_state::LearnerState;
use super::prevote::PreVote;
use super::{
    Chosen, Command, Config, CoreError, Message, Mutation, Outbound, PeerStatus, Persist, Proposal,
    Reply, Role, Status, Ticket,
};

#[derive(Debug)]
pub(crate) enum RoleState {
    Follower,
    Candidate(Candidate),
    Leader(Leader),
}

/// User appends read for clients, and where the next read starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntries {
    pub entries: Vec<(Index, Bytes)>,
    /// Past every index this run covered (hidden ones included).
    pub next: Index,
    pub emitted_index: Index,
}

/// A bounded run of accepted entries and where the next run would start.
pub(crate) type EntryRun = (Vec<(Index, Accepted)>, Option<Index>);

/// Entries read from the store per step while recovering.
const RECOVER_CHUNK: usize = 4096;
/// At most this many chosen entries are replayed to rebuild the dedup table.
const DEDUP_REBUILD_ENTRIES_MAX: u64 = 100_000;
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
    pub(crate) acceptor: AcceptorState,
    pub(crate) learner: LearnerState,
    /// Proposals waiting for their index to be chosen.
    /// Invariant: only a leader has waiters, each at an index in
    /// `(dedup_index, next_index)` of its log.
    pub(crate) waiters: BTreeMap<Index, Vec<super::RequestId>>,
    pub(crate) io: Io,
    pub(crate) role: RoleState,
    pub(crate) leader: Option<NodeId>,
    /// Last message from a leader whose ballot is not below our promise.
    pub(crate) leader_contact_ms: Option<u64>,
    pub(crate) election_deadline_ms: u64,
    pub(crate) peer_contact_ms: BTreeMap<NodeId, u64>,
    pub(crate) catchup_sent_ms: Option<u64>,
    pub(crate) pre_vote: Option<PreVote>,
}

impl<S: Store> Replica<S> {
    pub fn new(config: Config, store: S, seed: u64, now_ms: u64) -> Result<Self, CoreError> {
        validate(&config)?;
        let meta = store.metadata();
        let suspect = matches!(store.health(), Health::Suspect { .. });
        let mut promised = meta.promised;
        if config.mutated(Mutation::ForgetPromiseOnRestart) {
            promised = Ballot::ZERO;
        }
        let mut entries = BTreeMap::new();
        let last_index = store.last_index().max(meta.trim_index);
        let mut from = meta.chosen_index.max(meta.trim_index) + 1;
        let limit = ReadLimit {
            entries_max: RECOVER_CHUNK,
            bytes_max: usize::MAX,
        };
        while from <= last_index {
            let chunk = store.range(from, last_index, limit)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            entries.extend(chunk);
            from = last + 1;
        }
        let rng =
            ChaCha8Rng::seed_from_u64(seed ^ config.node_id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dedup = DedupTable::new(
            config.limits.dedup_clients_max,
            config.limits.dedup_window_per_client,
        );
        let max_seen = promised.max(
            entries
                .values()
                .map(|a: &Accepted| a.ballot)
                .max()
                .unwrap_or_default(),
        );
        let mut replica = Replica {
            config,
            store,
            rng,
            now_ms,
            chosen_flushed_ms: now_ms,
            failed: false,
            acceptor: AcceptorState {
                promised,
                max_seen,
                entries,
                last_index,
                suspect,
            },
            learner: LearnerState {
                chosen_index: meta.chosen_index.max(meta.trim_index),
                durable_chosen_index: meta.chosen_index.max(meta.trim_index),
                trim_index: meta.trim_index,
                emitted_index: meta.trim_index,
                applied_index: meta.trim_index,
                dedup_index: 0,
                dedup,
                duplicates: BTreeMap::new(),
                pending_trims: BTreeMap::new(),
            },
            waiters: BTreeMap::new(),
            io: Io::new(),
            role: RoleState::Follower,
            leader: None,
            leader_contact_ms: None,
            election_deadline_ms: 0,
            peer_contact_ms: BTreeMap::new(),
            catchup_sent_ms: None,
            pre_vote: None,
        };
        replica.rebuild_dedup()?;
        replica.reset_election_deadline(now_ms);
        replica.debug_assert_invariants();
        Ok(replica)
    }

    fn rebuild_dedup(&mut self) -> Result<(), CoreError> {
        let from = (self.learner.trim_index + 1).max(
            self.learner
                .chosen_index
                .saturating_sub(DEDUP_REBUILD_ENTRIES_MAX)
                + 1,
        );
        self.learner.dedup_index = from - 1;
        // Replays only; no replies or trims come out of a rebuild.
        while self.learner.dedup_index < self.learner.chosen_index {
            let index = self.learner.dedup_index + 1;
            if let Command::Append { client_id, seq, .. } = self.command_at(index)? {
                self.learner.dedup.record(client_id, seq, index);
            }
            self.learner.dedup_index = index;
        }
        Ok(())
    }

    // ---- inputs

    pub fn on_message(&mut self, from: NodeId, message: Message, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.failed || from == self.config.node_id || !self.config.members.contains(&from) {
            return;
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
            } => self.on_accept(from, ballot, first_index, values, chosen_index, now),
            Message::Accepted {
                ballot,
                indexes,
                chosen_index,
            } => self.on_accepted(from, ballot, &indexes, chosen_index, now),
            Message::Heartbeat {
                ballot,
                chosen_index,
            } => self.on_heartbeat(from, ballot, chosen_index, now),
            Message::HeartbeatAck {
                ballot,
                chosen_index,
            } => self.on_heartbeat_ack(from, ballot, chosen_index, now),
            Message::CatchupRequest { from_index } => self.on_catchup_request(from, from_index),
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
            } => self.on_catchup(from, first_index, values, chosen_index, trim_index, now),
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
        if now >= self.chosen_flushed_ms + self.config.chosen_flush_interval_ms {
            self.io.flush_all(&self.acceptor.entries);
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

    pub fn on_persisted(&mut self, ticket: Ticket, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.failed {
            return;
        }
        let batch = self.io.persisted(ticket);
        if let Some(c) = batch.chosen_index {
            self.learner.durable_chosen_index = self.learner.durable_chosen_index.max(c);
        }
        if let Some(t) = batch.trim_index {
            self.learner.durable_chosen_index = self.learner.durable_chosen_index.max(t);
        }
        self.leader_on_own_persisted(&batch.accepts);
        let now = self.now_ms;
        if let Some(p) = batch.promise {
            self.candidate_on_own_promise(p, now);
        }
        self.after_input();
    }

    pub fn set_applied(&mut self, index: Index) {
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
            return Some(out);
        }
        let now = self.now_ms;
        self.leader_send_accepts(now);
        let out = self.io.poll_message();
        self.debug_assert_invariants();
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
        let out = self.io.poll_reply();
        self.debug_assert_invariants();
        out
    }

    // ---- queries

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// This node's role, without building a whole [`Status`].
    pub fn role(&self) -> Role {
        match &self.role {
            RoleState::Follower => Role::Follower,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The highest index this node knows chosen.
    pub fn chosen_index(&self) -> Index {
        self.learner.chosen_index
    }

    pub fn trim_index(&self) -> Index {
        self.learner.trim_index
    }

    pub fn status(&self) -> Status {
        let role = self.role();
        let peers = match &self.role {
            RoleState::Leader(ls) => Some(ls),
            RoleState::Follower | RoleState::Candidate(_) => None,
        };
        let peers = self
            .config
            .peers()
            .map(|id| PeerStatus {
                id,
                match_index: peers
                    .and_then(|ls| ls.peers.get(&id))
                    .map_or(0, |p| p.match_index),
                last_contact_ms: self.peer_contact_ms.get(&id).copied(),
            })
            .collect();
        Status {
            node_id: self.config.node_id,
            role,
            ballot: self.acceptor.promised,
            leader: self.leader,
            chosen_index: self.learner.chosen_index,
            last_index: self.acceptor.last_index,
            trim_index: self.learner.trim_index,
            peers,
            suspect: self.acceptor.suspect,
        }
    }

    /// The last index handed out by `poll_chosen`: reads for clients stop
    /// here, since above it whether an entry is a duplicate is not known yet.
    pub fn emitted_index(&self) -> Index {
        self.learner.emitted_index
    }

    /// The user appends in `[from, to]`, never beyond the emitted index:
    /// no-ops, trims and duplicates are left out but covered by `next`.
    pub fn read_user_entries(
        &self,
        from: Index,
        to: Index,
        limit: ReadLimit,
    ) -> Result<UserEntries, CoreError> {
        let from = from.max(1);
        let to = to.min(self.learner.emitted_index);
        let mut run = UserEntries {
            entries: Vec::new(),
            next: from,
            emitted_index: self.learner.emitted_index,
        };
        if from > to {
            return Ok(run);
        }
        for (index, command) in self.read_chosen(from, limit)? {
            if index > to {
                break;
            }
            run.next = index + 1;
            if self.learner.duplicates.contains_key(&index) {
                continue;
            }
            if let Command::Append { payload, .. } = command {
                run.entries.push((index, payload));
            }
        }
        Ok(run)
    }

    /// Chosen entries from `from` (never beyond the chosen index).
    pub fn read_chosen(
        &self,
        from: Index,
        limit: ReadLimit,
    ) -> Result<Vec<(Index, Command)>, CoreError> {
        if from <= self.learner.trim_index {
            return Err(CoreError::Trimmed {
                index: from,
                first: self.learner.trim_index + 1,
            });
        }
        let (entries, _) = self.read_entries(from, self.learner.chosen_index, limit)?;
        entries
            .into_iter()
            .map(|(i, a)| {
                Command::decode(&a.value)
                    .map(|c| (i, c))
                    .map_err(|e| CoreError::Decode {
                        index: i,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    // ---- shared helpers

    /// Work every input ends with.
    fn after_input(&mut self) {
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
            self.acceptor.promised = ballot;
            self.io.stage_promise(ballot);
        }
        self.see_ballot(ballot);
    }

    /// Stages an accepted entry and mirrors it in memory.
    pub(crate) fn store_accept(&mut self, index: Index, accepted: Accepted) {
        assert!(index > self.learner.trim_index);
        assert!(
            index > self.learner.chosen_index,
            "Invariant: a chosen value never changes"
        );
        self.acceptor.last_index = self.acceptor.last_index.max(index);
        self.io.stage_accept(index, accepted.value.len());
        self.acceptor.entries.insert(index, accepted);
    }

    pub(crate) fn entry(&self, index: Index) -> Result<Option<Accepted>, CoreError> {
        if let Some(a) = self.acceptor.entries.get(&index) {
            return Ok(Some(a.clone()));
        }
        if index <= self.learner.trim_index || index > self.acceptor.last_index {
            return Ok(None);
        }
        Ok(self.store.get(index)?)
    }

    pub(crate) fn value_at(&self, index: Index) -> Option<Bytes> {
        self.entry(index).ok().flatten().map(|a| a.value)
    }

    pub(crate) fn command_at(&self, index: Index) -> Result<Command, CoreError> {
        let a = self.entry(index)?.ok_or(CoreError::NotChosen {
            index,
            chosen_index: self.learner.chosen_index,
        })?;
        Command::decode(&a.value).map_err(|e| CoreError::Decode {
            index,
            reason: e.to_string(),
        })
    }

    /// Accepted entries in `[from, to]`, bounded; also the next index to read
    /// when the bound cut the range short.
    pub(crate) fn read_entries(
        &self,
        from: Index,
        to: Index,
        limit: ReadLimit,
    ) -> Result<EntryRun, CoreError> {
        let from = from.max(self.learner.trim_index + 1);
        let to = to.min(self.acceptor.last_index);
        let mut out: Vec<(Index, Accepted)> = Vec::new();
        let mut bytes = 0usize;
        let full = |out: &Vec<(Index, Accepted)>, bytes: usize| {
            !out.is_empty() && (out.len() >= limit.entries_max || bytes >= limit.bytes_max)
        };
        // The store is authoritative below the first mirrored index.
        let mirror_from = self
            .acceptor
            .entries
            .keys()
            .next()
            .copied()
            .unwrap_or(Index::MAX);
        if from < mirror_from && from <= to {
            let store_to = to.min(mirror_from.saturating_sub(1));
            out = self.store.range(from, store_to, limit)?;
            bytes = out.iter().map(|(_, a)| a.value.len()).sum();
            if let Some(&(last, _)) = out.last() {
                // The store may have stopped at its bound: look whether more is left.
                let probe = ReadLimit {
                    entries_max: 1,
                    bytes_max: usize::MAX,
                };
                if last < store_to && !self.store.range(last + 1, store_to, probe)?.is_empty() {
                    return Ok((out, Some(last + 1)));
                }
            }
        }
        for (&i, a) in self.acceptor.entries.range(from..=to.max(from)) {
            if i > to {
                break;
            }
            if full(&out, bytes) {
                return Ok((out, Some(i)));
            }
            bytes += a.value.len();
            out.push((i, a.clone()));
        }
        Ok((out, None))
    }

    /// Drops mirrored entries the store holds durably and nobody needs.
    pub(crate) fn prune_entries(&mut self) {
        let floor = self
            .learner
            .emitted_index
            .min(self.learner.dedup_index)
            .min(self.learner.durable_chosen_index);
        while self
            .acceptor
            .entries
            .first_key_value()
            .is_some_and(|(&i, _)| i <= floor)
        {
            self.acceptor.entries.pop_first();
        }
    }

    pub(crate) fn members_len(&self) -> usize {
        self.config.members.len()
    }
}

fn validate(config: &Config) -> Result<(), CoreError> {
    let n = config.members.len();
    if n == 0 || !config.members.contains(&config.node_id) {
        return Err(CoreError::Config("members must include node_id".into()));
    }
    if config.members.contains(&0) {
        return Err(CoreError::Config("0 is not a valid node id".into()));
    }
    let mut sorted = config.members.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != n {
        return Err(CoreError::Config("duplicate member ids".into()));
    }
    if config.election_timeout_min_ms == 0
        || config.election_timeout_min_ms > config.election_timeout_max_ms
        || config.heartbeat_interval_ms == 0
        || config.heartbeat_interval_ms >= config.election_timeout_min_ms
    {
        return Err(CoreError::Config(
            "need 0 < heartbeat_interval_ms < election_timeout_min_ms <= election_timeout_max_ms"
                .into(),
        ));
    }
    let bounds = [
        config.limits.window_entries_max,
        config.limits.window_bytes_max,
        config.limits.batch_entries_max,
        config.limits.batch_bytes_max,
        config.limits.value_bytes_max,
        config.limits.catchup_entries_max,
        config.limits.catchup_bytes_max,
    ];
    if bounds.contains(&0) {
        return Err(CoreError::Config("every bound must be positive".into()));
    }
    Ok(())
}
