//! Invariant 1 — agreement: at most one value is ever chosen for an index.
//! A ghost oracle, independent of the core's own bookkeeping: an index is
//! chosen at a ballot when a quorum of acceptors — of the configuration the
//! one history says governs that index — sent `Accepted` for it at that
//! ballot; the value is what that ballot's leader proposed there. So no
//! index is chosen with two values, whatever configurations the quorums
//! that chose it belonged to.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use paxlog::core::{Ballot, Index, NodeId};

use super::governing::Governing;
use super::invariants::{Found, Violation};

#[derive(Debug)]
pub struct Agreement {
    proposals: BTreeMap<(Ballot, Index), Bytes>,
    acks: BTreeMap<(Index, Ballot), BTreeSet<NodeId>>,
    /// index → the value chosen (by the ghost or by any learner).
    pub chosen: BTreeMap<Index, Bytes>,
    /// The configuration of each index, folded from `chosen`: an index is
    /// counted against the one that governs it, which is known once every
    /// index below it is chosen (`settle`).
    governing: Governing,
}

const NAME: &str = "inv_agreement";

impl Agreement {
    pub fn new(seed: &[NodeId]) -> Self {
        Agreement {
            proposals: BTreeMap::new(),
            acks: BTreeMap::new(),
            chosen: BTreeMap::new(),
            governing: Governing::new(seed),
        }
    }

    pub fn governing(&self) -> &Governing {
        &self.governing
    }

    pub fn on_proposal(&mut self, ballot: Ballot, index: Index, value: &Bytes, found: &mut Found) {
        match self.proposals.get(&(ballot, index)) {
            Some(v) if v != value => found.push(Violation {
                invariant: NAME,
                detail: format!("ballot {ballot} proposed two values at index {index}"),
            }),
            Some(_) => {}
            None => {
                self.proposals.insert((ballot, index), value.clone());
            }
        }
    }

    /// Returns indexes that just became chosen, with their value.
    pub fn on_accepted(
        &mut self,
        node: NodeId,
        ballot: Ballot,
        indexes: &[Index],
        found: &mut Found,
    ) -> Vec<(Index, Bytes)> {
        for &index in indexes {
            self.acks.entry((index, ballot)).or_default().insert(node);
        }
        self.settle(found)
    }

    /// Decides, in index order, every index whose configuration is known
    /// and some ballot of which a quorum of that configuration accepted.
    fn settle(&mut self, found: &mut Found) -> Vec<(Index, Bytes)> {
        let mut newly = Vec::new();
        loop {
            while let Some(v) = self.chosen.get(&(self.governing.folded() + 1)) {
                let (index, v) = (self.governing.folded() + 1, v.clone());
                self.governing.fold(index, &v);
            }
            let index = self.governing.folded() + 1;
            let Some(m) = self.governing.at(index) else {
                return newly;
            };
            let won = self
                .acks
                .range((index, Ballot::ZERO)..=(index, Ballot::new(u64::MAX, u64::MAX)))
                .find(|(_, voters)| Governing::is_quorum(m, voters.iter()))
                .map(|(&(_, ballot), _)| ballot);
            let Some(ballot) = won else {
                return newly;
            };
            let Some(value) = self.proposals.get(&(ballot, index)).cloned() else {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "index {index} accepted at ballot {ballot} that proposed nothing there"
                    ),
                });
                return newly;
            };
            self.learn(index, &value, found);
            newly.push((index, value));
        }
    }

    /// A learner handed `value` out as chosen at `index`; returns what the
    /// ghost could decide once more of the prefix is known.
    pub fn on_learned(
        &mut self,
        index: Index,
        value: &Bytes,
        found: &mut Found,
    ) -> Vec<(Index, Bytes)> {
        self.learn(index, value, found);
        self.settle(found)
    }

    fn learn(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        match self.chosen.get(&index) {
            Some(v) if v != value => found.push(Violation {
                invariant: NAME,
                detail: format!("two values chosen at index {index}: {v:?} and {value:?}"),
            }),
            Some(_) => {}
            None => {
                self.chosen.insert(index, value.clone());
            }
        }
    }
}
