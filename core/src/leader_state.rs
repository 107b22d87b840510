//! The leader's state: its log of acknowledgements (the values themselves
//! live once, in the acceptor's mirror) and each acceptor's progress.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use paxlog_storage::{Accepted, Ballot, Index, NodeId};

use super::holds::HoldClock;
use super::read_state::ReadRounds;

#[derive(Debug, Default)]
pub(crate) struct LeaderEntry {
    /// Acceptors whose accept at our ballot is durable (ourselves included
    /// only after our own write persisted).
    pub(crate) acks: BTreeSet<NodeId>,
    /// The value is a `Reconfigure`: the index after it is counted against
    /// what it makes (`maybe_advance_leader_chosen`).
    pub(crate) change: bool,
    /// When this leader proposed it: how long the chosen index has stalled.
    pub(crate) proposed_ms: u64,
}

/// Replication state of one acceptor.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Next index to send.
    /// Invariant: `match_index < next_index <= ` the leader's `next_index`.
    pub(crate) next_index: Index,
    /// Every index `<= match_index` from our start is acknowledged (or known
    /// to the peer by catch-up).
    pub(crate) match_index: Index,
    /// `(last index, bytes)` per Accept in flight, oldest first.
    /// Invariant: every last index is in `(match_index, next_index)`.
    pub(crate) sent: VecDeque<(Index, usize)>,
    /// Invariant: the sum of the bytes in `sent`.
    pub(crate) inflight_bytes: usize,
    pub(crate) last_progress_ms: u64,
    /// Its Accepts go without `sync`, and its answers count toward nothing
    /// (`thrifty`); they only pace the window.
    pub(crate) lazy: bool,
}

impl Progress {
    pub(crate) fn new(start: Index, now_ms: u64) -> Self {
        Progress {
            next_index: start,
            match_index: start - 1,
            sent: VecDeque::new(),
            inflight_bytes: 0,
            last_progress_ms: now_ms,
            lazy: false,
        }
    }

    /// Asks the peer to sync from now on: everything not known chosen goes
    /// again with `sync`, since what it accepted unsynced is not a vote.
    pub(crate) fn make_eager(&mut self, chosen_index: Index, now_ms: u64) {
        self.lazy = false;
        self.match_index = self.match_index.min(chosen_index);
        self.go_back(now_ms);
    }

    pub(crate) fn inflight_entries(&self) -> usize {
        (self.next_index - 1 - self.match_index) as usize
    }

    pub(crate) fn on_match(&mut self, now_ms: u64) {
        while self
            .sent
            .front()
            .is_some_and(|&(last, _)| last <= self.match_index)
        {
            if let Some((_, bytes)) = self.sent.pop_front() {
                self.inflight_bytes -= bytes;
            }
        }
        if self.next_index <= self.match_index {
            self.next_index = self.match_index + 1;
        }
        self.last_progress_ms = now_ms;
    }

    pub(crate) fn go_back(&mut self, now_ms: u64) {
        self.next_index = self.match_index + 1;
        self.sent.clear();
        self.inflight_bytes = 0;
        self.last_progress_ms = now_ms;
    }

    fn assert_invariants(&self, peer: NodeId, leader_next_index: Index, full: bool) {
        assert!(
            self.match_index < self.next_index && self.next_index <= leader_next_index,
            "Invariant: progress match_index < next_index <= leader next_index \
             (peer {peer}: {} / {} / {leader_next_index})",
            self.match_index,
            self.next_index
        );
        if !full {
            return;
        }
        if let Some(&(last, _)) = self
            .sent
            .iter()
            .find(|&&(last, _)| last <= self.match_index || last >= self.next_index)
        {
            panic!(
                "Invariant: every sent Accept ends in (match_index, next_index) \
                 (peer {peer}: {last} vs ({}, {}))",
                self.match_index, self.next_index
            );
        }
        let sum: usize = self.sent.iter().map(|&(_, bytes)| bytes).sum();
        assert_eq!(
            self.inflight_bytes, sum,
            "Invariant: inflight_bytes == sum of sent bytes (peer {peer})"
        );
    }
}

