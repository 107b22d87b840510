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

use super::governing::Governing;
use super::invariants::{Found, Violation};

const NAME: &str = "inv_chosen";

#[derive(Debug)]
pub struct DurablyChosen {
    /// `(index, ballot, value)` → acceptors that durably wrote it.
    votes: BTreeMap<(Index, Ballot, Bytes), BTreeSet<NodeId>>,
    /// index → the value a durable quorum holds (once true, true forever).
    pub chosen: BTreeMap<Index, Bytes>,
    /// The configuration of each index, folded from `chosen` (see
    /// `inv_agreement`): a quorum is one of the configuration governing it.
    governing: Governing,
}

impl DurablyChosen {
    pub fn new(seed: &[NodeId]) -> Self {
        DurablyChosen {
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            governing: Governing::new(seed),
        }
    }

    /// Returns the indexes this write made chosen, with their value.
    pub fn on_write(
        &mut self,
        node: NodeId,
        batch: &WriteBatch,
        found: &mut Found,
    ) -> Vec<(Index, Bytes)> {
        for (index, a) in &batch.accepts {
            self.votes
                .entry((*index, a.ballot, a.value.clone()))
                .or_default()
                .insert(node);
        }
        let mut newly = Vec::new();
        loop {
            let index = self.governing.folded() + 1;
            let Some(m) = self.governing.at(index) else {
                break;
            };
            let lo = (index, Ballot::ZERO, Bytes::new());
            let won: Vec<Bytes> = self
                .votes
                .range(lo..)
                .take_while(|((i, _, _), _)| *i == index)
                .filter(|(_, voters)| Governing::is_quorum(m, voters.iter()))
                .map(|((_, _, v), _)| v.clone())
                .collect();
            let Some(first) = won.first().cloned() else {
                break;
            };
            if let Some(other) = won.iter().find(|v| **v != first) {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "two values durably chosen at index {index}: {first:?} and {other:?}"
                    ),
                });
            }
            self.chosen.insert(index, first.clone());
            self.governing.fold(index, &first);
            newly.push((index, first));
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
