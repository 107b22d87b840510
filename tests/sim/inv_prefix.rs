//! Invariant 2 — every node's chosen prefix is a prefix of the one history:
//! each node's learner emits indexes consecutively (no gap, no repeat, also
//! across restarts) and each emitted value equals the history's.

use std::collections::BTreeMap;

use bytes::Bytes;
use paxlog::core::{Index, NodeId};

use super::invariants::{Found, Violation};

const NAME: &str = "inv_prefix";

#[derive(Debug, Default)]
pub struct Prefix {
    pub history: BTreeMap<Index, Bytes>,
}

impl Prefix {
    pub fn on_history(&mut self, index: Index, value: &Bytes, found: &mut Found) {
        match self.history.get(&index) {
            Some(v) if v != value => found.push(Violation {
                invariant: NAME,
                detail: format!("history at {index} is {v:?}, now {value:?}"),
            }),
            Some(_) => {}
            None => {
                self.history.insert(index, value.clone());
            }
        }
    }

    pub fn on_output(
        &mut self,
        node: NodeId,
        applied: Index,
        index: Index,
        value: &Bytes,
        found: &mut Found,
    ) {
        if index != applied + 1 {
            found.push(Violation {
                invariant: NAME,
                detail: format!("node {node} emitted index {index} after {applied}"),
            });
        }
        self.on_history(index, value, found);
    }
}
