//! Tailers: simulated readers asking nodes for a linearizable tail
//! (`Replica::read_index`) at random times through the faults and the
//! liveness phase; `inv_tail` checks every answer. Their requests go
//! through the clients' request ids (`RequestInfo::tail`). A follower
//! answers through its leader's read index. Two tailers, each a stream of
//! requests:
//! - tailer 0 follows leader changes as the clients do and asks each new
//!   leader at once, while what its Phase 1 recovered may not be chosen
//!   again under its ballot yet (what `ReadIgnoresRecovered` gets wrong);
//! - tailer 1 moves only when refused (to the `NotLeader` hint, else a
//!   random node) and asks a random node now and then, so it asks
//!   followers too; when a new leader is elected it asks the one before
//!   soon after, which may not know yet that it was deposed (what
//!   `ReadWithoutRound` gets wrong, see `world/deposed.rs`).

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use paxlog::core::{Ballot, Index, NodeId, OpError, RequestId, Role};
use paxlog_storage::Store;
use rand::Rng;

use super::{Event, World};
use crate::client::{request_id, RequestInfo};

/// Time between two tails of one tailer, in simulated ms.
const STEP_MS: Range<u64> = 50..250;
/// When tailer 1 asks the leader a new one replaced, in simulated ms after
/// the new one was seen leading: a round trip or a few later, when the new
/// one may have answered tails and acknowledged appends.
const DEPOSED_AFTER_MS: Range<u64> = 5..60;
/// Tailer 1 asks a random node instead of the one it believes leads.
const RANDOM_PER_MILLE: u32 = 150;
/// Tailer ids in `request_id`'s client field: above every client's, below
/// the trims' (0xFFFF).
const TAILER_IDS: usize = 0x1000;

#[derive(Debug)]
struct Tailer {
    /// The node it asks (the leader as far as it knows, or a follower that
    /// answered).
    target: NodeId,
    /// Told of every new leader (tailer 0); else moved only by refusals.
    follows_leader: bool,
}

/// What one tail was asked under, for the report.
#[derive(Clone, Copy, Debug)]
struct Asked {
    tailer: usize,
    /// The node asked led (else a follower answers through its leader).
    leader: bool,
    /// The chosen index of the node asked, when asked.
    chosen: Index,
    /// The highest index acknowledged to a client, when asked.
    acked: Index,
    /// The node asked led while another node led a higher ballot.
    deposed: bool,
}

#[derive(Debug, Default)]
pub struct Tailers {
    tailers: Vec<Tailer>,
    /// Tails not answered yet.
    asked: BTreeMap<RequestId, Asked>,
    /// The highest ballot seen led: only a higher one is a new leader
    /// (a deposed leader still leading is seen again and again).
    newest: Option<Ballot>,
}

/// What the tails did, for the report.
#[derive(Clone, Debug, Default)]
pub struct TailStats {
    pub asked: u64,
    /// Answered `Ok`, and of those by a follower (through its leader).
    pub answered: u64,
    pub by_followers: u64,
    pub refused: u64,
    /// Asked of a leader and answered above what it knew chosen when
    /// asked: the range its Phase 1 recovered lifted them.
    pub lifted: u64,
    /// Asked of a leader and answered `Ok` although a client had been
    /// acknowledged an index above what it knew chosen when asked: an
    /// answer at its chosen index would have broken `inv_tail` (a).
    pub exposed: u64,
    /// Asked of a node leading while another led a higher ballot, and of
    /// those answered `Ok`.
    pub asked_deposed: u64,
    pub answered_deposed: u64,
}

impl World {
    pub(super) fn start_tailers(&mut self) {
        for t in 0..2 {
            let target = self.members[t % self.members.len()];
            self.tailers.tailers.push(Tailer {
                target,
                follows_leader: t == 0,
            });
            let at = self.rng.gen_range(STEP_MS);
            self.schedule(
                at,
                Event::Tail {
                    tailer: t,
                    to: None,
                },
            );
        }
    }

    /// A tail of `tailer`: at `to` once, or its next one at the node it
    /// believes leads (sometimes a random one), scheduling the one after.
    pub(super) fn tail_step(&mut self, t: usize, to: Option<NodeId>) {
        let node = match to {
            Some(node) => node,
            None => {
                let next = self.rng.gen_range(STEP_MS);
                self.schedule(
                    next,
                    Event::Tail {
                        tailer: t,
                        to: None,
                    },
                );
                let tailer = &self.tailers.tailers[t];
                let random =
                    !tailer.follows_leader && self.rng.gen_range(0..1000) < RANDOM_PER_MILLE;
                if random {
                    self.members[self.rng.gen_range(0..self.members.len())]
                } else {
                    tailer.target
                }
            }
        };
        self.ask_tail(t, node);
    }

