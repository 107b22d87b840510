//! The six invariants of DESIGN.md, three sharper ones that catch what the
//! six cannot see in time (a value learned before it is chosen, a vote
//! before its promise is durable, a chosen prefix a crash takes back) and
//! linearizable tails, one checker module each, then the checks of the
//! network, the quiet phase and the run as a whole. This table maps every
//! checker (the name its violations carry) to what it checks; `Checkers`
//! runs the `inv_*` ones.

use bytes::Bytes;
use paxlog::core::{Ballot, Chosen, Index, NodeId, RequestId, Status};
use paxlog_storage::{MemStore, WriteBatch};

use super::{
    inv_accept, inv_acked, inv_agreement, inv_chosen, inv_leader, inv_prefix, inv_promise,
    inv_recovery, inv_snapshot, inv_synced, inv_tail,
};

/// What a checker's violation says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The core broke a safety property: what a mutation must be caught by.
    Safety,
    /// The core did not get somewhere in time: a symptom of many bugs, and
    /// of none (so it does not count as catching a mutation).
    Liveness,
    /// The simulation itself failed to do what the run relies on.
    Harness,
}

pub const TABLE: &[(&str, Kind, &str)] = &[
    ("inv_agreement", Kind::Safety, "1. Agreement: at most one value is ever chosen for an index."),
    ("inv_prefix", Kind::Safety, "2. Every node's chosen prefix is a prefix of the one history."),
    ("inv_acked", Kind::Safety, "3. An acknowledged append is chosen at the acknowledged index and stays readable until trimmed; it is effective there and only there (exactly-once, one writer's order), and every node hides the same indexes, evicted sessions included."),
    ("inv_promise", Kind::Safety, "4. An acceptor's promised ballot never decreases, across crashes."),
    ("inv_accept", Kind::Safety, "5. An acceptor never accepts at a ballot below its promise."),
    ("inv_leader", Kind::Safety, "6. At most one leader per ballot."),
    ("inv_chosen", Kind::Safety, "7. A node learns a value only once a quorum durably accepted it at one ballot."),
    ("inv_synced", Kind::Safety, "8. A Promise or synced Accepted leaves only once the promise it reflects is durable; an unsynced Accepted is no vote."),
    ("inv_recovery", Kind::Safety, "9. After a crash, a node's durable chosen prefix holds the chosen values."),
    ("net_frame", Kind::Safety, "10. Every peer message fits the transport's frame limit, and every Promise and Catchup of entries the chunk bound (catchup_bytes_max + message overhead)."),
    ("trim", Kind::Safety, "11. A node's trim point is the upto of a Trim chosen at or below its applied index; after a last Trim in the quiet phase every node ends on it."),
    ("inv_tail", Kind::Safety, "12. A linearizable tail answered Ok is at or above every index acknowledged to a client before it was asked, chosen (at most the highest chosen index of any node, durably chosen by a quorum), and at or above every tail answered before it was asked."),
    ("inv_snapshot", Kind::Safety, "13. Every node's application state (a digest of the effective appends it applied) equals the history's at every index it applies; a node behind the trim point installs the newest published snapshot, whose content is the history's state at its index, emitting nothing in between; no trim point passes the newest snapshot."),
    ("catch_up", Kind::Liveness, "Every node, not only a majority, reaches the cluster's chosen index within QUIET_MS of the quiet phase."),
    ("liveness", Kind::Liveness, "After the heal, every client gets an append chosen."),
    ("net_partition", Kind::Harness, "Nothing crosses a partitioned link while it stays blocked."),
    ("fault_counts", Kind::Harness, "A run of at least COUNTS_SEEDS_MIN seeds injects every kind of fault often enough (asserted over the run, not per seed)."),
];

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

pub type Found = Vec<Violation>;

#[derive(Debug)]
pub struct Checkers {
    pub agreement: inv_agreement::Agreement,
    pub prefix: inv_prefix::Prefix,
    pub acked: inv_acked::Acked,
    pub promise: inv_promise::PromiseMonotonic,
    pub accept: inv_accept::AcceptAbovePromise,
    pub leader: inv_leader::OneLeaderPerBallot,
    pub chosen: inv_chosen::DurablyChosen,
    pub tail: inv_tail::Tails,
    pub snapshots: inv_snapshot::Snapshots,
    pub found: Found,
}