#[derive(Debug)]
pub(crate) struct Leader {
    /// Invariant: `ballot == promised`, and it is this node's own ballot.
    pub(crate) ballot: Ballot,
    /// The next free index.
    pub(crate) next_index: Index,
    /// Invariant: holds exactly the indexes in `(chosen_index, next_index)`.
    /// Invariant: each is mirrored by the acceptor at `ballot` (that is
    /// where its value is).
    pub(crate) log: BTreeMap<Index, LeaderEntry>,
    pub(crate) peers: BTreeMap<NodeId, Progress>,
    /// Invariant: the sum of the value bytes of `log` (read from the mirror).
    pub(crate) uncommitted_bytes: usize,
    /// `(client_id, seq)` of appends in `log`, so a retry joins the original.
    /// Invariant: every index is in `(chosen_index, next_index)`.
    pub(crate) inflight_keys: BTreeMap<(u64, u64), Index>,
    pub(crate) started_ms: u64,
    pub(crate) last_heartbeat_ms: u64,
    pub(crate) reads: ReadRounds,
    /// Index of the latest change in `log` or before it (0: none): while it
    /// is above the chosen index nothing new is proposed (α = 1).
    /// Invariant: `change_index < next_index`.
    pub(crate) change_index: Index,
    /// Each retention hold's lease, by this leader's clock.
    pub(crate) hold_clocks: BTreeMap<String, HoldClock>,
    /// Every peer syncs until then (`thrifty`): an election timeout after the
    /// leader's start (`start_leading`) or after a stall.
    pub(crate) all_eager_until_ms: u64,
    /// Turns which peers sync after each stall (`thrifty`).
    pub(crate) eager_rotation: usize,
}

impl Leader {
    pub(crate) fn new(ballot: Ballot, start: Index, now_ms: u64) -> Self {
        Leader {
            ballot,
            next_index: start,
            log: BTreeMap::new(),
            peers: BTreeMap::new(),
            uncommitted_bytes: 0,
            inflight_keys: BTreeMap::new(),
            started_ms: now_ms,
            last_heartbeat_ms: now_ms,
            reads: ReadRounds::default(),
            change_index: 0,
            hold_clocks: BTreeMap::new(),
            all_eager_until_ms: now_ms,
            eager_rotation: 0,
        }
    }

    /// Drops what is now chosen; `entries` is the acceptor's mirror, which
    /// still holds every index of the log.
    pub(crate) fn on_chosen(&mut self, chosen_index: Index, entries: &BTreeMap<Index, Accepted>) {
        while self
            .log
            .first_key_value()
            .is_some_and(|(&i, _)| i <= chosen_index)
        {
            if let Some((i, _)) = self.log.pop_first() {
                self.uncommitted_bytes -= entries.get(&i).map_or(0, |a| a.value.len());
            }
        }
    }

    /// The checks of this part, given what the rest of the replica holds.
    pub(crate) fn assert_invariants(
        &self,
        me: NodeId,
        promised: Ballot,
        chosen_index: Index,
        entries: &BTreeMap<Index, Accepted>,
        full: bool,
    ) {
        assert!(
            self.ballot == promised && self.ballot.node == me,
            "Invariant: leader ballot == promised and is our own ({} vs {promised}, node {me})",
            self.ballot
        );
        let covers = self.log.len() as u64 == self.next_index.saturating_sub(chosen_index + 1)
            && self
                .log
                .keys()
                .next()
                .is_none_or(|&i| i == chosen_index + 1)
            && self
                .log
                .keys()
                .next_back()
                .is_none_or(|&i| i + 1 == self.next_index);
        assert!(
            covers,
            "Invariant: leader log covers exactly (chosen_index, next_index) \
             ({} entries, chosen {chosen_index}, next {})",
            self.log.len(),
            self.next_index
        );
        for (&peer, p) in &self.peers {
            p.assert_invariants(peer, self.next_index, full);
        }
        self.reads.assert_invariants();
        if !full {
            return;
        }
        let mut bytes = 0;
        for &i in self.log.keys() {
            let mirrored = entries.get(&i).filter(|a| a.ballot == self.ballot);
            let Some(a) = mirrored else {
                panic!("Invariant: every leader log index is mirrored at its ballot ({i})");
            };
            bytes += a.value.len();
        }
        assert_eq!(
            self.uncommitted_bytes, bytes,
            "Invariant: uncommitted_bytes == sum of the leader log's values"
        );
        if let Some((key, &i)) = self
            .inflight_keys
            .iter()
            .find(|(_, &i)| i <= chosen_index || i >= self.next_index)
        {
            panic!(
                "Invariant: every inflight key's index in (chosen_index, next_index) \
                 ({key:?} at {i}, chosen {chosen_index}, next {})",
                self.next_index
            );
        }
    }
}