    fn ask_tail(&mut self, t: usize, node: NodeId) {
        self.next_attempt += 1;
        let id = request_id(TAILER_IDS + t, self.next_attempt);
        let info = RequestInfo {
            client: t,
            key: None,
            payload: Bytes::new(),
            tail: true,
        };
        self.requests.insert(id, info);
        self.stats.tails.asked += 1;
        let now = self.now_ms;
        self.checkers.on_tail_asked(id, t, node, now);
        self.trace(&format!("tail {id} of tailer {t} at {node}"));
        let Some(r) = self.nodes[&node].replica.as_ref() else {
            return;
        };
        let asked = Asked {
            tailer: t,
            leader: r.role() == Role::Leader,
            chosen: r.chosen_index(),
            acked: self.checkers.tail.acked_max(),
            deposed: self.deposed(node),
        };
        self.stats.tails.asked_deposed += u64::from(asked.deposed);
        self.tailers.asked.insert(id, asked);
        let Some(r) = self.nodes.get_mut(&node).and_then(|n| n.replica.as_mut()) else {
            return;
        };
        r.read_index(id, now);
        self.drain(node);
    }

    /// `node` answered tail `id`.
    pub(super) fn on_tail_reply(
        &mut self,
        node: NodeId,
        id: RequestId,
        result: Result<Index, OpError>,
    ) {
        self.requests.remove(&id);
        self.trace(&format!("tail {id} from {node}: {result:?}"));
        let Some(a) = self.tailers.asked.remove(&id) else {
            return;
        };
        let chosen_max = self.chosen_anywhere();
        let now = self.now_ms;
        let index = result.as_ref().ok().copied();
        self.checkers.on_tail_answer(id, index, chosen_max, now);
        let stats = &mut self.stats.tails;
        match result {
            Ok(r) => {
                stats.answered += 1;
                stats.by_followers += u64::from(!a.leader);
                stats.lifted += u64::from(a.leader && r > a.chosen);
                stats.exposed += u64::from(a.leader && a.acked > a.chosen);
                stats.answered_deposed += u64::from(a.deposed);
            }
            Err(e) => {
                stats.refused += 1;
                let target = match e {
                    OpError::NotLeader {
                        leader_hint: Some(h),
                    } => h,
                    OpError::Busy => node,
                    _ => self.members[self.rng.gen_range(0..self.members.len())],
                };
                self.tailers.tailers[a.tailer].target = target;
            }
        }
    }

    /// A node was seen leading `ballot`. If no higher ballot was seen led,
    /// it is a new leader: the tailers that follow leader changes ask it at
    /// once; the others ask the leader before it soon after.
    pub(super) fn tail_new_leader(&mut self, ballot: Ballot) {
        if self.tailers.newest.is_some_and(|b| b >= ballot) {
            return;
        }
        let previous = self.tailers.newest.replace(ballot).map(|b| b.node);
        for t in 0..self.tailers.tailers.len() {
            let (at, to) = if self.tailers.tailers[t].follows_leader {
                self.tailers.tailers[t].target = ballot.node;
                (0, ballot.node)
            } else {
                match previous.filter(|&p| p != ballot.node) {
                    Some(p) => (self.rng.gen_range(DEPOSED_AFTER_MS), p),
                    None => continue,
                }
            };
            self.schedule(
                at,
                Event::Tail {
                    tailer: t,
                    to: Some(to),
                },
            );
        }
    }

    /// `node` leads while another live node leads a higher ballot.
    fn deposed(&self, node: NodeId) -> bool {
        let leads = |n: &super::Node| n.replica.as_ref().is_some_and(|r| r.role() == Role::Leader);
        // Cheap first: `status` allocates, and two leaders at once are rare.
        if self.nodes.values().filter(|n| leads(n)).count() < 2 {
            return false;
        }
        let ballot = |n: &super::Node| Some(n.replica.as_ref()?.status().ballot);
        let Some(mine) = self.nodes.get(&node).filter(|n| leads(n)).and_then(ballot) else {
            return false;
        };
        let leaders = self.nodes.values().filter(|n| leads(n));
        leaders.filter_map(ballot).any(|b| b > mine)
    }

    /// The highest chosen index any node holds, in memory or durably.
    fn chosen_anywhere(&self) -> Index {
        self.nodes
            .values()
            .map(|n| {
                let live = n.replica.as_ref().map_or(0, |r| r.chosen_index());
                live.max(n.store.metadata().chosen_index)
            })
            .max()
            .unwrap_or(0)
    }
}
