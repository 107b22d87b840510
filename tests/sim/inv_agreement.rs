//! Invariant 1 — agreement: at most one value is ever chosen for an index.
//! A ghost oracle, independent of the core's own bookkeeping: an index is
//! chosen at a ballot when a quorum of acceptors sent `Accepted` for it at
//! that ballot; the value is what that ballot's leader proposed there.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use paxlog::core::{Ballot, Index, NodeId};

use super::invariants::{Found, Violation};

#[derive(Debug)]
pub struct Agreement {
    quorum: usize,
    proposals: BTreeMap<(Ballot, Index), Bytes>,
    acks: BTreeMap<(Ballot, Index), BTreeSet<NodeId>>,
    /// index → the value chosen (by the ghost or by any learner).
    pub chosen: BTreeMap<Index, Bytes>,
}

const NAME: &str = "inv_agreement";

impl Agreement {
    pub fn new(members: usize) -> Self {
        Agreement {
            quorum: members / 2 + 1,
            proposals: BTreeMap::new(),
            acks: BTreeMap::new(),
            chosen: BTreeMap::new(),
        }
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
        let mut newly = Vec::new();
        for &index in indexes {
            let voters = self.acks.entry((ballot, index)).or_default();
            voters.insert(node);
            if voters.len() != self.quorum {
                continue;
            }
            let Some(value) = self.proposals.get(&(ballot, index)).cloned() else {
                found.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "index {index} accepted at ballot {ballot} that proposed nothing there"
                    ),
                });
                continue;
            };
            self.on_learned(index, &value, found);
            newly.push((index, value));
        }
        newly
    }

    pub fn on_learned(&mut self, index: Index, value: &Bytes, found: &mut Found) {
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
