//! Linearizable tails without a log write (ReadIndex).
//!
//! A read that reaches the leader of ballot `b` is answered with index
//! `R = max(chosen index when it arrived, recovered_index)` once two things
//! hold: a quorum (the leader counts itself) has answered, at ballot `b`, a
//! heartbeat *round* that started after the read arrived; and `R` is chosen
//! here. Concurrent reads share rounds: at most one round is in flight, and
//! every read that arrives meanwhile waits for the next one.
//!
//! Why every append acknowledged before the read arrived is at or below `R`,
//! in DESIGN.md's terms: an acceptor answers a Heartbeat of `b` only while
//! its promise is not above `b` (it Nacks otherwise). Each answer was sent
//! after the round started, so no acceptor of that quorum had promised a
//! ballot above `b` by then, and a leader of a higher ballot needs promises
//! from a quorum, which intersects this one: none had finished Phase 1 when
//! the read arrived, so none had chosen anything. An append acknowledged
//! before then was chosen under a ballot `<= b`: under `b` it was chosen by
//! this leader, at or below its chosen index; under a lower ballot, this
//! leader's Phase 1 found it, so it is at or below the chosen index it was
//! elected with or in the recovered range, whose end is `recovered_index`.
//! `R` itself is chosen, so a read at `R` from any node is well defined.
//!
//! No clock is trusted (no lease): a paused or cut-off leader answers no
//! read, because its round gathers no quorum.

use std::collections::{BTreeMap, VecDeque};

use paxlog_storage::{Index, NodeId, Store};

use super::replica::{Replica, RoleState};
use super::{Mutation, OpError, Reply, RequestId};

/// Reads one leader holds waiting; beyond, `Busy`.
pub(crate) const READS_WAITING_MAX: usize = 16_384;

#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingRead {
    pub(crate) id: RequestId,
    /// The index to answer.
    pub(crate) index: Index,
    /// The round whose confirmation it needs.
    pub(crate) round: u64,
}

/// The leader's read rounds.
#[derive(Debug, Default)]
pub(crate) struct ReadRounds {
    /// The latest round started; every Heartbeat carries it.
    pub(crate) round: u64,
    /// Peer → the latest round it answered at our ballot.
    /// Invariant: every value is `<= round`.
    pub(crate) acked: BTreeMap<NodeId, u64>,
    /// A read arrived while `round` was unconfirmed: start the next round
    /// as soon as `round` is confirmed.
    pub(crate) next_wanted: bool,
    /// Oldest first.
    /// Invariant: rounds and indexes never decrease along the queue; every
    /// round is `<= round + 1`, and `round + 1` only while `next_wanted`.
    pub(crate) waiting: VecDeque<PendingRead>,
    /// The highest index this leader's Phase 1 recovered (or its chosen
    /// index when elected, if higher).
    pub(crate) recovered_index: Index,
}

impl ReadRounds {
    /// The latest round a quorum (this leader included) has answered.
    pub(crate) fn confirmed(&self, quorum: usize) -> u64 {
        let mut rounds: Vec<u64> = self.acked.values().copied().collect();
        rounds.push(self.round);
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.get(quorum.saturating_sub(1)).copied().unwrap_or(0)
    }

    pub(crate) fn assert_invariants(&self) {
        if let Some((peer, r)) = self.acked.iter().find(|(_, &r)| r > self.round) {
            panic!(
                "Invariant: a peer's answered round <= the latest round (peer {peer}: {r} > {})",
                self.round
            );
        }
        let ordered = self.waiting.iter().zip(self.waiting.iter().skip(1));
        if let Some((a, b)) = ordered
            .clone()
            .find(|(a, b)| b.round < a.round || b.index < a.index)
        {
            panic!("Invariant: waiting reads in round and index order ({a:?} then {b:?})");
        }
        if let Some(r) = self
            .waiting
            .iter()
            .find(|r| r.round > self.round + 1 || (r.round == self.round + 1 && !self.next_wanted))
        {
            panic!(
                "Invariant: a waiting read needs the latest round or, if wanted, the next \
                 ({r:?}, round {}, next wanted {})",
                self.round, self.next_wanted
            );
        }
    }
}

impl<S: Store> Replica<S> {
    pub(crate) fn leader_read_index(&mut self, id: RequestId, now_ms: u64) {
        let refusal = match &self.role {
            _ if self.failed => Some(OpError::NotLeader { leader_hint: None }),
            RoleState::Leader(ls) if !self.leader_has_quorum_contact(ls, now_ms) => {
                Some(OpError::NoQuorum)
            }
            RoleState::Leader(ls) if ls.reads.waiting.len() >= READS_WAITING_MAX => {
                Some(OpError::Busy)
            }
            RoleState::Leader(_) => None,
            _ => Some(OpError::NotLeader {
                leader_hint: self.leader.filter(|&l| l != self.config.node_id),
            }),
        };
        if let Some(e) = refusal {
            return self.io.reply(Reply { id, result: Err(e) });
        }
        let quorum = self.config.quorum();
        let chosen_index = self.learner.chosen_index;
        let unconfirmed = self.config.mutated(Mutation::ReadWithoutRound);
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        let index = if self.config.mutated(Mutation::ReadIgnoresRecovered) {
            chosen_index
        } else {
            chosen_index.max(ls.reads.recovered_index)
        };
        let reads = &mut ls.reads;
        let start_round = reads.confirmed(quorum) == reads.round;
        let round = match () {
            _ if unconfirmed => reads.confirmed(quorum),
            _ if start_round => reads.round + 1,
            _ => {
                reads.next_wanted = true;
                reads.round + 1
            }
        };
        reads.waiting.push_back(PendingRead { id, index, round });
        if start_round && !unconfirmed {
            reads.round += 1;
            self.send_heartbeats(now_ms);
        }
        self.serve_reads(now_ms);
    }

    pub(crate) fn on_read_round_ack(&mut self, from: NodeId, round: u64, now_ms: u64) {
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        if round > ls.reads.round {
            // A round we never started: a faulty peer's; it proves nothing.
            return;
        }
        let acked = ls.reads.acked.entry(from).or_default();
        *acked = (*acked).max(round);
        self.serve_reads(now_ms);
    }

    /// Answers every read whose round is confirmed and whose index is
    /// chosen; starts the round the waiting reads want next.
    pub(crate) fn serve_reads(&mut self, now_ms: u64) {
        let quorum = self.config.quorum();
        let chosen_index = self.learner.chosen_index;
        let Replica {
            role: RoleState::Leader(ls),
            io,
            ..
        } = self
        else {
            return;
        };
        let reads = &mut ls.reads;
        let confirmed = reads.confirmed(quorum);
        while let Some(&read) = reads.waiting.front() {
            if read.round > confirmed || read.index > chosen_index {
                break;
            }
            reads.waiting.pop_front();
            io.reply(Reply {
                id: read.id,
                result: Ok(read.index),
            });
        }
        if reads.next_wanted && confirmed == reads.round {
            reads.next_wanted = false;
            reads.round += 1;
            self.send_heartbeats(now_ms);
        }
    }

    /// Leadership lost: no waiting read can be confirmed any more.
    pub(crate) fn fail_reads(&mut self) {
        let leader_hint = self.leader.filter(|&l| l != self.config.node_id);
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        for read in std::mem::take(&mut ls.reads.waiting) {
            self.io.reply(Reply {
                id: read.id,
                result: Err(OpError::NotLeader { leader_hint }),
            });
        }
    }
}
