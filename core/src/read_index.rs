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
//!
//! A follower serves a tail by asking its leader for a read index
//! (`follower_read.rs`): the leader answers it as its own, after the
//! request arrived there (so after the client's), and the follower answers
//! the client once it has learned that index chosen.

use paxlog_storage::{Index, NodeId, Store};

use super::read_state::{PendingRead, ReadOrigin, READS_WAITING_MAX};
use super::replica::{Replica, RoleState};
use super::{Message, Mutation, OpError, Reply};

impl<S: Store> Replica<S> {
    /// Answers `origin` with `result` (a follower hears `None` for any error).
    fn answer_read(&mut self, origin: ReadOrigin, result: Result<Index, OpError>) {
        match origin {
            ReadOrigin::Local(id) => self.io.reply(Reply { id, result }),
            ReadOrigin::Peer(to, id) => self.io.send(
                to,
                Message::ReadIndexReply {
                    id,
                    index: result.ok(),
                },
            ),
        }
    }

    pub(crate) fn leader_read_index(&mut self, origin: ReadOrigin, now_ms: u64) {
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
                leader_hint: self.leader_hint(),
            }),
        };
        if let Some(e) = refusal {
            return self.answer_read(origin, Err(e));
        }
        let quorum = self.quorum_of(&self.learner.membership);
        let chosen_index = self.learner.chosen_index;
        let unconfirmed = self.config.mutated(Mutation::ReadWithoutRound);
        let m = &self.learner.membership;
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        let index = if self.config.mutated(Mutation::ReadIgnoresRecovered) {
            chosen_index
        } else {
            chosen_index.max(ls.reads.recovered_index)
        };
        let reads = &mut ls.reads;
        let start_round = reads.confirmed(quorum, |id| m.is_voter(id)) == reads.round;
        let round = match () {
            _ if unconfirmed => reads.confirmed(quorum, |id| m.is_voter(id)),
            _ if start_round => reads.round + 1,
            _ => {
                reads.next_wanted = true;
                reads.round + 1
            }
        };
        reads.waiting.push_back(PendingRead {
            origin,
            index,
            round,
        });
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
        let quorum = self.quorum_of(&self.learner.membership);
        let chosen_index = self.learner.chosen_index;
        let m = &self.learner.membership;
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        let reads = &mut ls.reads;
        let confirmed = reads.confirmed(quorum, |id| m.is_voter(id));
        let mut ready = Vec::new();
        while let Some(&read) = reads.waiting.front() {
            if read.round > confirmed || read.index > chosen_index {
                break;
            }
            reads.waiting.pop_front();
            ready.push(read);
        }
        let start_round = reads.next_wanted && confirmed == reads.round;
        if start_round {
            reads.next_wanted = false;
            reads.round += 1;
        }
        for read in ready {
            self.answer_read(read.origin, Ok(read.index));
        }
        if start_round {
            self.send_heartbeats(now_ms);
        }
    }

    /// Leadership lost: no waiting read can be confirmed any more.
    pub(crate) fn fail_reads(&mut self) {
        let leader_hint = self.leader_hint();
        let RoleState::Leader(ls) = &mut self.role else {
            return;
        };
        for read in std::mem::take(&mut ls.reads.waiting) {
            self.answer_read(read.origin, Err(OpError::NotLeader { leader_hint }));
        }
    }
}
