//! The state of linearizable tails: the leader's read rounds
//! (`read_index.rs`) and the tails a follower forwarded to its leader
//! (`follower_read.rs`).

use std::collections::{BTreeMap, VecDeque};

use paxlog_storage::{Index, NodeId};

use super::RequestId;

/// Reads one leader holds waiting; beyond, `Busy`.
pub(crate) const READS_WAITING_MAX: usize = 16_384;

/// Who asked for a read index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    /// This node's driver.
    Local(RequestId),
    /// A follower, with its own id for the request.
    Peer(NodeId, u64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingRead {
    pub(crate) origin: ReadOrigin,
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
    /// The latest round a quorum (this leader included) has answered;
    /// only voters' answers count.
    pub(crate) fn confirmed(&self, quorum: usize, is_voter: impl Fn(NodeId) -> bool) -> u64 {
        let mut rounds: Vec<u64> = self
            .acked
            .iter()
            .filter(|(&id, _)| is_voter(id))
            .map(|(_, &r)| r)
            .collect();
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

#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    pub(crate) request: RequestId,
    pub(crate) leader: NodeId,
    pub(crate) sent_ms: u64,
}

/// A life's first read-index request id is below it, picked at random: a
/// restart's ids then almost never meet its previous life's, and counting up
/// from any of them never overflows.
pub(crate) const READ_IDS_START_MAX: u64 = 1 << 62;

#[derive(Debug, Default)]
pub(crate) struct FollowerReads {
    pub(crate) next_id: u64,
    /// Sent to a leader, not answered yet, by our id.
    /// Invariant: every id is `< next_id`.
    pub(crate) asked: BTreeMap<u64, Asked>,
    /// Answered by the leader; waiting until the index is chosen here.
    /// Oldest first.
    pub(crate) answered: VecDeque<(Asked, Index)>,
}

impl FollowerReads {
    pub(crate) fn len(&self) -> usize {
        self.asked.len() + self.answered.len()
    }

    pub(crate) fn assert_invariants(&self) {
        assert!(
            self.len() <= READS_WAITING_MAX,
            "Invariant: follower reads are bounded ({})",
            self.len()
        );
        if let Some((&id, _)) = self.asked.iter().next_back() {
            assert!(
                id < self.next_id,
                "Invariant: an asked id is below next_id ({id} vs {})",
                self.next_id
            );
        }
    }
}
