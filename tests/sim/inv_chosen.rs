//! Invariant 7 — a node learns a value only once it is chosen: a quorum of
//! acceptors has *durably* written it at one ballot. A ghost over the
//! durable writes, so it counts the leader's own accept (which is never a
//! message) and never a reply that ran ahead of its write; it is what a
//! stale Accepted counted, an unsynced own accept or a follower's guess at
//! the chosen prefix cannot fake.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use paxlog::core::{Index, NodeId};
use paxlog_storage::{Ballot, WriteBatch};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_chosen";

#[derive(Debug)]
pub struct DurablyChosen {
    quorum: usize,
    /// `(index, ballot, value)` → acceptors that durably wrote it.
    votes: BTreeMap<(Index, Ballot, Bytes), BTreeSet<NodeId>>,
    /// index → the value a durable quorum holds (once true, true forever).
    pub chosen: BTreeMap<Index, Bytes>,
}

impl DurablyChosen {
    pub fn new(members: usize) -> Self {
        DurablyChosen {
            quorum: members / 2 + 1,
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
        }
    }

    /// Returns the indexes this write made chosen, with their value.
    pub fn on_write(
        &mut self,
        node: NodeId,
        batch: &WriteBatch,
        found: &mut Found,
    ) -> Vec<(Index, Bytes)> {
        let mut newly = Vec::new();
        for (index, a) in &batch.accepts {
            let voters = self
                .votes
                .entry((*index, a.ballot, a.value.clone()))
                .or_default();
            voters.insert(node);
            if voters.len() != self.quorum {
                continue;
            }
            match self.chosen.get(index) {
                Some(v) if *v != a.value => found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "two values durably chosen at index {index}: {v:?} and {:?} (ballot {})",
                        a.value, a.ballot
                    ),
                }),
                Some(_) => {}
                None => {
                    self.chosen.insert(*index, a.value.clone());
                    newly.push((*index, a.value.clone()));
                }
            }
        }
        newly
    }

    /// `node` handed `value` to its application as chosen at `index`.
    pub fn on_learned(&self, node: NodeId, index: Index, value: &Bytes, found: &mut Found) {
        match self.chosen.get(&index) {
            Some(v) if v == value => {}
            Some(v) => found.push(Violation {
                invariant: NAME,
                detail: format!("node {node} learned {value:?} at {index}, but {v:?} is chosen"),
            }),
            None => found.push(Violation {
                invariant: NAME,
                detail: format!(
                    "node {node} learned {value:?} at {index}, which no quorum durably accepted"
                ),
            }),
        }
    }
}