impl Checkers {
    pub fn new(seed: &[NodeId]) -> Self {
        Checkers {
            agreement: inv_agreement::Agreement::new(seed),
            prefix: inv_prefix::Prefix::default(),
            acked: inv_acked::Acked::default(),
            promise: inv_promise::PromiseMonotonic::default(),
            accept: inv_accept::AcceptAbovePromise,
            leader: inv_leader::OneLeaderPerBallot::default(),
            chosen: inv_chosen::DurablyChosen::new(seed),
            tail: inv_tail::Tails::default(),
            snapshots: inv_snapshot::Snapshots::default(),
            found: Vec::new(),
        }
    }

    /// A leader sent `Accept(ballot, index, value)`.
    pub fn on_proposal(&mut self, ballot: Ballot, index: Index, value: &Bytes) {
        self.agreement
            .on_proposal(ballot, index, value, &mut self.found);
    }

    /// `node` sent `Accepted(ballot, indexes)` (only after its write was durable).
    pub fn on_accepted(&mut self, node: NodeId, ballot: Ballot, indexes: &[Index]) {
        for (index, value) in self
            .agreement
            .on_accepted(node, ballot, indexes, &mut self.found)
        {
            self.prefix.on_history(index, &value, &mut self.found);
            self.acked.on_history(index, &value, &mut self.found);
        }
    }

    /// `node`'s write became durable.
    pub fn on_durable_write(&mut self, node: NodeId, batch: &WriteBatch) {
        // Inv 5 compares against the promise durable before this batch.
        self.accept
            .on_write(node, batch, self.promise.durable(node), &mut self.found);
        self.promise.on_write(node, batch, &mut self.found);
        for (index, value) in self.chosen.on_write(node, batch, &mut self.found) {
            self.acked.on_history(index, &value, &mut self.found);
        }
    }

    /// `node` sent a vote (`kind` is Promise or Accepted) at `ballot`.
    pub fn on_vote(&mut self, node: NodeId, kind: &str, ballot: Ballot) {
        let durable = self.promise.durable(node);
        inv_synced::on_vote(node, kind, ballot, durable, &mut self.found);
    }

    /// `node` is about to restart over `store`, already reduced to what was durable.
    pub fn on_store_restart(&mut self, node: NodeId, store: &MemStore) {
        inv_recovery::on_restart(node, store, &self.chosen.chosen, &mut self.found);
    }

    /// A value some node's store holds as chosen, read from its raw log.
    pub fn on_raw_chosen(&mut self, index: Index, value: &Bytes) {
        self.acked.on_history(index, value, &mut self.found);
    }

    pub fn on_restart(&mut self, node: NodeId, status: &Status) {
        self.promise
            .on_restart(node, status.ballot, &mut self.found);
    }

    pub fn on_chosen_output(&mut self, node: NodeId, applied: Index, chosen: &Chosen) {
        let value = chosen.command.encode();
        self.snapshots
            .on_output(node, applied, chosen, &mut self.found);
        self.prefix
            .on_output(node, applied, chosen.index, &value, &mut self.found);
        for (index, value) in self
            .agreement
            .on_learned(chosen.index, &value, &mut self.found)
        {
            self.prefix.on_history(index, &value, &mut self.found);
            self.acked.on_history(index, &value, &mut self.found);
        }
        self.chosen
            .on_learned(node, chosen.index, &value, &mut self.found);
        self.acked.on_history(chosen.index, &value, &mut self.found);
        self.acked
            .on_emitted(node, chosen.index, chosen.hidden.is_some(), &mut self.found);
    }

    pub fn on_ack(&mut self, client_id: u64, seq: u64, payload: &Bytes, index: Index) {
        self.acked
            .on_ack(client_id, seq, payload, index, &mut self.found);
    }

    /// An `Ok(index)` for a proposal was delivered to its client.
    pub fn on_acknowledged(&mut self, index: Index, now_ms: u64) {
        self.tail.on_acknowledged(index, now_ms);
    }

    /// `tailer` asked `node` for a tail under request `id`.
    pub fn on_tail_asked(&mut self, id: RequestId, tailer: usize, node: NodeId, now_ms: u64) {
        self.tail.on_asked(id, tailer, node, now_ms);
    }

    /// The answer to tail `id` was delivered (`Some(index)` if `Ok`);
    /// `chosen_max` is the highest chosen index any node holds now.
    pub fn on_tail_answer(
        &mut self,
        id: RequestId,
        index: Option<Index>,
        chosen_max: Index,
        now_ms: u64,
    ) {
        self.tail.on_answer(
            id,
            index,
            chosen_max,
            &self.chosen.chosen,
            now_ms,
            &mut self.found,
        );
    }

    pub fn on_status(&mut self, status: &Status, incarnation: u64) {
        self.leader.on_status(status, incarnation, &mut self.found);
        self.snapshots
            .on_trim_point(status.node_id, status.trim_index, &mut self.found);
    }
}
